//! One export run: resolve the source, open or resume the output, stream the pages, summarise.

use std::time::Instant;

use super::checkpoint::Fingerprint;
use super::cli::Args;
use super::credentials;
use super::error::ExportError;
use super::lock::OutputLock;
use super::open::{open, Opened};
use super::pages::{map_error, stream_pages};
use super::progress::Progress;
use super::sim::EmbeddedSim;
use super::summary::{peak_memory, Summary};
use crate::{Client, Credentials, Environment};

/// Runs the export `args` describe, reading credentials from the environment or
/// `--credentials-file` (or using the simulator's with `--sim`). Progress and the summary go
/// to stderr; the summary is also returned. With `--out`, the output is locked for the whole
/// run (see [the module docs](super#one-run-per-output)).
///
/// # Errors
/// An [`ExportError`] whose [`exit_code`](ExportError::exit_code) is the process's;
/// [`ExportError::OutputLocked`] at once when another export is writing the same output.
pub async fn run(args: Args) -> Result<Summary, ExportError> {
    run_with(args, None).await
}

/// [`run`] with the credentials given (ignored with `--sim`), for programs that hold them.
///
/// # Errors
/// As [`run`].
pub async fn run_with_credentials(
    args: Args,
    credentials: Credentials,
) -> Result<Summary, ExportError> {
    run_with(args, Some(credentials)).await
}

async fn run_with(args: Args, given: Option<Credentials>) -> Result<Summary, ExportError> {
    let started = Instant::now();
    // NOTE: held to the end of the run (dropped last), before anything reads or writes the
    // output or its checkpoint.
    let _lock = match args.out.as_deref() {
        Some(out) => OutputLock::acquire(out)?,
        None => None,
    };
    let mut progress = Progress::new(args.progress, args.log_every);

    // NOTE: the simulator lives until the end of this function (its handle is dropped last).
    let (env, creds, api_label, _sim) = if args.sim {
        let sim = EmbeddedSim::start(&args).await?;
        progress.note(&sim.describe());
        (
            sim.environment()?,
            sim.credentials(),
            sim.label(),
            Some(sim),
        )
    } else {
        let env = environment(&args)?;
        let creds = match given {
            Some(c) => c,
            None => credentials::load(args.credentials_file.as_deref())?,
        };
        let label = env.api_url().to_string();
        (env, creds, label, None)
    };
    let client_id = creds.client_id().to_owned();

    let fingerprint = Fingerprint {
        api: api_label,
        mode: args.mode,
        format: args.format,
        window: match (&args.interval, &args.since) {
            (Some(i), _) => format!("interval {i}"),
            (None, Some(d)) => format!("since {}s", d.as_secs()),
            (None, None) => "since 24h".to_owned(),
        },
        media_type: args.media_type.clone(),
        page_size: args.page_size,
    };

    let Opened {
        query,
        resume_from,
        writer,
    } = open(&args, &fingerprint, &progress)?;

    let client = Client::builder(env, creds)
        .prefetch(args.prefetch as usize)
        .max_parallel_parts(if args.prefetch <= 1 { 1 } else { 2 })
        .page_size(args.page_size)
        .request_timeout(args.request_timeout)
        .build()
        .map_err(|e| map_error(e, &client_id, "cannot build the client"))?;

    let resumed_conversations = writer.conversations();
    let outcome = stream_pages(
        &args,
        &client,
        query,
        resume_from,
        writer,
        &mut progress,
        &client_id,
    )
    .await;
    progress.finish();

    let stats = client.stats();
    let (pages, conversations, result) = match outcome {
        Ok((p, c)) => (p, c, Ok(())),
        Err((p, c, e)) => (p, c, Err(e)),
    };
    let summary = Summary {
        conversations,
        pages,
        resumed_conversations,
        token_fetches: stats.token_fetches,
        replays_401: stats.replays_401,
        waits_429: stats.waits_429,
        other_retries: stats.other_retries,
        decode_retries: stats.decode_retries,
        elapsed: started.elapsed(),
        output: args
            .out
            .as_deref()
            .map_or_else(|| "<stdout>".to_owned(), |p| p.display().to_string()),
        peak_memory: peak_memory(),
    };
    eprintln!("{summary}");
    result.map(|()| summary)
}

fn environment(args: &Args) -> Result<Environment, ExportError> {
    let env = match (&args.environment, &args.api_url, &args.login_url) {
        (Some(domain), _, _) => Environment::region(domain),
        (None, Some(api), Some(login)) => Environment::custom(api, login),
        _ => Environment::region("mypurecloud.com"),
    };
    env.map_err(|e| ExportError::Usage(format!("bad environment: {e}")))
}
