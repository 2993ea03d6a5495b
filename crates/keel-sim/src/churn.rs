//! Churn: conversations inserted into and removed from result sets while they are paged.
//!
//! An export that pages a details query by page number while the data changes underneath it
//! skips or repeats records. The overlay here holds what churn changed (inserted
//! conversations with their start times, removed ones) on top of the generated data, and the
//! record tests compare an export with ([`ChurnTruth`]).

use std::collections::{BTreeSet, HashSet};

use crate::config::SimConfig;
use crate::data::hash::h3;
use crate::data::Dataset;
use crate::query::Selector;
use crate::state::Selection;

/// Index of the first conversation inserted by churn (inserted conversations are numbered
/// from here, above every generated or arriving one, and keep `u32` selections).
pub(crate) const EXTRA_BASE: u64 = 3 << 30;
/// Most conversations churn can insert.
const MAX_EXTRAS: u64 = (1 << 32) - EXTRA_BASE;

const SALT_CHURN_INSERT: u64 = 60;
const SALT_CHURN_REMOVE: u64 = 61;

/// Conversations inserted and removed by churn, and what tests need to know about them.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    /// Bumped on every change, so cached selections are not reused across one.
    pub(crate) version: u64,
    /// `conversationStart` of inserted conversation `EXTRA_BASE + k`.
    pub(crate) extra_starts: Vec<i64>,
    /// Inserted conversations by (start, index).
    pub(crate) extras: BTreeSet<(i64, u64)>,
    pub(crate) removed: HashSet<u64>,
    removed_order: Vec<u64>,
    /// Pages after which churn ran.
    rounds: u64,
    /// The whole result set of the query of the first details page, when it was served.
    first_page: Option<Vec<u64>>,
}

/// What churn did so far ([`crate::SimHandle::churn_truth`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ChurnTruth {
    /// Every `conversationId` the query of the first details page selected when that page was
    /// served (before any churn), in the order it was served.
    pub first_page_ids: Vec<String>,
    /// Every inserted `conversationId`, in insertion order.
    pub inserted: Vec<String>,
    /// Every removed `conversationId`, in removal order (an inserted one may be among them).
    pub removed: Vec<String>,
    /// Details pages after which churn ran.
    pub rounds: u64,
}

impl Overlay {
    /// After one page of `selector` served from `sel`: records the first page's result set,
    /// then inserts and removes conversations as `c` says (seeded by the page's ordinal).
    pub(crate) fn after_page(&mut self, c: &SimConfig, selector: &Selector, sel: &Selection) {
        if self.first_page.is_none() {
            self.first_page = Some((0..sel.len()).map(|k| sel.get(k, false)).collect());
        }
        let round = self.rounds;
        if c.churn_pages.is_some_and(|p| round >= p) {
            return;
        }
        self.rounds += 1;
        let inserted = self.extra_starts.len() as u64;
        let inserts = c
            .churn_inserts_per_page
            .min(
                c.churn_max_inserts
                    .unwrap_or(u64::MAX)
                    .saturating_sub(inserted),
            )
            .min(MAX_EXTRAS - inserted);
        let width = selector.end_ms.saturating_sub(selector.start_ms).max(1) as u64;
        for j in 0..inserts {
            let h = h3(c.seed, round << 24 | j, SALT_CHURN_INSERT);
            let start = selector.start_ms.saturating_add((h % width) as i64);
            let i = EXTRA_BASE + self.extra_starts.len() as u64;
            self.extra_starts.push(start);
            self.extras.insert((start, i));
        }
        let removals = c.churn_removals_per_page.min(
            c.churn_max_removals
                .unwrap_or(u64::MAX)
                .saturating_sub(self.removed_order.len() as u64),
        );
        let len = sel.len();
        let mut removed = 0;
        for j in 0..removals {
            if len == 0 {
                break;
            }
            let h = h3(c.seed, round << 24 | j, SALT_CHURN_REMOVE);
            let pick = (0..len)
                .map(|probe| sel.get((h % len + probe) % len, false))
                .find(|i| !self.removed.contains(i));
            let Some(i) = pick else { break };
            self.removed.insert(i);
            self.removed_order.push(i);
            removed += 1;
        }
        if inserts > 0 || removed > 0 {
            self.version += 1;
        }
    }

    /// What churn did so far.
    pub(crate) fn truth(&self, data: &Dataset) -> ChurnTruth {
        let ids = |v: &mut dyn Iterator<Item = u64>| v.map(|i| data.conversation_id(i)).collect();
        ChurnTruth {
            first_page_ids: ids(&mut self.first_page.iter().flatten().copied()),
            inserted: ids(&mut (0..self.extra_starts.len() as u64).map(|k| EXTRA_BASE + k)),
            removed: ids(&mut self.removed_order.iter().copied()),
            rounds: self.rounds,
        }
    }
}
