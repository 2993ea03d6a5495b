//! One analytics conversation of a details response, typed where keel needs it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// A conversation of the details API. Named fields are the common ones; everything else
/// (metrics, evaluations, segments' details, fields added later) is kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsConversation {
    /// The conversation id.
    pub conversation_id: String,
    /// When the conversation started.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub conversation_start: Option<OffsetDateTime>,
    /// When it ended (absent while it is still going on).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub conversation_end: Option<OffsetDateTime>,
    /// `inbound` or `outbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originating_direction: Option<String>,
    /// Divisions the conversation belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub division_ids: Vec<String>,
    /// The participants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<Participant>,
    /// Fields keel does not name, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A participant of an [`AnalyticsConversation`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// The participant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_id: Option<String>,
    /// `customer`, `agent`, `acd`, `ivr`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The participant's sessions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<Session>,
    /// Fields keel does not name, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A session of a [`Participant`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// `voice`, `chat`, `email`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `inbound` or `outbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Fields keel does not name (segments, metrics, …), kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AnalyticsConversation {
    /// `conversationEnd - conversationStart`, when both are known and in order.
    pub fn duration(&self) -> Option<Duration> {
        let d = self.conversation_end? - self.conversation_start?;
        (!d.is_negative()).then(|| d.unsigned_abs())
    }

    /// The distinct media types of all sessions, in first-seen order.
    pub fn media_types(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for m in self
            .participants
            .iter()
            .flat_map(|p| &p.sessions)
            .filter_map(|s| s.media_type.as_deref())
        {
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_unknown_fields_at_every_level() {
        let src = json!({
            "conversationId": "c-1",
            "conversationStart": "2024-01-01T00:00:01.5Z",
            "conversationEnd": "2024-01-01T00:01:01.5Z",
            "originatingDirection": "inbound",
            "divisionIds": ["d1"],
            "mediaStatsMinConversationMos": 4.88,
            "participants": [{
                "participantId": "p1", "purpose": "customer", "ani": "tel:+1555",
                "sessions": [
                    {"mediaType": "voice", "sessionId": "s1", "direction": "inbound",
                     "segments": [{"segmentType": "interact"}]},
                    {"mediaType": "callback"},
                    {"mediaType": "voice", "newField": "ünïcode ✓"}
                ]
            }]
        });
        let c: AnalyticsConversation = serde_json::from_value(src.clone()).unwrap();
        assert_eq!(c.duration(), Some(Duration::from_secs(60)));
        assert_eq!(c.media_types(), ["voice", "callback"]);
        assert!(c.extra.contains_key("mediaStatsMinConversationMos"));
        let back = serde_json::to_value(&c).unwrap();
        // NOTE: timestamps are re-rendered by `time`; compare everything else exactly.
        let mut a = src;
        let mut b = back;
        for v in [&mut a, &mut b] {
            v.as_object_mut().unwrap().remove("conversationStart");
            v.as_object_mut().unwrap().remove("conversationEnd");
        }
        assert_eq!(a, b);
        let again: AnalyticsConversation =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn a_conversation_in_progress_has_no_duration() {
        let c: AnalyticsConversation = serde_json::from_value(json!({
            "conversationId": "c", "conversationStart": "2024-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(c.duration(), None);
        assert!(c.media_types().is_empty());
    }
}
