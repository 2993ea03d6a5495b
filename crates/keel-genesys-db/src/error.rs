//! The typed errors of the database sinks.

use thiserror::Error;

/// An error of a database destination.
///
/// Every variant that concerns a destination names it as its redacted `Display` (no password),
/// and driver messages are scrubbed of a password given in the URL before they are kept.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DbError {
    /// The destination text is not `sqlite:PATH`, `postgres://…` or `postgresql://…`.
    #[error("invalid destination: {0}")]
    Destination(String),

    /// Another run holds the destination (PostgreSQL advisory lock, SQLite lock file).
    #[error("{destination}: another export is running on this destination")]
    Locked {
        /// The destination, redacted.
        destination: String,
    },

    /// A table exists with other columns, or the schema version is newer than this program's.
    #[error("{destination}: table `{table}` {problem}")]
    Schema {
        /// The destination, redacted.
        destination: String,
        /// The table at fault.
        table: String,
        /// What is wrong with it.
        problem: String,
    },

    /// A record could not be read for the flattened tables (nothing of its page was written).
    #[error("{destination}: conversation {id}: {message}")]
    Record {
        /// The destination, redacted.
        destination: String,
        /// The record's conversation id.
        id: String,
        /// Why it could not be read.
        message: String,
    },

    /// The stored export state (resume point, query) cannot be read back.
    #[error("{destination}: stored state of export `{key}` is unreadable: {message}")]
    State {
        /// The destination, redacted.
        destination: String,
        /// The export definition's key.
        key: String,
        /// What is wrong.
        message: String,
    },

    /// The database failed (connection lost, disk full, constraint violation, …). The page
    /// being committed, if any, was rolled back.
    #[error("{destination}: {action}: {message}")]
    Database {
        /// The destination, redacted.
        destination: String,
        /// What the sink was doing.
        action: &'static str,
        /// The driver's message, without any password.
        message: String,
    },

    /// The sink lost its connection in an earlier call that was interrupted (its future was
    /// dropped mid-way); open the destination again.
    #[error("{destination}: the sink is unusable after an interrupted call; open it again")]
    Interrupted {
        /// The destination, redacted.
        destination: String,
    },
}

impl DbError {
    /// A database error; `secret` (a password from the URL) is removed from the message.
    pub(crate) fn database(
        destination: &str,
        action: &'static str,
        err: &dyn std::error::Error,
        secret: Option<&str>,
    ) -> Self {
        let mut message = err.to_string();
        if let Some(s) = secret.filter(|s| !s.is_empty()) {
            message = message.replace(s, "***");
        }
        DbError::Database {
            destination: destination.to_owned(),
            action,
            message,
        }
    }
}
