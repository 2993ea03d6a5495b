//! The test redis-server: stop, start, and no server left behind by a test binary that
//! panics.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use keel_testkit::redis::RedisServer;

const CHILD: &str = "KEEL_TESTKIT_CHILD";

fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut buf).is_ok()
        && &buf == b"+PONG\r\n"
}

/// Waits (bounded) for the supervisor, a separate process, to act.
fn gone_within(port: u16, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if !answers(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn stops_and_starts_again_empty() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    assert!(answers(server.port()));
    assert_eq!(server.command(&["SET", "k", "v"]), "+OK\r\n");
    server.stop();
    assert!(!answers(server.port()));
    server.start();
    assert!(answers(server.port()));
    assert_eq!(server.command(&["GET", "k"]), "$-1\r\n", "no persistence");
}

#[test]
fn a_panicking_test_binary_leaves_no_server_behind() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    if RedisServer::shared().is_none() {
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_starts_the_shared_server_and_panics",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(!output.status.success(), "the child test panics");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let port: u16 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PORT="))
        .expect("the child printed its port")
        .parse()
        .unwrap();
    assert!(
        gone_within(port, Duration::from_secs(5)),
        "server on {port} survived"
    );
}

#[test]
fn child_starts_the_shared_server_and_panics() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let server = RedisServer::shared().unwrap();
    assert!(answers(server.port()));
    println!("PORT={}", server.port());
    std::io::stdout().flush().unwrap();
    panic!("a failing test");
}

#[test]
fn a_missing_server_skips_loudly_or_fails_when_required() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let run = |require: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_asks_for_a_missing_server", "--nocapture"])
            .env(CHILD, "1")
            .env("KEEL_REDIS_SERVER", "/nonexistent/redis-server")
            .env("KEEL_REQUIRE_REDIS", require)
            .output()
            .unwrap()
    };
    let skipped = run("0");
    assert!(skipped.status.success());
    let stderr = String::from_utf8_lossy(&skipped.stderr);
    assert!(
        stderr.contains("SKIPPED: redis-server is not installed"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&skipped.stdout).contains("NO SERVER"));

    let required = run("1");
    assert!(!required.status.success());
    let stderr = String::from_utf8_lossy(&required.stderr);
    assert!(stderr.contains("KEEL_REQUIRE_REDIS=1"), "{stderr}");
}

#[test]
fn child_asks_for_a_missing_server() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    if RedisServer::spawn().is_none() {
        println!("NO SERVER");
    }
}
