//! One export run: resolve the source, open or resume the output, stream the pages, summarise.

use std::time::Instant;

use keel_genesys::export::{self, ExportJob};
use keel_genesys::{Client, Credentials, Environment};

use crate::checkpoint::Fingerprint;
use crate::cli::Args;
use crate::credentials;
use crate::error::{map_error, ExportError};
use crate::lock::OutputLock;
use crate::open::{open, Opened};
use crate::progress::Progress;
use crate::summary::{peak_memory, Summary};

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
    #[cfg(feature = "db")]
    let database = crate::db::destination(&args)?;
    #[cfg(not(feature = "db"))]
    let database: Option<std::convert::Infallible> = None;
    if args.incremental && database.is_none() {
        return Err(ExportError::Usage(
            "--incremental needs a database --out (sqlite:PATH, postgres://…)".into(),
        ));
    }
    // NOTE: held to the end of the run (dropped last), before anything reads or writes the
    // output or its checkpoint. A database holds its own lock (taken when it is opened).
    let _lock = match args.out.as_deref() {
        Some(out) if database.is_none() => OutputLock::acquire(out)?,
        _ => None,
    };
    let mut progress = Progress::new(args.progress, args.log_every);
    #[cfg(feature = "db")]
    if let Some(warning) = database.as_ref().and_then(crate::db::password_warning) {
        eprintln!("{warning}");
    }

    // NOTE: the simulator lives until the end of this function (its handle is dropped last).
    #[cfg(feature = "sim")]
    let (env, creds, api_label, _sim) = if args.sim {
        let sim = crate::sim::EmbeddedSim::start(&args).await?;
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
    #[cfg(not(feature = "sim"))]
    let (env, creds, api_label) = if args.sim {
        return Err(ExportError::Usage(
            "--sim needs genesys-export built with the `sim` feature".into(),
        ));
    } else {
        let env = environment(&args)?;
        let creds = match given {
            Some(c) => c,
            None => credentials::load(args.credentials_file.as_deref())?,
        };
        let label = env.api_url().to_string();
        (env, creds, label)
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

    let opened = match database {
        None => Some(open(&args, &fingerprint, &progress)?),
        Some(_) => None,
    };

    #[cfg(feature = "redis")]
    let redis = crate::fleet::config(&args)?;
    #[cfg(not(feature = "redis"))]
    if args.redis.is_some() {
        return Err(ExportError::Usage(
            "--redis needs genesys-export built with the `redis` feature".into(),
        ));
    }
    #[cfg(feature = "redis")]
    let shared_env = env.clone();
    let builder = Client::builder(env, creds);
    #[cfg(feature = "redis")]
    let builder = match &redis {
        Some(config) => {
            crate::fleet::share(builder, config, &shared_env, &client_id, args.fleet_rate)?
        }
        None if args.fleet_rate.is_some() => {
            return Err(ExportError::Usage(
                "--fleet-rate needs --redis (or KEEL_REDIS_URL)".into(),
            ))
        }
        None => builder,
    };
    let client = builder
        .prefetch(args.prefetch as usize)
        .max_parallel_parts(if args.prefetch <= 1 { 1 } else { 2 })
        .page_size(args.page_size)
        .request_timeout(args.request_timeout)
        .build()
        .map_err(|e| map_error(e, &client_id, "cannot build the client"))?;

    let (outcome, last) = match (opened, &database) {
        (Some(Opened { query, mut sink }), _) => {
            let job = ExportJob::new(query, args.mode);
            let outcome = export::run(&client, &job, &mut sink, &mut progress).await;
            (outcome.map(drop), progress.last())
        }
        #[cfg(feature = "db")]
        (None, Some(dest)) => {
            let mut t = crate::db::Totals::default();
            let outcome = crate::db::export(
                &args,
                dest,
                &fingerprint.api,
                &client,
                &mut progress,
                &mut t,
            )
            .await;
            let last = keel_genesys::export::Progress {
                pages: t.pages,
                conversations: t.conversations,
                resumed_conversations: t.resumed_conversations,
                ..progress.last()
            };
            (outcome, last)
        }
        (None, _) => unreachable!("a file output is opened above"),
    };
    progress.finish();

    let stats = client.stats();
    let result = outcome.map_err(|e| match e {
        export::ExportError::Sink(e) => e,
        export::ExportError::Client(e) => {
            let context =
                stopped_context(&args, database.is_some(), last.pages, last.conversations);
            map_error(e, &client_id, &context)
        }
    });
    let summary = Summary {
        conversations: last.conversations,
        pages: last.pages,
        resumed_conversations: last.resumed_conversations,
        late_arrivals: last.late_arrivals,
        token_fetches: stats.token_fetches,
        replays_401: stats.replays_401,
        waits_429: stats.waits_429,
        other_retries: stats.other_retries,
        decode_retries: stats.decode_retries,
        elapsed: started.elapsed(),
        output: match (&database, args.out.as_deref()) {
            (Some(d), _) => d.to_string(),
            (None, Some(p)) => p.display().to_string(),
            (None, None) => "<stdout>".to_owned(),
        },
        peak_memory: peak_memory(),
    };
    eprintln!("{summary}");
    #[cfg(feature = "db")]
    if let (Some(d), Err(ExportError::Database(keel_genesys_db::DbError::Database { .. }))) =
        (&database, &result)
    {
        eprintln!(
            "genesys-export: {d} keeps the pages stored before the failure and where to resume: \
             run the same command again to continue"
        );
    }
    result.map(|()| summary)
}

fn stopped_context(args: &Args, database: bool, pages: u64, conversations: u64) -> String {
    format!(
        "export stopped after {pages} pages ({conversations} conversations written{})",
        if database {
            "; the database keeps where to resume: run the same command again to continue"
        } else if args.resume {
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
