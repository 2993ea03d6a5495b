//! The behaviour both database sinks must have, written once, run against each database.
//!
//! Each `pub async fn` here is one test; `tests/sqlite.rs` and `tests/postgres.rs` run every
//! one against a real database through a [`Backend`] (raw access for setup and assertions).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};

use keel_genesys::sink::{Commit, PageSink, SinkState};
use keel_genesys::{Checkpoint, Interval, QueryCheckpoint, Record};
use keel_genesys_db::{DbError, DbSink, Destination, ExportSpec};
use serde_json::value::RawValue;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A value read back from either database.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl Val {
    pub(crate) fn int(&self) -> i64 {
        match self {
            Val::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }
    pub(crate) fn float(&self) -> f64 {
        match self {
            Val::Float(f) => *f,
            Val::Int(i) => *i as f64,
            other => panic!("not a number: {other:?}"),
        }
    }
    pub(crate) fn text(&self) -> &str {
        match self {
            Val::Text(s) => s,
            other => panic!("not text: {other:?}"),
        }
    }
}

/// Raw access to the database under test.
#[allow(async_fn_in_trait)]
pub(crate) trait Backend {
    /// The destination the sinks connect to.
    fn destination(&self) -> Destination;
    /// Runs a query, every value decoded.
    async fn rows(&self, sql: &str) -> Vec<Vec<Val>>;
    /// Runs statements (setup).
    async fn exec(&self, sql: &str);
    /// Statements that make any insert of a metric named `boom` fail.
    fn failure_trigger(&self) -> &'static str;
}

pub(crate) const KEY: &str = "test-env/voice";

pub(crate) fn spec() -> ExportSpec {
    ExportSpec::new(
        KEY,
        serde_json::json!({"interval": "2024-03-01T00:00:00.000Z/2024-03-05T00:00:00.000Z"}),
    )
}

/// `commit`, then `flush`: the page is durable (or its failure reported) on return, whether or
/// not the sink pipelines its commits.
#[allow(async_fn_in_trait)]
pub(crate) trait CommitNow {
    async fn commit_now(&mut self, page: Commit<'_>) -> Result<(), DbError>;

    /// `records` as API page `k` (resume point [`checkpoint`]`(k)`), durable on return.
    async fn commit_page(&mut self, records: &[Record], k: u32) -> Result<(), DbError> {
        self.commit_now(Commit::new(records, &checkpoint(k), 1))
            .await
    }
}

impl CommitNow for DbSink {
    async fn commit_now(&mut self, page: Commit<'_>) -> Result<(), DbError> {
        self.commit(page).await?;
        self.flush().await
    }
}

pub(crate) async fn connect<B: Backend>(b: &B) -> DbSink {
    DbSink::connect(&b.destination(), spec())
        .await
        .expect("connect")
}

pub(crate) fn checkpoint(page: u32) -> Checkpoint {
    let interval: Interval = "2024-03-01T00:00:00Z/2024-03-05T00:00:00Z".parse().unwrap();
    let mut cp = QueryCheckpoint::new(interval, interval, page, 10);
    cp.total_hits = Some(100);
    Checkpoint::Query(cp)
}

pub(crate) const BASE: OffsetDateTime = datetime!(2024-03-01 00:00:00 UTC);

pub(crate) fn start_of(i: u32) -> OffsetDateTime {
    BASE + Duration::minutes(37 * i64::from(i))
}

/// Handle time of conversation `i`'s agent session (talk + after-call work), ms.
pub(crate) fn talk(i: u32) -> i64 {
    60_000 + i64::from(i) * 1_000
}
pub(crate) fn acw(i: u32) -> i64 {
    10_000 + i64::from(i % 5) * 1_000
}
pub(crate) fn abandoned(i: u32) -> bool {
    i % 4 == 3
}
pub(crate) fn queue(i: u32) -> String {
    format!("q{}", i % 3)
}
pub(crate) fn direction(i: u32) -> &'static str {
    if i.is_multiple_of(2) {
        "inbound"
    } else {
        "outbound"
    }
}
pub(crate) fn duration_ms(i: u32) -> i64 {
    300_000 + i64::from(i % 7) * 10_000
}

fn iso(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Conversation `i` as the API would send it: customer, ACD (queue, offered) and, unless
/// abandoned, an agent with talk and after-call work; unknown fields at several levels.
/// `ended: false` leaves out `conversationEnd` (in progress).
pub(crate) fn conversation(i: u32, ended: bool) -> serde_json::Value {
    let start = start_of(i);
    let end = start + Duration::milliseconds(duration_ms(i));
    let q = queue(i);
    let mut participants = vec![
        serde_json::json!({
            "participantId": format!("cust-{i}"), "purpose": "customer",
            "participantName": "Zoë \"Z\"\tÅngström\n", "attributes": {"crm": i},
            "sessions": [{"mediaType": "voice", "sessionId": format!("s-c-{i}"), "direction": "inbound",
                "segments": [{"segmentType": "interact", "segmentStart": iso(start), "segmentEnd": iso(end)}],
                "metrics": [{"name": "nConnected", "value": 1, "emitDate": iso(start)}]}]
        }),
        serde_json::json!({
            "participantId": format!("acd-{i}"), "purpose": "acd",
            "sessions": [{"mediaType": "voice", "sessionId": format!("s-q-{i}"),
                "segments": [{"segmentType": "interact", "queueId": q, "segmentStart": iso(start)}],
                "metrics": [{"name": "nOffered", "value": 1}, {"name": "tAcd", "value": 5000}]}]
        }),
    ];
    if !abandoned(i) {
        participants.push(serde_json::json!({
            "participantId": format!("agent-{i}"), "purpose": "agent", "userId": format!("u{}", i % 4),
            "sessions": [{"mediaType": "voice", "sessionId": format!("s-a-{i}"), "newSessionField": [1, 2],
                "segments": [{"segmentType": "alert", "queueId": q}, {"segmentType": "interact", "queueId": q},
                             {"segmentType": "wrapup", "queueId": q, "disconnectType": "client"}],
                "metrics": [{"name": "tAlert", "value": 2000}, {"name": "tTalk", "value": talk(i)},
                            {"name": "tAcw", "value": acw(i)}]}]
        }));
    }
    let mut c = serde_json::json!({
        "conversationId": format!("00000000-0000-4000-8000-{i:012}"),
        "conversationStart": iso(start),
        "originatingDirection": direction(i),
        "divisionIds": ["div-a", "div-b"],
        "mediaStatsMinConversationMos": 4.88,
        "simExtension": {"note": "ünïcode ✓ 😀", "flags": ["vip"]},
        "participants": participants,
    });
    if ended {
        c["conversationEnd"] = serde_json::Value::String(iso(end));
    }
    c
}

pub(crate) fn record(v: &serde_json::Value) -> Record {
    let start = OffsetDateTime::parse(
        v["conversationStart"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    Record {
        id: v["conversationId"].as_str().unwrap().to_owned(),
        start,
        raw: RawValue::from_string(serde_json::to_string(v).unwrap()).unwrap(),
    }
}

pub(crate) fn records(range: std::ops::Range<u32>) -> Vec<Record> {
    range.map(|i| record(&conversation(i, true))).collect()
}

pub(crate) async fn count<B: Backend>(b: &B, table: &str) -> i64 {
    b.rows(&format!("SELECT COUNT(*) FROM {table}")).await[0][0].int()
}

pub(crate) async fn ids<B: Backend>(b: &B) -> Vec<String> {
    b.rows("SELECT CAST(conversation_id AS TEXT) FROM conversations ORDER BY conversation_id")
        .await
        .into_iter()
        .map(|r| r[0].text().to_owned())
        .collect()
}

/// Child rows a conversation `i` flattens into: (participants, sessions, segments, metrics).
pub(crate) fn children(i: u32) -> [i64; 4] {
    if abandoned(i) {
        [2, 2, 2, 3]
    } else {
        [3, 3, 5, 6]
    }
}

pub(crate) async fn assert_rows_of<B: Backend>(b: &B, range: std::ops::Range<u32>) {
    let expected: Vec<String> = range
        .clone()
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    assert_eq!(ids(b).await, expected);
    let mut want = [0i64; 4];
    for i in range {
        for (w, c) in want.iter_mut().zip(children(i)) {
            *w += c;
        }
    }
    let got = [
        count(b, "participants").await,
        count(b, "sessions").await,
        count(b, "segments").await,
        count(b, "session_metrics").await,
    ];
    assert_eq!(
        got, want,
        "child rows (participants, sessions, segments, metrics)"
    );
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

pub(crate) async fn schema_is_created_once_and_versioned<B: Backend>(b: B) {
    let sink = connect(&b).await;
    drop(sink);
    let again = connect(&b).await;
    drop(again);
    let v = b.rows("SELECT version FROM keel_schema_version").await;
    assert_eq!(v, vec![vec![Val::Int(keel_genesys_db::SCHEMA_VERSION)]]);
    for t in [
        "conversations",
        "participants",
        "sessions",
        "segments",
        "session_metrics",
    ] {
        assert_eq!(count(&b, t).await, 0, "{t}");
    }
}

pub(crate) async fn a_table_with_other_columns_is_an_error_naming_it<B: Backend>(b: B) {
    b.exec("CREATE TABLE participants (conversation_id TEXT, something_else TEXT)")
        .await;
    let err = DbSink::connect(&b.destination(), spec()).await.unwrap_err();
    match &err {
        DbError::Schema { table, .. } => assert_eq!(table, "participants"),
        other => panic!("expected a schema error, got {other:?}"),
    }
    assert!(err.to_string().contains("`participants`"), "{err}");
    assert!(err.to_string().contains("something_else"), "{err}");
}

pub(crate) async fn a_newer_schema_version_is_an_error_naming_the_version_table<B: Backend>(b: B) {
    drop(connect(&b).await);
    b.exec("UPDATE keel_schema_version SET version = 99").await;
    let err = DbSink::connect(&b.destination(), spec()).await.unwrap_err();
    match &err {
        DbError::Schema { table, problem, .. } => {
            assert_eq!(table, "keel_schema_version");
            assert!(problem.contains("99"), "{problem}");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}

pub(crate) async fn pages_and_resume_point_survive_a_dropped_sink<B: Backend>(b: B) {
    let mut sink = connect(&b).await;
    assert_eq!(sink.open().await.unwrap(), SinkState::default());
    let (p1, p2, p3) = (records(0..10), records(10..20), records(20..25));
    sink.commit_now(Commit::new(&p1, &checkpoint(1), 1))
        .await
        .unwrap();
    sink.commit_now(Commit::new(&p2, &checkpoint(2), 1))
        .await
        .unwrap();
    drop(sink); // like a kill between two commits: no close

    let mut sink = connect(&b).await;
    let state = sink.open().await.unwrap();
    assert_eq!(state.resume, Some(checkpoint(2)));
    assert_eq!((state.pages, state.conversations), (2, 20));
    assert_eq!(sink.resume_query(), Some(spec().query()));
    assert_rows_of(&b, 0..20).await;

    sink.commit_now(Commit::new(&p3, &checkpoint(3), 1))
        .await
        .unwrap();
    // An API page left without records counts as a page; a commit that only moves the
    // resume point does not.
    sink.commit_now(Commit::new(&[], &checkpoint(4), 1))
        .await
        .unwrap();
    sink.commit_now(Commit::new(&[], &checkpoint(5), 0))
        .await
        .unwrap();
    drop(sink);
    let mut sink = connect(&b).await;
    let state = sink.open().await.unwrap();
    assert_eq!(state.resume, Some(checkpoint(5)));
    assert_eq!((state.pages, state.conversations), (4, 25));
    sink.close().await.unwrap();
    assert_rows_of(&b, 0..25).await;
    drop(sink);
    let mut sink = connect(&b).await;
    assert_eq!(
        sink.open().await.unwrap(),
        SinkState::default(),
        "close clears the resume point"
    );
    assert_eq!(sink.resume_query(), None);
}

pub(crate) async fn a_failure_mid_page_leaves_nothing_of_it_and_the_old_resume_point<B: Backend>(
    b: B,
) {
    let mut sink = connect(&b).await;
    sink.open().await.unwrap();
    sink.commit_now(Commit::new(&records(0..5), &checkpoint(1), 1))
        .await
        .unwrap();
    b.exec(b.failure_trigger()).await;

    let mut bad = conversation(9, true);
    bad["participants"][0]["sessions"][0]["metrics"][0]["name"] = "boom".into();
    let mut page = records(5..9);
    page.push(record(&bad));
    let err = sink
        .commit_now(Commit::new(&page, &checkpoint(2), 1))
        .await
        .unwrap_err();
    let dest = b.destination().to_string();
    assert!(matches!(err, DbError::Database { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&dest), "{err} names {dest}");
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_rows_of(&b, 0..5).await;
    drop(sink);

    let mut sink = connect(&b).await;
    let state = sink.open().await.unwrap();
    assert_eq!(state.resume, Some(checkpoint(1)));
    assert_eq!((state.pages, state.conversations), (1, 5));
    // The same sink goes on after a failed page once the cause is gone.
    sink.commit_now(Commit::new(&records(5..9), &checkpoint(2), 1))
        .await
        .unwrap();
    assert_rows_of(&b, 0..9).await;
}

pub(crate) async fn a_failed_page_does_not_poison_the_sink<B: Backend>(b: B) {
    let mut sink = connect(&b).await;
    sink.open().await.unwrap();
    b.exec(b.failure_trigger()).await;
    let mut bad = conversation(1, true);
    bad["participants"][1]["sessions"][0]["metrics"][0]["name"] = "boom".into();
    let page = vec![record(&conversation(0, true)), record(&bad)];
    sink.commit_now(Commit::new(&page, &checkpoint(1), 1))
        .await
        .unwrap_err();
    sink.commit_now(Commit::new(&records(2..4), &checkpoint(1), 1))
        .await
        .unwrap();
    assert_rows_of(&b, 2..4).await;
    assert_eq!(sink_state(&b).await.resume, Some(checkpoint(1)));
}

/// The export's stored state: resume point, pages and conversations.
pub(crate) async fn sink_state<B: Backend>(b: &B) -> SinkState {
    let rows = b
        .rows(&format!(
            "SELECT resume, pages, conversations FROM keel_exports WHERE export_key = '{KEY}'"
        ))
        .await;
    let r = &rows[0];
    SinkState {
        resume: match &r[0] {
            Val::Text(t) => Some(serde_json::from_str(t).unwrap()),
            _ => None,
        },
        pages: r[1].int() as u64,
        conversations: r[2].int() as u64,
    }
}

pub(crate) async fn committing_the_same_records_again_updates_and_replaces_child_rows<
    B: Backend,
>(
    b: B,
) {
    let mut sink = connect(&b).await;
    sink.open().await.unwrap();
    sink.commit_now(Commit::new(&records(0..8), &checkpoint(1), 1))
        .await
        .unwrap();
    let before = b
        .rows("SELECT CAST(conversation_id AS TEXT), CAST(record AS TEXT) FROM conversations ORDER BY 1")
        .await;
    sink.commit_now(Commit::new(&records(0..8), &checkpoint(1), 1))
        .await
        .unwrap();
    assert_rows_of(&b, 0..8).await;
    let after = b
        .rows("SELECT CAST(conversation_id AS TEXT), CAST(record AS TEXT) FROM conversations ORDER BY 1")
        .await;
    assert_eq!(before, after);
    // A page of stored and new conversations together.
    sink.commit_now(Commit::new(&records(6..12), &checkpoint(1), 1))
        .await
        .unwrap();
    assert_rows_of(&b, 0..12).await;
    sink.commit_now(Commit::new(&records(8..12), &checkpoint(1), 1))
        .await
        .unwrap();
    assert_rows_of(&b, 0..12).await;
    let after = b
        .rows("SELECT CAST(conversation_id AS TEXT), CAST(record AS TEXT) FROM conversations WHERE conversation_id < '00000000-0000-4000-8000-000000000008' ORDER BY 1")
        .await;
    assert_eq!(before, after);

    // The API's data changed: conversation 0 lost its agent, conversation 1 changed direction.
    let mut c0 = conversation(0, true);
    c0["participants"].as_array_mut().unwrap().truncate(2);
    let mut c1 = conversation(1, true);
    c1["originatingDirection"] = "inbound".into();
    sink.commit_now(Commit::new(&[record(&c0), record(&c1)], &checkpoint(2), 1))
        .await
        .unwrap();
    assert_eq!(count(&b, "conversations").await, 12);
    let p0 = b
        .rows("SELECT COUNT(*) FROM participants WHERE conversation_id = '00000000-0000-4000-8000-000000000000'")
        .await;
    assert_eq!(p0[0][0].int(), 2, "child rows replaced, not added");
    let m0 = b
        .rows("SELECT COUNT(*) FROM session_metrics WHERE conversation_id = '00000000-0000-4000-8000-000000000000'")
        .await;
    assert_eq!(m0[0][0].int(), 3);
    let d1 = b
        .rows("SELECT originating_direction FROM conversations WHERE conversation_id = '00000000-0000-4000-8000-000000000001'")
        .await;
    assert_eq!(d1[0][0].text(), "inbound");
}

pub(crate) async fn duplicate_ids_in_one_page_keep_the_last_record<B: Backend>(b: B) {
    let mut sink = connect(&b).await;
    sink.open().await.unwrap();
    let mut changed = conversation(2, true);
    changed["originatingDirection"] = "outbound".into();
    changed["participants"].as_array_mut().unwrap().truncate(1);
    let page = vec![
        record(&conversation(2, true)),
        record(&conversation(3, true)),
        record(&changed),
    ];
    sink.commit_now(Commit::new(&page, &checkpoint(1), 1))
        .await
        .unwrap();
    assert_eq!(
        ids(&b).await,
        [
            "00000000-0000-4000-8000-000000000002",
            "00000000-0000-4000-8000-000000000003"
        ]
    );
    let d = b
        .rows("SELECT originating_direction FROM conversations WHERE conversation_id = '00000000-0000-4000-8000-000000000002'")
        .await;
    assert_eq!(d[0][0].text(), "outbound");
    let p = b
        .rows("SELECT COUNT(*) FROM participants WHERE conversation_id = '00000000-0000-4000-8000-000000000002'")
        .await;
    assert_eq!(p[0][0].int(), 1);
}

pub(crate) async fn the_record_is_stored_losslessly<B: Backend>(b: B) {
    let mut sink = connect(&b).await;
    sink.open().await.unwrap();
    let c = conversation(5, true);
    sink.commit_now(Commit::new(&[record(&c)], &checkpoint(1), 1))
        .await
        .unwrap();
    let rows = b.rows("SELECT CAST(record AS TEXT), participant_name FROM conversations JOIN participants USING (conversation_id) WHERE participant_index = 0").await;
    let back: serde_json::Value = serde_json::from_str(rows[0][0].text()).unwrap();
    assert_eq!(back, c, "every field, unknown ones included");
    assert_eq!(rows[0][1].text(), "Zoë \"Z\"\tÅngström\n");
}

pub(crate) async fn committed_ids_are_those_of_the_part<B: Backend>(b: B) {
    let mut sink = connect(&b).await;
    sink.open().await.unwrap();
    sink.commit_now(Commit::new(&records(0..10), &checkpoint(1), 1))
        .await
        .unwrap();
    // [start of 3, start of 7): conversations 3..7.
    let part = Interval::new(start_of(3), start_of(7)).unwrap();
    let got = sink.committed_ids(part).await.unwrap();
    let want: HashSet<String> = (3..7)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    assert_eq!(got, want);
}

pub(crate) async fn a_second_run_is_locked_out<B: Backend>(b: B) {
    let mut first = connect(&b).await;
    first.open().await.unwrap();
    let err = DbSink::connect(&b.destination(), spec()).await.unwrap_err();
    assert!(matches!(err, DbError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&b.destination().to_string()),
        "{err}"
    );
    first.close().await.unwrap();
    // `close` releases the lock at once, while the first sink still exists.
    let mut second = connect(&b).await;
    assert_eq!(second.open().await.unwrap(), SinkState::default());
    drop(first);
}

pub(crate) async fn a_held_lock_outlives_close_and_the_next_export_stores_its_query<B: Backend>(
    b: B,
) {
    let mut sink = connect(&b).await;
    sink.hold_lock_on_close(true);
    sink.open().await.unwrap();
    sink.commit_now(Commit::new(&records(0..3), &checkpoint(1), 1))
        .await
        .unwrap();
    sink.close().await.unwrap();
    let err = DbSink::connect(&b.destination(), spec()).await.unwrap_err();
    assert!(matches!(err, DbError::Locked { .. }), "{err:?}");

    // A second export of the definition on the same sink: its own query goes with its
    // resume points.
    let second =
        serde_json::json!({"interval": "2024-03-04T00:00:00.000Z/2024-03-05T00:00:00.000Z"});
    sink.next_export(second.clone());
    assert_eq!(sink.open().await.unwrap(), SinkState::default());
    sink.commit_now(Commit::new(&records(3..5), &checkpoint(1), 1))
        .await
        .unwrap();
    drop(sink); // killed mid-way: the lock goes with the sink
    let mut sink = connect(&b).await;
    let state = sink.open().await.unwrap();
    assert_eq!((state.pages, state.conversations), (1, 2));
    assert_eq!(sink.resume_query(), Some(&second));
    sink.close().await.unwrap();
    assert_rows_of(&b, 0..5).await;
    drop(connect(&b).await);
    sink.release().await.unwrap();
}

/// The ids of [`DbSink::in_progress`], checking that they come earliest start first.
async fn in_progress_ids(sink: &mut DbSink) -> Vec<String> {
    let got = sink.in_progress().await.unwrap();
    assert!(got.windows(2).all(|w| w[0].1 <= w[1].1), "{got:?}");
    for (id, start) in &got {
        let i: u32 = id[24..].parse().unwrap();
        assert_eq!(*start, start_of(i), "{id}");
    }
    got.into_iter().map(|(id, _)| id).collect()
}

pub(crate) async fn watermark_and_in_progress_conversations<B: Backend>(b: B) {
    let mut sink = connect(&b).await;
    sink.open().await.unwrap();
    assert_eq!(sink.watermark().await.unwrap(), None);
    let page = vec![
        record(&conversation(0, true)),
        record(&conversation(1, false)),
        record(&conversation(2, false)),
    ];
    sink.commit_now(Commit::new(&page, &checkpoint(1), 1))
        .await
        .unwrap();
    assert_eq!(
        in_progress_ids(&mut sink).await,
        [
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000002"
        ]
    );
    let end = b.rows("SELECT conversation_end, duration_ms FROM conversations WHERE conversation_id = '00000000-0000-4000-8000-000000000001'").await;
    assert_eq!(end[0], vec![Val::Null, Val::Null]);
    let mark = datetime!(2024-03-02 00:00:00.123 UTC);
    sink.watermark_on_close(mark);
    drop(sink); // not closed: the watermark must not move
    let mut sink = connect(&b).await;
    sink.open().await.unwrap();
    assert_eq!(sink.watermark().await.unwrap(), None);

    // A later run fetches them again; conversation 1 has ended since.
    let page = vec![
        record(&conversation(1, true)),
        record(&conversation(2, false)),
    ];
    sink.commit_now(Commit::new(&page, &checkpoint(2), 1))
        .await
        .unwrap();
    assert_eq!(
        in_progress_ids(&mut sink).await,
        ["00000000-0000-4000-8000-000000000002"]
    );
    let end = b
        .rows("SELECT duration_ms FROM conversations WHERE conversation_id = '00000000-0000-4000-8000-000000000001'")
        .await;
    assert_eq!(end[0][0].int(), duration_ms(1));
    sink.watermark_on_close(mark);
    sink.close().await.unwrap();
    drop(sink);
    let mut sink = connect(&b).await;
    assert_eq!(sink.watermark().await.unwrap(), Some(mark));
    assert_eq!(
        in_progress_ids(&mut sink).await,
        ["00000000-0000-4000-8000-000000000002"]
    );
    // Another export definition has its own watermark and list.
    drop(sink);
    let mut other = DbSink::connect(
        &b.destination(),
        ExportSpec::new("other", serde_json::json!({})),
    )
    .await
    .unwrap();
    assert_eq!(other.watermark().await.unwrap(), None);
    assert!(other.in_progress().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// The analyst queries of docs/SQL.md, run unchanged.
// ---------------------------------------------------------------------------------------------

/// The ```sql blocks of docs/SQL.md, in order.
pub(crate) fn analyst_queries() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/SQL.md");
    let text = std::fs::read_to_string(path).expect("docs/SQL.md");
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim()) {
            (None, "```sql") => cur = Some(String::new()),
            (Some(q), "```") => {
                out.push(std::mem::take(q));
                cur = None;
            }
            (Some(q), _) => {
                q.push_str(line);
                q.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

fn close_to(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

pub(crate) async fn the_analyst_queries_answer_on_this_database<B: Backend>(b: B) {
    const N: u32 = 120;
    let mut sink = connect(&b).await;
    sink.open().await.unwrap();
    let all = records(0..N);
    for (k, page) in all.chunks(25).enumerate() {
        sink.commit_now(Commit::new(page, &checkpoint(k as u32 + 1), 1))
            .await
            .unwrap();
    }
    sink.close().await.unwrap();
    let queries = analyst_queries();
    assert_eq!(queries.len(), 3, "docs/SQL.md has three queries");
    let day = |i: u32| start_of(i).date().to_string();

    // 1. Conversations and average handle time per queue per day.
    let mut want: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for i in (0..N).filter(|i| !abandoned(*i)) {
        let e = want.entry((day(i), queue(i))).or_default();
        e.0 += 1;
        e.1 += talk(i) + acw(i);
    }
    let got = b.rows(&queries[0]).await;
    assert_eq!(got.len(), want.len());
    for (row, ((d, q), (n, handle))) in got.iter().zip(&want) {
        assert_eq!((row[0].text(), row[1].text()), (d.as_str(), q.as_str()));
        assert_eq!(row[2].int(), *n);
        let avg = *handle as f64 / *n as f64 / 1000.0;
        assert!(close_to(row[3].float(), avg), "{row:?} vs {avg}");
    }

    // 2. Abandon rate per hour of the day.
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for i in 0..N {
        let e = want.entry(i64::from(start_of(i).hour())).or_default();
        e.0 += 1;
        e.1 += i64::from(abandoned(i));
    }
    let got = b.rows(&queries[1]).await;
    assert_eq!(got.len(), want.len());
    for (row, (h, (offered, ab))) in got.iter().zip(&want) {
        assert_eq!(
            (row[0].int(), row[1].int(), row[2].int()),
            (*h, *offered, *ab),
            "{row:?}"
        );
        assert!(
            close_to(row[3].float(), *ab as f64 / *offered as f64),
            "{row:?}"
        );
    }

    // 3. Conversations and average duration per day and direction.
    let mut want: BTreeMap<(String, &str), (i64, i64)> = BTreeMap::new();
    for i in 0..N {
        let e = want.entry((day(i), direction(i))).or_default();
        e.0 += 1;
        e.1 += duration_ms(i);
    }
    let got = b.rows(&queries[2]).await;
    assert_eq!(got.len(), want.len());
    for (row, ((d, dir), (n, total))) in got.iter().zip(&want) {
        assert_eq!(
            (row[0].text(), row[1].text(), row[2].int()),
            (d.as_str(), *dir, *n)
        );
        assert!(
            close_to(row[3].float(), *total as f64 / *n as f64 / 1000.0),
            "{row:?}"
        );
    }
}

/// Generates one `#[tokio::test]` per shared test, each with a fresh backend from `$make`
/// (an `Option`: `None` skips).
#[macro_export]
macro_rules! suite {
    ($make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some(backend) = $make else { return };
                common::$name(backend).await;
            }
        )*
    };
}

/// Every shared test, against backends from `$make`.
#[macro_export]
macro_rules! all_tests {
    ($make:expr) => {
        $crate::suite!($make;
            schema_is_created_once_and_versioned,
            a_table_with_other_columns_is_an_error_naming_it,
            a_newer_schema_version_is_an_error_naming_the_version_table,
            pages_and_resume_point_survive_a_dropped_sink,
            a_failure_mid_page_leaves_nothing_of_it_and_the_old_resume_point,
            a_failed_page_does_not_poison_the_sink,
            committing_the_same_records_again_updates_and_replaces_child_rows,
            duplicate_ids_in_one_page_keep_the_last_record,
            the_record_is_stored_losslessly,
            committed_ids_are_those_of_the_part,
            a_second_run_is_locked_out,
            a_held_lock_outlives_close_and_the_next_export_stores_its_query,
            watermark_and_in_progress_conversations,
            the_analyst_queries_answer_on_this_database,
        );
    };
}

// ---------------------------------------------------------------------------------------------
// kill -9 in the middle of a run.
// ---------------------------------------------------------------------------------------------

/// Set in the child process: the destination it commits to until it is killed.
pub(crate) const CHILD_ENV: &str = "KEEL_DB_KILL_CHILD";

/// The child's side (a test that does nothing unless [`CHILD_ENV`] is set): resumes where the
/// destination stands and commits pages of ten conversations until killed, flushing after
/// every fifth and printing `durable K` then (the pages after it are accepted, in flight or
/// held by a sink that pipelines, when the parent kills it).
pub(crate) async fn child_commits_until_killed() {
    let Ok(text) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dest = Destination::parse(&text).unwrap();
    let mut sink = DbSink::connect(&dest, spec()).await.unwrap();
    let mut k = u32::try_from(sink.open().await.unwrap().pages).unwrap();
    loop {
        k += 1;
        let page = records((k - 1) * 10..k * 10);
        sink.commit(Commit::new(&page, &checkpoint(k), 1))
            .await
            .unwrap();
        if k % 5 == 0 {
            sink.flush().await.unwrap();
            println!("durable {k}");
        }
    }
}

/// Runs this test binary's `child_test` as a child process against `dest_text`, kills it
/// (SIGKILL) once it reported at least `after` pages durable, and returns.
fn run_child_and_kill(child_test: &str, dest_text: &str, after: u32) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([child_test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dest_text)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    for line in out.lines() {
        let durable = line
            .unwrap()
            .strip_prefix("durable ")
            .and_then(|k| k.parse::<u32>().ok());
        if durable.is_some_and(|k| k >= after) {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Connects, waiting (bounded) while the killed run's lock is still being released.
pub(crate) async fn connect_after_kill<B: Backend>(b: &B) -> DbSink {
    for _ in 0..200 {
        match DbSink::connect(&b.destination(), spec()).await {
            Ok(s) => return s,
            Err(DbError::Locked { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the killed run's lock was never released");
}

pub(crate) async fn a_run_killed_mid_page_resumes_exactly<B: Backend>(
    b: B,
    dest_text: &str,
    child_test: &str,
) {
    for round in 1..=2u32 {
        run_child_and_kill(child_test, dest_text, round * 5);
        let mut sink = connect_after_kill(&b).await;
        let state = sink.open().await.unwrap();
        let k = u32::try_from(state.pages).unwrap();
        // NOTE: the pages committed after the last flush may or may not have become durable
        // before the kill; the resume point must say which, exactly.
        assert!(k >= round * 5, "round {round}: {k} pages");
        assert_eq!(state.resume, Some(checkpoint(k)), "round {round}");
        assert_eq!(state.conversations, u64::from(k) * 10);
        assert_rows_of(&b, 0..k * 10).await;
    }
}
