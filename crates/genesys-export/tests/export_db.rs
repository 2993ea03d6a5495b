//! `--out sqlite:PATH` and `--out postgres://…` end to end, against keel-sim with faults:
//! exactly once (rows = the simulator's ground truth), kill -9 then a plain re-run, re-run
//! idempotence, the run lock, the schema check, and `--incremental` over live data.
//!
//! PostgreSQL is a throwaway cluster from keel-testkit (a database per test); its tests are
//! skipped when PostgreSQL is not installed, and fail then under `KEEL_REQUIRE_POSTGRES=1`.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{binary, query_json, run_binary, sim, stderr, INTERVAL};
use genesys_export::{Args, ExportError, Summary};
use keel_genesys::PageSink as _;
use keel_genesys_db::{DbSink, Destination, ExportSpec};
use keel_sim::{Fault, SimBuilder, SimHandle, Simulator};
use keel_testkit::postgres::{PgCluster, TestDatabase};
use secrecy::SecretString;
use sqlx::{Connection as _, Row as _};

/// The database under test.
enum Db {
    Sqlite {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    },
    Pg(TestDatabase),
}

impl Db {
    fn sqlite() -> Option<Db> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cx.db");
        Some(Db::Sqlite { _dir: dir, path })
    }

    fn pg() -> Option<Db> {
        Some(Db::Pg(PgCluster::shared()?.create_database()))
    }

    /// The `--out` value: for PostgreSQL without its password (see [`Db::env`]).
    fn out(&self) -> String {
        match self {
            Db::Sqlite { path, .. } => format!("sqlite:{}", path.display()),
            Db::Pg(db) => db.url_without_password(),
        }
    }

    /// Sets the password where libpq's conventions (and the sink) look for it.
    fn env(&self, cmd: &mut std::process::Command) {
        if let Db::Pg(db) = self {
            cmd.env("PGPASSWORD", db.password());
        }
    }

    fn destination(&self) -> Destination {
        match self {
            Db::Sqlite { path, .. } => Destination::Sqlite(path.clone()),
            Db::Pg(db) => Destination::parse(&db.url()).unwrap(),
        }
    }

    /// Rows of a query whose columns are all text (cast them in the SQL).
    async fn texts(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            Db::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                let mut st = conn.prepare(sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
                let n = st.column_count();
                let rows = st
                    .query_map([], |r| (0..n).map(|i| r.get(i)).collect())
                    .unwrap();
                rows.collect::<rusqlite::Result<_>>().unwrap()
            }
            Db::Pg(db) => {
                let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
                let rows = sqlx::query(sql)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{e}: {sql}"));
                rows.iter()
                    .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
                    .collect()
            }
        }
    }

    /// Runs a statement that returns no rows.
    async fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.execute(sql, [])
                    .unwrap_or_else(|e| panic!("{e}: {sql}"));
            }
            Db::Pg(db) => {
                let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
                sqlx::query(sql)
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{e}: {sql}"));
            }
        }
    }

    async fn count(&self, sql: &str) -> u64 {
        let rows = self.texts(sql).await;
        rows[0][0].as_deref().unwrap().parse().unwrap()
    }

    /// Every stored conversation: id → the record as stored.
    async fn records(&self) -> BTreeMap<String, String> {
        self.texts("SELECT CAST(conversation_id AS TEXT), CAST(record AS TEXT) FROM conversations")
            .await
            .into_iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
            .collect()
    }

    /// Pages the export state records, 0 before the schema exists.
    async fn pages_committed(&self) -> u64 {
        const SQL: &str = "SELECT pages FROM keel_exports";
        match self {
            Db::Sqlite { path, .. } => {
                let Ok(conn) = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                ) else {
                    return 0;
                };
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.query_row(SQL, [], |r| r.get::<_, i64>(0))
                    .map_or(0, |p| p as u64)
            }
            Db::Pg(db) => {
                let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
                sqlx::query_scalar::<_, i64>(SQL)
                    .fetch_optional(&mut conn)
                    .await
                    .ok()
                    .flatten()
                    .map_or(0, |p| p as u64)
            }
        }
    }

    fn is_sqlite(&self) -> bool {
        matches!(self, Db::Sqlite { .. })
    }
}

/// The child rows a set of records must have: participants, sessions, segments, metrics.
fn child_counts<'a>(records: impl IntoIterator<Item = &'a str>) -> [u64; 4] {
    let mut n = [0u64; 4];
    for r in records {
        let v: serde_json::Value = serde_json::from_str(r).unwrap();
        for p in v["participants"].as_array().into_iter().flatten() {
            n[0] += 1;
            for s in p["sessions"].as_array().into_iter().flatten() {
                n[1] += 1;
                n[2] += s["segments"].as_array().map_or(0, |a| a.len() as u64);
                n[3] += s["metrics"].as_array().map_or(0, |a| a.len() as u64);
            }
        }
    }
    n
}

async fn stored_child_counts(db: &Db) -> [u64; 4] {
    let mut n = [0u64; 4];
    for (i, t) in ["participants", "sessions", "segments", "session_metrics"]
        .iter()
        .enumerate()
    {
        n[i] = db
            .count(&format!("SELECT CAST(COUNT(*) AS TEXT) FROM {t}"))
            .await;
    }
    n
}

/// Asserts the database holds exactly `truth` (canonical JSON strings): every conversation
/// once, its record byte for byte in SQLite (as JSON values in PostgreSQL's `jsonb`), and
/// the child rows of exactly these records.
async fn assert_db_is(db: &Db, truth: &[String]) {
    assert!(!truth.is_empty(), "a test must export something");
    let stored = db.records().await;
    let mut want = BTreeMap::new();
    for t in truth {
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        want.insert(v["conversationId"].as_str().unwrap().to_owned(), t.clone());
    }
    assert_eq!(stored.len(), want.len(), "rows vs ground truth");
    for (id, w) in &want {
        let got = stored
            .get(id)
            .unwrap_or_else(|| panic!("conversation {id} missing"));
        if db.is_sqlite() {
            assert_eq!(got, w, "record of {id} is not byte-exact");
        } else {
            let (g, w): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(got).unwrap(),
                serde_json::from_str(w).unwrap(),
            );
            assert_eq!(g, w, "record of {id}");
        }
    }
    assert_eq!(
        stored_child_counts(db).await,
        child_counts(want.values().map(String::as_str)),
        "child rows (participants, sessions, segments, metrics)"
    );
}

fn truth(sim: &SimHandle, query: &serde_json::Value) -> Vec<String> {
    sim.ground_truth(query).unwrap().collect()
}

/// A simulator of `n` conversations with the faults of the `--sim` script: short tokens
/// revoked early, a rate limit, a 429 with `Retry-After`, a 503, a dropped connection, a
/// 502, and random 503s.
fn faulty(n: u64) -> SimBuilder {
    sim(n)
        .token_lifetime(Duration::from_secs(30))
        .revoke_after_requests(20)
        .rate_limit_per_sec(300)
        .unavailable_probability(0.01)
        .fault(
            5,
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        )
        .fault(11, Fault::Unavailable)
        .fault(17, Fault::Drop)
        .fault(23, Fault::Status(502))
}

fn flags(sim: &SimHandle, out: &str, extra: &[&str]) -> Vec<String> {
    let url = sim.base_url();
    let mut v: Vec<String> = [
        "--api-url",
        &url,
        "--login-url",
        &url,
        "--progress",
        "quiet",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

async fn run_in_process(sim: &SimHandle, db: &Db, extra: &[&str]) -> Result<Summary, ExportError> {
    let mut argv = vec!["genesys-export".to_owned()];
    let out = match db {
        Db::Pg(d) => d.url(),
        other => other.out(),
    };
    argv.extend(flags(sim, &out, extra));
    let args = Args::try_parse_from(argv).expect("valid flags");
    let creds = keel_genesys::Credentials::new(
        sim.client_id(),
        SecretString::from(sim.client_secret().to_owned()),
    );
    genesys_export::run_with_credentials(args, creds).await
}

use clap::Parser as _;

// ---------------------------------------------------------------------------------------------
// Exactly once, re-run idempotence.
// ---------------------------------------------------------------------------------------------

async fn exactly_once_through_faults_and_a_rerun_changes_nothing(db: Db) {
    let sim = faulty(1_200).start().await.unwrap();
    let extra = ["--interval", INTERVAL, "--page-size", "50"];
    let s = run_in_process(&sim, &db, &extra).await.unwrap();
    let want = truth(&sim, &query_json(None));
    assert_eq!(s.conversations, want.len() as u64);
    assert!(
        s.replays_401 > 0 && s.waits_429 > 0 && s.other_retries > 0,
        "faults were met: {s:?}"
    );
    assert_db_is(&db, &want).await;

    // A second run of the same, completed export: the same rows, upserted, no duplicate
    // conversation or child row.
    let s = run_in_process(&sim, &db, &extra).await.unwrap();
    assert_eq!(s.conversations, want.len() as u64, "exported again in full");
    assert_db_is(&db, &want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_exactly_once_through_faults_and_a_rerun_changes_nothing() {
    exactly_once_through_faults_and_a_rerun_changes_nothing(Db::sqlite().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_exactly_once_through_faults_and_a_rerun_changes_nothing() {
    let Some(db) = Db::pg() else { return };
    exactly_once_through_faults_and_a_rerun_changes_nothing(db).await;
}

// ---------------------------------------------------------------------------------------------
// kill -9, then a plain re-run.
// ---------------------------------------------------------------------------------------------

async fn killed_then_rerun_is_exact(db: Db) {
    // 80 pages, two in flight, 40 ms each: killed once the database holds 10 pages.
    let sim = sim(4_000)
        .page_latency(Duration::from_millis(40))
        .revoke_after_requests(15)
        .start()
        .await
        .unwrap();
    let extra = [
        "--interval",
        INTERVAL,
        "--page-size",
        "50",
        "--prefetch",
        "2",
    ];
    let mut cmd = binary(&sim);
    cmd.args(flags(&sim, &db.out(), &extra));
    db.env(&mut cmd);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if db.pages_committed().await >= 10 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no progress recorded");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = db
        .count("SELECT CAST(COUNT(*) AS TEXT) FROM conversations")
        .await;
    assert!(
        (500..4_000).contains(&at_kill),
        "{at_kill} rows at the kill"
    );

    let mut cmd = binary(&sim);
    cmd.args(flags(&sim, &db.out(), &extra));
    db.env(&mut cmd);
    let o = run_binary(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("continuing the interrupted export"),
        "{}",
        stderr(&o)
    );
    assert_db_is(&db, &truth(&sim, &query_json(None))).await;
    assert!(
        sim.stats().pages_served < 80 + 15,
        "the second run did not start over: {:?}",
        sim.stats()
    );
    let left = db
        .texts("SELECT resume FROM keel_exports WHERE resume IS NOT NULL")
        .await;
    assert!(left.is_empty(), "a complete export clears its resume point");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_mid_run_then_rerun_exports_every_record_exactly_once() {
    killed_then_rerun_is_exact(Db::sqlite().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_mid_run_then_rerun_exports_every_record_exactly_once() {
    let Some(db) = Db::pg() else { return };
    killed_then_rerun_is_exact(db).await;
}

// ---------------------------------------------------------------------------------------------
// A database error in the middle: exit 5 naming the destination, then an exact re-run.
// ---------------------------------------------------------------------------------------------

async fn a_database_error_mid_run_exits_5_and_the_rerun_is_exact(db: Db) {
    let sim = sim(1_000).start().await.unwrap();
    let extra = ["--interval", INTERVAL, "--page-size", "50"];
    drop(
        DbSink::connect(
            &db.destination(),
            ExportSpec::new("schema", query_json(None)),
        )
        .await
        .unwrap(),
    );
    // Inserting a conversation fails once 300 are stored.
    if db.is_sqlite() {
        db.exec(
            "CREATE TRIGGER keel_test_fail BEFORE INSERT ON conversations \
             WHEN (SELECT COUNT(*) FROM conversations) >= 300 \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .await;
    } else {
        db.exec(
            "CREATE FUNCTION keel_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF (SELECT COUNT(*) FROM conversations) >= 300 THEN \
             RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$",
        )
        .await;
        db.exec(
            "CREATE TRIGGER keel_test_fail BEFORE INSERT ON conversations \
             FOR EACH ROW EXECUTE FUNCTION keel_test_fail()",
        )
        .await;
    }
    let mut cmd = binary(&sim);
    cmd.args(flags(&sim, &db.out(), &extra));
    db.env(&mut cmd);
    let o = run_binary(cmd).await;
    let shown = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{shown}");
    assert!(shown.contains(&db.out()), "{shown}");
    assert!(shown.contains("injected failure"), "{shown}");
    assert!(
        shown.contains("run the same command again to continue"),
        "{shown}"
    );
    // Whole pages only, and exactly those the stored export state counts.
    let stored = db
        .count("SELECT CAST(COUNT(*) AS TEXT) FROM conversations")
        .await;
    let counted = db
        .count("SELECT CAST(conversations AS TEXT) FROM keel_exports WHERE export_key <> 'schema'")
        .await;
    assert_eq!(stored, counted);
    assert!(
        (100..1_000).contains(&stored) && stored % 50 == 0,
        "{stored} stored"
    );
    // The summary says what the database holds, not what was handed to it.
    assert!(
        shown.contains(&format!(
            "genesys-export: {stored} conversations, {} pages to",
            stored / 50
        )),
        "{stored} stored: {shown}"
    );

    db.exec(
        "DROP TRIGGER keel_test_fail ON conversations"
            .replace(
                " ON conversations",
                if db.is_sqlite() {
                    ""
                } else {
                    " ON conversations"
                },
            )
            .as_str(),
    )
    .await;
    let served = sim.stats().pages_served;
    let s = run_in_process(&sim, &db, &extra).await.unwrap();
    assert_eq!(
        (s.conversations, s.resumed_conversations),
        (1_000, stored),
        "resumed after the stored pages"
    );
    assert!(
        sim.stats().pages_served - served <= 20 - stored / 50 + 1,
        "the re-run did not start over: {} pages",
        sim.stats().pages_served - served
    );
    assert_db_is(&db, &truth(&sim, &query_json(None))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_failure_mid_run_says_a_plain_rerun_continues_and_it_does() {
    let db = Db::sqlite().unwrap();
    let sim = sim(500).fault(6, Fault::Status(400)).start().await.unwrap();
    let extra = ["--interval", INTERVAL, "--page-size", "50"];
    let e = run_in_process(&sim, &db, &extra).await.unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    let stored = db
        .count("SELECT CAST(COUNT(*) AS TEXT) FROM conversations")
        .await;
    assert!((50..500).contains(&stored), "{stored} stored");
    let shown = e.to_string();
    assert!(
        shown.contains(&format!(
            "export stopped after {} pages ({stored} conversations written; the database keeps \
             where to resume: run the same command again to continue)",
            stored / 50
        )),
        "{shown}"
    );
    let s = run_in_process(&sim, &db, &extra).await.unwrap();
    assert_eq!((s.conversations, s.resumed_conversations), (500, stored));
    assert_db_is(&db, &truth(&sim, &query_json(None))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_database_error_mid_run_exits_5_and_the_rerun_is_exact() {
    a_database_error_mid_run_exits_5_and_the_rerun_is_exact(Db::sqlite().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_database_error_mid_run_exits_5_and_the_rerun_is_exact() {
    let Some(db) = Db::pg() else { return };
    a_database_error_mid_run_exits_5_and_the_rerun_is_exact(db).await;
}

// ---------------------------------------------------------------------------------------------
// Lock, schema, usage, passwords.
// ---------------------------------------------------------------------------------------------

async fn a_locked_destination_exits_2_before_any_api_call(db: Db) {
    let sim = sim(100).start().await.unwrap();
    let mut holder = DbSink::connect(
        &db.destination(),
        ExportSpec::new("another export", serde_json::json!({})),
    )
    .await
    .unwrap();
    holder.open().await.unwrap();
    let e = run_in_process(&sim, &db, &["--interval", INTERVAL])
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("another export is running"), "{e}");
    assert!(e.to_string().contains(&db.destination().to_string()), "{e}");
    assert_eq!(sim.stats().api_requests, 0);
    let e = run_in_process(&sim, &db, &["--incremental"])
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 2, "an overlapping incremental run: {e}");
    assert_eq!(sim.stats().api_requests, 0);
    holder.close().await.unwrap();
    run_in_process(&sim, &db, &["--interval", INTERVAL])
        .await
        .unwrap();
}

#[tokio::test]
async fn sqlite_a_locked_destination_exits_2_before_any_api_call() {
    a_locked_destination_exits_2_before_any_api_call(Db::sqlite().unwrap()).await;
}

#[tokio::test]
async fn postgres_a_locked_destination_exits_2_before_any_api_call() {
    let Some(db) = Db::pg() else { return };
    a_locked_destination_exits_2_before_any_api_call(db).await;
}

#[tokio::test]
async fn a_table_with_other_columns_stops_the_run_naming_it_before_any_fetch() {
    let db = Db::sqlite().unwrap();
    let Db::Sqlite { path, .. } = &db else {
        unreachable!()
    };
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch("CREATE TABLE participants (id TEXT PRIMARY KEY, name TEXT)")
        .unwrap();
    let sim = sim(100).start().await.unwrap();
    let e = run_in_process(&sim, &db, &["--interval", INTERVAL])
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 5, "{e}");
    assert!(e.to_string().contains("`participants`"), "{e}");
    assert_eq!(sim.stats().api_requests, 0, "nothing fetched");
}

#[tokio::test]
async fn incremental_into_a_file_is_a_usage_error() {
    let sim = sim(10).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.ndjson");
    let mut argv = vec!["genesys-export".to_owned()];
    argv.extend(flags(&sim, out.to_str().unwrap(), &["--incremental"]));
    let e = genesys_export::run(Args::try_parse_from(argv).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string().contains("--incremental needs a database"),
        "{e}"
    );
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_url_is_accepted_with_one_warning_and_never_printed() {
    let Some(Db::Pg(pg)) = Db::pg() else { return };
    let sim = sim(200).start().await.unwrap();
    let mut cmd = binary(&sim);
    cmd.args(flags(&sim, &pg.url(), &["--interval", INTERVAL]))
        .env_remove("PGPASSWORD");
    let o = run_binary(cmd).await;
    let (out, err) = (String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("carries a password").count(), 1, "{err}");
    assert!(err.contains(":***@"), "{err}");
    for text in [&*out, &*err] {
        assert!(!text.contains(pg.password()), "password printed: {text}");
    }

    // A wrong password: exit 5, naming the destination, still without the password.
    let bad = pg.url().replace(pg.password(), "not-the-password-123");
    let mut cmd = binary(&sim);
    cmd.args(flags(&sim, &bad, &["--interval", INTERVAL]));
    let o = run_binary(cmd).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains(&pg.url_without_password().replace("@", ":***@")),
        "{err}"
    );
    assert!(!err.contains("not-the-password-123"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_flag_with_its_default_faults_fills_sqlite_once() {
    let db = Db::sqlite().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_genesys-export"));
    cmd.args([
        "--sim",
        "--sim-conversations",
        "1500",
        "--progress",
        "quiet",
        "--out",
        &db.out(),
    ]);
    let o = run_binary(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ids = db
        .count("SELECT CAST(COUNT(DISTINCT conversation_id) AS TEXT) FROM conversations")
        .await;
    assert_eq!(ids, 1_500);
    let records = db.records().await;
    assert_eq!(
        stored_child_counts(&db).await,
        child_counts(records.values().map(String::as_str))
    );
}

// ---------------------------------------------------------------------------------------------
// --incremental over live data.
// ---------------------------------------------------------------------------------------------

fn iso(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Every stored record equals what the API holds for it now.
async fn assert_every_record_is_current(db: &Db, sim: &SimHandle) {
    for (id, stored) in db.records().await {
        let now_json = sim.conversation_json_now(&id).expect("known to the API");
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&stored).unwrap(),
            serde_json::from_str(&now_json).unwrap(),
        );
        assert_eq!(a, b, "{id} is not in its current state");
    }
}

async fn incremental_runs_converge_to_the_final_state(db: Db) {
    // 600 conversations over 4 hours from 2026-01-01T00:00Z; the clock at 02:00, then 05:00
    // with new arrivals after 04:00.
    const H: i64 = 3_600_000;
    let day = 1_767_225_600_000_i64; // 2026-01-01T00:00:00Z
    let sim = Simulator::builder()
        .conversations(600)
        .seed(3)
        .data_start_ms(day)
        .data_span(Duration::from_secs(4 * 3_600))
        .clock_at_ms(day + 2 * H)
        .arrivals_per_minute(1.0)
        .revoke_after_requests(10)
        .fault(3, Fault::Unavailable)
        .start()
        .await
        .unwrap();
    let run = |now: i64| {
        let now = iso(now);
        let sim = &sim;
        let db = &db;
        async move {
            run_in_process(
                sim,
                db,
                &[
                    "--incremental",
                    "--since",
                    "5h",
                    "--overlap",
                    "1m",
                    "--page-size",
                    "40",
                    "--now",
                    &now,
                ],
            )
            .await
            .unwrap()
        }
    };
    run(sim.now_ms()).await;
    let in_progress = db
        .texts("SELECT CAST(c.conversation_start AS TEXT) FROM keel_in_progress p JOIN conversations c USING (conversation_id)")
        .await;
    assert!(
        in_progress.len() >= 3,
        "some conversations were in progress at run 1: {}",
        in_progress.len()
    );
    let no_end = db
        .count("SELECT CAST(COUNT(*) AS TEXT) FROM conversations WHERE conversation_end IS NULL")
        .await;
    assert_eq!(no_end, in_progress.len() as u64);

    let watermark = || async {
        let rows = db
            .texts("SELECT CAST(watermark AS TEXT) FROM keel_exports WHERE watermark IS NOT NULL")
            .await;
        assert_eq!(rows.len(), 1, "one incremental definition");
        rows[0][0].clone().unwrap()
    };
    assert!(
        watermark().await.contains("02:00:00"),
        "{}",
        watermark().await
    );

    sim.advance(Duration::from_secs(3 * 3_600));
    let now = sim.now_ms();
    let second = run(now).await;
    assert!(
        watermark().await.contains("05:00:00"),
        "{}",
        watermark().await
    );
    // From the watermark (01:59), not from `--since` (00:00): about half of the 600, the
    // arrivals, and the conversations in progress fetched again.
    assert!(
        (100..450).contains(&second.conversations),
        "run 2 exported {} conversations",
        second.conversations
    );

    // Everything the API holds now, from run 1's start, in its current state.
    let all = serde_json::json!({"interval": format!("{}/{}", iso(day - H), iso(now))});
    let want = truth(&sim, &all);
    assert!(want.len() > 600, "arrivals came in: {}", want.len());
    assert_db_is(&db, &want).await;
    assert_every_record_is_current(&db, &sim).await;
    // Those of run 1 that were in progress are all final now (ended within the 3 hours).
    let still = db
        .count("SELECT CAST(COUNT(*) AS TEXT) FROM keel_in_progress p JOIN conversations c USING (conversation_id) WHERE c.conversation_start < '2026-01-01T02:00:00Z'")
        .await;
    assert_eq!(
        still, 0,
        "run 1's conversations in progress have ended and were fetched again"
    );
}

/// 200 conversations over four hours from 2026-01-01T00:00Z, the clock at 02:00: some are
/// in progress.
async fn live_sim() -> SimHandle {
    const H: i64 = 3_600_000;
    let day = 1_767_225_600_000_i64; // 2026-01-01T00:00:00Z
    Simulator::builder()
        .conversations(200)
        .seed(5)
        .data_start_ms(day)
        .data_span(Duration::from_secs(4 * 3_600))
        .clock_at_ms(day + 2 * H)
        .start()
        .await
        .unwrap()
}

/// An incremental run (`--since 5h --overlap 1m`) as if at `now_ms`.
async fn incremental_at(sim: &SimHandle, db: &Db, now_ms: i64) -> Summary {
    let now = iso(now_ms);
    let flags = [
        "--incremental",
        "--since",
        "5h",
        "--overlap",
        "1m",
        "--now",
        &now,
    ];
    run_in_process(sim, db, &flags).await.unwrap()
}

/// A conversation in progress at one run is fetched again however long ago it started: the
/// next run here is eight days later (the re-fetch once looked back seven days only).
async fn conversations_in_progress_for_days_are_still_fetched_again(db: Db) {
    let sim = live_sim().await;
    incremental_at(&sim, &db, sim.now_ms()).await;
    let early_in_progress = "SELECT CAST(COUNT(*) AS TEXT) FROM keel_in_progress p \
         JOIN conversations c USING (conversation_id) \
         WHERE c.conversation_start < '2026-01-01T01:50:00Z'";
    assert!(
        db.count(early_in_progress).await > 0,
        "run 1 left conversations in progress that started before the next run's window"
    );
    sim.advance(Duration::from_secs(8 * 86_400));
    incremental_at(&sim, &db, sim.now_ms()).await;
    assert_eq!(
        db.count(early_in_progress).await,
        0,
        "all ended and fetched again"
    );
    assert_every_record_is_current(&db, &sim).await;
}

/// A conversation stored in progress that the API no longer returns (deleted) is asked for
/// once more, then no longer; its row stays as last stored.
async fn a_conversation_in_progress_the_api_no_longer_has_is_not_asked_for_again(db: Db) {
    const GONE: &str = "00000000-0000-4000-8000-00000000dead";
    let sim = live_sim().await;
    incremental_at(&sim, &db, sim.now_ms()).await;
    // A copy of the earliest conversation in progress, under an id the API never had.
    let id = if db.is_sqlite() {
        format!("'{GONE}'")
    } else {
        format!("CAST('{GONE}' AS uuid)")
    };
    let columns = "conversation_start, conversation_end, start_day, start_hour, duration_ms, \
                   originating_direction, media_types, division_ids, record, written_at, run_id";
    db.exec(&format!(
        "INSERT INTO conversations (conversation_id, {columns}) SELECT {id}, {columns} \
         FROM conversations WHERE conversation_id IN (SELECT conversation_id FROM keel_in_progress) \
         ORDER BY conversation_start LIMIT 1"
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO keel_in_progress (export_key, conversation_id) \
         SELECT export_key, {id} FROM keel_in_progress LIMIT 1"
    ))
    .await;
    let tracked = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM keel_in_progress WHERE conversation_id = '{GONE}'"
    );
    assert_eq!(db.count(&tracked).await, 1);

    sim.advance(Duration::from_secs(60));
    incremental_at(&sim, &db, sim.now_ms()).await;
    assert_eq!(db.count(&tracked).await, 0, "not asked for again");
    let row = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM conversations \
         WHERE conversation_id = '{GONE}' AND conversation_end IS NULL"
    );
    assert_eq!(db.count(&row).await, 1, "its row stays as last stored");
    // Every other conversation stored without an end is still fetched again.
    let open = db
        .count("SELECT CAST(COUNT(*) AS TEXT) FROM conversations WHERE conversation_end IS NULL")
        .await;
    let still = db
        .count("SELECT CAST(COUNT(*) AS TEXT) FROM keel_in_progress")
        .await;
    assert!(
        open > 1,
        "some are still in progress a minute later: {open}"
    );
    assert_eq!(still, open - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_conversation_in_progress_the_api_no_longer_has_is_not_asked_for_again() {
    a_conversation_in_progress_the_api_no_longer_has_is_not_asked_for_again(Db::sqlite().unwrap())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_conversation_in_progress_the_api_no_longer_has_is_not_asked_for_again() {
    let Some(db) = Db::pg() else { return };
    a_conversation_in_progress_the_api_no_longer_has_is_not_asked_for_again(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conversations_in_progress_for_days_are_still_fetched_again() {
    conversations_in_progress_for_days_are_still_fetched_again(Db::sqlite().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conversations_in_progress_for_days_are_still_fetched_again() {
    let Some(db) = Db::pg() else { return };
    conversations_in_progress_for_days_are_still_fetched_again(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_incremental_runs_converge_to_the_final_state() {
    incremental_runs_converge_to_the_final_state(Db::sqlite().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_incremental_runs_converge_to_the_final_state() {
    let Some(db) = Db::pg() else { return };
    incremental_runs_converge_to_the_final_state(db).await;
}
