//! The output lock: one export at a time writes an `--out` file and its checkpoint.
//!
//! Two exports appending to the same file, or replacing the same `<out>.checkpoint`, would
//! interleave pages and record lengths that the other run cut back. So a run with `--out`
//! first takes an exclusive advisory lock ([`File::try_lock`]) on `<out>.lock` and keeps it
//! until it ends, resumed or not; a second run finds it held and stops before it opens the
//! output, reads the checkpoint or calls the API. The checkpoint itself cannot carry the lock:
//! it is replaced by a rename after every page.
//!
//! The lock is taken on the output's resolved path (the file itself when it exists, else its
//! canonical directory and its name), so two spellings of one file (through a symlink to the
//! file or to its directory, `..`, a relative path) meet at one lock file, beside the real
//! output. The lock file is created with mode 0600.
//!
//! The lock file is empty and is removed when the run ends (success, error or Ctrl-C). One
//! left behind by a killed run holds no lock (the kernel releases it with the process), so
//! the next run takes it over. Outputs that are not regular files (`/dev/null`, a FIFO) take no
//! lock, as they hold no checkpointed bytes.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::ExportError;

/// How often to take the lock over again when the run that held it removed its file between
/// this run's open and lock (each retry needs another run to have ended meanwhile).
const ATTEMPTS: u32 = 8;

/// An exclusive lock on an output, held until dropped; dropping it removes the lock file.
#[derive(Debug)]
pub(crate) struct OutputLock {
    path: PathBuf,
    // NOTE: the lock lives as long as this open file; it is closed after `drop` removed the path.
    _file: File,
}

impl OutputLock {
    /// `<out>.lock`, beside the output's resolved path (see [`resolve`]), or `None` when
    /// `out` names no file.
    pub(crate) fn path_for(out: &Path) -> Option<PathBuf> {
        let out = resolve(out);
        let mut name = out.file_name()?.to_os_string();
        name.push(".lock");
        Some(out.with_file_name(name))
    }

    /// Locks `out` for this run; `None` when it is not (or not going to be) a regular file.
    ///
    /// # Errors
    /// [`ExportError::OutputLocked`] when another export holds the lock;
    /// [`ExportError::Output`] when the lock file cannot be created or locked.
    pub(crate) fn acquire(out: &Path) -> Result<Option<Self>, ExportError> {
        match fs::metadata(out) {
            Ok(meta) if !meta.is_file() => return Ok(None),
            _ => {}
        }
        let Some(path) = Self::path_for(out) else {
            return Ok(None);
        };
        for _ in 0..ATTEMPTS {
            let file = crate::files::private()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| ExportError::output("create the lock file", &path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(ExportError::OutputLocked {
                        out: out.to_owned(),
                        lock: path,
                    })
                }
                Err(TryLockError::Error(e)) => return Err(ExportError::output("lock", &path, e)),
            }
            if still_at(&file, &path) {
                return Ok(Some(OutputLock { path, _file: file }));
            }
        }
        Err(ExportError::output(
            "lock",
            &path,
            io::Error::other("the lock file kept being replaced by other exports"),
        ))
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // NOTE: removed while still locked, so a run that opened this file meanwhile sees, once
        // it gets the lock, that the path no longer leads to it (`still_at`) and starts over.
        if cfg!(unix) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The path `out` stands for: the file it leads to when it exists (symlinks followed); else,
/// through any symlinks that lead nowhere yet, the canonical directory of the last one joined
/// with its file name; `out` as given when neither resolves (creating the output will then
/// report why).
pub(crate) fn resolve(out: &Path) -> PathBuf {
    // NOTE: Linux's own limit on symlinks followed in one lookup.
    const MAX_LINKS: usize = 40;
    let mut path = out.to_owned();
    for _ in 0..MAX_LINKS {
        if let Ok(real) = fs::canonicalize(&path) {
            return real;
        }
        match fs::read_link(&path) {
            // NOTE: a relative target is relative to the link's directory; `join` keeps an
            // absolute one as it is.
            Ok(target) => path = path.parent().unwrap_or(Path::new("")).join(target),
            Err(_) => break,
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (fs::canonicalize(dir), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => out.to_owned(),
    }
}

/// Whether `path` still leads to the open `file`: false when an ending run removed it (and
/// perhaps another created a new one) after this run opened it.
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(held), Ok(now)) => held.dev() == now.dev() && held.ino() == now.ino(),
        _ => false,
    }
}

/// Elsewhere lock files are never removed (see `Drop`), so the path always leads to the file.
#[cfg(not(unix))]
fn still_at(_file: &File, _path: &Path) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_output_is_refused_naming_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        let first = OutputLock::acquire(&out)
            .unwrap()
            .expect("a regular output");
        let e = OutputLock::acquire(&out).unwrap_err();
        assert!(
            matches!(&e, ExportError::OutputLocked { out: o, lock } if *o == out && *lock == first.path),
            "{e:?}"
        );
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains(&*out.to_string_lossy()), "{e}");
        assert!(!out.exists(), "the output is not created by locking it");
    }

    #[test]
    fn the_lock_file_goes_when_the_run_ends_and_the_next_run_locks_again() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        let lock_path = OutputLock::path_for(&out).unwrap();
        assert_eq!(lock_path, dir.path().join("o.ndjson.lock"));
        let lock = OutputLock::acquire(&out).unwrap().unwrap();
        assert!(lock_path.exists());
        drop(lock);
        assert!(!lock_path.exists(), "lock file left behind");
        drop(OutputLock::acquire(&out).unwrap().unwrap());
    }

    #[test]
    fn a_lock_file_left_by_a_killed_run_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        fs::write(OutputLock::path_for(&out).unwrap(), b"").unwrap();
        assert!(OutputLock::acquire(&out).unwrap().is_some());
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_file_replaced_after_it_was_opened_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.ndjson.lock");
        fs::write(&path, b"").unwrap();
        let opened = File::open(&path).unwrap();
        assert!(still_at(&opened, &path));
        fs::remove_file(&path).unwrap();
        assert!(!still_at(&opened, &path), "removed");
        fs::write(&path, b"").unwrap();
        assert!(!still_at(&opened, &path), "replaced by another file");
    }

    #[cfg(unix)]
    #[test]
    fn two_spellings_of_one_output_share_one_lock() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("real");
        fs::create_dir(&real_dir).unwrap();
        let out = real_dir.join("o.ndjson");
        fs::write(&out, b"").unwrap();
        let file_link = dir.path().join("link.ndjson");
        symlink(&out, &file_link).unwrap();
        let dir_link = dir.path().join("alias");
        symlink(&real_dir, &dir_link).unwrap();

        let held = OutputLock::acquire(&out).unwrap().unwrap();
        assert_eq!(
            held.path,
            fs::canonicalize(&real_dir).unwrap().join("o.ndjson.lock")
        );
        for other in [
            file_link.clone(),
            dir_link.join("o.ndjson"),
            real_dir.join("..").join("real").join("o.ndjson"),
        ] {
            let e = OutputLock::acquire(&other).unwrap_err();
            assert!(
                matches!(&e, ExportError::OutputLocked { lock, .. } if *lock == held.path),
                "{other:?}: {e:?}"
            );
        }
        drop(held);
        // A new output (not there yet) through the directory symlink: same lock as the real path.
        let held = OutputLock::acquire(&dir_link.join("new.ndjson"))
            .unwrap()
            .unwrap();
        let e = OutputLock::acquire(&real_dir.join("new.ndjson")).unwrap_err();
        assert!(matches!(e, ExportError::OutputLocked { .. }), "{e:?}");
        drop(held);
        // A symlink to an output that does not exist yet: the lock of its target.
        let dangling = dir.path().join("later.ndjson");
        symlink("real/later.ndjson", &dangling).unwrap();
        let held = OutputLock::acquire(&dangling).unwrap().unwrap();
        let e = OutputLock::acquire(&real_dir.join("later.ndjson")).unwrap_err();
        assert!(matches!(e, ExportError::OutputLocked { .. }), "{e:?}");
        drop(held);
    }

    #[cfg(unix)]
    #[test]
    fn the_lock_file_is_private_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.ndjson");
        let held = OutputLock::acquire(&out).unwrap().unwrap();
        assert_eq!(crate::files::mode_of(&held.path), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn a_device_output_takes_no_lock() {
        assert!(OutputLock::acquire(Path::new("/dev/null"))
            .unwrap()
            .is_none());
    }
}
