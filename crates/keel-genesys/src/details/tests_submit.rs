//! A job submission against keel-sim: sent again freely where the server provably did not act
//! on it, at most once (with a WARN) after an ambiguous failure; polls and results retried.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt;
use http::StatusCode;
use keel_sim::{Fault, SimHandle, Simulator};
use secrecy::SecretString;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use super::DetailsPage;
use crate::{Client, ClientBuilder, ConversationQuery, Credentials, Environment, Error};

const DAY: &str = "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z";

/// Every WARN and INFO message logged, and a channel of each one as it happens.
#[derive(Clone)]
struct Capture {
    seen: Arc<Mutex<Vec<(Level, String)>>>,
    tx: mpsc::UnboundedSender<String>,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::INFO {
            return;
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        self.seen.lock().unwrap().push((level, m.0.clone()));
        let _ = self.tx.send(m.0);
    }
}

impl Capture {
    /// Installs a capture for this thread (the tests run on a current-thread runtime).
    fn install() -> (
        Self,
        mpsc::UnboundedReceiver<String>,
        tracing::subscriber::DefaultGuard,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let capture = Capture {
            seen: Arc::default(),
            tx,
        };
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        (capture, rx, tracing::subscriber::set_default(subscriber))
    }

    fn warnings(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(l, _)| *l == Level::WARN)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

fn builder(sim: &SimHandle, api: &str) -> ClientBuilder {
    let env = Environment::custom(api, &sim.base_url()).unwrap();
    let creds = Credentials::new(sim.client_id(), SecretString::from(sim.client_secret()));
    Client::builder(env, creds).job_polling(
        Duration::from_millis(5),
        Duration::from_millis(20),
        Duration::from_secs(30),
    )
}

async fn sim(faults: impl IntoIterator<Item = (u64, Fault)>) -> SimHandle {
    Simulator::builder()
        .conversations(300)
        .seed(21)
        .faults(faults)
        .start()
        .await
        .unwrap()
}

fn query() -> ConversationQuery {
    ConversationQuery::new(DAY.parse().unwrap())
}

async fn export(client: &Client) -> Result<Vec<DetailsPage>, Error> {
    client.conversation_details_job(query()).try_collect().await
}

fn assert_exact(sim: &SimHandle, pages: &[DetailsPage]) {
    let got: Vec<String> = pages
        .iter()
        .flat_map(|p| p.conversations.iter().map(|c| c.get().to_owned()))
        .collect();
    let want: Vec<String> = sim
        .ground_truth(&serde_json::to_value(query()).unwrap())
        .unwrap()
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

fn is_warning_of_a_second_job(m: &str) -> bool {
    m.contains("may have reached the server") && m.contains("started it twice")
}

#[tokio::test(start_paused = true)]
async fn a_submission_answered_429_or_503_is_sent_again_and_starts_one_job() {
    let sim = sim([
        (
            1,
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        ),
        (2, Fault::Unavailable),
    ])
    .await;
    let (capture, _rx, _guard) = Capture::install();
    let client = builder(&sim, &sim.base_url()).build().unwrap();
    assert_exact(&sim, &export(&client).await.unwrap());
    assert_eq!(sim.stats().jobs_created, 1);
    assert_eq!(sim.stats().rate_limited + sim.stats().unavailable, 2);
    assert_eq!(capture.warnings(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn a_submission_whose_connection_is_refused_is_sent_again_and_starts_one_job() {
    let sim = sim([]).await;
    // The API is reached through a forwarder on a port nobody listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (capture, mut rx, _guard) = Capture::install();
    let client = builder(&sim, &format!("http://127.0.0.1:{port}"))
        .build()
        .unwrap();
    let run = tokio::spawn({
        let client = client.clone();
        async move { export(&client).await }
    });
    let refused = async {
        while let Some(m) = rx.recv().await {
            if m.contains("did not reach the server") {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(600), refused)
        .await
        .expect("a refused submission is logged and waited on before it is sent again");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let upstream = sim.addr();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut up = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    assert_exact(&sim, &run.await.unwrap().unwrap());
    assert_eq!(sim.stats().jobs_created, 1);
    assert_eq!(capture.warnings(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn a_reset_after_the_server_acted_is_sent_once_more_with_a_warning() {
    let sim = sim([(1, Fault::DropAfter)]).await;
    let (capture, _rx, _guard) = Capture::install();
    let client = builder(&sim, &sim.base_url()).build().unwrap();
    assert_exact(&sim, &export(&client).await.unwrap());
    assert_eq!(
        sim.stats().jobs_created,
        2,
        "the server saw both submissions"
    );
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(is_warning_of_a_second_job(&warnings[0]), "{warnings:?}");
}

#[tokio::test(start_paused = true)]
async fn two_resets_after_the_server_acted_end_the_export_after_two_submissions() {
    let sim = sim([(1, Fault::DropAfter), (2, Fault::DropAfter)]).await;
    let (capture, _rx, _guard) = Capture::install();
    let client = builder(&sim, &sim.base_url()).build().unwrap();
    let err = export(&client).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(sim.stats().jobs_created, 2);
    assert_eq!(sim.stats().api_requests, 2, "nothing polled or sent after");
    assert_eq!(capture.warnings().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn gateway_errors_after_the_server_acted_allow_one_more_submission_only() {
    let sim = sim([(1, Fault::StatusAfter(502)), (2, Fault::StatusAfter(504))]).await;
    let (capture, _rx, _guard) = Capture::install();
    let client = builder(&sim, &sim.base_url()).build().unwrap();
    let err = export(&client).await.unwrap_err();
    assert!(
        matches!(err, Error::Api { status, .. } if status == StatusCode::GATEWAY_TIMEOUT),
        "{err:?}"
    );
    assert_eq!(sim.stats().jobs_created, 2);
    assert_eq!(capture.warnings().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn timeouts_after_the_server_acted_allow_one_more_submission_only() {
    let slow = Fault::DelayAfter(Duration::from_secs(120));
    let sim = sim([(1, slow), (2, slow)]).await;
    let (capture, _rx, _guard) = Capture::install();
    let client = builder(&sim, &sim.base_url())
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let err = export(&client).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(sim.stats().jobs_created, 2);
    assert_eq!(capture.warnings().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn polls_and_result_pages_keep_their_retries() {
    // Request 1 submits; 2.. poll and page the results, each failing once ambiguously.
    let sim = sim([
        (2, Fault::DropAfter),
        (3, Fault::StatusAfter(502)),
        (5, Fault::Drop),
        (6, Fault::StatusAfter(504)),
    ])
    .await;
    let (capture, _rx, _guard) = Capture::install();
    let client = builder(&sim, &sim.base_url())
        .job_page_size(100)
        .build()
        .unwrap();
    assert_exact(&sim, &export(&client).await.unwrap());
    assert_eq!(sim.stats().jobs_created, 1);
    assert!(sim.stats().dropped >= 2 && sim.stats().other_errors >= 2);
    assert!(!capture
        .warnings()
        .iter()
        .any(|m| is_warning_of_a_second_job(m)));
}
