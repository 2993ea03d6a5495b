//! The Genesys API endpoints: conversation-details query, async jobs, users.

pub(crate) mod details;
pub(crate) mod jobs;
pub(crate) mod users;

use crate::state::{Snapshot, State};

/// Appends `{"conversations":[…]` for items `from..to` of a snapshot (no closing brace), or
/// `{` alone when the range is empty.
pub(crate) fn push_conversations(
    state: &State,
    out: &mut Vec<u8>,
    snapshot: &Snapshot,
    descending: bool,
    from: u64,
    to: u64,
) {
    out.push(b'{');
    if from >= to {
        return;
    }
    out.extend_from_slice(b"\"conversations\":[");
    for k in from..to {
        if k > from {
            out.push(b',');
        }
        let i = snapshot.selection.get(k, descending);
        state.write_conversation(i, snapshot.as_of, out);
    }
    out.push(b']');
    state
        .stats
        .conversations_served
        .fetch_add(to - from, std::sync::atomic::Ordering::Relaxed);
}

/// Waits the configured per-page latency.
pub(crate) async fn page_latency(state: &State) {
    let d = state.config.page_latency;
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
