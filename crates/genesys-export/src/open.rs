//! Opening the output: a fresh file (or stdout), or a resumed one cut back to its checkpoint.

use crate::checkpoint::{CheckpointFile, CheckpointRecord, Fingerprint};
use crate::cli::Args;
use crate::error::ExportError;
use crate::output::Output;
use crate::progress::Progress;
use crate::sink::{FileSink, PageWriter};
use keel_genesys::{Checkpoint, ConversationQuery, Interval};

/// What an export starts from.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The query: this run's, or the checkpoint's when resuming.
    pub(crate) query: ConversationQuery,
    /// The output, checkpointing with `--resume`, and where it resumes.
    pub(crate) sink: FileSink,
}

/// Opens the output of `args`: refuses a leftover checkpoint without `--resume`, resumes a
/// checkpoint of the same export (`fingerprint`) with it, else starts afresh.
pub(crate) fn open(
    args: &Args,
    fingerprint: &Fingerprint,
    progress: &Progress,
) -> Result<Opened, ExportError> {
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
            let diffs = record.fingerprint.differences(fingerprint);
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
            let query = build_query(args)?;
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

    Ok(Opened {
        query,
        sink: FileSink::new(writer, resume_from),
    })
}

/// The query `args` ask for: `--interval` or the last `--since` (24 h by default), paged by
/// `--page-size`, filtered by `--media-type`.
pub(crate) fn build_query(args: &Args) -> Result<ConversationQuery, ExportError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Format, ProgressMode};
    use clap::Parser;
    use keel_genesys::Mode;
    use std::path::Path;

    const INTERVAL: &str = "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z";

    fn args(out: &Path, extra: &[&str]) -> Args {
        let out = out.display().to_string();
        let mut argv = vec!["genesys-export", "--interval", INTERVAL, "--out", &out];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    fn fingerprint(page_size: u32) -> Fingerprint {
        Fingerprint {
            api: "https://api.example.test/".into(),
            mode: Mode::Query,
            format: Format::Ndjson,
            window: format!("interval {}", INTERVAL.parse::<Interval>().unwrap()),
            media_type: None,
            page_size,
        }
    }

    fn quiet() -> Progress {
        Progress::new(ProgressMode::Quiet, 1)
    }

    #[test]
    fn a_leftover_checkpoint_without_resume_is_refused_and_the_output_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        std::fs::write(&out, b"kept").unwrap();
        std::fs::write(CheckpointFile::for_output(&out).path(), b"not even json").unwrap();
        let e = open(&args(&out, &[]), &fingerprint(100), &quiet()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("pass --resume"), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"kept");
    }

    #[test]
    fn resume_reuses_the_checkpoint_query_position_and_length() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        std::fs::write(&out, b"{\"a\":1}\n{\"partial").unwrap();
        // The first run resolved its interval (think --since) to this one.
        let first =
            ConversationQuery::new("2025-06-01T00:00:00Z/2025-06-02T00:00:00Z".parse().unwrap());
        let mut record: CheckpointRecord<Option<Checkpoint>> = CheckpointRecord::new(
            fingerprint(100),
            serde_json::to_value(&first).unwrap(),
            None,
        );
        record.output_len = 8;
        record.pages = 1;
        record.conversations = 1;
        CheckpointFile::for_output(&out).save(&record).unwrap();

        let opened = open(&args(&out, &["--resume"]), &fingerprint(100), &quiet()).unwrap();
        assert_eq!(opened.query, first);
        assert_eq!(
            (opened.sink.state().pages, opened.sink.state().conversations),
            (1, 1)
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"{\"a\":1}\n",
            "cut back to the checkpoint"
        );
    }

    #[test]
    fn resume_of_another_export_is_refused_naming_what_differs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        std::fs::write(&out, b"").unwrap();
        let record: CheckpointRecord<Option<Checkpoint>> =
            CheckpointRecord::new(fingerprint(50), serde_json::Value::Null, None);
        CheckpointFile::for_output(&out).save(&record).unwrap();
        let e = open(&args(&out, &["--resume"]), &fingerprint(100), &quiet()).unwrap_err();
        assert!(
            e.to_string()
                .contains("page size: checkpoint has 50, this run has 100"),
            "{e}"
        );
    }

    #[test]
    fn resume_without_a_checkpoint_starts_afresh_and_checkpoints_nothing_yet() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        std::fs::write(&out, b"old content").unwrap();
        let opened = open(
            &args(&out, &["--resume", "--media-type", "voice"]),
            &fingerprint(100),
            &quiet(),
        )
        .unwrap();
        assert!(opened.sink.state().resume.is_none());
        assert_eq!(std::fs::read(&out).unwrap(), b"", "a fresh run truncates");
        assert!(!CheckpointFile::for_output(&out).path().exists());
        let json = serde_json::to_value(&opened.query).unwrap();
        assert_eq!(json["segmentFilters"][0]["predicates"][0]["value"], "voice");
        assert_eq!(json["paging"]["pageSize"], 100);
    }

    #[test]
    fn without_a_window_the_query_covers_the_last_24_hours() {
        let a = Args::try_parse_from(["genesys-export"]).unwrap();
        let q = build_query(&a).unwrap();
        let json = serde_json::to_value(&q).unwrap();
        let interval: Interval = json["interval"].as_str().unwrap().parse().unwrap();
        assert_eq!(interval.duration(), std::time::Duration::from_secs(86_400));
        let a = Args::try_parse_from(["genesys-export", "--since", "90m"]).unwrap();
        let json = serde_json::to_value(build_query(&a).unwrap()).unwrap();
        let interval: Interval = json["interval"].as_str().unwrap().parse().unwrap();
        assert_eq!(interval.duration(), std::time::Duration::from_secs(5_400));
    }
}
