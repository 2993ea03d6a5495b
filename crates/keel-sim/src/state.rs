//! The state shared by every connection: data, clients (tokens, limiters), churn, clock, jobs, counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::api::jobs::JobStore;
use crate::churn::{ChurnTruth, Overlay};
use crate::clock::SimClock;
use crate::config::{ClientSecret, SimConfig};
use crate::data::{Dataset, Facts};
use crate::query::Selector;
use crate::ratelimit::RateLimiter;
use crate::stats::{ClientCounters, Counters, SimStats};
use crate::tokens::TokenStore;

pub(crate) use crate::churn::EXTRA_BASE;

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

/// A selection and the moment (Unix ms) its records are rendered as of (`None`: final state).
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) selection: Selection,
    pub(crate) as_of: Option<i64>,
}

const CACHE_LIMIT: usize = 64;

/// Filtered selections by (selector, visible count, churn version, live time when churning).
type SelectionCache = Mutex<HashMap<(Selector, u64, u64, i64), Arc<Vec<u32>>>>;

/// One accepted OAuth client: credentials, its own rate-limit bucket and counters.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) id: String,
    secret: ClientSecret,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) counters: ClientCounters,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: SimConfig,
    pub(crate) data: Dataset,
    pub(crate) tokens: TokenStore,
    /// Client 0 is [`SimConfig::client_id`], then [`SimConfig::extra_clients`] in order.
    pub(crate) clients: Vec<Client>,
    /// Bucket size advertised in `inin-ratelimit-allowed` (when a rate limit is configured).
    pub(crate) rate_burst: Option<u64>,
    pub(crate) clock: SimClock,
    churn: bool,
    overlay: Mutex<Overlay>,
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
        let mut data = Dataset::new(
            config.seed,
            config.data_start_ms,
            config.data_span.as_millis() as u64,
            config.conversations + config.late_conversations,
            config.users,
        );
        if let Some(rate) = config.arrivals_per_minute {
            data = data.with_arrivals((60_000_000.0 / rate).max(1.0) as u64, EXTRA_BASE);
        }
        let tokens = TokenStore::new(
            config.seed,
            config.token_lifetime,
            config.revoke_after,
            config.revoke_after_requests,
        );
        let limiter = || {
            config
                .rate_limit_per_sec
                .map(|rate| RateLimiter::new(rate, config.rate_limit_burst.unwrap_or(rate), origin))
        };
        let credentials = std::iter::once((config.client_id.clone(), config.client_secret.clone()))
            .chain(config.extra_clients.iter().cloned());
        let clients = credentials
            .map(|(id, secret)| Client {
                id,
                secret,
                limiter: limiter(),
                counters: ClientCounters::default(),
            })
            .collect();
        Self {
            data,
            tokens,
            rate_burst: limiter().map(|l| l.burst),
            clients,
            clock: SimClock::new(config.clock_start_ms),
            churn: config.churn_inserts_per_page > 0 || config.churn_removals_per_page > 0,
            overlay: Mutex::new(Overlay::default()),
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

    /// Number of the client with these credentials.
    pub(crate) fn client_with(&self, id: &str, secret: &str) -> Option<usize> {
        self.clients
            .iter()
            .position(|c| c.id == id && c.secret.expose() == secret)
    }

    /// The counters, with every client's.
    pub(crate) fn snapshot(&self) -> SimStats {
        let mut s = self.stats.snapshot();
        s.clients = self
            .clients
            .iter()
            .map(|c| (c.id.clone(), c.counters.snapshot()))
            .collect::<BTreeMap<_, _>>();
        s
    }

    /// The live-data moment records are judged at (`None` unless live data is on).
    pub(crate) fn as_of(&self) -> Option<i64> {
        self.config.live.then(|| self.clock.now_ms())
    }

    /// Generated conversations visible now (the late ones appear after enough pages); with
    /// live data, only those started by `as_of`. They are `0..n`.
    pub(crate) fn visible_at(&self, as_of: Option<i64>) -> u64 {
        let c = &self.config;
        let generated = if c.arrivals_per_minute.is_some()
            || (c.late_conversations > 0
                && self.stats.pages_served.load(Relaxed) >= c.late_after_pages)
        {
            c.conversations + c.late_conversations
        } else {
            c.conversations
        };
        match as_of {
            None => generated,
            Some(now) if c.arrivals_per_minute.is_some() => self.data.started_by(now),
            Some(now) => self.data.started_by(now).min(generated),
        }
    }

    /// Generated conversations visible now.
    pub(crate) fn visible(&self) -> u64 {
        self.visible_at(self.as_of())
    }

    /// The facts of conversation `i` (an inserted one included).
    pub(crate) fn facts(&self, i: u64) -> Facts {
        if i < EXTRA_BASE {
            return self.data.facts(i);
        }
        let overlay = self.overlay.lock().expect("overlay poisoned");
        match overlay.extra_starts.get((i - EXTRA_BASE) as usize) {
            Some(&start) => self.data.facts_at(i, start),
            None => self.data.facts(i),
        }
    }

    /// Appends the JSON of conversation `i` as of `as_of` (`None`: final).
    pub(crate) fn write_conversation(&self, i: u64, as_of: Option<i64>, out: &mut Vec<u8>) {
        self.data.write_facts(&self.facts(i), as_of, out);
    }

    /// Whether conversation `i` was ever made (generated, arriving or inserted).
    pub(crate) fn made(&self, i: u64) -> bool {
        if i >= EXTRA_BASE {
            let overlay = self.overlay.lock().expect("overlay poisoned");
            ((i - EXTRA_BASE) as usize) < overlay.extra_starts.len()
        } else {
            i < self.data.index_space()
        }
    }

    /// Whether churn removed conversation `i`.
    pub(crate) fn removed(&self, i: u64) -> bool {
        let overlay = self.overlay.lock().expect("overlay poisoned");
        overlay.removed.contains(&i)
    }

    /// The conversations a selector picks now, and the moment to render them as of.
    pub(crate) fn select(&self, selector: &Selector) -> Snapshot {
        let as_of = self.as_of();
        let n = self.visible_at(as_of);
        let lo = self.data.lower_bound(selector.start_ms, n);
        let hi = self.data.lower_bound(selector.end_ms, n).max(lo);
        let selection = if self.churn {
            self.select_churned(selector, lo, hi, as_of)
        } else if !selector.has_filters() {
            Selection::Range { lo, hi }
        } else {
            self.cached((selector.clone(), n, 0, 0), || {
                (lo..hi)
                    .filter(|&i| selector.matches(&self.data, &self.data.facts(i)))
                    .map(|i| i as u32)
                    .collect()
            })
        };
        Snapshot { selection, as_of }
    }

    fn cached(
        &self,
        key: (Selector, u64, u64, i64),
        build: impl FnOnce() -> Vec<u32>,
    ) -> Selection {
        if let Some(hit) = self.cache.lock().expect("cache poisoned").get(&key) {
            return Selection::List(hit.clone());
        }
        let list = Arc::new(build());
        let mut cache = self.cache.lock().expect("cache poisoned");
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, list.clone());
        Selection::List(list)
    }

    /// Generated conversations `lo..hi` that are not removed, merged in start order with the
    /// inserted ones inside the interval (and started, with live data).
    fn select_churned(
        &self,
        selector: &Selector,
        lo: u64,
        hi: u64,
        as_of: Option<i64>,
    ) -> Selection {
        let overlay = self.overlay.lock().expect("overlay poisoned");
        let key = (
            selector.clone(),
            lo << 32 | hi,
            overlay.version,
            as_of.unwrap_or(0),
        );
        self.cached(key, || {
            let keep = |f: &Facts| !selector.has_filters() || selector.matches(&self.data, f);
            let last = selector
                .end_ms
                .min(as_of.map_or(i64::MAX, |t| t.saturating_add(1)));
            let mut extras = overlay
                .extras
                .range((selector.start_ms, 0)..(last.max(selector.start_ms), 0))
                .filter(|(start, i)| {
                    !overlay.removed.contains(i) && keep(&self.data.facts_at(*i, *start))
                })
                .peekable();
            let mut out = Vec::with_capacity((hi - lo) as usize);
            for i in lo..hi {
                if overlay.removed.contains(&i) {
                    continue;
                }
                let f = self.data.facts(i);
                if !keep(&f) {
                    continue;
                }
                while let Some(&&(start, x)) = extras.peek() {
                    if (start, x) > (f.start_ms, i) {
                        break;
                    }
                    out.push(x as u32);
                    extras.next();
                }
                out.push(i as u32);
            }
            out.extend(extras.map(|&(_, x)| x as u32));
            out
        })
    }

    /// Churn after one details page of `selector` was served from `snapshot`: record the
    /// first page's result set, insert and remove conversations as configured.
    pub(crate) fn after_page(&self, selector: &Selector, snapshot: &Snapshot) {
        if self.churn {
            let mut overlay = self.overlay.lock().expect("overlay poisoned");
            overlay.after_page(&self.config, selector, &snapshot.selection);
        }
    }

    /// What churn did so far.
    pub(crate) fn churn_truth(&self) -> ChurnTruth {
        let overlay = self.overlay.lock().expect("overlay poisoned");
        overlay.truth(&self.data)
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
