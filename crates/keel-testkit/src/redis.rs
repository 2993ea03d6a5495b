//! A real `redis-server` for tests: started on a free loopback port, persistence off, stopped
//! when the test binary exits, and stoppable and restartable mid-test.
//!
//! Statics are never dropped, so a server kept in one cannot be stopped by a destructor. Each
//! server is therefore run by a small supervising shell whose standard input is a pipe from
//! the test process: when the test process exits for any reason (end of `main`, a panic, a
//! signal), the pipe closes, the supervisor reads end-of-file and kills the server. The same
//! pipe carries the `stop` and `start` commands of [`RedisServer::stop`] and
//! [`RedisServer::start`].
//!
//! Where no `redis-server` is installed, [`RedisServer::shared`] and [`RedisServer::spawn`]
//! print a loud `SKIPPED` line and return `None`, so the test returns early; with
//! `KEEL_REQUIRE_REDIS=1` (as in CI) they panic instead. `KEEL_REDIS_SERVER` names the
//! binary to use instead of the one on `PATH` or at `/usr/bin/redis-server`.
//!
//! # Example
//!
//! ```no_run
//! use keel_testkit::redis::RedisServer;
//!
//! let Some(server) = RedisServer::shared() else { return };
//! println!("redis at {}", server.url());
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a starting server may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

const SUPERVISOR: &str = r#"
server="$1"; port="$2"; shift 2
run() {
  "$server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --loglevel warning "$@" </dev/null >/dev/null 2>&1 &
  pid=$!
}
run "$@"
echo started
while IFS= read -r cmd; do
  case "$cmd" in
    stop) kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; echo stopped ;;
    start) run "$@"; echo started ;;
  esac
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
"#;

/// A `redis-server` run for the tests of this binary (see the [module docs](self)).
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    password: Option<String>,
    control: Mutex<Control>,
}

#[derive(Debug)]
struct Control {
    supervisor: Child,
    /// `None` once dropped: closing it stops the supervisor.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl RedisServer {
    /// The server shared by every test of this binary, started on first use.
    ///
    /// Tests that share it keep to their own keys; a test that stops the server uses its own
    /// ([`spawn`](Self::spawn)).
    ///
    /// # Panics
    ///
    /// When the server cannot be started, or is not installed and `KEEL_REQUIRE_REDIS=1`.
    pub fn shared() -> Option<&'static RedisServer> {
        static SHARED: OnceLock<Option<RedisServer>> = OnceLock::new();
        SHARED.get_or_init(|| Self::spawn_with(None)).as_ref()
    }

    /// A server of its own for one test, stopped when dropped (or when the binary exits).
    ///
    /// # Panics
    ///
    /// As [`shared`](Self::shared).
    pub fn spawn() -> Option<RedisServer> {
        Self::spawn_with(None)
    }

    /// Like [`spawn`](Self::spawn), with `requirepass` set: clients must authenticate.
    ///
    /// # Panics
    ///
    /// As [`shared`](Self::shared).
    pub fn spawn_with_password(password: &str) -> Option<RedisServer> {
        Self::spawn_with(Some(password.to_owned()))
    }

    fn spawn_with(password: Option<String>) -> Option<RedisServer> {
        let binary = find_binary()?;
        let port = free_port();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg(&binary)
            .arg(port.to_string());
        if let Some(password) = &password {
            // NOTE: a test password, on the argv of a loopback test server only.
            command.arg("--requirepass").arg(password);
        }
        let mut supervisor = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the redis-server supervisor (sh)");
        let stdin = supervisor.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(supervisor.stdout.take().expect("piped stdout"));
        let server = RedisServer {
            port,
            password,
            control: Mutex::new(Control {
                supervisor,
                stdin: Some(stdin),
                stdout,
            }),
        };
        server.expect_line("started");
        server.wait_ready();
        Some(server)
    }

    /// The port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/` (without the password of a password-protected server).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL, as a crash would) and waits until it is gone. Its data is
    /// lost: persistence is off.
    pub fn stop(&self) {
        self.send("stop");
        self.expect_line("stopped");
    }

    /// Starts the server again on the same port, empty, and waits until it answers.
    pub fn start(&self) {
        self.send("start");
        self.expect_line("started");
        self.wait_ready();
    }

    /// Runs one command on the server and returns its raw RESP answer (for `INFO`,
    /// `CONFIG RESETSTAT`, …), without going through the code under test.
    ///
    /// # Panics
    ///
    /// When the server does not answer.
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set timeout");
        let mut request = Vec::new();
        if let Some(password) = &self.password {
            request.extend(resp(&["AUTH", password]));
        }
        request.extend(resp(args));
        stream.write_all(&request).expect("send command");
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read answer");
        if self.password.is_some() {
            answer = answer
                .split_once("\r\n")
                .map(|x| x.1)
                .unwrap_or("")
                .to_owned();
        }
        answer
    }

    /// How many times `command` (lowercase, for example `evalsha`) has run since the last
    /// `CONFIG RESETSTAT`, from `INFO commandstats`.
    pub fn command_calls(&self, command: &str) -> u64 {
        let info = self.command(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn send(&self, line: &str) {
        let mut control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        let stdin = control.stdin.as_mut().expect("supervisor running");
        writeln!(stdin, "{line}").expect("write to the redis-server supervisor");
        stdin.flush().expect("flush");
    }

    fn expect_line(&self, expected: &str) {
        let mut control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        let mut line = String::new();
        control
            .stdout
            .read_line(&mut line)
            .expect("read from the redis-server supervisor");
        assert_eq!(line.trim(), expected, "redis-server supervisor");
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            if let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 64];
                // NOTE: an unauthenticated PING answers -NOAUTH on a protected server, which
                // still proves it is up.
                if stream.write_all(b"PING\r\n").is_ok() && stream.read(&mut buf).unwrap_or(0) > 0 {
                    return;
                }
            }
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let control = self
            .control
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        // NOTE: closing stdin makes the supervisor kill the server and exit.
        drop(control.stdin.take());
        let _ = control.supervisor.wait();
    }
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend(format!("${}\r\n", arg.len()).into_bytes());
        out.extend(arg.as_bytes());
        out.extend(b"\r\n");
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

fn find_binary() -> Option<PathBuf> {
    let found = match std::env::var_os("KEEL_REDIS_SERVER") {
        Some(named) => Some(PathBuf::from(named)).filter(|p| p.is_file()),
        None => std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("redis-server"))
                    .find(|p| p.is_file())
            })
            .or_else(|| Some(PathBuf::from("/usr/bin/redis-server")).filter(|p| p.is_file())),
    };
    if found.is_none() {
        if std::env::var("KEEL_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
            panic!("redis-server is not installed and KEEL_REQUIRE_REDIS=1");
        }
        eprintln!(
            "SKIPPED: redis-server is not installed; the Redis tests did not run \
             (install redis-server, or set KEEL_REDIS_SERVER)"
        );
    }
    found
}
