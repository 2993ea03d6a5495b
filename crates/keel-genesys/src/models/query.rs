//! The body of `POST /api/v2/analytics/conversations/details/query` (and of details jobs).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::filter::Filter;
use super::interval::Interval;
use crate::error::Error;

/// The largest page size the details query accepts.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Sort order of the details query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// `paging` of the details query: pages are numbered from 1, at most 100 results each.
///
/// Paging is in the request body; the API has no `page` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PagingSpec {
    /// Results per page, 1..=100.
    pub page_size: u32,
    /// The page, from 1.
    pub page_number: u32,
}

impl PagingSpec {
    /// Checks `1 <= page_size <= 100` and `page_number >= 1`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the bad field.
    pub fn validate(&self) -> Result<(), Error> {
        if self.page_size == 0 || self.page_size > MAX_PAGE_SIZE {
            return Err(Error::config(format!(
                "page size {} is out of range 1..={MAX_PAGE_SIZE}",
                self.page_size
            )));
        }
        if self.page_number == 0 {
            return Err(Error::config("page number starts at 1"));
        }
        Ok(())
    }
}

/// A conversation-details query. Unknown fields are kept in `extra` and sent back as they were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationQuery {
    /// Conversations whose `conversationStart` is in this interval.
    pub interval: Interval,
    /// Sort order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<SortOrder>,
    /// Sort key, e.g. `conversationStart`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    /// Page size and number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<PagingSpec>,
    /// Filters on session segments (`mediaType`, `queueId`, …), ANDed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_filters: Vec<Filter>,
    /// Filters on conversations (`originatingDirection`, `divisionId`, …), ANDed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversation_filters: Vec<Filter>,
    /// Fields keel does not name (`evaluationFilters`, `surveyFilters`, …), kept as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ConversationQuery {
    /// A query for every conversation that started in `interval`, oldest first.
    pub fn new(interval: Interval) -> Self {
        Self {
            interval,
            order: Some(SortOrder::Asc),
            order_by: Some("conversationStart".to_owned()),
            paging: None,
            segment_filters: Vec::new(),
            conversation_filters: Vec::new(),
            extra: Map::new(),
        }
    }

    /// Only conversations with a segment of this media type (`voice`, `chat`, `email`,
    /// `callback`, `message`, …). Called again, adds an alternative (voice OR chat).
    pub fn media_type(mut self, media_type: impl Into<String>) -> Self {
        Filter::add_alternative(&mut self.segment_filters, "mediaType", media_type.into());
        self
    }

    /// Only conversations of this originating direction (`inbound` or `outbound`).
    pub fn originating_direction(mut self, direction: impl Into<String>) -> Self {
        Filter::add_alternative(
            &mut self.conversation_filters,
            "originatingDirection",
            direction.into(),
        );
        self
    }

    /// Only conversations in this division. Called again, adds an alternative.
    pub fn division_id(mut self, division_id: impl Into<String>) -> Self {
        Filter::add_alternative(
            &mut self.conversation_filters,
            "divisionId",
            division_id.into(),
        );
        self
    }

    /// Adds a segment filter (ANDed with the others).
    pub fn segment_filter(mut self, filter: Filter) -> Self {
        self.segment_filters.push(filter);
        self
    }

    /// Adds a conversation filter (ANDed with the others).
    pub fn conversation_filter(mut self, filter: Filter) -> Self {
        self.conversation_filters.push(filter);
        self
    }

    /// Sets the page size (checked by [`ConversationQuery::validate`]).
    pub fn page_size(mut self, page_size: u32) -> Self {
        let page_number = self.paging.map_or(1, |p| p.page_number);
        self.paging = Some(PagingSpec {
            page_size,
            page_number,
        });
        self
    }

    /// Checks what the API would refuse: page size and number.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] saying which field is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(p) = &self.paging {
            p.validate()?;
        }
        Ok(())
    }

    /// The same query for another interval and page.
    pub(crate) fn for_page(&self, interval: Interval, page_size: u32, page_number: u32) -> Self {
        let mut q = self.clone();
        q.interval = interval;
        q.paging = Some(PagingSpec {
            page_size,
            page_number,
        });
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day() -> Interval {
        "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn filters_have_the_shape_the_api_wants() {
        let q = ConversationQuery::new(day())
            .media_type("voice")
            .media_type("chat")
            .originating_direction("inbound")
            .division_id("d1")
            .page_size(100);
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({
                "interval": "2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z",
                "order": "asc",
                "orderBy": "conversationStart",
                "paging": {"pageSize": 100, "pageNumber": 1},
                "segmentFilters": [{"type": "or", "predicates": [
                    {"type": "dimension", "dimension": "mediaType", "operator": "matches", "value": "voice"},
                    {"type": "dimension", "dimension": "mediaType", "operator": "matches", "value": "chat"}
                ]}],
                "conversationFilters": [
                    {"type": "or", "predicates": [
                        {"type": "dimension", "dimension": "originatingDirection", "operator": "matches", "value": "inbound"}
                    ]},
                    {"type": "or", "predicates": [
                        {"type": "dimension", "dimension": "divisionId", "operator": "matches", "value": "d1"}
                    ]}
                ]
            })
        );
    }

    #[test]
    fn round_trip_keeps_unknown_fields_everywhere() {
        let src = json!({
            "interval": "2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z",
            "order": "desc",
            "orderBy": "conversationEnd",
            "paging": {"pageSize": 25, "pageNumber": 3},
            "segmentFilters": [{"type": "and", "predicates": [
                {"type": "metric", "metric": "tTalk", "range": {"gte": 5}}
            ], "clauses": [{"type": "or", "predicates": [
                {"dimension": "queueId", "value": "q1", "futureKnob": true}
            ]}]}],
            "evaluationFilters": [{"type": "and", "predicates": []}],
            "surveyFilters": [],
            "unknownTopLevel": {"nested": [1, 2, "é"]}
        });
        let q: ConversationQuery = serde_json::from_value(src.clone()).unwrap();
        assert_eq!(q.order, Some(SortOrder::Desc));
        assert!(q.extra.contains_key("unknownTopLevel"));
        assert_eq!(serde_json::to_value(&q).unwrap(), src);
    }

    #[test]
    fn repeated_values_are_not_duplicated() {
        let q = ConversationQuery::new(day())
            .media_type("voice")
            .media_type("voice");
        assert_eq!(q.segment_filters.len(), 1);
        assert_eq!(q.segment_filters[0].predicates.len(), 1);
    }

    #[test]
    fn paging_is_validated() {
        let base = ConversationQuery::new(day());
        assert!(base.clone().page_size(100).validate().is_ok());
        assert!(base.clone().page_size(1).validate().is_ok());
        let err = base.clone().page_size(101).validate().unwrap_err();
        assert!(err.to_string().contains("page size 101"), "{err}");
        assert!(base.clone().page_size(0).validate().is_err());
        let mut q = base.page_size(10);
        q.paging = Some(PagingSpec {
            page_size: 10,
            page_number: 0,
        });
        assert!(q.validate().is_err());
    }
}
