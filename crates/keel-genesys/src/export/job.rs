//! What to export: the plain configuration the engine takes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::models::ConversationQuery;

/// Restarts of one part whose results kept shrinking, by default.
pub const MAX_RESULT_SET_RESTARTS: u32 = 3;

/// Which Genesys API pages the conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `POST /api/v2/analytics/conversations/details/query`, paged by page number.
    #[default]
    Query,
    /// The async jobs API: submit, poll, page results by cursor.
    Jobs,
}

impl Mode {
    /// The mode's name, as [`FromStr`] reads it and serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Query => "query",
            Mode::Jobs => "jobs",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`Mode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode (expected query or jobs)")]
pub struct ParseModeError;

impl FromStr for Mode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "query" => Ok(Mode::Query),
            "jobs" => Ok(Mode::Jobs),
            _ => Err(ParseModeError),
        }
    }
}

/// One export: the query and the API that pages it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ExportJob {
    /// The conversations to export (interval, filters, page size).
    pub query: ConversationQuery,
    /// The details query or the jobs API.
    pub mode: Mode,
    /// How often the export restarts one part whose results kept shrinking (after the
    /// re-reads its details export does itself) before it stops with
    /// [`Error::ResultSetChanged`](crate::Error::ResultSetChanged). Results that grow are
    /// never a restart.
    pub max_restarts: u32,
}

impl ExportJob {
    /// An export of `query` through `mode`, restarting changed parts up to
    /// [`MAX_RESULT_SET_RESTARTS`] times.
    pub fn new(query: ConversationQuery, mode: Mode) -> Self {
        ExportJob {
            query,
            mode,
            max_restarts: MAX_RESULT_SET_RESTARTS,
        }
    }

    /// Sets how often a part whose results keep shrinking is restarted before the export
    /// stops.
    pub fn max_restarts(mut self, restarts: u32) -> Self {
        self.max_restarts = restarts;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_and_write_their_lowercase_names() {
        for m in [Mode::Query, Mode::Jobs] {
            assert_eq!(m.to_string().parse::<Mode>(), Ok(m));
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
        }
        assert_eq!("Query".parse::<Mode>(), Err(ParseModeError));
    }
}
