//! The NDJSON and CSV file sinks: pages written whole, then checkpointed.
//!
//! [`FileSink`] is the program's [`PageSink`]: each commit encodes the page into one buffer,
//! appends it to the output, fsyncs it (when resumable), then atomically replaces
//! `<out>.checkpoint` (the resume point, the output's length after the page, counters). The
//! checkpoint never records bytes the output lacks, and a resumed run cuts the output back to
//! the recorded length before it appends, so after a kill at any point every record is in the
//! output exactly once. The ids a restarted part needs are read back from the output.

use std::collections::HashSet;
use std::io;

use keel_genesys::sink::{Commit, PageSink, SinkState};
use keel_genesys::{Checkpoint, Interval};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::checkpoint::{CheckpointFile, CheckpointRecord};
use crate::cli::Format;
use crate::error::ExportError;
use crate::output::Output;
use crate::recover;

/// An export's output file (or stdout) as a [`PageSink`], checkpointed when resumable.
#[derive(Debug)]
pub struct FileSink {
    writer: Option<PageWriter<Option<Checkpoint>>>,
    resume: Option<Checkpoint>,
}

impl FileSink {
    pub(crate) fn new(writer: PageWriter<Option<Checkpoint>>, resume: Option<Checkpoint>) -> Self {
        FileSink {
            writer: Some(writer),
            resume,
        }
    }

    /// Where the output stands: what [`PageSink::open`] reports.
    pub(crate) fn state(&self) -> SinkState {
        let (pages, conversations) = self
            .writer
            .as_ref()
            .map_or((0, 0), |w| (w.pages(), w.conversations()));
        SinkState {
            resume: self.resume.clone(),
            pages,
            conversations,
        }
    }

    fn writer(&mut self) -> Result<&mut PageWriter<Option<Checkpoint>>, ExportError> {
        self.writer.as_mut().ok_or_else(|| {
            ExportError::output(
                "write",
                "<closed output>",
                io::Error::other("already closed"),
            )
        })
    }
}

impl PageSink for FileSink {
    type Error = ExportError;

    async fn open(&mut self) -> Result<SinkState, ExportError> {
        self.writer()?;
        Ok(self.state())
    }

    async fn commit(&mut self, page: Commit<'_>) -> Result<(), ExportError> {
        let w = self.writer()?;
        if page.pages == 0 && page.records.is_empty() {
            w.record_position(Some(page.resume.clone()))
        } else {
            w.write_page(page.records, Some(page.resume.clone()))
        }
    }

    async fn committed_ids(&mut self, part: Interval) -> Result<HashSet<String>, ExportError> {
        match self.writer()?.written_ids_in(&part) {
            Some(ids) => Ok(ids?.into_iter().collect()),
            None => Err(ExportError::output(
                "read back",
                "<stdout>",
                io::Error::new(io::ErrorKind::Unsupported, "stdout cannot be read back"),
            )),
        }
    }

    async fn close(&mut self) -> Result<(), ExportError> {
        match self.writer.take() {
            Some(w) => w.finish(),
            None => Ok(()),
        }
    }
}

/// Encodes each page into one buffer, appends it to the output (fsynced when checkpointing),
/// then replaces the checkpoint: the checkpoint never records bytes the output lacks.
#[derive(Debug)]
pub(crate) struct PageWriter<P> {
    output: Output,
    format: Format,
    checkpoint: Option<(CheckpointFile, CheckpointRecord<P>)>,
    header_pending: bool,
    buf: Vec<u8>,
    pages: u64,
    conversations: u64,
}

impl<P: Serialize> PageWriter<P> {
    /// A writer over `output`. `checkpoint` (file and the record to keep up to date) turns on
    /// checkpointing; its counters and `output_len` say where a resumed run starts. A new,
    /// empty output gets the format's header with its first page.
    pub(crate) fn new(
        output: Output,
        format: Format,
        checkpoint: Option<(CheckpointFile, CheckpointRecord<P>)>,
    ) -> Self {
        let (pages, conversations) = checkpoint
            .as_ref()
            .map_or((0, 0), |(_, r)| (r.pages, r.conversations));
        let header_pending = output.is_empty();
        PageWriter {
            output,
            format,
            checkpoint,
            header_pending,
            buf: Vec::new(),
            pages,
            conversations,
        }
    }

    /// Pages in the output.
    pub(crate) fn pages(&self) -> u64 {
        self.pages
    }

    /// Conversations in the output.
    pub(crate) fn conversations(&self) -> u64 {
        self.conversations
    }

    /// Ids of the records already in the output whose start lies in `part` (for restarting a
    /// part whose results changed); `None` when the output cannot be read back (stdout).
    ///
    /// # Errors
    /// [`ExportError::Output`] when reading the output back fails.
    pub(crate) fn written_ids_in(
        &self,
        part: &Interval,
    ) -> Option<Result<Vec<String>, ExportError>> {
        let path = self.output.file_path()?;
        Some(
            recover::ids_in_part(path, self.output.len(), self.format, part)
                .map_err(|e| ExportError::output("read back", path, e)),
        )
    }

    /// Appends one page and, when checkpointing, then records `position` as done.
    ///
    /// # Errors
    /// [`ExportError::Output`] on I/O failure; [`ExportError::Api`] when a conversation cannot
    /// be encoded (CSV of a conversation without an id).
    pub(crate) fn write_page<T: AsRef<RawValue>>(
        &mut self,
        conversations: &[T],
        position: P,
    ) -> Result<(), ExportError> {
        self.buf.clear();
        if self.header_pending {
            self.buf.extend_from_slice(self.format.header());
        }
        self.format
            .encode_page(conversations, &mut self.buf)
            .map_err(|e| ExportError::Api {
                context: format!("page {} of the export cannot be written", self.pages + 1),
                source: Box::new(e),
            })?;
        self.output.append_page(&self.buf)?;
        self.header_pending = false;
        self.pages += 1;
        self.conversations += conversations.len() as u64;
        if let Some((file, record)) = &mut self.checkpoint {
            record.output_len = self.output.len();
            record.pages = self.pages;
            record.conversations = self.conversations;
            record.position = position;
            file.save(record)?;
        }
        // NOTE: a page's buffer is dropped rather than kept at its largest, so memory stays at
        // one page whatever the page sizes were.
        if self.buf.capacity() > 4 * 1024 * 1024 {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Records `position` as where to resume without writing a page (when the stream says
    /// the last page's position is no longer the right one). No-op without checkpointing.
    ///
    /// # Errors
    /// [`ExportError::Output`] when the checkpoint cannot be saved.
    pub(crate) fn record_position(&mut self, position: P) -> Result<(), ExportError> {
        match &mut self.checkpoint {
            Some((file, record)) => {
                record.position = position;
                file.save(record)
            }
            None => Ok(()),
        }
    }

    /// Finishes the output (header of an empty export, flush, sync) and removes the
    /// checkpoint: the export is complete.
    ///
    /// # Errors
    /// [`ExportError::Output`] on I/O failure.
    pub(crate) fn finish(mut self) -> Result<(), ExportError> {
        if self.header_pending && !self.format.header().is_empty() {
            self.output.append_page(self.format.header())?;
        }
        self.output.finish()?;
        if let Some((file, _)) = &self.checkpoint {
            file.remove()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Fingerprint;
    use keel_genesys::Mode;
    use std::io::Write;

    fn page(ids: &[&str]) -> Vec<Box<RawValue>> {
        ids.iter()
            .map(|id| RawValue::from_string(format!(r#"{{"conversationId":"{id}"}}"#)).unwrap())
            .collect()
    }

    fn record() -> CheckpointRecord<u32> {
        let fp = Fingerprint {
            api: "sim".into(),
            mode: Mode::Query,
            format: Format::Ndjson,
            window: "since 24h".into(),
            media_type: None,
            page_size: 2,
        };
        CheckpointRecord::new(fp, serde_json::Value::Null, 0)
    }

    #[test]
    fn each_page_is_checkpointed_with_the_output_length_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        let ck = CheckpointFile::for_output(&out);
        let mut w = PageWriter::new(
            Output::create(&out, true).unwrap(),
            Format::Ndjson,
            Some((ck.clone(), record())),
        );
        w.write_page(&page(&["a", "b"]), 1).unwrap();
        let r = ck.load::<u32>().unwrap().unwrap();
        assert_eq!((r.position, r.pages, r.conversations), (1, 1, 2));
        assert_eq!(r.output_len, std::fs::metadata(&out).unwrap().len());
        w.write_page(&page(&["c"]), 2).unwrap();
        let r = ck.load::<u32>().unwrap().unwrap();
        assert_eq!((r.position, r.pages, r.conversations), (2, 2, 3));
        w.finish().unwrap();
        assert!(
            ck.load::<u32>().unwrap().is_none(),
            "checkpoint removed on success"
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"conversationId\":\"a\"}\n{\"conversationId\":\"b\"}\n{\"conversationId\":\"c\"}\n"
        );
    }

    #[test]
    fn a_resumed_writer_drops_the_partial_page_and_writes_every_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        let ck = CheckpointFile::for_output(&out);
        let mut w = PageWriter::new(
            Output::create(&out, true).unwrap(),
            Format::Ndjson,
            Some((ck.clone(), record())),
        );
        w.write_page(&page(&["a", "b"]), 1).unwrap();
        drop(w); // killed: no finish
                 // A page written after the last checkpoint, cut off mid-record.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&out)
            .unwrap()
            .write_all(b"{\"conversationId\":\"c\"}\n{\"conv")
            .unwrap();

        let r = ck.load::<u32>().unwrap().unwrap();
        let output = Output::reopen_at(&out, r.output_len).unwrap();
        let mut w = PageWriter::new(output, Format::Ndjson, Some((ck.clone(), r)));
        assert_eq!((w.pages(), w.conversations()), (1, 2));
        w.write_page(&page(&["c", "d"]), 2).unwrap();
        w.finish().unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let ids: Vec<_> = text.lines().map(|l| &l[19..20]).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
    }

    #[test]
    fn csv_header_is_written_once_with_the_first_page_not_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.csv");
        let ck = CheckpointFile::for_output(&out);
        let mut rec = record();
        rec.fingerprint.format = Format::Csv;
        let mut w = PageWriter::new(
            Output::create(&out, true).unwrap(),
            Format::Csv,
            Some((ck.clone(), rec)),
        );
        w.write_page(&page(&["a"]), 1).unwrap();
        drop(w);
        let r = ck.load::<u32>().unwrap().unwrap();
        let mut w = PageWriter::new(
            Output::reopen_at(&out, r.output_len).unwrap(),
            Format::Csv,
            Some((ck, r)),
        );
        w.write_page(&page(&["b"]), 2).unwrap();
        w.finish().unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "id,start,end,duration_ms,direction,media_types\na,,,,,\nb,,,,,\n"
        );
    }

    #[test]
    fn an_empty_csv_export_still_has_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.csv");
        let w: PageWriter<u32> =
            PageWriter::new(Output::create(&out, false).unwrap(), Format::Csv, None);
        w.finish().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), CSV_HEADER_BYTES);
    }

    const CSV_HEADER_BYTES: &[u8] = crate::format::CSV_HEADER;

    #[test]
    fn record_position_replaces_the_resume_point_but_not_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        let ck = CheckpointFile::for_output(&out);
        let mut w = PageWriter::new(
            Output::create(&out, true).unwrap(),
            Format::Ndjson,
            Some((ck.clone(), record())),
        );
        w.write_page(&page(&["a"]), 1).unwrap();
        w.record_position(7).unwrap();
        let r = ck.load::<u32>().unwrap().unwrap();
        assert_eq!((r.position, r.pages, r.output_len), (7, 1, 23));
    }

    #[test]
    fn without_checkpointing_no_checkpoint_file_appears() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        let mut w: PageWriter<u32> =
            PageWriter::new(Output::create(&out, false).unwrap(), Format::Ndjson, None);
        w.write_page(&page(&["a"]), 1).unwrap();
        assert!(!CheckpointFile::for_output(&out).path().exists());
        w.finish().unwrap();
    }

    #[test]
    fn an_unencodable_conversation_stops_the_export_before_writing_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.csv");
        let mut w: PageWriter<u32> =
            PageWriter::new(Output::create(&out, false).unwrap(), Format::Csv, None);
        let bad = vec![RawValue::from_string("[1]".into()).unwrap()];
        let e = w.write_page(&bad, 1).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 0);
    }

    fn resume_at(page_number: u32) -> Checkpoint {
        let whole: Interval = "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z".parse().unwrap();
        let mut cp = keel_genesys::QueryCheckpoint::new(whole, whole, page_number, 2);
        cp.total_hits = Some(3);
        cp.first_total_hits = Some(3);
        Checkpoint::Query(cp)
    }

    fn records(ids: &[(&str, &str)]) -> Vec<keel_genesys::sink::Record> {
        ids.iter()
            .map(|(id, start)| {
                let json = format!(r#"{{"conversationId":"{id}","conversationStart":"{start}"}}"#);
                keel_genesys::sink::Record {
                    id: (*id).to_owned(),
                    start: time::OffsetDateTime::parse(
                        start,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .unwrap(),
                    raw: RawValue::from_string(json).unwrap(),
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn the_file_sink_commits_pages_moves_resume_points_reads_ids_back_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        let ck = CheckpointFile::for_output(&out);
        let fresh = CheckpointRecord::new(record().fingerprint, serde_json::Value::Null, None);
        let writer = PageWriter::new(
            Output::create(&out, true).unwrap(),
            Format::Ndjson,
            Some((ck.clone(), fresh)),
        );
        let mut sink = FileSink::new(writer, None);
        assert_eq!(sink.open().await.unwrap(), SinkState::default());
        let page = records(&[("a", "2026-01-01T01:00:00Z"), ("b", "2026-01-01T13:00:00Z")]);
        let at = resume_at(1);
        let commit = Commit::new(&page, &at, 1);
        sink.commit(commit).await.unwrap();
        let afternoon: Interval = "2026-01-01T12:00:00Z/2026-01-02T00:00:00Z".parse().unwrap();
        let ids = sink.committed_ids(afternoon).await.unwrap();
        assert_eq!(ids, HashSet::from(["b".to_owned()]));

        // Only the resume point moves: no bytes, no page.
        let restart = resume_at(0);
        let commit = Commit::new(&[], &restart, 0);
        sink.commit(commit).await.unwrap();
        let saved = ck.load::<Option<Checkpoint>>().unwrap().unwrap();
        assert_eq!((&saved.position, saved.pages), (&Some(restart.clone()), 1));
        assert_eq!(saved.output_len, std::fs::metadata(&out).unwrap().len());
        drop(sink); // killed

        let output = Output::reopen_at(&out, saved.output_len).unwrap();
        let resume = saved.position.clone();
        let mut sink = FileSink::new(
            PageWriter::new(output, Format::Ndjson, Some((ck.clone(), saved))),
            resume,
        );
        let state = sink.open().await.unwrap();
        assert_eq!(
            (state.resume, state.pages, state.conversations),
            (Some(restart), 1, 2)
        );
        let page = records(&[("c", "2026-01-01T14:00:00Z")]);
        let at = resume_at(2);
        let commit = Commit::new(&page, &at, 1);
        sink.commit(commit).await.unwrap();
        sink.close().await.unwrap();
        assert!(ck.load::<Option<Checkpoint>>().unwrap().is_none());
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().nth(2).unwrap().contains("\"c\""), "{text}");
    }
}
