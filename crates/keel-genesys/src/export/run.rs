//! One export run: resolve the source and query, open or resume the output, stream the pages.

use std::time::Instant;

use futures_util::StreamExt;

use super::checkpoint::{CheckpointFile, CheckpointRecord, Fingerprint};
use super::cli::{Args, Mode};
use super::credentials;
use super::error::ExportError;
use super::output::Output;
use super::progress::Progress;
use super::sim::EmbeddedSim;
use super::sink::PageWriter;
use super::summary::{peak_memory, Summary};
use crate::details::Checkpoint;
use crate::error::{Error, ErrorKind};
use crate::models::{ConversationQuery, Interval};
use crate::{Client, Credentials, Environment};

/// How often a run continues by itself after the API's result set changed mid-part (the
/// library's error carries an exact resume point).
const MAX_RESULT_SET_RESTARTS: u32 = 3;

/// Runs the export `args` describe, reading credentials from the environment or
/// `--credentials-file` (or using the simulator's with `--sim`). Progress and the summary go
/// to stderr; the summary is also returned.
///
/// # Errors
/// An [`ExportError`] whose [`exit_code`](ExportError::exit_code) is the process's.
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

    // Resume state, or a fresh output.
    let checkpoint_file = args.out.as_deref().map(CheckpointFile::for_output);
    if let Some(file) = checkpoint_file
        .as_ref()
        .filter(|f| !args.resume && f.path().exists())
    {
        return Err(ExportError::Checkpoint {
            message: "an interrupted export left a checkpoint here: pass --resume to continue it, or delete the checkpoint to start over".into(),
            path: file.path().to_owned(),
        });
    }
    let existing = match (&checkpoint_file, args.resume) {
        (Some(f), true) => f.load::<Option<Checkpoint>>()?,
        _ => None,
    };
    let (query, resume_from, writer) = match (args.resume, existing, &args.out, checkpoint_file) {
        (true, Some(record), Some(out), Some(file)) => {
            let diffs = record.fingerprint.differences(&fingerprint);
            if !diffs.is_empty() {
                return Err(ExportError::Checkpoint {
                    message: format!(
                        "the checkpoint belongs to a different export ({})",
                        diffs.join("; ")
                    ),
                    path: file.path().to_owned(),
                });
            }
            let query: ConversationQuery =
                serde_json::from_value(record.query.clone()).map_err(|e| {
                    ExportError::Checkpoint {
                        message: format!("the checkpoint's query is unreadable ({e})"),
                        path: file.path().to_owned(),
                    }
                })?;
            progress.note(&format!(
                "genesys-export: resuming after {} pages ({} conversations) from {}",
                record.pages,
                record.conversations,
                file.path().display()
            ));
            let output = Output::reopen_at(out, record.output_len)?;
            let resume = record.position.clone();
            (
                query,
                resume,
                PageWriter::new(output, args.format, Some((file, record))),
            )
        }
        (resume, _, out, file) => {
            let query = build_query(&args)?;
            let output = match out {
                Some(path) => Output::create(path, resume)?,
                None => Output::stdout(),
            };
            let checkpoint = match (resume, file) {
                (true, Some(file)) => {
                    let query_json = serde_json::to_value(&query)
                        .map_err(|e| ExportError::Usage(format!("query cannot be encoded: {e}")))?;
                    Some((
                        file,
                        CheckpointRecord::new(fingerprint.clone(), query_json, None),
                    ))
                }
                _ => None,
            };
            (
                query,
                None,
                PageWriter::new(output, args.format, checkpoint),
            )
        }
    };

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

type Outcome = Result<(u64, u64), (u64, u64, ExportError)>;

async fn stream_pages(
    args: &Args,
    client: &Client,
    query: ConversationQuery,
    mut resume_from: Option<Checkpoint>,
    mut writer: PageWriter<Option<Checkpoint>>,
    progress: &mut Progress,
    client_id: &str,
) -> Outcome {
    let mut restarts = 0;
    let mut part_totals = std::collections::BTreeMap::new();
    loop {
        let export = match args.mode {
            Mode::Query => client.conversation_details(query.clone()),
            Mode::Jobs => client.conversation_details_job(query.clone()),
        };
        let export = match resume_from.take() {
            Some(cp) => export.resume_after(cp),
            None => export,
        };
        let mut export = std::pin::pin!(export);
        let failure = loop {
            match export.next().await {
                None => break None,
                Some(Ok(page)) => {
                    let total = match (&page.checkpoint, page.total_hits) {
                        (Checkpoint::Query(q), Some(t)) => {
                            part_totals.insert(q.part_index, t);
                            Some(part_totals.values().sum())
                        }
                        _ => None,
                    };
                    if let Err(e) = writer.write_page(&page.conversations, Some(page.checkpoint)) {
                        return Err((writer.pages(), writer.conversations(), e));
                    }
                    progress.page(writer.pages(), writer.conversations(), total);
                }
                Some(Err(e)) => break Some(e),
            }
        };
        match failure {
            None => {
                let (p, c) = (writer.pages(), writer.conversations());
                return writer.finish().map(|()| (p, c)).map_err(|e| (p, c, e));
            }
            Some(Error::ResultSetChanged {
                resume: Some(resume),
                expected,
                actual,
                interval,
            }) => {
                // NOTE: the error's checkpoint supersedes the last page's: resuming after the
                // last page of a part whose results moved could skip or repeat records.
                let resume = *resume;
                if let Err(e) = writer.record_position(Some(resume.clone())) {
                    return Err((writer.pages(), writer.conversations(), e));
                }
                if restarts >= MAX_RESULT_SET_RESTARTS {
                    let e = Error::ResultSetChanged {
                        resume: Some(Box::new(resume)),
                        expected,
                        actual,
                        interval,
                    };
                    let context = stopped_context(args, &writer);
                    return Err((
                        writer.pages(),
                        writer.conversations(),
                        map_error(e, client_id, &context),
                    ));
                }
                restarts += 1;
                progress.note(&format!(
                    "genesys-export: results of {interval} changed while paging (totalHits {expected} -> {actual}); re-exporting that part, skipping what is already written"
                ));
                resume_from = Some(resume);
            }
            Some(e) => {
                let context = stopped_context(args, &writer);
                return Err((
                    writer.pages(),
                    writer.conversations(),
                    map_error(e, client_id, &context),
                ));
            }
        }
    }
}

fn stopped_context<P: serde::Serialize>(args: &Args, writer: &PageWriter<P>) -> String {
    format!(
        "export stopped after {} pages ({} conversations written{})",
        writer.pages(),
        writer.conversations(),
        if args.resume {
            "; run again with --resume to continue"
        } else {
            ""
        }
    )
}

fn environment(args: &Args) -> Result<Environment, ExportError> {
    let env = match (&args.environment, &args.api_url, &args.login_url) {
        (Some(domain), _, _) => Environment::region(domain),
        (None, Some(api), Some(login)) => Environment::custom(api, login),
        _ => Environment::region("mypurecloud.com"),
    };
    env.map_err(|e| ExportError::Usage(format!("bad environment: {e}")))
}

fn build_query(args: &Args) -> Result<ConversationQuery, ExportError> {
    let interval = match (args.interval, args.since) {
        (Some(i), _) => i,
        (None, since) => Interval::since(since.unwrap_or(std::time::Duration::from_secs(86_400)))
            .map_err(|e| ExportError::Usage(format!("bad --since: {e}")))?,
    };
    let mut query = ConversationQuery::new(interval).page_size(args.page_size);
    if let Some(m) = &args.media_type {
        query = query.media_type(m.clone());
    }
    query
        .validate()
        .map_err(|e| ExportError::Usage(format!("bad query: {e}")))?;
    Ok(query)
}

fn map_error(e: Error, client_id: &str, context: &str) -> ExportError {
    match e.kind() {
        ErrorKind::Usage => ExportError::Usage(e.to_string()),
        ErrorKind::Credentials => ExportError::CredentialsRejected {
            client_id: client_id.to_owned(),
            source: Box::new(e),
        },
        _ => ExportError::Api {
            context: context.to_owned(),
            source: Box::new(e),
        },
    }
}
