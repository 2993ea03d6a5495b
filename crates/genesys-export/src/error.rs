//! What can stop an export, and the exit code each class maps to.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;

use keel_genesys::error::Escaped;

/// Exit code of a complete export.
pub const EXIT_OK: u8 = 0;
/// Exit code of a usage error: bad flag or value, missing credentials, a checkpoint in the way,
/// an output another export is writing.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the login server rejects the credentials.
pub const EXIT_CREDENTIALS: u8 = 3;
/// Exit code when the API fails after retries.
pub const EXIT_API: u8 = 4;
/// Exit code when the output (or its checkpoint) cannot be read or written.
pub const EXIT_OUTPUT: u8 = 5;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why an export stopped. Messages are lowercase and never hold a secret or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A flag value or a combination of flags that cannot work.
    #[error("{0}")]
    Usage(String),

    /// No credentials were given.
    #[error("missing credentials: {missing} is not set (set GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET in the environment, or pass --credentials-file)")]
    MissingCredentials {
        /// Which variable (or file entry) is missing.
        missing: String,
    },

    /// The credentials file could not be used.
    #[error("cannot read credentials file {path}")]
    CredentialsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// A checkpoint of an earlier, interrupted run is in the way of a fresh run, or belongs
    /// to a different export.
    #[error("{message} (checkpoint {path})")]
    Checkpoint {
        /// What is wrong with it.
        message: String,
        /// The checkpoint file.
        path: PathBuf,
    },

    /// Another export holds the lock on this output (`<out>.lock`): it is writing the output
    /// and its checkpoint right now. Nothing was read or written.
    #[error("another export is writing {out} (it holds {lock}): wait for it to end, or choose another --out")]
    OutputLocked {
        /// The output.
        out: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },

    /// The login server rejected the client credentials.
    #[error("credentials rejected: the login server refused client id `{client_id}`")]
    CredentialsRejected {
        /// The client id (never the secret).
        client_id: String,
        /// The library error.
        #[source]
        source: BoxError,
    },

    /// The API failed, after retries.
    #[error("{context}")]
    Api {
        /// What the export was doing.
        context: String,
        /// The library error.
        #[source]
        source: BoxError,
    },

    /// Reading or writing the output or its checkpoint failed.
    #[error("cannot {action} {path}")]
    Output {
        /// What the export was doing, e.g. "write".
        action: &'static str,
        /// The file (or `<stdout>`).
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// A database output failed (connect, run lock, schema check, a page's transaction):
    /// the message names the destination, never its password. Another run holding the
    /// destination is a usage error (exit 2), like a locked file; the rest exit 5.
    #[cfg(feature = "db")]
    #[error(transparent)]
    Database(keel_genesys_db::DbError),
}

#[cfg(feature = "db")]
impl From<keel_genesys_db::DbError> for ExportError {
    fn from(e: keel_genesys_db::DbError) -> Self {
        ExportError::Database(e)
    }
}

impl ExportError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ExportError::Usage(_)
            | ExportError::MissingCredentials { .. }
            | ExportError::CredentialsFile { .. }
            | ExportError::Checkpoint { .. }
            | ExportError::OutputLocked { .. } => EXIT_USAGE,
            ExportError::CredentialsRejected { .. } => EXIT_CREDENTIALS,
            ExportError::Api { .. } => EXIT_API,
            ExportError::Output { .. } => EXIT_OUTPUT,
            #[cfg(feature = "db")]
            ExportError::Database(keel_genesys_db::DbError::Locked { .. }) => EXIT_USAGE,
            #[cfg(feature = "db")]
            ExportError::Database(_) => EXIT_OUTPUT,
        }
    }

    /// An output error.
    pub(crate) fn output(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> Self {
        ExportError::Output {
            action,
            path: path.into(),
            source,
        }
    }

    /// Renders the error with its chain of causes: `error: …` then `  caused by: …` lines.
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }
}

/// Sorts a library error into the export's exit classes; `context` says where the export
/// stopped.
pub(crate) fn map_error(e: keel_genesys::Error, client_id: &str, context: &str) -> ExportError {
    use keel_genesys::ErrorKind;
    match e.kind() {
        ErrorKind::Usage => ExportError::Usage(e.to_string()),
        ErrorKind::Credentials => ExportError::CredentialsRejected {
            client_id: client_id.to_owned(),
            source: Box::new(e),
        },
        _ => ExportError::Api {
            context: context.to_owned(),
            source: Box::new(e),
        },
    }
}

/// [`ExportError`] with its causes, for stderr (see [`ExportError::report`]).
#[derive(Debug)]
pub struct Report<'a>(&'a ExportError);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // NOTE: causes may quote a server (a token endpoint's `error_description`): every
        // line is printed with its control characters escaped.
        let mut last = self.0.to_string();
        write!(f, "error: {}", Escaped(&last))?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            let text = c.to_string();
            // NOTE: some errors repeat their source's message in their own; print it once.
            if !last.contains(&text) {
                write!(f, "\n  caused by: {}", Escaped(&text))?;
            }
            last = text;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_maps_to_its_exit_code() {
        let io = || io::Error::other("disk full");
        assert_eq!(ExportError::Usage("x".into()).exit_code(), 2);
        assert_eq!(
            ExportError::MissingCredentials {
                missing: "GENESYS_CLIENT_ID".into()
            }
            .exit_code(),
            2
        );
        assert_eq!(
            ExportError::Checkpoint {
                message: "m".into(),
                path: "p".into()
            }
            .exit_code(),
            2
        );
        assert_eq!(
            ExportError::OutputLocked {
                out: "o".into(),
                lock: "o.lock".into()
            }
            .exit_code(),
            2
        );
        assert_eq!(
            ExportError::CredentialsRejected {
                client_id: "id".into(),
                source: "no".into()
            }
            .exit_code(),
            3
        );
        assert_eq!(
            ExportError::Api {
                context: "c".into(),
                source: "s".into()
            }
            .exit_code(),
            4
        );
        assert_eq!(
            ExportError::output("write", "out.ndjson", io()).exit_code(),
            5
        );
    }

    #[test]
    fn report_prints_the_cause_chain() {
        let e = ExportError::output("write", "out.ndjson", io::Error::other("disk full"));
        assert_eq!(
            e.report().to_string(),
            "error: cannot write out.ndjson\n  caused by: disk full"
        );
    }

    #[test]
    fn rejected_credentials_exit_3_naming_the_client_id() {
        let e = keel_genesys::Error::Credentials {
            client_id: "cid-1".into(),
            source: None,
        };
        let mapped = map_error(e, "cid-1", "ctx");
        assert_eq!(mapped.exit_code(), 3);
        assert!(mapped.to_string().contains("cid-1"));
    }

    #[test]
    fn api_errors_exit_4_with_their_context_and_cause() {
        let e = keel_genesys::Error::Api {
            status: http::StatusCode::BAD_REQUEST,
            endpoint: "/api/v2/analytics/conversations/details/query".into(),
            body: keel_genesys::error::ApiErrorBody {
                message: Some("Pagination may not exceed 100000 results.".into()),
                ..Default::default()
            },
        };
        let mapped = map_error(e, "cid", "export stopped after 3 pages");
        assert_eq!(mapped.exit_code(), 4);
        let report = mapped.report().to_string();
        assert!(
            report.starts_with("error: export stopped after 3 pages\n  caused by: api error 400"),
            "{report}"
        );
        assert!(report.contains("Pagination may not exceed"), "{report}");
    }

    #[test]
    fn configuration_errors_exit_2() {
        let e = keel_genesys::Error::Config("bad".into());
        assert_eq!(map_error(e, "cid", "ctx").exit_code(), 2);
    }

    #[test]
    fn report_escapes_control_characters_of_every_cause() {
        let server = io::Error::other("invalid_client: \u{1b}[2J\rpwned");
        let e = ExportError::CredentialsRejected {
            client_id: "id\u{1b}".into(),
            source: Box::new(server),
        };
        let text = e.report().to_string();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
        assert!(
            text.ends_with(r"caused by: invalid_client: \u{1b}[2J\rpwned"),
            "{text}"
        );
    }

    #[test]
    fn credentials_rejected_names_the_client_id() {
        let e = ExportError::CredentialsRejected {
            client_id: "abc-123".into(),
            source: "invalid_client".into(),
        };
        let text = e.report().to_string();
        assert!(text.contains("abc-123"), "{text}");
        assert!(text.contains("caused by: invalid_client"), "{text}");
    }
}
