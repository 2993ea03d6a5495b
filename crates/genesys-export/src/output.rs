//! The output sink: a file (optionally fsynced page by page) or stdout.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::ExportError;

const BUFFER: usize = 256 * 1024;

/// Where records go. Pages are appended whole; [`Output::len`] counts the bytes that are in it.
#[derive(Debug)]
pub(crate) struct Output {
    sink: Sink,
    path: PathBuf,
    len: u64,
    durable: bool,
    /// A regular file, which fsync applies to.
    regular: bool,
}

#[derive(Debug)]
enum Sink {
    File(BufWriter<File>),
    Stdout(BufWriter<io::Stdout>),
}

impl Output {
    /// Creates (or truncates) `path`, a new file with mode 0600 (an existing one keeps its
    /// mode). With `durable`, every page is fsynced before [`Output::append_page`] returns.
    ///
    /// # Errors
    /// [`ExportError::Output`] when the file cannot be created.
    pub(crate) fn create(path: &Path, durable: bool) -> Result<Self, ExportError> {
        let file = crate::files::private()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| ExportError::output("create", path, e))?;
        // NOTE: only regular files can be fsynced; a device such as /dev/null refuses it.
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        Ok(Output {
            sink: Sink::File(BufWriter::with_capacity(BUFFER, file)),
            path: path.into(),
            len: 0,
            durable,
            regular,
        })
    }

    /// Opens an existing `path` for a resumed run: drops whatever lies past `len` (a page
    /// written after the last checkpoint) and appends from there. Always durable.
    ///
    /// # Errors
    /// [`ExportError::Output`] when the file is missing, unwritable, or shorter than `len`
    /// (the checkpoint promises bytes the file does not hold).
    pub(crate) fn reopen_at(path: &Path, len: u64) -> Result<Self, ExportError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| ExportError::output("reopen", path, e))?;
        let actual = file
            .metadata()
            .map_err(|e| ExportError::output("inspect", path, e))?
            .len();
        if actual < len {
            return Err(ExportError::output(
                "resume",
                path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file holds {actual} bytes but its checkpoint records {len}"),
                ),
            ));
        }
        file.set_len(len)
            .map_err(|e| ExportError::output("truncate", path, e))?;
        file.seek(SeekFrom::Start(len))
            .map_err(|e| ExportError::output("seek in", path, e))?;
        file.sync_all()
            .map_err(|e| ExportError::output("sync", path, e))?;
        Ok(Output {
            sink: Sink::File(BufWriter::with_capacity(BUFFER, file)),
            path: path.into(),
            len,
            durable: true,
            regular: true,
        })
    }

    /// Standard output.
    pub(crate) fn stdout() -> Self {
        Output {
            sink: Sink::Stdout(BufWriter::with_capacity(BUFFER, io::stdout())),
            path: PathBuf::from("<stdout>"),
            len: 0,
            durable: false,
            regular: false,
        }
    }

    /// The file, or `None` for stdout.
    pub(crate) fn file_path(&self) -> Option<&Path> {
        match self.sink {
            Sink::File(_) => Some(&self.path),
            Sink::Stdout(_) => None,
        }
    }

    /// Bytes in the output so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written yet.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `bytes` and flushes them to the OS (and to the disk when durable), so that when
    /// this returns, [`Output::len`] bytes are in the file.
    ///
    /// # Errors
    /// [`ExportError::Output`] on any write, flush or sync failure.
    pub(crate) fn append_page(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        let path = &self.path;
        let err = |action| move |e| ExportError::output(action, path.clone(), e);
        match &mut self.sink {
            Sink::File(w) => {
                w.write_all(bytes).map_err(err("write"))?;
                w.flush().map_err(err("write"))?;
                if self.durable && self.regular {
                    w.get_ref().sync_data().map_err(err("sync"))?;
                }
            }
            Sink::Stdout(w) => {
                w.write_all(bytes).map_err(err("write"))?;
                w.flush().map_err(err("write"))?;
            }
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and (for a file) syncs everything.
    ///
    /// # Errors
    /// [`ExportError::Output`] when the final flush or sync fails.
    pub(crate) fn finish(mut self) -> Result<(), ExportError> {
        let path = self.path.clone();
        match &mut self.sink {
            Sink::File(w) => {
                w.flush()
                    .map_err(|e| ExportError::output("write", &path, e))?;
                if !self.regular {
                    return Ok(());
                }
                w.get_ref()
                    .sync_all()
                    .map_err(|e| ExportError::output("sync", &path, e))
            }
            Sink::Stdout(w) => w
                .flush()
                .map_err(|e| ExportError::output("write", &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_appended_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut out = Output::create(&path, true).unwrap();
        out.append_page(b"{\"a\":1}\n").unwrap();
        out.append_page(b"{\"b\":2}\n").unwrap();
        assert_eq!(out.len(), 16);
        // NOTE: visible in the file before finish: each page is flushed.
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
        out.finish().unwrap();
    }

    #[test]
    fn a_device_such_as_dev_null_is_written_without_fsync() {
        let mut out = Output::create(Path::new("/dev/null"), true).unwrap();
        out.append_page(b"{\"a\":1}\n").unwrap();
        out.finish().unwrap();
    }

    #[test]
    fn reopen_drops_bytes_past_the_recorded_length_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        std::fs::write(&path, b"page1\npartial-page2").unwrap();
        let mut out = Output::reopen_at(&path, 6).unwrap();
        assert_eq!(out.len(), 6);
        out.append_page(b"page2\n").unwrap();
        out.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"page1\npage2\n");
    }

    #[test]
    fn reopen_of_a_file_shorter_than_its_checkpoint_is_an_output_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        std::fs::write(&path, b"abc").unwrap();
        let e = Output::reopen_at(&path, 10).unwrap_err();
        assert_eq!(e.exit_code(), 5);
        assert!(
            e.report().to_string().contains("holds 3 bytes"),
            "{}",
            e.report()
        );
    }

    #[test]
    fn reopen_of_a_missing_file_is_an_output_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = Output::reopen_at(&dir.path().join("gone"), 0).unwrap_err();
        assert_eq!(e.exit_code(), 5);
    }

    #[test]
    fn create_in_a_missing_directory_is_an_output_error() {
        let e = Output::create(Path::new("/nonexistent/keel/out.ndjson"), false).unwrap_err();
        assert_eq!(e.exit_code(), 5);
        assert!(e.to_string().contains("/nonexistent/keel/out.ndjson"));
    }

    #[cfg(unix)]
    #[test]
    fn a_new_output_is_private_and_an_existing_one_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.ndjson");
        Output::create(&new, false).unwrap().finish().unwrap();
        assert_eq!(crate::files::mode_of(&new), 0o600);

        let shared = dir.path().join("shared.ndjson");
        std::fs::write(&shared, b"old").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut o = Output::create(&shared, false).unwrap();
        o.append_page(b"x\n").unwrap();
        o.finish().unwrap();
        assert_eq!(crate::files::mode_of(&shared), 0o640);
        assert_eq!(
            std::fs::read(&shared).unwrap(),
            b"x\n",
            "truncated, then written"
        );
    }
}
