//! The resume file: where an interrupted export stands, written atomically after each page.
//!
//! `<out>.checkpoint` is JSON: the library's page position, the output's length at that
//! point, counters, the resolved query, and a fingerprint of the flags that shape the output.
//! It is replaced atomically (temp file in the same directory, fsync, rename, fsync of the
//! directory), and only after the page it describes is fsynced in the output, so after a crash
//! the output holds at least what the checkpoint records. The temp file is created new (mode
//! 0600, `O_EXCL`), so a stale one or a symlink planted at its path is never written through.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cli::Format;
use crate::error::ExportError;
use keel_genesys::Mode;

const VERSION: u32 = 1;

/// The flags that shape an export's output; a checkpoint only resumes the same export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    /// API base URL (`sim` for the embedded simulator, whose port changes between runs).
    pub(crate) api: String,
    /// Query or jobs API.
    pub(crate) mode: Mode,
    /// Output format.
    pub(crate) format: Format,
    /// The interval as given: `--interval START/END` or `--since 24h` (resumes keep the
    /// interval resolved by the first run).
    pub(crate) window: String,
    /// `--media-type`.
    pub(crate) media_type: Option<String>,
    /// `--page-size`.
    pub(crate) page_size: u32,
}

impl Fingerprint {
    /// What differs between `self` (the checkpoint's) and `other` (this run's), for messages.
    pub(crate) fn differences(&self, other: &Fingerprint) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |name: &str, a: String, b: String| {
            if a != b {
                d.push(format!("{name}: checkpoint has {a}, this run has {b}"));
            }
        };
        cmp("api", self.api.clone(), other.api.clone());
        cmp(
            "mode",
            format!("{:?}", self.mode),
            format!("{:?}", other.mode),
        );
        cmp(
            "format",
            format!("{:?}", self.format),
            format!("{:?}", other.format),
        );
        cmp("interval", self.window.clone(), other.window.clone());
        cmp(
            "media type",
            format!("{:?}", self.media_type),
            format!("{:?}", other.media_type),
        );
        cmp(
            "page size",
            self.page_size.to_string(),
            other.page_size.to_string(),
        );
        d
    }
}

/// The content of a checkpoint file; `P` is the library's page position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CheckpointRecord<P> {
    /// File format version.
    pub(crate) version: u32,
    /// The export this checkpoint belongs to.
    pub(crate) fingerprint: Fingerprint,
    /// The query as the first run resolved it (JSON), reused on resume.
    pub(crate) query: serde_json::Value,
    /// Output bytes that hold complete pages.
    pub(crate) output_len: u64,
    /// Pages written so far.
    pub(crate) pages: u64,
    /// Conversations written so far.
    pub(crate) conversations: u64,
    /// Where the stream resumes (after the last page written).
    pub(crate) position: P,
}

impl<P> CheckpointRecord<P> {
    /// A record of the current file format version.
    pub(crate) fn new(fingerprint: Fingerprint, query: serde_json::Value, position: P) -> Self {
        CheckpointRecord {
            version: VERSION,
            fingerprint,
            query,
            output_len: 0,
            pages: 0,
            conversations: 0,
            position,
        }
    }
}

/// The checkpoint file beside an output file.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointFile {
    path: PathBuf,
    tmp: PathBuf,
}

impl CheckpointFile {
    /// `<out>.checkpoint`.
    pub(crate) fn for_output(out: &Path) -> Self {
        let mut name = out
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".checkpoint");
        let path = out.with_file_name(&name);
        name.push(".tmp");
        let tmp = out.with_file_name(name);
        CheckpointFile { path, tmp }
    }

    /// The checkpoint's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the checkpoint, `None` when there is none.
    ///
    /// # Errors
    /// [`ExportError::Output`] when it cannot be read, [`ExportError::Checkpoint`] when it is
    /// not a checkpoint of this version.
    pub(crate) fn load<P: DeserializeOwned>(
        &self,
    ) -> Result<Option<CheckpointRecord<P>>, ExportError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ExportError::output("read", &self.path, e)),
        };
        let record: CheckpointRecord<P> =
            serde_json::from_slice(&bytes).map_err(|e| ExportError::Checkpoint {
                message: format!("unreadable checkpoint ({e}); delete it to start over"),
                path: self.path.clone(),
            })?;
        if record.version != VERSION {
            return Err(ExportError::Checkpoint {
                message: format!("checkpoint version {} is not {VERSION}", record.version),
                path: self.path.clone(),
            });
        }
        Ok(Some(record))
    }

    /// Replaces the checkpoint atomically and durably.
    ///
    /// # Errors
    /// [`ExportError::Output`] on any I/O failure (the previous checkpoint stays in place).
    pub(crate) fn save<P: Serialize>(
        &self,
        record: &CheckpointRecord<P>,
    ) -> Result<(), ExportError> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| ExportError::output("encode", &self.path, io::Error::other(e)))?;
        let io = |action| move |e| ExportError::output(action, &self.tmp, e);
        // NOTE: a temp file left by a killed run (or a symlink planted in its place) is
        // removed, never followed; `create_new` then refuses anything that appeared since.
        match fs::remove_file(&self.tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io("remove stale")(e)),
            _ => {}
        }
        let mut f = crate::files::private()
            .write(true)
            .create_new(true)
            .open(&self.tmp)
            .map_err(io("create"))?;
        f.write_all(&bytes).map_err(io("write"))?;
        f.sync_all().map_err(io("sync"))?;
        drop(f);
        fs::rename(&self.tmp, &self.path)
            .map_err(|e| ExportError::output("replace", &self.path, e))?;
        sync_dir(&self.path).map_err(|e| ExportError::output("sync directory of", &self.path, e))
    }

    /// Deletes the checkpoint (after a complete export).
    ///
    /// # Errors
    /// [`ExportError::Output`] when it exists and cannot be removed.
    pub(crate) fn remove(&self) -> Result<(), ExportError> {
        for p in [&self.tmp, &self.path] {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ExportError::output("remove", p, e)),
            }
        }
        sync_dir(&self.path).map_err(|e| ExportError::output("sync directory of", &self.path, e))
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> Fingerprint {
        Fingerprint {
            api: "https://api.mypurecloud.com".into(),
            mode: Mode::Query,
            format: Format::Ndjson,
            window: "since 24h".into(),
            media_type: None,
            page_size: 100,
        }
    }

    #[test]
    fn checkpoint_path_sits_beside_the_output() {
        let c = CheckpointFile::for_output(Path::new("dir/conv.ndjson"));
        assert_eq!(c.path(), Path::new("dir/conv.ndjson.checkpoint"));
        let c = CheckpointFile::for_output(Path::new("conv.ndjson"));
        assert_eq!(c.path(), Path::new("conv.ndjson.checkpoint"));
    }

    #[test]
    fn save_then_load_round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let c = CheckpointFile::for_output(&dir.path().join("o.ndjson"));
        assert!(c.load::<u32>().unwrap().is_none());
        let mut r = CheckpointRecord::new(fp(), serde_json::json!({"interval": "a/b"}), 3u32);
        r.output_len = 42;
        c.save(&r).unwrap();
        r.position = 4;
        c.save(&r).unwrap();
        assert_eq!(c.load::<u32>().unwrap(), Some(r));
        assert!(!c.tmp.exists(), "temp file renamed away");
        c.remove().unwrap();
        assert!(c.load::<u32>().unwrap().is_none());
        c.remove().unwrap();
    }

    #[test]
    fn a_corrupt_checkpoint_is_refused_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let c = CheckpointFile::for_output(&dir.path().join("o.ndjson"));
        std::fs::write(c.path(), b"{\"version\":1,").unwrap();
        let e = c.load::<u32>().unwrap_err();
        assert!(matches!(e, ExportError::Checkpoint { .. }), "{e:?}");
    }

    #[test]
    fn a_checkpoint_of_another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = CheckpointFile::for_output(&dir.path().join("o.ndjson"));
        let mut r = CheckpointRecord::new(fp(), serde_json::Value::Null, 0u32);
        r.version = 99;
        std::fs::write(c.path(), serde_json::to_vec(&r).unwrap()).unwrap();
        assert!(c
            .load::<u32>()
            .unwrap_err()
            .to_string()
            .contains("version 99"));
    }

    #[test]
    fn differences_name_what_changed() {
        let mut other = fp();
        assert!(fp().differences(&other).is_empty());
        other.page_size = 50;
        other.format = Format::Csv;
        let d = fp().differences(&other);
        assert_eq!(d.len(), 2);
        assert!(d
            .iter()
            .any(|s| s.starts_with("page size: checkpoint has 100, this run has 50")));
    }

    #[cfg(unix)]
    #[test]
    fn the_checkpoint_is_private_and_never_written_through_a_planted_temp_path() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let c = CheckpointFile::for_output(&dir.path().join("o.ndjson"));
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        symlink(&victim, &c.tmp).unwrap();
        let record = CheckpointRecord::new(fp(), serde_json::json!({}), 7u32);
        c.save(&record).unwrap();
        assert_eq!(
            fs::read(&victim).unwrap(),
            b"precious",
            "the symlink was followed"
        );
        assert!(fs::symlink_metadata(&victim).unwrap().is_file());
        assert_eq!(c.load::<u32>().unwrap().unwrap(), record);
        assert_eq!(crate::files::mode_of(c.path()), 0o600);
        assert!(!c.tmp.exists());

        // A stale temp file of a killed run is replaced, not appended to or refused.
        fs::write(&c.tmp, b"garbage from a killed run").unwrap();
        c.save(&record).unwrap();
        assert_eq!(c.load::<u32>().unwrap().unwrap(), record);
    }
}
