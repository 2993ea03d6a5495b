//! Page bodies of the analytics APIs and the query interval text. Must not panic, and a
//! details page keeps each conversation's bytes exactly.
#![no_main]

use keel_genesys::models::{
    AnalyticsConversation, ConversationQuery, DetailsResponse, Interval, JobResultsResponse,
    JobStatus, JobSubmitResponse,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = serde_json::from_slice::<DetailsResponse>(data) {
        // NOTE: not `str::from_utf8(data)`: serde_json skips an unknown field's string without
        // checking its UTF-8 (found by this target), so a page it accepts may hold invalid
        // UTF-8 there; each conversation itself is valid text, found byte for byte.
        for c in page.conversations.iter().flatten() {
            let want = c.get().as_bytes();
            assert!(data.windows(want.len()).any(|w| w == want));
        }
    }
    let _ = serde_json::from_slice::<JobResultsResponse>(data);
    let _ = serde_json::from_slice::<JobStatus>(data);
    let _ = serde_json::from_slice::<JobSubmitResponse>(data);
    let _ = serde_json::from_slice::<AnalyticsConversation>(data);
    let _ = serde_json::from_slice::<ConversationQuery>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<Interval>();
    }
});
