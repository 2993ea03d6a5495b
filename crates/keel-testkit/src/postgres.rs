//! A throwaway PostgreSQL cluster on 127.0.0.1, one per test binary, a database per test.
//!
//! The cluster lives in a fresh temporary directory and listens on a free loopback port. It
//! is run by a small supervising shell process whose standard input is a pipe from the test
//! binary: when the test binary exits for any reason (success, panic, abort, kill), the pipe
//! closes, and the supervisor stops the server and removes the directory. Statics are never
//! dropped, so no in-process destructor could do this reliably.
//!
//! PostgreSQL refuses to run as root; when the tests run as root, `initdb` and `pg_ctl` run as
//! the `postgres` system user (`runuser -u postgres`) on a directory that user owns.
//!
//! Binaries are taken from `KEEL_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else
//! `pg_config --bindir`. Without them the tests skip loudly, or fail when
//! `KEEL_REQUIRE_POSTGRES=1`.
//!
//! Host connections need a password (SCRAM), so tests exercise password handling for real;
//! the superuser's password is random per cluster and handed to child processes through
//! their environment, never their arguments.

use std::fmt;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that turns a missing PostgreSQL into a test failure.
pub const REQUIRE_VAR: &str = "KEEL_REQUIRE_POSTGRES";
/// The environment variable naming the directory of PostgreSQL's binaries.
pub const BIN_VAR: &str = "KEEL_PG_BIN";

/// The superuser of the throwaway cluster.
const SUPERUSER: &str = "postgres";

/// Starts the cluster, waits for it, then waits for its stdin to close and tears it down.
/// Arguments: `$1` bin dir, `$2` port, `$3` `runuser` when the server must run as `postgres`.
/// The password arrives in `KEEL_PG_PW`. Prints `ready DIR` once the server accepts
/// connections, or `failed` followed by the logs.
const SUPERVISOR: &str = r#"
bin=$1; port=$2; as=$3
run() { if [ "$as" = runuser ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/keel-pg.XXXXXX") || { echo failed; exit 1; }
fail() { echo failed; cat "$dir"/*.log 2>/dev/null; rm -rf "$dir"; exit 1; }
trap '' INT HUP
printf '%s\n' "$KEEL_PG_PW" > "$dir/pw"
if [ "$as" = runuser ]; then chown -R postgres "$dir" || fail; fi
chmod 700 "$dir"
run "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pw" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --no-locale > "$dir/initdb.log" 2>&1 || fail
rm -f "$dir/pw"
run "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=200" start > "$dir/pg_ctl.log" 2>&1 || fail
echo "ready $dir"
cat > /dev/null
run "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop > /dev/null 2>&1
rm -rf "$dir"
"#;

/// A running throwaway cluster (see the module docs).
pub struct PgCluster {
    bin: PathBuf,
    port: u16,
    password: String,
    dir: PathBuf,
    // NOTE: never dropped (lives in a static): the pipe closes when the process exits, which
    // is what stops the supervisor's server.
    _supervisor: Mutex<ChildStdin>,
    next_db: AtomicU64,
}

impl fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCluster")
            .field("bin", &self.bin)
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl PgCluster {
    /// The cluster of this test binary, started on first use.
    ///
    /// `None` (after a loud message on stderr) when PostgreSQL is not installed or cannot
    /// start.
    ///
    /// # Panics
    /// When it is missing or cannot start and `KEEL_REQUIRE_POSTGRES=1`.
    pub fn shared() -> Option<&'static PgCluster> {
        static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
        match CLUSTER.get_or_init(PgCluster::start) {
            Ok(c) => Some(c),
            Err(why) if crate::required(REQUIRE_VAR) => {
                panic!("PostgreSQL is required ({REQUIRE_VAR}=1) but unavailable: {why}")
            }
            Err(why) => {
                crate::loud_skip("PostgreSQL", why, REQUIRE_VAR);
                None
            }
        }
    }

    fn start() -> Result<PgCluster, String> {
        let bin = find_bin_dir()?;
        let as_root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        if as_root {
            let ok = Command::new("runuser")
                .args(["-u", "postgres", "--", "true"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err("running as root and `runuser -u postgres` does not work".into());
            }
        }
        let password = random_password();
        let mut last = String::new();
        // NOTE: the free port is found by binding port 0 and releasing it, so another process
        // may take it before the server binds; try a few ports.
        for _ in 0..3 {
            let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(SUPERVISOR)
                .arg("keel-pg-supervisor")
                .arg(&bin)
                .arg(port.to_string())
                .arg(if as_root { "runuser" } else { "direct" })
                .env("KEEL_PG_PW", &password)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start sh: {e}"))?;
            let stdin = child.stdin.take().expect("piped");
            let mut out = BufReader::new(child.stdout.take().expect("piped"));
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            if let Some(dir) = line.trim_end().strip_prefix("ready ") {
                return Ok(PgCluster {
                    bin,
                    port,
                    password,
                    dir: PathBuf::from(dir),
                    _supervisor: Mutex::new(stdin),
                    next_db: AtomicU64::new(0),
                });
            }
            let mut rest = String::new();
            let _ = out.read_to_string(&mut rest);
            drop(stdin);
            let _ = child.wait();
            last = format!("the server did not start: {}{rest}", line.trim_end());
        }
        Err(last)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data and logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a new, empty database for one test.
    ///
    /// # Panics
    /// When `createdb` fails (the cluster is broken: the test cannot run).
    pub fn create_database(&self) -> TestDatabase {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("keel_test_{n}");
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
            ])
            .arg(&name)
            .env("PGPASSWORD", &self.password)
            .env_remove("PGPASSFILE")
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestDatabase {
            name,
            port: self.port,
            user: SUPERUSER.to_owned(),
            password: self.password.clone(),
        }
    }
}

/// A database of its own for one test, on the shared [`PgCluster`].
#[derive(Clone)]
pub struct TestDatabase {
    /// The database name.
    pub name: String,
    /// The server's port on 127.0.0.1.
    pub port: u16,
    /// The user (the cluster's superuser).
    pub user: String,
    password: String,
}

impl TestDatabase {
    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/NAME`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            self.user, self.password, self.port, self.name
        )
    }

    /// The same URL without the password (which must then come from `PGPASSWORD` or a
    /// `.pgpass` file).
    pub fn url_without_password(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            self.user, self.port, self.name
        )
    }

    /// The password (for tests of password handling: `PGPASSWORD`, `.pgpass`).
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

fn find_bin_dir() -> Result<PathBuf, String> {
    let has_tools = |d: &Path| {
        ["initdb", "pg_ctl", "createdb"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os(BIN_VAR) {
        let dir = PathBuf::from(dir);
        return if has_tools(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "{BIN_VAR}={} has no initdb/pg_ctl/createdb",
                dir.display()
            ))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_tools(d))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|d| has_tools(d));
    from_pg_config.ok_or_else(|| {
        format!("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin, no pg_config; set {BIN_VAR})")
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A password for a throwaway cluster: unpredictable enough that nothing else on the machine
/// guesses it during a test run, not a cryptographic secret.
fn random_password() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut out = String::from("keel-");
    for i in 0..2u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_password() {
        let db = TestDatabase {
            name: "d".into(),
            port: 1,
            user: "u".into(),
            password: "s3cr3t-pw".into(),
        };
        assert!(!format!("{db:?}").contains("s3cr3t-pw"));
        assert!(db.url().contains("s3cr3t-pw"));
        assert!(!db.url_without_password().contains("s3cr3t-pw"));
    }

    #[test]
    fn passwords_differ_between_clusters() {
        assert_ne!(random_password(), random_password());
    }

    #[test]
    fn the_shared_cluster_accepts_a_new_database() {
        let Some(pg) = PgCluster::shared() else {
            return;
        };
        let a = pg.create_database();
        let b = pg.create_database();
        assert_ne!(a.name, b.name);
        assert!(pg.dir().join("data").exists());
    }
}
