//! The batch export, from library calls: every conversation of an interval to NDJSON,
//! resumable after a crash.
//!
//! `keel::genesys::Client` carries the whole keel stack (token refresh on expiry and on 401,
//! 429/503 backoff, replayable bodies, capped bodies, timeouts); `conversation_details`
//! pages the details query (split into parts under the API's result limit, prefetched,
//! yielded in order). Each page is written, flushed, then checkpointed with the file length,
//! so a rerun truncates any half-written page and continues after the last whole one.
//!
//! ```sh
//! cargo run --example batch_export                     # against an in-process keel-sim
//! GENESYS_CLIENT_ID=… GENESYS_CLIENT_SECRET=… cargo run --example batch_export -- \
//!   --environment mypurecloud.ie --interval 2026-01-01T00:00:00Z/2026-01-02T00:00:00Z
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Parser;
use futures_util::TryStreamExt;
use keel::genesys::{Checkpoint, Client, ConversationQuery, Credentials, Environment, Interval};
use serde_json::json;
use tower::BoxError;

/// What an export run wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Exported {
    /// Conversations written by this run.
    pub(crate) conversations: u64,
    /// Pages written by this run.
    pub(crate) pages: u64,
}

/// Exports every conversation of `interval` to `out` (one JSON object per line, exactly as
/// the API sent it), checkpointing to `<out>.checkpoint` and resuming from it if present.
pub(crate) async fn export(
    env: Environment,
    creds: Credentials,
    interval: Interval,
    out: &Path,
) -> Result<Exported, BoxError> {
    let client = Client::builder(env, creds).build()?;
    let checkpoint_path = PathBuf::from(format!("{}.checkpoint", out.display()));
    let mut export = client.conversation_details(ConversationQuery::new(interval));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)?;

    if let Ok(saved) = std::fs::read(&checkpoint_path) {
        let saved: serde_json::Value = serde_json::from_slice(&saved)?;
        let checkpoint: Checkpoint = serde_json::from_value(saved["checkpoint"].clone())?;
        file.set_len(
            saved["bytes"]
                .as_u64()
                .ok_or("checkpoint without a file length")?,
        )?;
        export = export.resume_after(checkpoint);
    } else {
        file.set_len(0)?;
    }

    let mut exported = Exported::default();
    while let Some(page) = export.try_next().await? {
        let lines: String = page
            .conversations
            .iter()
            .map(|c| format!("{}\n", c.get()))
            .collect();
        file.write_all(lines.as_bytes())?;
        file.sync_data()?;
        let saved = json!({ "checkpoint": page.checkpoint, "bytes": file.metadata()?.len() });
        let tmp = checkpoint_path.with_extension("checkpoint.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&saved)?)?;
        std::fs::rename(&tmp, &checkpoint_path)?;
        exported.conversations += page.conversations.len() as u64;
        exported.pages += 1;
    }
    std::fs::remove_file(&checkpoint_path)?;
    Ok(exported)
}

/// Command line of the example.
#[derive(Debug, Parser)]
struct Args {
    /// Genesys Cloud region domain; without it, a keel-sim simulator is started in-process.
    #[arg(long)]
    environment: Option<String>,
    /// Interval to export, START/END in ISO-8601.
    #[arg(long, default_value = "2026-01-01T00:00:00Z/2026-01-08T00:00:00Z")]
    interval: Interval,
    /// Output file.
    #[arg(long, default_value = "conversations.ndjson")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let (env, creds, sim) = match args.environment {
        Some(domain) => (
            Environment::region(&domain)?,
            Credentials::from_env()?,
            None,
        ),
        None => {
            let sim = keel_sim::Simulator::builder().start().await?;
            let env = Environment::custom(&sim.base_url(), &sim.base_url())?;
            let secret = secrecy::SecretString::from(sim.client_secret().to_owned());
            (env, Credentials::new(sim.client_id(), secret), Some(sim))
        }
    };
    let exported = export(env, creds, args.interval, &args.out).await?;
    println!("{exported:?} written to {}", args.out.display());
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    Ok(())
}
