//! Serde models of the Genesys Cloud analytics conversation-details APIs.
//!
//! The models name the fields keel uses and keep every other field in a flattened `extra`
//! map, so a query round-trips unchanged and nothing the API sent is lost. Names follow the
//! API's JSON (camelCase on the wire, snake_case in Rust).
//!
//! # Example
//!
//! ```
//! use keel_genesys::models::{ConversationQuery, Interval};
//!
//! let interval: Interval = "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z".parse().unwrap();
//! let query = ConversationQuery::new(interval)
//!     .media_type("voice")
//!     .originating_direction("inbound");
//! let json = serde_json::to_value(&query).unwrap();
//! assert_eq!(json["interval"], "2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z");
//! assert_eq!(json["segmentFilters"][0]["predicates"][0]["dimension"], "mediaType");
//! assert_eq!(json["conversationFilters"][0]["predicates"][0]["dimension"], "originatingDirection");
//! ```

mod conversation;
mod filter;
mod interval;
mod jobs;
mod query;
mod response;

pub use conversation::{AnalyticsConversation, Participant, Session};
pub use filter::{ConversationFilter, Filter, FilterType, Predicate, SegmentFilter};
pub use interval::Interval;
pub use jobs::{JobResultsResponse, JobState, JobStatus, JobSubmitResponse};
pub use query::{ConversationQuery, PagingSpec, SortOrder, MAX_PAGE_SIZE};
pub use response::DetailsResponse;
