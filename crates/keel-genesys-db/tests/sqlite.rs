//! The shared sink behaviour (`common`) against SQLite files in temporary directories.

mod common;

use common::{Backend, Val};
use keel_genesys_db::Destination;

struct Sqlite {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Sqlite {
    fn new() -> Option<Sqlite> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.db");
        Some(Sqlite { _dir: dir, path })
    }
}

impl Backend for Sqlite {
    fn destination(&self) -> Destination {
        Destination::Sqlite(self.path.clone())
    }

    async fn rows(&self, sql: &str) -> Vec<Vec<Val>> {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        let mut st = conn.prepare(sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
        let n = st.column_count();
        let rows = st
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Val::Null,
                            rusqlite::types::ValueRef::Integer(v) => Val::Int(v),
                            rusqlite::types::ValueRef::Real(v) => Val::Float(v),
                            rusqlite::types::ValueRef::Text(t) => {
                                Val::Text(String::from_utf8(t.to_vec()).unwrap())
                            }
                            rusqlite::types::ValueRef::Blob(_) => panic!("blob"),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Val>>>()
            })
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    async fn exec(&self, sql: &str) {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.execute_batch(sql).unwrap();
    }

    fn failure_trigger(&self) -> &'static str {
        "CREATE TRIGGER boom BEFORE INSERT ON session_metrics WHEN NEW.name = 'boom' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    }
}

all_tests!(Sqlite::new());

#[tokio::test]
async fn the_lock_file_is_beside_the_database_and_released_on_drop() {
    let b = Sqlite::new().unwrap();
    let sink = common::connect(&b).await;
    assert!(b.path.with_file_name("export.db.lock").exists());
    drop(sink);
    drop(common::connect(&b).await);
}

#[tokio::test]
async fn child_commits_until_killed() {
    common::child_commits_until_killed().await;
}

#[tokio::test]
async fn a_run_killed_mid_page_resumes_exactly() {
    let b = Sqlite::new().unwrap();
    let text = format!("sqlite:{}", b.path.display());
    common::a_run_killed_mid_page_resumes_exactly(b, &text, "child_commits_until_killed").await;
}

#[tokio::test]
async fn a_version_1_database_is_upgraded_dropping_its_two_secondary_indexes() {
    let b = Sqlite::new().unwrap();
    drop(common::connect(&b).await);
    b.exec(
        "CREATE INDEX sessions_queue_idx ON sessions (queue_id); \
         CREATE INDEX session_metrics_name_idx ON session_metrics (name); \
         UPDATE keel_schema_version SET version = 1;",
    )
    .await;
    let indexes = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' \
                   AND name IN ('sessions_queue_idx', 'session_metrics_name_idx')";
    assert_eq!(b.rows(indexes).await[0][0].int(), 2);
    drop(common::connect(&b).await);
    assert_eq!(b.rows(indexes).await[0][0].int(), 0);
    let v = b.rows("SELECT version FROM keel_schema_version").await;
    assert_eq!(v, vec![vec![Val::Int(keel_genesys_db::SCHEMA_VERSION)]]);
}
