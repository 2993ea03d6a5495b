//! The response of the details query.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A page of `POST /api/v2/analytics/conversations/details/query`.
///
/// Conversations stay raw JSON, exactly the bytes the API sent. A page past the end (or of an
/// empty interval) may omit `conversations`. There is no next-page field: the caller asks for
/// `paging.pageNumber + 1` until it has `totalHits` results.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailsResponse {
    /// Results matching the query over all pages.
    #[serde(default)]
    pub total_hits: Option<u64>,
    /// This page's conversations.
    #[serde(default)]
    pub conversations: Option<Vec<Box<RawValue>>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_stay_byte_exact_and_may_be_missing() {
        let body = r#"{"totalHits":2,"conversations":[{"conversationId":"a","x":"é\u00e9"} , {"conversationId":"b"}],"aggregations":[]}"#;
        let r: DetailsResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.total_hits, Some(2));
        let convs = r.conversations.unwrap();
        assert_eq!(convs[0].get(), r#"{"conversationId":"a","x":"é\u00e9"}"#);
        assert_eq!(convs[1].get(), r#"{"conversationId":"b"}"#);
        let empty: DetailsResponse = serde_json::from_str(r#"{"totalHits":0}"#).unwrap();
        assert!(empty.conversations.is_none());
    }
}
