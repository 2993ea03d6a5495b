//! Real servers for keel's tests: throwaway instances started once per test binary.
//!
//! keel's database and fleet features are tested against the real servers they run against in
//! production, not mocks: a mock cannot tell whether an upsert touches a row twice, whether an
//! advisory lock belongs to a connection, or whether a transaction really rolls back. Each
//! module here starts one server per test binary when the server is installed, hands every
//! test its own namespace on it (a database, a key prefix), and makes sure the server is
//! stopped and its files removed when the test binary exits, even after a panic.
//!
//! When a server is not installed the tests that need it print a loud skip message and return;
//! with the module's `KEEL_REQUIRE_*` variable set to `1` (CI does) they fail instead.
//!
//! # Example
//!
//! ```no_run
//! let Some(pg) = keel_testkit::postgres::PgCluster::shared() else {
//!     return; // skipped, loudly
//! };
//! let db = pg.create_database();
//! println!("connect to {db:?}"); // the password is redacted
//! let _url = db.url();
//! ```

#![forbid(unsafe_code)]

pub mod postgres;
pub mod redis;

use std::io::Write as _;

/// Prints a skip notice straight to the process's stderr, past the test harness's capture,
/// so a skipped server test is visible in a normal `cargo test` run.
pub(crate) fn loud_skip(what: &str, why: &str, require_var: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {what} tests: {why}. Set {require_var}=1 to make this a failure. ***\n"
    );
}

/// Whether `var` is set to `1` (a missing server must fail the tests).
pub(crate) fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}
