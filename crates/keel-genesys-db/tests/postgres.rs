//! The shared sink behaviour (`common`) against a real PostgreSQL server (a throwaway cluster
//! from keel-testkit, a database per test). Skipped loudly when PostgreSQL is not installed,
//! failed when `KEEL_REQUIRE_POSTGRES=1`.

mod common;

use common::{Backend, Val};
use keel_genesys::PageSink as _;
use keel_genesys_db::{DbError, DbSink, Destination, PostgresSink};
use keel_testkit::postgres::{PgCluster, TestDatabase};
use sqlx::{Column as _, Connection as _, Row as _, TypeInfo as _, ValueRef as _};

struct Pg {
    db: TestDatabase,
}

impl Pg {
    fn new() -> Option<Pg> {
        Some(Pg {
            db: PgCluster::shared()?.create_database(),
        })
    }

    async fn conn(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.db.url()).await.unwrap()
    }
}

impl Backend for Pg {
    fn destination(&self) -> Destination {
        Destination::parse(&self.db.url()).unwrap()
    }

    async fn rows(&self, sql: &str) -> Vec<Vec<Val>> {
        let mut conn = self.conn().await;
        let rows = sqlx::query(sql)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        if r.try_get_raw(i).unwrap().is_null() {
                            return Val::Null;
                        }
                        match r.column(i).type_info().name() {
                            "INT2" => Val::Int(i64::from(r.get::<i16, _>(i))),
                            "INT4" => Val::Int(i64::from(r.get::<i32, _>(i))),
                            "INT8" => Val::Int(r.get::<i64, _>(i)),
                            "FLOAT4" => Val::Float(f64::from(r.get::<f32, _>(i))),
                            "FLOAT8" => Val::Float(r.get::<f64, _>(i)),
                            "TEXT" | "VARCHAR" | "NAME" => Val::Text(r.get::<String, _>(i)),
                            other => panic!("column {i} of type {other}: cast it in the test"),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    async fn exec(&self, sql: &str) {
        let mut conn = self.conn().await;
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }

    fn failure_trigger(&self) -> &'static str {
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.name = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER boom BEFORE INSERT ON session_metrics FOR EACH ROW EXECUTE FUNCTION boom();"
    }
}

all_tests!(Pg::new());

#[tokio::test]
async fn the_run_lock_is_a_session_advisory_lock_released_when_its_connection_goes() {
    let Some(b) = Pg::new() else { return };
    let sink = common::connect(&b).await;
    let held = b
        .rows(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .await;
    assert_eq!(held[0][0].int(), 1);
    drop(sink); // like a killed run: no close; the server drops the lock with the connection
    let mut waited = 0;
    loop {
        match DbSink::connect(&b.destination(), common::spec()).await {
            Ok(_) => break,
            Err(DbError::Locked { .. }) if waited < 100 => {
                waited += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn passwords_never_appear_in_errors_or_debug_output() {
    let Some(b) = Pg::new() else { return };
    let wrong = b.db.url().replace(b.db.password(), "Wr0ng-Passw0rd");
    let dest = Destination::parse(&wrong).unwrap();
    assert!(dest.has_password_in_url());
    let err = DbSink::connect(&dest, common::spec()).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, DbError::Database { .. }), "{err:?}");
    assert!(!shown.contains("Wr0ng-Passw0rd"), "{shown}");
    assert!(shown.contains("***@127.0.0.1"), "{shown}");
    assert!(shown.contains("password authentication failed"), "{shown}");

    let mut sink = PostgresSink::connect(
        match &b.destination() {
            Destination::Postgres(u) => u,
            Destination::Sqlite(_) => unreachable!(),
        },
        common::spec(),
    )
    .await
    .unwrap();
    let debug = format!("{sink:?} {:?}", b.destination());
    assert!(!debug.contains(b.db.password()), "{debug}");
    sink.open().await.unwrap();
    sink.close().await.unwrap();
}

#[tokio::test]
async fn child_commits_until_killed() {
    common::child_commits_until_killed().await;
}

#[tokio::test]
async fn a_run_killed_mid_page_resumes_exactly() {
    let Some(b) = Pg::new() else { return };
    let text = b.db.url();
    common::a_run_killed_mid_page_resumes_exactly(b, &text, "child_commits_until_killed").await;
}

// ---------------------------------------------------------------------------------------------
// Pipelined commits: pages in flight on two connections still become durable in order.
// ---------------------------------------------------------------------------------------------

/// Commits pages 2 (with a conversation whose metric is `bad_metric`) and 3 without waiting,
/// then flushes: the failure of page 2 must take page 3 with it.
async fn a_failed_page_takes_the_pages_accepted_after_it(trigger: &str, bad_metric: &str) {
    use common::CommitNow as _;
    use keel_genesys::sink::Commit;
    let Some(b) = Pg::new() else { return };
    let mut sink = common::connect(&b).await;
    sink.open().await.unwrap();
    sink.commit_page(&common::records(0..5), 1).await.unwrap();
    b.exec(trigger).await;
    let mut bad = common::conversation(9, true);
    bad["participants"][0]["sessions"][0]["metrics"][0]["name"] = bad_metric.into();
    let mut page2 = common::records(5..9);
    page2.push(common::record(&bad));
    for (page, k) in [(page2, 2), (common::records(10..15), 3)] {
        sink.commit(Commit::new(&page, &common::checkpoint(k), 1))
            .await
            .expect("accepted: the failure is reported later");
    }
    assert_eq!(sink.unconfirmed(), (0, 0));
    let err = sink.flush().await.unwrap_err().to_string();
    assert!(err.contains("injected failure"), "{err}");
    assert!(err.contains("1 page(s) accepted after it"), "{err}");
    assert_eq!(
        sink.unconfirmed(),
        (2, 10),
        "pages 2 and 3, accepted, not stored"
    );
    // Page 3's own transaction was fine: only the order of commits keeps it out.
    common::assert_rows_of(&b, 0..5).await;
    let state = common::sink_state(&b).await;
    assert_eq!(state.resume, Some(common::checkpoint(1)));
    assert_eq!((state.pages, state.conversations), (1, 5));

    // The sink goes on from the last durable page.
    sink.commit_page(&common::records(5..10), 2).await.unwrap();
    common::assert_rows_of(&b, 0..10).await;
}

#[tokio::test]
async fn a_page_failing_mid_transaction_takes_the_next_page_with_it() {
    // The predecessor fails before it stores its resume point: its successor never finds it.
    a_failed_page_takes_the_pages_accepted_after_it(
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.name = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER boom BEFORE INSERT ON session_metrics FOR EACH ROW EXECUTE FUNCTION boom();",
        "boom",
    )
    .await;
}

#[tokio::test]
async fn a_page_failing_at_its_commit_takes_the_next_page_with_it() {
    // The predecessor stores its resume point, then fails at COMMIT (a deferred constraint
    // trigger): its successor has already been told to follow it and must see it roll back.
    a_failed_page_takes_the_pages_accepted_after_it(
        "CREATE FUNCTION boom_late() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.name = 'boom-late' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER boom_late AFTER INSERT ON session_metrics \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION boom_late();",
        "boom-late",
    )
    .await;
}

#[tokio::test]
async fn pages_sharing_a_conversation_are_written_one_after_the_other() {
    use keel_genesys::sink::Commit;
    let Some(b) = Pg::new() else { return };
    let mut sink = common::connect(&b).await;
    sink.open().await.unwrap();
    let mut again = common::conversation(4, true);
    again["originatingDirection"] = "sideways".into();
    let mut page2 = vec![common::record(&again)];
    page2.extend(common::records(5..10));
    for (page, k) in [(common::records(0..5), 1), (page2, 2)] {
        sink.commit(Commit::new(&page, &common::checkpoint(k), 1))
            .await
            .unwrap();
    }
    sink.flush().await.unwrap();
    common::assert_rows_of(&b, 0..10).await;
    let dir = b
        .rows("SELECT originating_direction FROM conversations WHERE conversation_id = '00000000-0000-4000-8000-000000000004'")
        .await;
    assert_eq!(dir[0][0].text(), "sideways", "the later page's record wins");
}

/// A connection holding `keel_exports` locked: each writer's page then waits at its resume
/// point (both writers busy) until [`unblock`] ends the lock.
async fn block_writers(b: &Pg) -> sqlx::PgConnection {
    let mut blocker = b.conn().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE keel_exports IN EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    blocker
}

async fn unblock(mut blocker: sqlx::PgConnection) {
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .unwrap();
}

/// Commits `page` as API page `k`, failing (rather than hanging) if the sink waits for a
/// writer: while the writers are blocked, that wait could never end.
async fn commit_without_waiting(sink: &mut DbSink, page: &[keel_genesys::Record], k: u32) {
    use keel_genesys::sink::Commit;
    let resume = common::checkpoint(k);
    let commit = sink.commit(Commit::new(page, &resume, 1));
    tokio::time::timeout(std::time::Duration::from_secs(10), commit)
        .await
        .unwrap_or_else(|_| panic!("page {k} waited for a writer"))
        .unwrap();
}

#[tokio::test]
async fn pages_accepted_while_both_writers_are_busy_are_written_in_one_transaction() {
    use keel_genesys::sink::Commit;
    let Some(b) = Pg::new() else { return };
    let mut sink = common::connect(&b).await;
    sink.open().await.unwrap();
    // NOTE: pages 1 and 2 go to the (blocked) writers; 3 to 5 must wait in the sink.
    let blocker = block_writers(&b).await;
    for k in 1..=5u32 {
        commit_without_waiting(&mut sink, &common::records((k - 1) * 5..k * 5), k).await;
    }
    unblock(blocker).await;
    // Page 6 shares conversation 12 with the waiting page 3: the waiting pages go first, and
    // page 6 after them, in a transaction of its own.
    let mut again = common::conversation(12, true);
    again["originatingDirection"] = "sideways".into();
    let mut page6 = vec![common::record(&again)];
    page6.extend(common::records(25..30));
    sink.commit(Commit::new(&page6, &common::checkpoint(6), 1))
        .await
        .unwrap();
    sink.flush().await.unwrap();
    common::assert_rows_of(&b, 0..30).await;

    let rows = transactions(&b).await;
    let txn = |i: i64| rows[&i].clone();
    let same = |a: std::ops::Range<i64>| {
        let mut t: Vec<String> = a.filter(|&i| i != 12).map(txn).collect();
        t.dedup();
        t
    };
    let (p1, p2, p345, p6) = (same(0..5), same(5..10), same(10..25), same(25..30));
    assert_eq!(p345.len(), 1, "pages 3 to 5 in one transaction: {rows:?}");
    for p in [&p1, &p2, &p6] {
        assert_eq!(p.len(), 1, "{rows:?}");
    }
    assert_eq!(txn(12), p6[0], "conversation 12 as page 6 wrote it");
    let distinct: std::collections::HashSet<&String> = [&p1[0], &p2[0], &p345[0], &p6[0]].into();
    assert_eq!(distinct.len(), 4, "{rows:?}");
    let dir = b
        .rows("SELECT originating_direction FROM conversations WHERE conversation_id = '00000000-0000-4000-8000-000000000012'")
        .await;
    assert_eq!(dir[0][0].text(), "sideways", "the later page's record wins");
    let state = common::sink_state(&b).await;
    assert_eq!(state.resume, Some(common::checkpoint(6)));
    assert_eq!((state.pages, state.conversations), (6, 31));
}

/// Each conversation's writing transaction (`xmin`), by conversation number.
async fn transactions(b: &Pg) -> std::collections::HashMap<i64, String> {
    b.rows("SELECT right(conversation_id::text, 12)::int8, xmin::text FROM conversations")
        .await
        .iter()
        .map(|r| (r[0].int(), r[1].text().to_owned()))
        .collect()
}

#[tokio::test]
async fn a_page_smaller_than_the_transaction_in_flight_waits_to_go_with_the_next() {
    let Some(b) = Pg::new() else { return };
    let mut sink = common::connect(&b).await;
    sink.open().await.unwrap();
    // NOTE: page 1 (six conversations) goes to one writer; with the other free, page 2
    // (three) is held until page 3 brings the held ones to six, and both go in one
    // transaction: two of equal size in flight.
    let blocker = block_writers(&b).await;
    for (k, ids) in [(1, 0..6), (2, 6..9), (3, 9..12)] {
        commit_without_waiting(&mut sink, &common::records(ids), k).await;
    }
    unblock(blocker).await;
    sink.flush().await.unwrap();
    common::assert_rows_of(&b, 0..12).await;
    let txn = transactions(&b).await;
    let one = |ids: std::ops::Range<i64>| {
        let t: std::collections::HashSet<&String> = ids.map(|i| &txn[&i]).collect();
        assert_eq!(t.len(), 1, "{txn:?}");
        t.into_iter().next().unwrap().clone()
    };
    assert_ne!(one(0..6), one(6..12), "{txn:?}");
    let state = common::sink_state(&b).await;
    assert_eq!(state.resume, Some(common::checkpoint(3)));
    assert_eq!((state.pages, state.conversations), (3, 12));
}

#[tokio::test]
async fn a_failure_in_pages_held_together_stores_none_of_them() {
    use common::{Backend as _, CommitNow as _};
    let Some(b) = Pg::new() else { return };
    let mut sink = common::connect(&b).await;
    sink.open().await.unwrap();
    b.exec(b.failure_trigger()).await;
    let mut bad = common::conversation(19, true);
    bad["participants"][0]["sessions"][0]["metrics"][0]["name"] = "boom".into();
    let mut page4 = common::records(15..19);
    page4.push(common::record(&bad));
    // Pages 1 and 2 go to the writers; 3 and 4 wait in the sink and go together.
    let blocker = block_writers(&b).await;
    for (k, page) in [
        (1, common::records(0..5)),
        (2, common::records(5..10)),
        (3, common::records(10..15)),
        (4, page4),
    ] {
        commit_without_waiting(&mut sink, &page, k).await;
    }
    unblock(blocker).await;
    let err = sink.flush().await.unwrap_err().to_string();
    assert!(err.contains("injected failure"), "{err}");
    assert_eq!(sink.unconfirmed(), (2, 10), "pages 3 and 4");
    // Page 3 itself was fine: it shared page 4's transaction.
    common::assert_rows_of(&b, 0..10).await;
    let state = common::sink_state(&b).await;
    assert_eq!(state.resume, Some(common::checkpoint(2)));
    assert_eq!((state.pages, state.conversations), (2, 10));

    // The sink goes on from the last durable page.
    sink.commit_page(&common::records(10..15), 3).await.unwrap();
    common::assert_rows_of(&b, 0..15).await;
}

// ---------------------------------------------------------------------------------------------
// Schema version 1 (text ids, composite keys on the child tables) is upgraded in place.
// ---------------------------------------------------------------------------------------------

/// Turns a freshly created schema back into version 1's shape, with one conversation `id`
/// (one participant) stored the way version 1 stored it.
async fn make_version_1(b: &Pg, id: &str) {
    drop(common::connect(b).await);
    let mut sql = String::new();
    for t in [
        "conversations",
        "participants",
        "sessions",
        "segments",
        "session_metrics",
        "keel_in_progress",
    ] {
        sql.push_str(&format!(
            "ALTER TABLE {t} ALTER COLUMN conversation_id TYPE text;"
        ));
    }
    for (t, key) in [
        ("participants", "participant_index"),
        ("sessions", "participant_index, session_index"),
        (
            "segments",
            "participant_index, session_index, segment_index",
        ),
        (
            "session_metrics",
            "participant_index, session_index, metric_index",
        ),
    ] {
        sql.push_str(&format!(
            "DROP INDEX {t}_conversation_idx; ALTER TABLE {t} ADD PRIMARY KEY (conversation_id, {key});"
        ));
    }
    sql.push_str(&format!(
        "CREATE INDEX sessions_queue_idx ON sessions (queue_id); \
         CREATE INDEX session_metrics_name_idx ON session_metrics (name); \
         UPDATE keel_schema_version SET version = 1; \
         INSERT INTO conversations VALUES ('{id}', '2026-01-01T00:00:00Z', NULL, '2026-01-01', 0, \
           NULL, 'inbound', 'voice', '', '{{\"conversationId\": \"{id}\"}}', now(), 'old-run'); \
         INSERT INTO participants VALUES ('{id}', 0, 'p', 'customer', NULL, NULL); \
         INSERT INTO keel_in_progress VALUES ('k', '{id}');"
    ));
    b.exec(&sql).await;
}

async fn column_type(b: &Pg, table: &str) -> String {
    let t = b
        .rows(&format!(
            "SELECT data_type::text FROM information_schema.columns \
             WHERE table_name = '{table}' AND column_name = 'conversation_id'"
        ))
        .await;
    t[0][0].text().to_owned()
}

#[tokio::test]
async fn a_version_1_database_is_upgraded_keeping_its_rows() {
    use common::CommitNow as _;
    let Some(b) = Pg::new() else { return };
    let id = "00000000-0000-4000-8000-000000000001";
    make_version_1(&b, id).await;
    assert_eq!(column_type(&b, "segments").await, "text");

    let mut sink = common::connect(&b).await;
    let v = b.rows("SELECT version FROM keel_schema_version").await;
    assert_eq!(v[0][0].int(), keel_genesys_db::SCHEMA_VERSION);
    for t in [
        "conversations",
        "participants",
        "session_metrics",
        "keel_in_progress",
    ] {
        assert_eq!(column_type(&b, t).await, "uuid", "{t}");
    }
    let indexes = b
        .rows(
            "SELECT indexname::text || ' ' || indexdef FROM pg_indexes \
             WHERE schemaname = current_schema() ORDER BY 1",
        )
        .await;
    let indexes: Vec<&str> = indexes.iter().map(|r| r[0].text()).collect();
    assert!(
        indexes
            .iter()
            .any(|i| i.starts_with("participants_conversation_idx")
                && i.contains("USING hash (conversation_id)")),
        "{indexes:#?}"
    );
    for gone in [
        "participants_pkey",
        "sessions_queue_idx",
        "session_metrics_name_idx",
    ] {
        assert!(
            !indexes.iter().any(|i| i.starts_with(gone)),
            "{gone}: {indexes:#?}"
        );
    }
    assert_eq!(common::count(&b, "participants").await, 1, "rows kept");
    assert_eq!(
        b.rows("SELECT CAST(conversation_id AS TEXT) FROM keel_in_progress")
            .await[0][0]
            .text(),
        id
    );

    // The upgraded tables take pages: conversation 1 written again replaces its child rows.
    sink.open().await.unwrap();
    sink.commit_page(&common::records(0..3), 1).await.unwrap();
    common::assert_rows_of(&b, 0..3).await;
}

#[tokio::test]
async fn a_version_1_database_whose_ids_are_not_uuids_is_left_as_it_was() {
    let Some(b) = Pg::new() else { return };
    make_version_1(&b, "not-a-uuid").await;
    let err = DbSink::connect(&b.destination(), common::spec())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, DbError::Schema { table, .. } if table == "conversations"),
        "{err:?}"
    );
    assert!(
        text.contains("could not be upgraded from schema version 1 to 2")
            && text.contains("not-a-uuid"),
        "{text}"
    );
    let v = b.rows("SELECT version FROM keel_schema_version").await;
    assert_eq!(v[0][0].int(), 1);
    assert_eq!(column_type(&b, "participants").await, "text");
}

#[tokio::test]
async fn an_id_that_is_not_a_uuid_is_a_record_error_before_anything_is_written() {
    use keel_genesys::sink::Commit;
    let Some(b) = Pg::new() else { return };
    let mut sink = common::connect(&b).await;
    sink.open().await.unwrap();
    let mut bad = common::conversation(1, true);
    bad["conversationId"] = "CONV-1".into();
    let page = vec![
        common::record(&common::conversation(0, true)),
        common::record(&bad),
    ];
    let err = sink
        .commit(Commit::new(&page, &common::checkpoint(1), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DbError::Record { id, .. } if id == "CONV-1"),
        "{err:?}"
    );
    sink.flush().await.unwrap();
    assert_eq!(common::count(&b, "conversations").await, 0);
}

#[tokio::test]
async fn a_record_holding_u0000_is_stored_with_it_as_text() {
    // jsonb and text cannot hold U+0000: without care one such record would stop every run
    // at the same page.
    use common::CommitNow as _;
    let Some(b) = Pg::new() else { return };
    let mut sink = common::connect(&b).await;
    sink.open().await.unwrap();
    let mut odd = common::conversation(1, true);
    odd["participants"][0]["participantName"] = "Zo\u{0}ë".into();
    odd["note"] = "a\u{0}b".into();
    let json = serde_json::to_string(&odd).unwrap();
    assert!(json.contains(r"Zo\u0000ë"), "{json}");
    let page = vec![
        common::record(&common::conversation(0, true)),
        common::record(&odd),
    ];
    sink.commit_page(&page, 1).await.unwrap();
    common::assert_rows_of(&b, 0..2).await;
    let got = b
        .rows(
            "SELECT record->>'note', (SELECT participant_name FROM participants p \
             WHERE p.conversation_id = c.conversation_id AND participant_index = 0) \
             FROM conversations c WHERE conversation_id = '00000000-0000-4000-8000-000000000001'",
        )
        .await;
    assert_eq!(got[0][0].text(), r"a\u0000b");
    assert_eq!(got[0][1].text(), "Zoë");
}

#[tokio::test]
async fn a_lost_connection_fails_the_run_naming_the_destination_and_the_next_run_resumes_exactly() {
    use common::CommitNow as _;
    use keel_genesys::sink::Commit;
    let Some(b) = Pg::new() else { return };
    let page = |k: u32| common::records((k - 1) * 10..k * 10);
    let mut sink = common::connect(&b).await;
    sink.open().await.unwrap();
    for k in 1..=3 {
        sink.commit_page(&page(k), k).await.unwrap();
    }
    // Page 4 in flight (or already stored) when every connection of the sink is cut.
    sink.commit(Commit::new(&page(4), &common::checkpoint(4), 1))
        .await
        .unwrap();
    b.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await;
    let failed = match sink
        .commit(Commit::new(&page(5), &common::checkpoint(5), 1))
        .await
    {
        Err(e) => e,
        Ok(()) => sink.flush().await.unwrap_err(),
    };
    let shown = format!("{failed} {failed:?}");
    assert!(matches!(failed, DbError::Database { .. }), "{shown}");
    assert!(shown.contains(&b.destination().to_string()), "{shown}");
    assert!(!shown.contains(b.db.password()), "{shown}");
    drop(sink);

    // The next run finds the last page that was stored, every row of it and nothing after
    // (once the server has ended the cut session that held the run lock).
    let mut sink = common::connect_after_kill(&b).await;
    let state = sink.open().await.unwrap();
    let k = u32::try_from(state.pages).unwrap();
    assert!((3..=4).contains(&k), "{k} pages stored");
    assert_eq!(state.resume, Some(common::checkpoint(k)));
    common::assert_rows_of(&b, 0..k * 10).await;
    for k in k + 1..=6 {
        sink.commit_page(&page(k), k).await.unwrap();
    }
    common::assert_rows_of(&b, 0..60).await;
}
