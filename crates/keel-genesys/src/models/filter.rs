//! Segment and conversation filters: a boolean combination of predicates.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How the predicates (and clauses) of a [`Filter`] combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterType {
    /// All must match.
    And,
    /// At least one must match.
    Or,
}

/// A filter of the details query (`segmentFilters[]` or `conversationFilters[]` entry).
///
/// The entries of one `…Filters` array are combined with AND by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// How the predicates and clauses combine.
    #[serde(rename = "type")]
    pub kind: FilterType,
    /// Nested filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clauses: Vec<Filter>,
    /// The predicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicates: Vec<Predicate>,
    /// Fields keel does not name, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A segment filter (dimensions of a session segment, e.g. `mediaType`, `queueId`).
pub type SegmentFilter = Filter;
/// A conversation filter (dimensions of the conversation, e.g. `originatingDirection`,
/// `divisionId`).
pub type ConversationFilter = Filter;

/// One predicate: `dimension operator value`, e.g. `mediaType matches voice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Predicate {
    /// `dimension` (default), `property` or `metric`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The dimension the predicate tests, e.g. `mediaType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    /// `matches` (default), `exists` or `notExists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The value to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Fields keel does not name (`metric`, `range`, `property`, …), kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Predicate {
    /// `dimension matches value`.
    pub fn dimension(dimension: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            kind: Some("dimension".to_owned()),
            dimension: Some(dimension.into()),
            operator: Some("matches".to_owned()),
            value: Some(value.into()),
            extra: Map::new(),
        }
    }

    fn is_dimension(&self, dimension: &str) -> bool {
        self.dimension.as_deref() == Some(dimension)
    }
}

impl Filter {
    /// A filter of the given type over `predicates`.
    pub fn new(kind: FilterType, predicates: Vec<Predicate>) -> Self {
        Self {
            kind,
            clauses: Vec::new(),
            predicates,
            extra: Map::new(),
        }
    }

    /// Adds `dimension matches value` to `filters`: to the OR filter that already lists
    /// alternatives for this dimension (so `voice` then `chat` means voice OR chat), else
    /// as a new filter (filters of one array are ANDed).
    pub(crate) fn add_alternative(filters: &mut Vec<Filter>, dimension: &str, value: String) {
        let predicate = Predicate::dimension(dimension, value);
        let existing = filters.iter_mut().find(|f| {
            f.kind == FilterType::Or
                && f.clauses.is_empty()
                && f.extra.is_empty()
                && !f.predicates.is_empty()
                && f.predicates.iter().all(|p| p.is_dimension(dimension))
        });
        match existing {
            Some(f) if !f.predicates.contains(&predicate) => f.predicates.push(predicate),
            Some(_) => {}
            None => filters.push(Filter::new(FilterType::Or, vec![predicate])),
        }
    }
}
