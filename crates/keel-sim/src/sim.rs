//! [`Simulator`], its builder, and the running [`SimHandle`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::churn::ChurnTruth;
use crate::config::{ClientSecret, Fault, RetryAfterFormat, SimConfig};
use crate::query::{DetailsQuery, QueryError};
use crate::server::accept_loop;
use crate::state::{Selection, State};
use crate::stats::{ClientStats, SimStats};

/// Error starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listening socket could not be bound.
    #[error("keel-sim could not listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration is inconsistent.
    #[error("invalid keel-sim configuration: {0}")]
    Config(String),
}

/// Entry point: `Simulator::builder()…start().await`.
#[derive(Debug, Clone, Copy)]
pub struct Simulator;

impl Simulator {
    /// A builder with [`SimConfig::default`].
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }

    /// Starts a simulator with this configuration.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        SimBuilder { config }.start().await
    }
}

/// Builder of a [`SimConfig`]; each setter documents its field on [`SimConfig`].
#[derive(Debug, Clone, Default)]
pub struct SimBuilder {
    config: SimConfig,
}

impl From<SimConfig> for SimBuilder {
    fn from(config: SimConfig) -> Self {
        Self { config }
    }
}

macro_rules! setters {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty => |$c:ident, $v:ident| $body:expr ;)*) => {
        impl SimBuilder {
            $(
                $(#[$doc])*
                pub fn $name(mut self, $v: $ty) -> Self {
                    let $c = &mut self.config;
                    $body;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Address to listen on (default `127.0.0.1:0`).
    bind: SocketAddr => |c, v| c.bind = v;
    /// Conversations visible from the start.
    conversations: u64 => |c, v| c.conversations = v;
    /// Seed of the data and of random faults.
    seed: u64 => |c, v| c.seed = v;
    /// Start of the data, Unix milliseconds.
    data_start_ms: i64 => |c, v| c.data_start_ms = v;
    /// Time span the data covers.
    data_span: Duration => |c, v| c.data_span = v;
    /// Users served by `GET /api/v2/users`.
    users: u64 => |c, v| c.users = v;
    /// Advertised (and real) token lifetime.
    token_lifetime: Duration => |c, v| c.token_lifetime = v;
    /// Revoke tokens this long after issue.
    revoke_after: Duration => |c, v| c.revoke_after = Some(v);
    /// Revoke each token after this many authenticated API requests.
    revoke_after_requests: u64 => |c, v| c.revoke_after_requests = Some(v);
    /// Rate limit, requests per second (token bucket).
    rate_limit_per_sec: u32 => |c, v| c.rate_limit_per_sec = Some(v);
    /// Bucket size of the rate limit.
    rate_limit_burst: u32 => |c, v| c.rate_limit_burst = Some(v);
    /// Form of `Retry-After`.
    retry_after_format: RetryAfterFormat => |c, v| c.retry_after_format = v;
    /// Probability of a 503 per API request.
    unavailable_probability: f64 => |c, v| c.unavailable_probability = v;
    /// Every 503 carries `Retry-After` of this many seconds.
    unavailable_retry_after_secs: u64 => |c, v| c.unavailable_retry_after_secs = Some(v);
    /// Probability of a dropped connection per API request.
    drop_probability: f64 => |c, v| c.drop_probability = v;
    /// Latency added to every page.
    page_latency: Duration => |c, v| c.page_latency = v;
    /// The token endpoint answers 503 to its first N requests.
    token_outage_requests: u64 => |c, v| c.token_outage_requests = v;
    /// The token endpoint answers 503 for this long after start.
    token_outage_for: Duration => |c, v| c.token_outage_for = v;
    /// Time a job stays QUEUED.
    job_delay: Duration => |c, v| c.job_delay = v;
    /// Time after which a job is forgotten.
    job_ttl: Duration => |c, v| c.job_ttl = v;
    /// New conversations inserted inside the queried interval after each details page.
    churn_inserts_per_page: u64 => |c, v| c.churn_inserts_per_page = v;
    /// Conversations of the queried result set removed after each details page.
    churn_removals_per_page: u64 => |c, v| c.churn_removals_per_page = v;
    /// Stop inserting after this many insertions in all.
    churn_max_inserts: u64 => |c, v| c.churn_max_inserts = Some(v);
    /// Stop removing after this many removals in all.
    churn_max_removals: u64 => |c, v| c.churn_max_removals = Some(v);
    /// Churn only after each of the first P details pages.
    churn_pages: u64 => |c, v| c.churn_pages = Some(v);
    /// Live data on or off (also turned on by `clock_at_ms` and `arrivals_per_minute`).
    live: bool => |c, v| c.live = v;
    /// Live data, with the simulator clock frozen at this Unix time (ms) until moved.
    clock_at_ms: i64 => |c, v| { c.live = true; c.clock_start_ms = Some(v) };
    /// Live data, with new conversations arriving after the data span at this rate per minute.
    arrivals_per_minute: f64 => |c, v| { c.live = true; c.arrivals_per_minute = Some(v) };
}

impl SimBuilder {
    /// Accepted client credentials.
    pub fn credentials(mut self, client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.config.client_id = client_id.into();
        self.config.client_secret = ClientSecret::new(secret);
        self
    }

    /// Accepts one more OAuth client (its own rate-limit bucket and counters).
    pub fn client(mut self, client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.config
            .extra_clients
            .push((client_id.into(), ClientSecret::new(secret)));
        self
    }

    /// Injects `fault` on the `request`-th API request (1-based).
    pub fn fault(mut self, request: u64, fault: Fault) -> Self {
        self.config.faults.insert(request, fault);
        self
    }

    /// Injects several scripted faults.
    pub fn faults(mut self, faults: impl IntoIterator<Item = (u64, Fault)>) -> Self {
        self.config.faults.extend(faults);
        self
    }

    /// `extra` conversations (the latest starts) appear once `after_pages` details pages
    /// have been served.
    pub fn late_conversations(mut self, extra: u64, after_pages: u64) -> Self {
        self.config.late_conversations = extra;
        self.config.late_after_pages = after_pages;
        self
    }

    /// The `job`-th job created (1-based) ends FAILED.
    pub fn failing_job(mut self, job: u64) -> Self {
        self.config.failing_jobs.push(job);
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Binds the socket and starts serving.
    ///
    /// # Errors
    /// [`SimError::Bind`] if the address cannot be bound, [`SimError::Config`] for
    /// probabilities outside `0..=1`, more than 3·2³⁰ conversations, a client id given twice,
    /// an arrival rate below 0.001 per minute, or arrivals with late conversations.
    pub async fn start(self) -> Result<SimHandle, SimError> {
        let c = self.config;
        for (name, p) in [
            ("unavailable_probability", c.unavailable_probability),
            ("drop_probability", c.drop_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(SimError::Config(format!("{name} must be within 0..=1")));
            }
        }
        if c.conversations + c.late_conversations > crate::state::EXTRA_BASE {
            return Err(SimError::Config("too many conversations".into()));
        }
        let mut ids: Vec<&str> = std::iter::once(c.client_id.as_str())
            .chain(c.extra_clients.iter().map(|(id, _)| id.as_str()))
            .collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(SimError::Config("a client id is configured twice".into()));
        }
        if let Some(rate) = c.arrivals_per_minute {
            if !(rate.is_finite() && rate >= 0.001) {
                return Err(SimError::Config(
                    "arrivals_per_minute must be a number of at least 0.001".into(),
                ));
            }
            if c.late_conversations > 0 {
                return Err(SimError::Config(
                    "arrivals cannot be combined with late conversations".into(),
                ));
            }
        }
        let addr = c.bind;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let state = Arc::new(State::new(c));
        let (shutdown, rx) = watch::channel(());
        let task = tokio::spawn(accept_loop(listener, state.clone(), rx));
        Ok(SimHandle {
            addr: local,
            state,
            shutdown,
            task: Some(task),
        })
    }
}

/// A running simulator. Dropping it stops the server (like [`SimHandle::shutdown`], without
/// waiting).
pub struct SimHandle {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<()>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: serves both `/oauth/token` and `/api/…`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/oauth/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base_url())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimConfig {
        &self.state.config
    }

    /// The accepted client id.
    pub fn client_id(&self) -> &str {
        &self.state.config.client_id
    }

    /// The accepted client secret.
    pub fn client_secret(&self) -> &str {
        self.state.config.client_secret.expose()
    }

    /// A snapshot of the counters (with every client's, see [`SimStats::clients`]).
    pub fn stats(&self) -> SimStats {
        self.state.snapshot()
    }

    /// The counters of one OAuth client, if it is configured.
    pub fn client_stats(&self, client_id: &str) -> Option<ClientStats> {
        self.state
            .clients
            .iter()
            .find(|c| c.id == client_id)
            .map(|c| c.counters.snapshot())
    }

    /// Generated conversations visible now (grows once late conversations appear; with live
    /// data, those started by [`SimHandle::now_ms`]); inserted and removed ones not counted.
    pub fn visible_conversations(&self) -> u64 {
        self.state.visible()
    }

    /// The exact JSON the simulator serves for conversation `index` in its final state
    /// (0-based, in `conversationStart` order; inserted conversations have the indices churn
    /// gave them), as a canonical compact string: keys sorted at every level, so
    /// `serde_json::Value` round-trips it byte for byte.
    pub fn conversation_json(&self, index: u64) -> String {
        let mut out = Vec::with_capacity(3_000);
        self.state.write_conversation(index, None, &mut out);
        String::from_utf8(out).expect("generated JSON is UTF-8")
    }

    /// The `conversationId` of conversation `index`.
    pub fn conversation_id(&self, index: u64) -> String {
        self.state.data.conversation_id(index)
    }

    /// The index of the conversation with this `conversationId` (generated or inserted, even
    /// if removed or not started yet), if the simulator ever made it.
    pub fn conversation_index(&self, conversation_id: &str) -> Option<u64> {
        let i = self.state.data.index_of(conversation_id)?;
        self.state.made(i).then_some(i)
    }

    /// What the API holds for this conversation right now: its JSON as of
    /// [`SimHandle::now_ms`] with live data (final once ended), its final JSON otherwise;
    /// `None` when it is unknown, removed by churn, not visible yet (late conversations) or
    /// (live data) not started yet.
    pub fn conversation_json_now(&self, conversation_id: &str) -> Option<String> {
        let i = self.state.data.index_of(conversation_id)?;
        if !self.state.made(i) || self.state.removed(i) {
            return None;
        }
        let as_of = self.state.as_of();
        let f = self.state.facts(i);
        let hidden = if i < crate::state::EXTRA_BASE {
            i >= self.state.visible_at(as_of)
        } else {
            as_of.is_some_and(|now| f.start_ms > now)
        };
        if hidden {
            return None;
        }
        let mut out = Vec::with_capacity(3_000);
        self.state.data.write_facts(&f, as_of, &mut out);
        Some(String::from_utf8(out).expect("generated JSON is UTF-8"))
    }

    /// The simulator clock, Unix milliseconds (real time unless set or advanced). Live data
    /// ([`SimConfig::live`]) is served as of this moment.
    pub fn now_ms(&self) -> i64 {
        self.state.clock.now_ms()
    }

    /// Moves the simulator clock forward (a real-time clock keeps ticking from there); returns
    /// the new time. Conversations that end in between reach their final state, and new ones
    /// that start appear.
    pub fn advance(&self, by: Duration) -> i64 {
        self.state.clock.advance(by)
    }

    /// Freezes the simulator clock at `unix_ms` (moving it back hides what started since).
    pub fn set_now_ms(&self, unix_ms: i64) {
        self.state.clock.set(unix_ms);
    }

    /// What churn ([`SimConfig::churn_inserts_per_page`], …) did so far.
    pub fn churn_truth(&self) -> ChurnTruth {
        self.state.churn_truth()
    }

    /// What a complete export of `query` (a details-query or job body; paging is ignored)
    /// must contain right now, in the order the simulator serves it: one canonical JSON
    /// string per conversation (see [`SimHandle::conversation_json`]; with live data, as of
    /// [`SimHandle::now_ms`], like [`SimHandle::conversation_json_now`]). Churn's insertions
    /// and removals so far are included.
    ///
    /// # Errors
    /// The same [`QueryError`] the API would answer 400 with.
    pub fn ground_truth(&self, query: &serde_json::Value) -> Result<GroundTruth, QueryError> {
        let body = serde_json::to_vec(query).expect("a Value serialises");
        let q = DetailsQuery::parse(&body, false)?;
        let snapshot = self.state.select(&q.selector);
        Ok(GroundTruth {
            state: self.state.clone(),
            end: snapshot.selection.len(),
            selection: snapshot.selection,
            as_of: snapshot.as_of,
            descending: q.descending,
            next: 0,
        })
    }

    /// Revokes every token issued so far (their next use gets 401).
    pub fn revoke_all_tokens(&self) {
        self.state.tokens.revoke_all();
    }

    /// Stops accepting, closes every connection and waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(());
    }
}

/// Iterator over the canonical JSON of the conversations a query selects
/// ([`SimHandle::ground_truth`]).
pub struct GroundTruth {
    state: Arc<State>,
    selection: Selection,
    as_of: Option<i64>,
    descending: bool,
    next: u64,
    end: u64,
}

impl fmt::Debug for GroundTruth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroundTruth")
            .field("remaining", &(self.end - self.next))
            .finish()
    }
}

impl GroundTruth {
    /// Index (in start order) of each remaining conversation, without building JSON.
    pub fn indices(self) -> impl Iterator<Item = u64> {
        let (sel, desc) = (self.selection, self.descending);
        (self.next..self.end).map(move |k| sel.get(k, desc))
    }
}

impl Iterator for GroundTruth {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.next >= self.end {
            return None;
        }
        let i = self.selection.get(self.next, self.descending);
        self.next += 1;
        let mut out = Vec::with_capacity(3_000);
        self.state.write_conversation(i, self.as_of, &mut out);
        Some(String::from_utf8(out).expect("generated JSON is UTF-8"))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.end - self.next) as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for GroundTruth {}
