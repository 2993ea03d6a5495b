//! Which export a sink's resume point, watermark and in-progress ids belong to.

use std::time::{SystemTime, UNIX_EPOCH};

/// The export definition a database sink stores its state under.
///
/// `key` identifies the definition (e.g. environment and filters, as the caller derives it):
/// two runs with the same key share one resume point, one watermark and one list of
/// conversations in progress. `query` is the query as the run resolved it (JSON), stored with
/// every resume point so that a resumed run continues the same query
/// (`resume_query` of the sinks).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSpec {
    pub(crate) key: String,
    pub(crate) query: serde_json::Value,
    pub(crate) run_id: String,
}

impl ExportSpec {
    /// The definition `key` with its resolved `query`; the run id is generated (time and
    /// process id).
    pub fn new(key: impl Into<String>, query: serde_json::Value) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        ExportSpec {
            key: key.into(),
            query,
            run_id: format!("{nanos:x}-{}", std::process::id()),
        }
    }

    /// Sets the run id written with every row (`conversations.run_id`).
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = run_id.into();
        self
    }

    /// The export definition's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The resolved query.
    pub fn query(&self) -> &serde_json::Value {
        &self.query
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}
