//! Parsing and validation of conversation-details query bodies, and filter evaluation.
//!
//! Supported: `interval` (`START/END`, ISO-8601; a conversation matches when its
//! `conversationStart` is in `[START, END)`), `order` (`asc`/`desc` by `conversationStart`),
//! `orderBy` (accepted, ordering is always by `conversationStart`), `paging`, and
//! `segmentFilters` / `conversationFilters` of type `and`/`or` with `dimension` predicates
//! (operators `matches`, `exists`, `notExists`) and nested `clauses`.
//! Segment dimensions: `mediaType`, `direction`, `queueId`, `purpose` (evaluated per session:
//! one session must satisfy the whole filter). Conversation dimensions:
//! `originatingDirection`, `divisionId`, `conversationId`.

use serde::Deserialize;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::OffsetDateTime;

use crate::data::{Dataset, Facts, SessionFacts};

/// Largest `pageNumber × pageSize` the API serves.
pub(crate) const MAX_RESULTS: i64 = 100_000;

/// Why a query body was refused (the message of the 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub(crate) String);

fn bad(msg: impl Into<String>) -> QueryError {
    QueryError(msg.into())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawQuery {
    interval: Option<String>,
    order: Option<String>,
    #[allow(dead_code)]
    order_by: Option<String>,
    paging: Option<RawPaging>,
    segment_filters: Option<Vec<RawFilter>>,
    conversation_filters: Option<Vec<RawFilter>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPaging {
    page_size: Option<i64>,
    page_number: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct RawFilter {
    #[serde(rename = "type")]
    kind: Option<String>,
    predicates: Option<Vec<RawPredicate>>,
    clauses: Option<Vec<RawFilter>>,
}

#[derive(Debug, Deserialize)]
struct RawPredicate {
    #[serde(rename = "type")]
    kind: Option<String>,
    dimension: Option<String>,
    operator: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Dim {
    MediaType,
    Direction,
    QueueId,
    Purpose,
    OriginatingDirection,
    DivisionId,
    ConversationId,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Test {
    Matches(String),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Predicate {
    dim: Dim,
    test: Test,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Filter {
    all: bool,
    predicates: Vec<Predicate>,
    clauses: Vec<Filter>,
}

/// The filtering part of a query: interval and predicates (what a job keeps).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Selector {
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    segment: Vec<Filter>,
    conversation: Vec<Filter>,
}

/// A validated details query.
#[derive(Debug, Clone)]
pub(crate) struct DetailsQuery {
    pub(crate) selector: Selector,
    pub(crate) descending: bool,
    pub(crate) page_size: u64,
    pub(crate) page_number: u64,
}

/// Default `paging.pageSize` when the body has none.
pub(crate) const DEFAULT_PAGE_SIZE: i64 = 25;

impl DetailsQuery {
    /// Parses and validates a details-query body (`with_paging`: the query endpoint; jobs
    /// ignore paging).
    pub(crate) fn parse(body: &[u8], with_paging: bool) -> Result<Self, QueryError> {
        let raw: RawQuery = serde_json::from_slice(body)
            .map_err(|e| bad(format!("Unable to parse the request body: {e}")))?;
        let interval = raw
            .interval
            .ok_or_else(|| bad("The interval field is required."))?;
        let (start_ms, end_ms) = parse_interval(&interval)?;
        let descending = match raw.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(bad(format!(
                    "Invalid order '{other}', expected asc or desc."
                )))
            }
        };
        let (mut page_size, mut page_number) = (DEFAULT_PAGE_SIZE, 1);
        if let (true, Some(p)) = (with_paging, raw.paging) {
            page_size = p.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
            page_number = p.page_number.unwrap_or(1);
            if !(1..=100).contains(&page_size) {
                return Err(bad("paging.pageSize must be between 1 and 100."));
            }
            if page_number < 1 {
                return Err(bad("paging.pageNumber must be at least 1."));
            }
            if page_number.saturating_mul(page_size) > MAX_RESULTS {
                return Err(bad("Pagination may not exceed 100000 results."));
            }
        }
        let segment = filters(raw.segment_filters, true)?;
        let conversation = filters(raw.conversation_filters, false)?;
        Ok(Self {
            selector: Selector {
                start_ms,
                end_ms,
                segment,
                conversation,
            },
            descending,
            page_size: page_size as u64,
            page_number: page_number as u64,
        })
    }
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(s, &Iso8601::DEFAULT))
        .ok()
}

fn parse_interval(interval: &str) -> Result<(i64, i64), QueryError> {
    let invalid = || {
        bad(format!(
            "Invalid interval '{interval}': expected ISO-8601 START/END."
        ))
    };
    let (a, b) = interval.split_once('/').ok_or_else(invalid)?;
    let (a, b) = (
        parse_time(a).ok_or_else(invalid)?,
        parse_time(b).ok_or_else(invalid)?,
    );
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    if b <= a {
        return Err(bad(format!(
            "Invalid interval '{interval}': the end must be after the start."
        )));
    }
    Ok((ms(a), ms(b)))
}

fn filters(raw: Option<Vec<RawFilter>>, segment: bool) -> Result<Vec<Filter>, QueryError> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|f| filter(f, segment))
        .collect()
}

fn filter(raw: RawFilter, segment: bool) -> Result<Filter, QueryError> {
    let all = match raw.kind.as_deref() {
        Some("and") => true,
        Some("or") => false,
        other => {
            return Err(bad(format!(
                "Invalid filter type {other:?}, expected and or or."
            )))
        }
    };
    let predicates = raw
        .predicates
        .unwrap_or_default()
        .into_iter()
        .map(|p| predicate(p, segment))
        .collect::<Result<Vec<_>, _>>()?;
    let clauses = filters(raw.clauses, segment)?;
    if predicates.is_empty() && clauses.is_empty() {
        return Err(bad("A filter needs at least one predicate or clause."));
    }
    Ok(Filter {
        all,
        predicates,
        clauses,
    })
}

fn predicate(raw: RawPredicate, segment: bool) -> Result<Predicate, QueryError> {
    if let Some(kind) = raw.kind.as_deref().filter(|k| *k != "dimension") {
        return Err(bad(format!("Unsupported predicate type '{kind}'.")));
    }
    let name = raw
        .dimension
        .ok_or_else(|| bad("A predicate needs a dimension."))?;
    let dim = match (segment, name.as_str()) {
        (true, "mediaType") => Dim::MediaType,
        (true, "direction") => Dim::Direction,
        (true, "queueId") => Dim::QueueId,
        (true, "purpose") => Dim::Purpose,
        (false, "originatingDirection") => Dim::OriginatingDirection,
        (false, "divisionId") => Dim::DivisionId,
        (false, "conversationId") => Dim::ConversationId,
        _ => return Err(bad(format!("Invalid dimension '{name}'."))),
    };
    let test = match (raw.operator.as_deref(), raw.value) {
        (None | Some("matches"), Some(v)) => Test::Matches(v),
        (None | Some("matches"), None) => {
            return Err(bad(format!("The predicate on '{name}' needs a value.")))
        }
        (Some("exists"), _) => Test::Exists,
        (Some("notExists"), _) => Test::NotExists,
        (Some(op), _) => return Err(bad(format!("Unsupported operator '{op}'."))),
    };
    Ok(Predicate { dim, test })
}

fn test_value(test: &Test, value: Option<&str>) -> bool {
    match test {
        Test::Matches(want) => value == Some(want.as_str()),
        Test::Exists => value.is_some(),
        Test::NotExists => value.is_none(),
    }
}

fn combine(all: bool, mut results: impl Iterator<Item = bool>) -> bool {
    if all {
        results.all(|r| r)
    } else {
        results.any(|r| r)
    }
}

impl Selector {
    /// Whether the selector has any predicate (if not, a plain index range answers it).
    pub(crate) fn has_filters(&self) -> bool {
        !self.segment.is_empty() || !self.conversation.is_empty()
    }

    /// Whether conversation `f` passes every filter (the interval is checked by the caller).
    pub(crate) fn matches(&self, data: &Dataset, f: &Facts) -> bool {
        let id = std::cell::OnceCell::new();
        self.conversation
            .iter()
            .all(|flt| conv_filter(flt, data, f, &id))
            && self
                .segment
                .iter()
                .all(|flt| f.sessions().any(|s| seg_filter(flt, data, &s)))
    }
}

/// `id`: the conversation's id, computed at most once however many predicates ask for it.
fn conv_filter(flt: &Filter, data: &Dataset, f: &Facts, id: &std::cell::OnceCell<String>) -> bool {
    let preds = flt.predicates.iter().map(|p| match p.dim {
        Dim::OriginatingDirection => test_value(&p.test, Some(f.originating.as_str())),
        Dim::DivisionId => match &p.test {
            Test::Matches(want) => (0..f.division_count)
                .any(|k| data.division_id(f.divisions[usize::from(k)]) == *want),
            Test::Exists => true,
            Test::NotExists => false,
        },
        Dim::ConversationId => test_value(
            &p.test,
            Some(id.get_or_init(|| data.conversation_id(f.index))),
        ),
        _ => false,
    });
    let clauses = flt.clauses.iter().map(|c| conv_filter(c, data, f, id));
    combine(flt.all, preds.chain(clauses))
}

fn seg_filter(flt: &Filter, data: &Dataset, s: &SessionFacts) -> bool {
    let preds = flt.predicates.iter().map(|p| match p.dim {
        Dim::MediaType => test_value(&p.test, Some(s.media.as_str())),
        Dim::Direction => test_value(&p.test, Some(s.direction.as_str())),
        Dim::Purpose => test_value(&p.test, Some(s.purpose.as_str())),
        Dim::QueueId => test_value(&p.test, s.queue.map(|q| data.queue_id(q))),
        _ => false,
    });
    let clauses = flt.clauses.iter().map(|c| seg_filter(c, data, s));
    combine(flt.all, preds.chain(clauses))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<DetailsQuery, QueryError> {
        DetailsQuery::parse(&serde_json::to_vec(&v).unwrap(), true)
    }

    const IV: &str = "2026-01-01T00:00:00.000Z/2026-01-08T00:00:00.000Z";

    #[test]
    fn paging_bounds_are_enforced() {
        assert!(parse(
            serde_json::json!({"interval": IV, "paging": {"pageSize": 100, "pageNumber": 1000}})
        )
        .is_ok());
        for (size, number) in [(0, 1), (101, 1), (10, 0), (10, -1)] {
            assert!(
                parse(serde_json::json!({"interval": IV, "paging": {"pageSize": size, "pageNumber": number}})).is_err(),
                "{size} {number}"
            );
        }
        let e = parse(
            serde_json::json!({"interval": IV, "paging": {"pageSize": 100, "pageNumber": 1001}}),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "Pagination may not exceed 100000 results.");
    }

    #[test]
    fn interval_is_required_and_must_be_ordered() {
        assert!(parse(serde_json::json!({})).is_err());
        assert!(parse(serde_json::json!({"interval": "yesterday"})).is_err());
        assert!(parse(
            serde_json::json!({"interval": "2026-01-02T00:00:00Z/2026-01-01T00:00:00Z"})
        )
        .is_err());
        let q =
            parse(serde_json::json!({"interval": "2026-01-01T00:00:00Z/2026-01-01T00:00:01.5Z"}))
                .unwrap();
        assert_eq!(q.selector.end_ms - q.selector.start_ms, 1_500);
    }

    #[test]
    fn unknown_dimensions_operators_and_types_are_refused() {
        let f = |seg: serde_json::Value| {
            parse(serde_json::json!({"interval": IV, "segmentFilters": [seg]}))
        };
        assert!(f(serde_json::json!({"type": "and", "predicates": [{"dimension": "mediaType", "value": "voice"}]})).is_ok());
        assert!(f(serde_json::json!({"type": "xor", "predicates": [{"dimension": "mediaType", "value": "voice"}]})).is_err());
        assert!(f(serde_json::json!({"type": "and", "predicates": [{"dimension": "nope", "value": "voice"}]})).is_err());
        assert!(f(serde_json::json!({"type": "and", "predicates": [{"dimension": "mediaType", "operator": "like", "value": "v"}]})).is_err());
        assert!(f(serde_json::json!({"type": "and", "predicates": [{"dimension": "divisionId", "value": "x"}]})).is_err(), "divisionId is a conversation dimension");
        assert!(f(serde_json::json!({"type": "and", "predicates": []})).is_err());
    }
}
