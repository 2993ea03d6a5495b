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
