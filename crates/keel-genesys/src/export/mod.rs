//! The `genesys-export` batch job as a library: command line, run, writers, checkpoint, exit codes.
//!
//! The binary is a thin `main` over this module, so the end-to-end tests and other programs
//! can run the very same export in-process. A run reads credentials from the environment (or a
//! file), builds a [`Client`](crate::Client), streams the pages of
//! [`Client::conversation_details`](crate::Client::conversation_details) (or the jobs API) and
//! writes each page whole: NDJSON lines that are exactly the bytes the API sent, or CSV rows.
//! With `--resume` every page is fsynced and followed by an atomic checkpoint, so a killed run
//! continues after its last complete page and the output holds every record exactly once.
//!
//! # Checkpoints
//! `--resume` writes `<out>.checkpoint` after each page and removes it on success. A run
//! *without* `--resume` refuses to start (exit 2) when that file exists, rather than overwrite
//! a partial export someone may want to finish: pass `--resume` to continue it, or delete the
//! checkpoint to start over. A checkpoint of a different export (other interval flags, format,
//! mode, page size, media type or API) is refused too, naming what differs.
//!
//! # Exit codes
//! 0 done; 2 usage (bad flag or value, missing credentials, checkpoint in the way); 3
//! credentials rejected; 4 API error after retries; 5 output I/O.
//!
//! # Example
//! ```
//! use clap::Parser;
//! use keel_genesys::export::{Args, ExportError, EXIT_USAGE};
//!
//! let args = Args::try_parse_from(["genesys-export", "--page-size", "50", "--format", "csv"]).unwrap();
//! assert_eq!(args.page_size, 50);
//! let e = ExportError::Usage("example".into());
//! assert_eq!(e.exit_code(), EXIT_USAGE);
//! ```

mod checkpoint;
mod cli;
mod credentials;
mod error;
mod format;
mod open;
mod output;
mod pages;
mod progress;
mod recover;
mod run;
mod sim;
mod sink;
mod summary;

pub use checkpoint::{CheckpointFile, CheckpointRecord, Fingerprint};
pub use cli::{parse_duration, parse_interval, Args, Format, Mode, ProgressMode};
pub use credentials::load as load_credentials;
pub use error::{
    ExportError, Report, EXIT_API, EXIT_CREDENTIALS, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE,
};
pub use format::{EncodeError, CSV_HEADER};
pub use output::Output;
pub use progress::Progress;
pub use run::{run, run_with_credentials};
pub use sink::PageWriter;
pub use summary::{parse_vm_hwm, peak_memory, Summary};
