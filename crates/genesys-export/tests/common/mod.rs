//! Helpers of the genesys-export end-to-end tests: a simulator, the export (in-process or the
//! binary) pointed at it, and the comparison with the simulator's ground truth.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::Parser;
use genesys_export::{self as export, Args, ExportError, Summary};
use keel_genesys::models::{ConversationQuery, Interval};
use keel_genesys::Credentials;
use keel_sim::{SimBuilder, SimHandle, Simulator};
use secrecy::SecretString;

/// The day every test's data lies in (the simulator's default data start).
pub const INTERVAL: &str = "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z";

/// A simulator holding `conversations` conversations spread over 20 hours of [`INTERVAL`].
pub fn sim(conversations: u64) -> SimBuilder {
    Simulator::builder()
        .conversations(conversations)
        .seed(11)
        .data_span(std::time::Duration::from_secs(20 * 3_600))
}

/// The flags that point an export at `sim`, for `INTERVAL`, into `out`, quietly.
pub fn base_flags(sim: &SimHandle, out: &Path) -> Vec<String> {
    let url = sim.base_url();
    [
        "--api-url",
        &url,
        "--login-url",
        &url,
        "--interval",
        INTERVAL,
        "--progress",
        "quiet",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

/// Runs the export in-process with `extra` flags.
pub async fn run_export(
    sim: &SimHandle,
    out: &Path,
    extra: &[&str],
) -> Result<Summary, ExportError> {
    let mut argv = vec!["genesys-export".to_owned()];
    argv.extend(base_flags(sim, out));
    argv.extend(extra.iter().map(|s| s.to_string()));
    let args = Args::try_parse_from(argv).expect("valid flags");
    let creds = Credentials::new(
        sim.client_id(),
        SecretString::from(sim.client_secret().to_owned()),
    );
    export::run_with_credentials(args, creds).await
}

/// The `genesys-export` binary with the simulator's credentials in its environment.
pub fn binary(sim: &SimHandle) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_genesys-export"));
    cmd.env("GENESYS_CLIENT_ID", sim.client_id())
        .env("GENESYS_CLIENT_SECRET", sim.client_secret())
        .env_remove("RUST_LOG");
    cmd
}

/// Runs the binary to completion off the async runtime's threads.
pub async fn run_binary(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap()
}

/// The query the export sends for [`INTERVAL`] (and `media_type`), as the simulator reads it.
pub fn query_json(media_type: Option<&str>) -> serde_json::Value {
    let interval: Interval = INTERVAL.parse().unwrap();
    let mut q = ConversationQuery::new(interval);
    if let Some(m) = media_type {
        q = q.media_type(m);
    }
    serde_json::to_value(q).unwrap()
}

/// Asserts the NDJSON file holds exactly the ground truth of `query`: every record once, in
/// order, byte for byte. Streams both sides (large exports are hundreds of MB).
pub fn assert_ndjson_is_ground_truth(
    sim: &SimHandle,
    query: &serde_json::Value,
    out: &Path,
) -> u64 {
    use std::io::BufRead;
    let truth = sim.ground_truth(query).expect("valid query");
    let expected = truth.len() as u64;
    let file = std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(out).expect("output exists"),
    );
    let mut lines = file.split(b'\n');
    let mut n = 0u64;
    for want in truth {
        let got = lines
            .next()
            .unwrap_or_else(|| panic!("output ends after {n} of {expected} records"))
            .unwrap();
        if got != want.as_bytes() {
            panic!(
                "record {n} differs:\n got: {}\nwant: {}",
                String::from_utf8_lossy(&got[..got.len().min(300)]),
                &want[..want.len().min(300)]
            );
        }
        n += 1;
    }
    if let Some(extra) = lines.next() {
        panic!(
            "output has more than {expected} records; next: {:?}",
            String::from_utf8_lossy(&extra.unwrap())
        );
    }
    assert!(n > 0, "an export test must export something");
    n
}

/// A fresh temporary directory and an output path in it.
pub fn out_file(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

/// `<out>.checkpoint`.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap().to_os_string();
    name.push(".checkpoint");
    out.with_file_name(name)
}

/// The stderr of a run as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `<out>.lock`, the lock file of a run writing `out`.
pub fn lock_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap().to_os_string();
    name.push(".lock");
    out.with_file_name(name)
}

/// Takes the output lock of `out` as a running export does; held until the file is dropped.
pub fn hold_lock(out: &Path) -> std::fs::File {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path(out))
        .unwrap();
    file.try_lock().expect("nothing else holds the lock");
    file
}
