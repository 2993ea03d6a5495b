//! The `genesys-export` program as a library: command line, file sinks, progress, exit codes.
//!
//! The binary is a thin `main` over this crate, so the end-to-end tests and other programs
//! can run the very same export in-process. A run maps its [`Args`] to the library's plain
//! [`ExportJob`](keel_genesys::ExportJob), reads credentials from the environment (or a file),
//! builds a [`Client`](keel_genesys::Client) and hands both, with a [`FileSink`], to the
//! library's export engine ([`keel_genesys::export::run`]), which commits each page whole:
//! NDJSON lines that are exactly the bytes the API sent, or CSV rows.
//! With `--resume` every page is fsynced and followed by an atomic checkpoint, so a killed run
//! continues after its last complete page and the output holds every record exactly once.
//!
//! # Checkpoints
//! `--resume` writes `<out>.checkpoint` after each page and removes it on success. A run
//! *without* `--resume` refuses to start (exit 2) when that file exists, rather than overwrite
//! a partial export someone may want to finish: pass `--resume` to continue it, or delete the
//! checkpoint to start over. A checkpoint of a different export (other interval flags, format,
//! mode, page size, media type or API) is refused too, naming what differs. A resume reuses the
//! query the first run resolved, so `--since 24h` means the same interval on both runs.
//!
//! # One run per output
//! A run with `--out` holds an exclusive advisory lock on `<out>.lock` (beside the output's
//! resolved path, so a symlink or another spelling of the same file meets the same lock;
//! removed when the run ends) from its start to its end, `--resume` or not. A second export to
//! the same output stops at once with exit 2, naming the output, before it opens the output,
//! reads the checkpoint or calls the API; the first run's file and checkpoint are untouched.
//! A lock file left by a killed run holds no lock and is taken over. Outputs that are not
//! regular files (stdout, `/dev/null`) take no lock.
//!
//! # Files
//! The output, checkpoint and lock files are created with mode 0600 (an existing output keeps
//! its mode); the checkpoint's temp file is always created new, never through a symlink.
//!
//! # Databases
//! With the `db` feature (on by default), `--out sqlite:PATH`, `postgres://…` or
//! `postgresql://…` writes into a database through keel-genesys-db: each page's rows and the
//! resume point in one transaction, so a plain re-run continues an interrupted export and a
//! completed one is upserted again, harmlessly. The database holds the run lock (exit 2 when
//! another run has it) and its schema is checked before anything is fetched; other database
//! errors exit 5 naming the destination, never its password. `--incremental` exports from
//! the stored watermark minus `--overlap` up to now, then fetches the conversations stored
//! while in progress again by id, and moves the watermark when its pages are committed.
//!
//! # Results that change while paging (live intervals)
//! The default `--since 24h` ends now, so conversations keep arriving in it while it is
//! paged. A part whose results grow is read on in order, one page at a time, and the records
//! it meets again are dropped before they are written: the export completes with every
//! conversation that was there when the part's first page was read exactly once, plus the
//! late arrivals it met, each once (the summary says how many; `RUST_LOG=keel_genesys=info`
//! logs each fallback and why). A part whose results shrink is read again from its first page,
//! skipping what is written; when it keeps shrinking the export stops (exit 4) naming the
//! interval, with a restart point in the checkpoint that `--resume` continues from exactly.
//! When a part begun by an earlier run changes, the file sink reads the ids already written back
//! from the output ([`PageSink::committed_ids`](keel_genesys::sink::PageSink::committed_ids)).
//!
//! # Memory
//! Pages are streamed: at most the prefetched pages of the parts in flight are held, plus the
//! library's per-part id set (at most 100,000 ids per part), whatever the export's size.
//!
//! # `--sim`
//! With the `sim` feature (on by default), starts an embedded keel-sim (5,000 conversations
//! over the 23 hours before the current hour, 30-second tokens revoked early every 20 requests,
//! a rate limit, scripted 429/503/502 and a dropped connection, 1% random 503s), says so on
//! stderr, and runs the same code path against it. Built without the feature, `--sim` is a
//! usage error (exit 2).
//!
//! # A fleet of exports
//! With the `redis` feature (on by default), `--redis URL` (or `KEEL_REDIS_URL`; the password
//! only from `KEEL_REDIS_PASSWORD`) makes every export process of one OAuth client share one
//! token and one 429 gate through Redis: one token grant per token lifetime for the whole
//! fleet, and a 429 in one process holds the others. Redis unreachable: each process carries
//! on alone with one warning, or stops with `--redis-fail-closed`.
//!
//! # Output that fits its reader
//! Logs and messages go to stderr, coloured only when it is a terminal and `NO_COLOR` is unset
//! ([`use_color`]); text from a server in an error is printed with its control characters
//! escaped.
//!
//! # Exit codes
//! 0 done; 2 usage (bad flag or value, missing credentials, checkpoint in the way, output
//! locked by another export); 3 credentials rejected; 4 API error after retries; 5 output I/O;
//! 130 interrupted by Ctrl-C (the binary stops between pages: the output holds whole pages,
//! the checkpoint matches).
//!
//! # Example
//! The export of the README, in-process, against the embedded simulator:
//! ```
//! use clap::Parser;
//! use genesys_export::{Args, EXIT_USAGE};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let out = dir.path().join("conversations.ndjson");
//! let args = Args::try_parse_from([
//!     "genesys-export", "--sim", "--sim-conversations", "300", "--sim-no-faults",
//!     "--progress", "quiet", "--out", out.to_str().unwrap(),
//! ])
//! .unwrap();
//! let summary = genesys_export::run(args).await.unwrap();
//! assert_eq!(summary.conversations, 300);
//! assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 300);
//!
//! // Usage errors are typed and carry their exit code.
//! let e = Args::try_parse_from(["genesys-export", "--page-size", "101"]).unwrap_err();
//! assert_eq!(e.exit_code(), i32::from(EXIT_USAGE));
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod checkpoint;
mod cli;
mod credentials;
#[cfg(feature = "db")]
mod db;
mod error;
mod files;
#[cfg(feature = "redis")]
mod fleet;
mod format;
mod lock;
mod ndjson;
mod open;
mod output;
mod progress;
mod recover;
mod run;
#[cfg(feature = "sim")]
mod sim;
mod sink;
mod summary;
mod terminal;
mod vm_hwm;

pub use cli::{parse_duration, parse_instant, parse_interval, Args, Format, ProgressMode};
pub use credentials::load as load_credentials;
pub use error::{
    ExportError, Report, EXIT_API, EXIT_CREDENTIALS, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE,
};
pub use format::{EncodeError, CSV_HEADER};
pub use ndjson::compact_json_into;
pub use progress::Progress;
pub use run::{run, run_with_credentials};
pub use sink::FileSink;
pub use summary::Summary;
pub use terminal::{init_tracing, use_color};
