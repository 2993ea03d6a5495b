//! Watching an export: counters after each commit, a word on each restart.

use crate::error::Error;
use crate::sink::SinkState;

/// Where an export stands: what the sink holds, and how this run got there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Pages committed, those of earlier runs included.
    pub pages: u64,
    /// Conversations committed, those of earlier runs included.
    pub conversations: u64,
    /// Of [`Progress::conversations`], those an earlier run committed.
    pub resumed_conversations: u64,
    /// The conversations the API reported for the parts seen so far (query mode), for a
    /// share-done display; `None` when the API does not say (jobs mode).
    pub total_hits: Option<u64>,
    /// Parts restarted from their first page after their results kept shrinking.
    pub restarts: u32,
    /// Of the conversations this run committed, the late arrivals: those its part yielded
    /// beyond the `totalHits` of the part's first page (while a part's results only grow,
    /// exactly the conversations that were not in its result set when its first page was
    /// read). Counted from the part's checkpoints, so a part resumed mid-way counts only the
    /// late arrivals after its resume point.
    pub late_arrivals: u64,
}

/// Told what an export does, as it does it (a progress bar, a log line). Every method has a
/// default that does nothing; `()` is the observer that watches nothing.
pub trait Observer: Send {
    /// The sink was opened: `state` is where the export starts.
    fn opened(&mut self, state: &SinkState) {
        let _ = state;
    }

    /// A page (and its resume point) was committed.
    fn committed(&mut self, progress: &Progress) {
        let _ = progress;
    }

    /// A part's results kept shrinking (`cause`); the export restarts it from its first page,
    /// skipping what is committed.
    fn restarting(&mut self, cause: &Error) {
        let _ = cause;
    }
}

impl Observer for () {}
