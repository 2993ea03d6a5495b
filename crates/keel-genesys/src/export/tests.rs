//! The engine against keel-sim over loopback, through an in-memory sink: exact, resumable
//! after a crash, and restarting a changed part begun by an earlier run without duplicates.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_sim::{Fault, SimHandle, Simulator};
use secrecy::SecretString;
use tokio::sync::Notify;

use super::{run, ExportError, ExportJob, Mode, Observer, Progress};
use crate::sink::{Commit, PageSink, SinkState};
use crate::{Client, ConversationQuery, Credentials, Environment, Error, Interval};

const INTERVAL: &str = "2026-01-01T00:00:00.000Z/2026-01-02T00:00:00.000Z";

/// What the memory "database" holds; it outlives each sink that opens it, like a file.
#[derive(Debug, Default)]
struct Stored {
    /// (id, start, JSON) in commit order.
    records: Vec<(String, time::OffsetDateTime, String)>,
    state: SinkState,
    commits: usize,
    committed_ids_calls: usize,
    closed: bool,
}

/// A sink over shared [`Stored`] state that tells `crash` after `crash_after` commits.
#[derive(Debug, Clone)]
struct Memory {
    stored: Arc<Mutex<Stored>>,
    crash_after: Option<usize>,
    crash: Arc<Notify>,
}

impl Memory {
    fn new(stored: &Arc<Mutex<Stored>>) -> Self {
        Memory {
            stored: stored.clone(),
            crash_after: None,
            crash: Arc::new(Notify::new()),
        }
    }
}

impl PageSink for Memory {
    type Error = std::convert::Infallible;

    async fn open(&mut self) -> Result<SinkState, Self::Error> {
        Ok(self.stored.lock().unwrap().state.clone())
    }

    async fn commit(&mut self, page: Commit<'_>) -> Result<(), Self::Error> {
        let mut s = self.stored.lock().unwrap();
        for r in page.records {
            s.records
                .push((r.id.clone(), r.start, r.raw.get().to_owned()));
        }
        s.state.resume = Some(page.resume.clone());
        s.state.pages += page.pages;
        s.state.conversations += page.records.len() as u64;
        s.commits += 1;
        if self.crash_after == Some(s.commits) {
            self.crash.notify_one();
        }
        Ok(())
    }

    async fn committed_ids(&mut self, part: Interval) -> Result<HashSet<String>, Self::Error> {
        let mut s = self.stored.lock().unwrap();
        s.committed_ids_calls += 1;
        let ids = s.records.iter().filter(|r| part.contains(r.1));
        Ok(ids.map(|r| r.0.clone()).collect())
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let mut s = self.stored.lock().unwrap();
        s.state.resume = None;
        s.closed = true;
        Ok(())
    }
}

fn client(sim: &SimHandle, page_size: u32) -> Client {
    let env = Environment::custom(&sim.base_url(), &sim.base_url()).unwrap();
    let creds = Credentials::new(
        sim.client_id(),
        SecretString::from(sim.client_secret().to_owned()),
    );
    Client::builder(env, creds)
        .page_size(page_size)
        .prefetch(1)
        .max_parallel_parts(1)
        .build()
        .unwrap()
}

fn job(mode: Mode) -> ExportJob {
    ExportJob::new(ConversationQuery::new(INTERVAL.parse().unwrap()), mode)
}

fn truth(sim: &SimHandle) -> Vec<String> {
    sim.ground_truth(&serde_json::json!({ "interval": INTERVAL }))
        .unwrap()
        .map(|r| r.to_string())
        .collect()
}

fn written(stored: &Arc<Mutex<Stored>>) -> Vec<String> {
    let s = stored.lock().unwrap();
    s.records.iter().map(|r| r.2.clone()).collect()
}

#[derive(Debug, Default)]
struct Seen {
    opened: Option<SinkState>,
    last: Progress,
    restarts: Vec<String>,
}

impl Observer for Seen {
    fn opened(&mut self, state: &SinkState) {
        self.opened = Some(state.clone());
    }
    fn committed(&mut self, progress: &Progress) {
        self.last = *progress;
    }
    fn restarting(&mut self, cause: &Error) {
        self.restarts.push(cause.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_export_commits_every_record_once_in_order_then_closes() {
    let sim = Simulator::builder()
        .conversations(230)
        .data_span(Duration::from_secs(86_400))
        .start()
        .await
        .unwrap();
    for mode in [Mode::Query, Mode::Jobs] {
        let stored = Arc::new(Mutex::new(Stored::default()));
        let mut seen = Seen::default();
        let done = run(
            &client(&sim, 50),
            &job(mode),
            &mut Memory::new(&stored),
            &mut seen,
        )
        .await
        .unwrap();
        assert_eq!(written(&stored), truth(&sim), "{mode}");
        let s = stored.lock().unwrap();
        assert!(s.closed && s.state.resume.is_none(), "{mode}");
        assert_eq!(done.conversations, 230);
        assert_eq!(done, seen.last);
        assert_eq!(done.pages, s.state.pages);
        if mode == Mode::Query {
            assert_eq!((done.pages, done.total_hits), (5, Some(230)));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_dropped_after_some_commits_resumes_with_every_record_once() {
    let sim = Simulator::builder()
        .conversations(300)
        .data_span(Duration::from_secs(86_400))
        .start()
        .await
        .unwrap();
    let stored = Arc::new(Mutex::new(Stored::default()));
    let client = client(&sim, 25);
    let mut sink = Memory::new(&stored);
    sink.crash_after = Some(5);
    let crash = sink.crash.clone();
    let job = job(Mode::Query);
    let mut quiet = ();
    tokio::select! {
        r = run(&client, &job, &mut sink, &mut quiet) => panic!("the run ended first: {r:?}"),
        () = crash.notified() => {} // the engine is dropped here, mid-export
    }
    let before = stored.lock().unwrap().records.len();
    assert_eq!(before, 125, "5 pages of 25 committed");

    let mut seen = Seen::default();
    let done = run(&client, &job, &mut Memory::new(&stored), &mut seen)
        .await
        .unwrap();
    let opened = seen.opened.unwrap();
    assert!(opened.resume.is_some());
    assert_eq!((opened.pages, opened.conversations), (5, 125));
    assert_eq!((done.conversations, done.resumed_conversations), (300, 125));
    assert_eq!(written(&stored), truth(&sim), "every record once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_begun_by_an_earlier_run_that_grows_is_read_on_in_order_with_the_sinks_ids() {
    // One part of 12 pages of 10, fetched one by one; page 4 is malformed on every attempt
    // (the first and its 2 decode retries), and once 4 pages were served 10 late
    // conversations appear in this part.
    let sim = Simulator::builder()
        .conversations(120)
        .data_span(Duration::from_secs(86_400))
        .late_conversations(10, 4)
        .faults((4..=6).map(|n| (n, Fault::MalformedJson)))
        .start()
        .await
        .unwrap();
    let stored = Arc::new(Mutex::new(Stored::default()));
    let client = client(&sim, 10);
    let job = job(Mode::Query);
    let first = run(&client, &job, &mut Memory::new(&stored), &mut ()).await;
    assert!(
        matches!(first, Err(ExportError::Client(Error::Decode { .. }))),
        "{first:?}"
    );
    assert_eq!(stored.lock().unwrap().records.len(), 30);
    assert_eq!(sim.visible_conversations(), 130, "the results changed");

    // NOTE: growth is no restart: even with none allowed, the part is read on in order.
    let mut seen = Seen::default();
    let done = run(
        &client,
        &job.max_restarts(0),
        &mut Memory::new(&stored),
        &mut seen,
    )
    .await
    .unwrap();
    assert!(seen.restarts.is_empty(), "{:?}", seen.restarts);
    assert_eq!(done.restarts, 0);
    assert_eq!(stored.lock().unwrap().committed_ids_calls, 1);
    assert_eq!(written(&stored), truth(&sim), "every record once, in order");
    assert_eq!((done.conversations, done.late_arrivals), (130, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_that_keeps_shrinking_stops_after_the_restarts_allowed_with_its_restart_point() {
    // After each page served, one conversation of the part is removed, 16 in all: the part's
    // worker reads it again a few times, then gives up; no restart is allowed.
    let sim = Simulator::builder()
        .conversations(120)
        .data_span(Duration::from_secs(86_400))
        .churn_removals_per_page(1)
        .churn_max_removals(16)
        .start()
        .await
        .unwrap();
    let initial = truth(&sim);
    let stored = Arc::new(Mutex::new(Stored::default()));
    let client = client(&sim, 10);
    let job = job(Mode::Query).max_restarts(0);
    let mut seen = Seen::default();
    let first = run(&client, &job, &mut Memory::new(&stored), &mut seen).await;
    let Err(ExportError::Client(e @ Error::ResultSetChanged { .. })) = &first else {
        panic!("{first:?}")
    };
    assert!(e.to_string().contains(INTERVAL), "names the interval: {e}");
    assert_eq!(seen.restarts.len(), 0, "no restart allowed");
    // The restart point is committed before stopping: it skips every record written.
    let s = stored.lock().unwrap().state.clone();
    let Some(crate::Checkpoint::Query(q)) = s.resume else {
        panic!("{s:?}")
    };
    let mut ids: Vec<String> = stored
        .lock()
        .unwrap()
        .records
        .iter()
        .map(|r| r.0.clone())
        .collect();
    ids.sort();
    assert_eq!((q.page_number, &q.skip_ids), (0, &ids));
    assert_once_each_not_removed(&sim, &initial, &stored, false);

    // Once the removals stop, a run with restarts allowed completes: nothing lost.
    run(
        &client,
        &job.max_restarts(3),
        &mut Memory::new(&stored),
        &mut (),
    )
    .await
    .unwrap();
    assert_eq!(sim.churn_truth().removed.len(), 16);
    assert_once_each_not_removed(&sim, &initial, &stored, true);
}

/// Asserts the stored records are each once, from `initial`, and (when `all`) hold every id
/// of `initial` churn never removed.
fn assert_once_each_not_removed(
    sim: &SimHandle,
    initial: &[String],
    stored: &Arc<Mutex<Stored>>,
    all: bool,
) {
    let id = |json: &str| {
        serde_json::from_str::<serde_json::Value>(json).unwrap()["conversationId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let initial: HashSet<String> = initial.iter().map(|j| id(j)).collect();
    let s = stored.lock().unwrap();
    let mut written = HashSet::new();
    for r in &s.records {
        assert!(written.insert(r.0.clone()), "{} written twice", r.0);
        assert!(initial.contains(&r.0), "{} was never in the results", r.0);
    }
    if all {
        let removed: HashSet<String> = sim.churn_truth().removed.into_iter().collect();
        let lost: Vec<&String> = initial
            .iter()
            .filter(|i| !removed.contains(*i) && !written.contains(*i))
            .collect();
        assert!(lost.is_empty(), "lost: {lost:?}");
    }
}

#[test]
fn the_engine_future_is_send_so_it_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let stored = Arc::new(Mutex::new(Stored::default()));
    let env = Environment::custom("http://127.0.0.1:9", "http://127.0.0.1:9").unwrap();
    let creds = Credentials::new("id", SecretString::from("secret"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let client = Client::builder(env, creds).build().unwrap();
    let job = job(Mode::Query);
    let mut sink = Memory::new(&stored);
    let mut observer = Seen::default();
    let observer: &mut dyn Observer = &mut observer;
    assert_send(&run(&client, &job, &mut sink, observer));
}

/// A sink that pipelines like a database sink writing on several connections: a page becomes
/// durable (reaches [`Memory`]) only at the next commit, flush or close.
#[derive(Debug)]
struct Pipelined {
    durable: Memory,
    pending: Option<(Vec<crate::sink::Record>, crate::Checkpoint, u64)>,
}

impl Pipelined {
    async fn settle(&mut self) {
        if let Some((records, resume, pages)) = self.pending.take() {
            let commit = Commit {
                records: &records,
                resume: &resume,
                pages,
            };
            self.durable.commit(commit).await.unwrap();
        }
    }
}

impl PageSink for Pipelined {
    type Error = std::convert::Infallible;

    async fn open(&mut self) -> Result<SinkState, Self::Error> {
        self.durable.open().await
    }

    async fn commit(&mut self, page: Commit<'_>) -> Result<(), Self::Error> {
        self.settle().await;
        let records = page
            .records
            .iter()
            .map(|r| crate::sink::Record {
                id: r.id.clone(),
                start: r.start,
                raw: r.raw.clone(),
            })
            .collect();
        self.pending = Some((records, page.resume.clone(), page.pages));
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.settle().await;
        Ok(())
    }

    async fn committed_ids(&mut self, part: Interval) -> Result<HashSet<String>, Self::Error> {
        self.settle().await;
        self.durable.committed_ids(part).await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.settle().await;
        self.durable.close().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_flushes_the_pages_a_pipelining_sink_accepted() {
    // Pages of 10; page 4 is malformed on every attempt, so the export stops after 3 pages.
    let sim = Simulator::builder()
        .conversations(120)
        .data_span(Duration::from_secs(86_400))
        .faults((4..=6).map(|n| (n, Fault::MalformedJson)))
        .start()
        .await
        .unwrap();
    let stored = Arc::new(Mutex::new(Stored::default()));
    let mut sink = Pipelined {
        durable: Memory::new(&stored),
        pending: None,
    };
    let mut seen = Seen::default();
    let first = run(&client(&sim, 10), &job(Mode::Query), &mut sink, &mut seen).await;
    assert!(
        matches!(first, Err(ExportError::Client(Error::Decode { .. }))),
        "{first:?}"
    );
    assert!(sink.pending.is_none(), "the accepted page was flushed");
    let s = stored.lock().unwrap();
    assert_eq!((s.state.pages, s.records.len()), (3, 30));
    assert_eq!(seen.last.conversations, 30);
}
