//! Files that hold personal data: created readable by their owner only.
//!
//! An export's output holds conversations (phone numbers, names, addresses); its checkpoint
//! holds the query; its lock file names the run's output. A file this program creates gets
//! mode 0600 on Unix whatever the umask allows; a file that already exists keeps its mode (an
//! operator who made an output group-readable on purpose keeps it so).

use std::fs::OpenOptions;

/// Mode of the files this program creates (Unix).
pub(crate) const PRIVATE_MODE: u32 = 0o600;

/// `OpenOptions` whose newly created file is readable and writable by its owner only.
pub(crate) fn private() -> OpenOptions {
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(PRIVATE_MODE);
    }
    opts
}

#[cfg(all(test, unix))]
pub(crate) fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
