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
        let text = std::str::from_utf8(data).unwrap();
        for c in page.conversations.iter().flatten() {
            assert!(text.contains(c.get()));
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
