//! The asynchronous details jobs API: submit, status, results by cursor.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The answer to `POST /api/v2/analytics/conversations/details/jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSubmitResponse {
    /// The job id.
    pub job_id: String,
}

/// The state of a details job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Waiting to run.
    Queued,
    /// Running.
    Pending,
    /// Results are ready.
    Fulfilled,
    /// The job failed.
    Failed,
    /// The job was cancelled.
    Cancelled,
    /// The results expired.
    Expired,
    /// A state this version does not know.
    #[serde(other)]
    Unknown,
}

/// The answer to `GET /api/v2/analytics/conversations/details/jobs/{jobId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// The state.
    pub state: JobState,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// When the results expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
}

/// A page of `GET /api/v2/analytics/conversations/details/jobs/{jobId}/results`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResultsResponse {
    /// This page's conversations, raw.
    #[serde(default)]
    pub conversations: Option<Vec<Box<RawValue>>>,
    /// The cursor of the next page; absent on the last page.
    #[serde(default)]
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_models_parse_the_api_shapes() {
        let s: JobStatus = serde_json::from_str(
            r#"{"state":"FAILED","errorMessage":"boom","submissionDate":"x"}"#,
        )
        .unwrap();
        assert_eq!(s.state, JobState::Failed);
        assert_eq!(s.error_message.as_deref(), Some("boom"));
        let s: JobStatus = serde_json::from_str(r#"{"state":"SOMETHING_NEW"}"#).unwrap();
        assert_eq!(s.state, JobState::Unknown);
        let r: JobResultsResponse =
            serde_json::from_str(r#"{"conversations":[{"conversationId":"a"}],"cursor":"abc"}"#)
                .unwrap();
        assert_eq!(r.cursor.as_deref(), Some("abc"));
        assert_eq!(
            r.conversations.unwrap()[0].get(),
            r#"{"conversationId":"a"}"#
        );
        let last: JobResultsResponse = serde_json::from_str(r#"{"conversations":[]}"#).unwrap();
        assert!(last.cursor.is_none());
    }
}
