//! The state shared by every connection: data, tokens, limiter, jobs, counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::api::jobs::JobStore;
use crate::config::SimConfig;
use crate::data::Dataset;
use crate::query::Selector;
use crate::ratelimit::RateLimiter;
use crate::stats::Counters;
use crate::tokens::TokenStore;

/// `now + d`, saturating far in the future instead of overflowing.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

/// The conversations a selector picks, in ascending start order.
#[derive(Debug, Clone)]
pub(crate) enum Selection {
    /// Every index in `lo..hi`.
    Range { lo: u64, hi: u64 },
    /// These indices (ascending).
    List(Arc<Vec<u32>>),
}

impl Selection {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Selection::Range { lo, hi } => hi - lo,
            Selection::List(v) => v.len() as u64,
        }
    }

    /// The `k`-th conversation index in the requested order.
    pub(crate) fn get(&self, k: u64, descending: bool) -> u64 {
        let k = if descending { self.len() - 1 - k } else { k };
        match self {
            Selection::Range { lo, .. } => lo + k,
            Selection::List(v) => u64::from(v[k as usize]),
        }
    }
}

const CACHE_LIMIT: usize = 64;

/// Filtered selections by (selector, visible count).
type SelectionCache = Mutex<HashMap<(Selector, u64), Arc<Vec<u32>>>>;

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: SimConfig,
    pub(crate) data: Dataset,
    pub(crate) tokens: TokenStore,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) stats: Counters,
    pub(crate) jobs: JobStore,
    pub(crate) origin: Instant,
    pub(crate) api_seq: AtomicU64,
    pub(crate) response_seq: AtomicU64,
    /// Microseconds after `origin` before which clients were told not to come back (0: none).
    retry_deadline_us: AtomicU64,
    cache: SelectionCache,
}

impl State {
    pub(crate) fn new(config: SimConfig) -> Self {
        let origin = Instant::now();
        let data = Dataset::new(
            config.seed,
            config.data_start_ms,
            config.data_span.as_millis() as u64,
            config.conversations + config.late_conversations,
            config.users,
        );
        let tokens = TokenStore::new(
            config.seed,
            config.token_lifetime,
            config.revoke_after,
            config.revoke_after_requests,
        );
        let limiter = config
            .rate_limit_per_sec
            .map(|rate| RateLimiter::new(rate, config.rate_limit_burst.unwrap_or(rate), origin));
        Self {
            data,
            tokens,
            limiter,
            stats: Counters::default(),
            jobs: JobStore::default(),
            origin,
            api_seq: AtomicU64::new(0),
            response_seq: AtomicU64::new(0),
            retry_deadline_us: AtomicU64::new(0),
            cache: Mutex::new(HashMap::new()),
            config,
        }
    }

    /// Conversations visible now (the late ones appear after enough pages).
    pub(crate) fn visible(&self) -> u64 {
        let c = &self.config;
        if c.late_conversations > 0 && self.stats.pages_served.load(Relaxed) >= c.late_after_pages {
            c.conversations + c.late_conversations
        } else {
            c.conversations
        }
    }

    /// The visible conversations a selector picks.
    pub(crate) fn select(&self, selector: &Selector) -> Selection {
        let n = self.visible();
        let lo = self.data.lower_bound(selector.start_ms, n);
        let hi = self.data.lower_bound(selector.end_ms, n).max(lo);
        if !selector.has_filters() {
            return Selection::Range { lo, hi };
        }
        let key = (selector.clone(), n);
        if let Some(hit) = self.cache.lock().expect("cache poisoned").get(&key) {
            return Selection::List(hit.clone());
        }
        let list: Vec<u32> = (lo..hi)
            .filter(|&i| selector.matches(&self.data, &self.data.facts(i)))
            .map(|i| i as u32)
            .collect();
        let list = Arc::new(list);
        let mut cache = self.cache.lock().expect("cache poisoned");
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, list.clone());
        Selection::List(list)
    }

    /// Records that clients were told to wait `wait` from `now`.
    pub(crate) fn set_retry_deadline(&self, now: Instant, wait: Duration) {
        let at = later(now, wait)
            .saturating_duration_since(self.origin)
            .as_micros() as u64;
        self.retry_deadline_us.fetch_max(at, Relaxed);
    }

    /// Whether `now` is before the latest Retry-After deadline given.
    pub(crate) fn before_retry_deadline(&self, now: Instant) -> bool {
        let at = self.retry_deadline_us.load(Relaxed);
        at > 0 && (now.saturating_duration_since(self.origin).as_micros() as u64) < at
    }
}
