//! `genesys-export`: export Genesys Cloud conversation details, surviving token expiry,
//! revocation, rate limits and faults, with every record exactly once.
//!
//! See `genesys-export --help` and the [`genesys_export`] crate for flags, checkpoints and exit
//! codes. Try it without an account: `genesys-export --sim --out conversations.ndjson`.

use std::process::ExitCode;

use clap::Parser;
use genesys_export::{self as export, Args};

fn main() -> ExitCode {
    // NOTE: clap prints its own usage errors and exits with code 2.
    let args = Args::parse();
    export::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime\n  caused by: {e}");
            return ExitCode::FAILURE;
        }
    };
    let resumable = args.resume;
    // NOTE: the run only yields between pages (a page is written and checkpointed without an
    // await), so dropping it on Ctrl-C leaves whole pages and a matching checkpoint.
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = export::run(args) => Some(outcome),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        Some(Ok(_)) => ExitCode::SUCCESS,
        Some(Err(e)) => {
            eprintln!("{}", e.report());
            ExitCode::from(e.exit_code())
        }
        None => {
            let hint = if resumable {
                "; run again with --resume to continue"
            } else {
                ""
            };
            eprintln!("error: interrupted{hint}");
            ExitCode::from(130)
        }
    }
}
