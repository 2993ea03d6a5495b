//! Where an export stands, as a serializable value.

use serde::{Deserialize, Serialize};

use crate::models::Interval;

/// The position of a page of a [`DetailsExport`](super::DetailsExport): resuming after it
/// continues with the next page. Serialize it (JSON) next to the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Checkpoint {
    /// A page of the synchronous details query.
    Query(QueryCheckpoint),
    /// A page of an asynchronous details job.
    Job(JobCheckpoint),
}

/// A page of the details query: page `page_number` of the part `part` of `query_interval`.
///
/// Resuming re-plans the rest of the query interval after `part.end`, so the checkpoint does
/// not depend on how the parts were planned.
///
/// Fields are public to read; new ones may come (it is `#[non_exhaustive]`), so code outside
/// this crate makes one with [`QueryCheckpoint::new`] and sets what else it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct QueryCheckpoint {
    /// The whole query interval (checked on resume).
    pub query_interval: Interval,
    /// The part this page belongs to.
    pub part: Interval,
    /// Index of the part, in order, from 0 (informational).
    pub part_index: u64,
    /// The page number within the part, from 1; 0 means "before the first page".
    pub page_number: u32,
    /// The page size used (checked on resume: page numbers depend on it).
    pub page_size: u32,
    /// The part's `totalHits` as of this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_hits: Option<u64>,
    /// Conversation ids of this part already yielded, to skip when the part is paged again
    /// after its results changed (empty on the checkpoint of a page). A restart point (page 0,
    /// or [`in_order`](Self::in_order)) holds every id yielded from the part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_ids: Vec<String>,
    /// The part's `totalHits` on its first page: the conversations it yields beyond that
    /// number are its late arrivals ([`late_arrivals`](Self::late_arrivals)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_total_hits: Option<u64>,
    /// Conversations yielded from this part up to this point, this page's included (`None` in
    /// checkpoints written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yielded: Option<u64>,
    /// A restart point of a part whose results grew while it was paged: resuming continues
    /// after `page_number` in order, one page at a time, skipping `skip_ids` (every id yielded
    /// from the part).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_order: bool,
}

impl QueryCheckpoint {
    /// The checkpoint after page `page_number` (0: before the first) of `part`, paged
    /// `page_size` at a time, in the export of `query_interval`; every other field empty.
    ///
    /// ```
    /// use keel_genesys::{Interval, QueryCheckpoint};
    /// let day: Interval = "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z".parse().unwrap();
    /// let mut cp = QueryCheckpoint::new(day, day, 3, 100);
    /// cp.total_hits = Some(1_000);
    /// assert_eq!((cp.page_number, cp.late_arrivals()), (3, 0));
    /// ```
    pub fn new(query_interval: Interval, part: Interval, page_number: u32, page_size: u32) -> Self {
        QueryCheckpoint {
            query_interval,
            part,
            part_index: 0,
            page_number,
            page_size,
            total_hits: None,
            skip_ids: Vec::new(),
            first_total_hits: None,
            yielded: None,
            in_order: false,
        }
    }

    /// Conversations of this part yielded beyond the `totalHits` of its first page, up to this
    /// point: while a part's results only grow, exactly the late arrivals it picked up (those
    /// that were not in its first result set). 0 when either count is unknown.
    pub fn late_arrivals(&self) -> u64 {
        match (self.yielded, self.first_total_hits) {
            (Some(y), Some(first)) => y.saturating_sub(first),
            _ => 0,
        }
    }

    /// Whether `skip_ids` holds every id yielded from the part (a restart point).
    pub(crate) fn knows_every_id(&self) -> bool {
        self.page_number == 0 || self.in_order
    }
}

/// A page of a details job's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCheckpoint {
    /// The job id.
    pub job_id: String,
    /// The cursor of the next page; `None` when this page was the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Pages yielded so far, this one included.
    pub pages: u64,
}
