//! A PostgreSQL password never has to be on the command line: `PGPASSWORD` and a `.pgpass`
//! file (`PGPASSFILE`) supply it to a URL without one, and a wrong or missing password fails
//! with a typed error that shows no password. One test in its own binary: it changes the
//! process environment, which no other test may read at the same time.

use keel_genesys::PageSink as _;
use keel_genesys_db::{DbError, DbSink, Destination, ExportSpec};
use keel_testkit::postgres::PgCluster;

fn spec() -> ExportSpec {
    ExportSpec::new("pw", serde_json::json!({}))
}

#[tokio::test]
async fn pgpassword_and_pgpass_supply_the_password_of_a_url_without_one() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = pg.create_database();
    let dest = Destination::parse(&db.url_without_password()).unwrap();
    assert!(!dest.has_password_in_url());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none");
    std::env::set_var("PGPASSFILE", &missing);

    // No password anywhere: authentication fails, typed, naming the destination.
    std::env::remove_var("PGPASSWORD");
    let err = DbSink::connect(&dest, spec()).await.unwrap_err();
    assert!(matches!(err, DbError::Database { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&dest.to_string()), "{err}");

    // A wrong PGPASSWORD: refused, and not echoed.
    std::env::set_var("PGPASSWORD", "Not-The-Passw0rd");
    let err = DbSink::connect(&dest, spec()).await.unwrap_err();
    assert!(
        !format!("{err} {err:?}").contains("Not-The-Passw0rd"),
        "{err:?}"
    );

    // PGPASSWORD.
    std::env::set_var("PGPASSWORD", db.password());
    let mut sink = DbSink::connect(&dest, spec()).await.expect("PGPASSWORD");
    sink.open().await.unwrap();
    sink.close().await.unwrap();
    drop(sink);

    // A .pgpass file (owner-only, as libpq requires).
    std::env::remove_var("PGPASSWORD");
    let pgpass = dir.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "127.0.0.1:{}:{}:{}:{}\n",
            db.port,
            db.name,
            db.user,
            db.password()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::env::set_var("PGPASSFILE", &pgpass);
    let mut sink = DbSink::connect(&dest, spec()).await.expect(".pgpass");
    sink.open().await.unwrap();
    sink.close().await.unwrap();
}
