//! Exports against keel-sim over loopback HTTP: every record exactly once, in order.

use std::time::Duration;

use futures_util::TryStreamExt;
use keel_sim::{Fault, SimHandle, Simulator};
use secrecy::SecretString;

use super::{Checkpoint, DetailsPage, SplitPolicy, MAX_RESULTS};
use crate::{Client, ClientBuilder, ConversationQuery, Credentials, Environment, Error, Interval};

const WEEK: &str = "2026-01-01T00:00:00Z/2026-01-08T00:00:00Z";

fn builder(sim: &SimHandle) -> ClientBuilder {
    let env = Environment::custom(&sim.base_url(), &sim.base_url()).unwrap();
    let creds = Credentials::new(sim.client_id(), SecretString::from(sim.client_secret()));
    Client::builder(env, creds)
}

/// A client that polls job status every few milliseconds, for the simulator's quick jobs.
fn jobs_builder(sim: &SimHandle) -> ClientBuilder {
    builder(sim).job_polling(
        Duration::from_millis(5),
        Duration::from_millis(20),
        Duration::from_secs(30),
    )
}

fn truth(sim: &SimHandle, query: &ConversationQuery) -> Vec<String> {
    sim.ground_truth(&serde_json::to_value(query).unwrap())
        .unwrap()
        .collect()
}

fn records(pages: &[DetailsPage]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.conversations.iter().map(|c| c.get().to_owned()))
        .collect()
}

fn query(interval: &str) -> ConversationQuery {
    ConversationQuery::new(interval.parse::<Interval>().unwrap())
}

#[tokio::test]
async fn a_split_parallel_prefetched_export_equals_ground_truth_in_order() {
    let sim = Simulator::builder()
        .conversations(2_000)
        .seed(1)
        .start()
        .await
        .unwrap();
    let client = builder(&sim)
        .page_size(50)
        .prefetch(4)
        .max_parallel_parts(3)
        .build()
        .unwrap();
    let q = query(WEEK);
    let pages: Vec<DetailsPage> = client
        .conversation_details(q.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records(&pages), truth(&sim, &q));
    assert_eq!(
        pages.len() as u64,
        sim.stats().pages_served,
        "no page fetched twice"
    );
    // checkpoints walk the days in order, pages in order within a day
    let mut last: Option<(u64, u32)> = None;
    for p in &pages {
        let Checkpoint::Query(cp) = &p.checkpoint else {
            panic!()
        };
        assert_eq!(cp.part.duration(), Duration::from_secs(86_400));
        assert_eq!(cp.query_interval, q.interval);
        let now = (cp.part_index, cp.page_number);
        if let Some(prev) = last {
            assert!(now > prev, "{prev:?} then {now:?}");
        }
        last = Some(now);
    }
    assert_eq!(last.unwrap().0, 6, "seven daily parts");
}

#[tokio::test]
async fn filters_reach_the_api_and_match_ground_truth() {
    let sim = Simulator::builder()
        .conversations(600)
        .seed(2)
        .start()
        .await
        .unwrap();
    let client = builder(&sim).build().unwrap();
    let q = query(WEEK)
        .media_type("voice")
        .originating_direction("inbound");
    let got = records(
        &client
            .conversation_details(q.clone())
            .try_collect::<Vec<_>>()
            .await
            .unwrap(),
    );
    let want = truth(&sim, &q);
    assert_eq!(got, want);
    assert!(
        !want.is_empty() && want.len() < 600,
        "the filter selects some: {}",
        want.len()
    );
}

#[tokio::test]
async fn parts_over_the_result_limit_are_halved_and_still_exact() {
    let sim = Simulator::builder()
        .conversations(3_000)
        .seed(3)
        .start()
        .await
        .unwrap();
    let policy = SplitPolicy {
        max_part: None,
        max_results: 400,
    };
    let client = builder(&sim)
        .page_size(100)
        .split_policy(policy)
        .max_parallel_parts(2)
        .build()
        .unwrap();
    let q = query(WEEK);
    let pages: Vec<DetailsPage> = client
        .conversation_details(q.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records(&pages), truth(&sim, &q));
    let mut parts: Vec<Interval> = pages
        .iter()
        .map(|p| match &p.checkpoint {
            Checkpoint::Query(cp) => cp.part,
            _ => panic!(),
        })
        .collect();
    parts.dedup();
    assert!(
        parts.len() >= 8,
        "3000 records in parts of at most 400: {}",
        parts.len()
    );
    assert!(pages.iter().all(|p| p.total_hits.unwrap() <= 400));
    for w in parts.windows(2) {
        assert_eq!(w[0].end(), w[1].start());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_one_hundred_thousand_hits_are_split_and_exported_exactly() {
    let sim = Simulator::builder()
        .conversations(100_500)
        .seed(4)
        .start()
        .await
        .unwrap();
    // NOTE: parts as large as the API allows, so the halving is for its 100,000 limit.
    let policy = SplitPolicy {
        max_part: None,
        max_results: MAX_RESULTS,
    };
    let client = builder(&sim)
        .prefetch(4)
        .max_parallel_parts(2)
        .split_policy(policy)
        .build()
        .unwrap();
    let q = query(WEEK);
    // NOTE: compared record by record as they stream: 100k records are not held in memory.
    let mut want = sim
        .ground_truth(&serde_json::to_value(&q).unwrap())
        .unwrap();
    let mut export = client.conversation_details(q.clone());
    let (mut n, mut parts) = (0u64, Vec::<Interval>::new());
    while let Some(page) = export.try_next().await.unwrap() {
        let Checkpoint::Query(cp) = &page.checkpoint else {
            panic!()
        };
        if parts.last() != Some(&cp.part) {
            parts.push(cp.part);
        }
        assert!(page.total_hits.unwrap() <= 100_000);
        for c in &page.conversations {
            assert_eq!(Some(c.get()), want.next().as_deref(), "record {n}");
            n += 1;
        }
    }
    assert_eq!(want.next(), None, "records missing after {n}");
    assert_eq!(n, 100_500);
    assert_eq!(parts.len(), 2, "halved once: {parts:?}");
    assert_eq!(parts[0].start(), q.interval.start());
    assert_eq!(parts[0].end(), parts[1].start());
    assert_eq!(parts[1].end(), q.interval.end());
    assert_eq!(
        sim.stats().bad_requests,
        0,
        "never asked past 100,000 results"
    );
}

#[tokio::test]
async fn resuming_after_a_checkpoint_continues_with_the_next_page() {
    let sim = Simulator::builder()
        .conversations(900)
        .seed(5)
        .start()
        .await
        .unwrap();
    let client = builder(&sim).page_size(40).prefetch(3).build().unwrap();
    let q = query(WEEK);
    let mut export = client.conversation_details(q.clone());
    let mut first_run = Vec::new();
    for _ in 0..9 {
        first_run.push(export.try_next().await.unwrap().unwrap());
    }
    drop(export);
    let cp = first_run.last().unwrap().checkpoint.clone();
    let json = serde_json::to_string(&cp).unwrap();
    let cp: Checkpoint = serde_json::from_str(&json).unwrap();
    let rest: Vec<DetailsPage> = client
        .conversation_details(q.clone())
        .resume_after(cp)
        .try_collect()
        .await
        .unwrap();
    let mut all = records(&first_run);
    all.extend(records(&rest));
    assert_eq!(all, truth(&sim, &q));

    let served = sim.stats().pages_served;
    let done = rest.last().unwrap().checkpoint.clone();
    let nothing: Vec<DetailsPage> = client
        .conversation_details(q)
        .resume_after(done)
        .try_collect()
        .await
        .unwrap();
    assert!(nothing.is_empty());
    assert_eq!(
        sim.stats().pages_served,
        served,
        "a finished export asks nothing"
    );
}

#[tokio::test]
async fn a_checkpoint_of_another_export_is_refused() {
    let sim = Simulator::builder()
        .conversations(10)
        .start()
        .await
        .unwrap();
    let client = builder(&sim).build().unwrap();
    let q = query(WEEK);
    let page = client
        .conversation_details(q.clone())
        .try_next()
        .await
        .unwrap()
        .unwrap();
    let other = query("2026-01-01T00:00:00Z/2026-01-02T00:00:00Z");
    let err = client
        .conversation_details(other)
        .resume_after(page.checkpoint.clone())
        .try_next()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    let err = client
        .conversation_details_job(q)
        .resume_after(page.checkpoint)
        .try_next()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test]
async fn results_that_grow_mid_part_restart_the_part_without_duplicates() {
    let sim = Simulator::builder()
        .conversations(500)
        .late_conversations(37, 3)
        .seed(6)
        .start()
        .await
        .unwrap();
    let policy = SplitPolicy {
        max_part: None,
        ..SplitPolicy::default()
    };
    let client = builder(&sim)
        .page_size(50)
        .prefetch(1)
        .split_policy(policy)
        .build()
        .unwrap();
    let q = query(WEEK);
    let got = records(
        &client
            .conversation_details(q.clone())
            .try_collect::<Vec<_>>()
            .await
            .unwrap(),
    );
    let want = truth(&sim, &q);
    assert_eq!(want.len(), 537);
    let mut sorted_got = got.clone();
    sorted_got.sort();
    sorted_got.dedup();
    assert_eq!(sorted_got.len(), got.len(), "no duplicates");
    let mut sorted_want = want;
    sorted_want.sort();
    assert_eq!(sorted_got, sorted_want);
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_and_the_page_replayed() {
    let sim = Simulator::builder()
        .conversations(700)
        .revoke_after_requests(4)
        .seed(7)
        .start()
        .await
        .unwrap();
    let client = builder(&sim)
        .page_size(100)
        .max_parallel_parts(1)
        .prefetch(1)
        .build()
        .unwrap();
    let q = query(WEEK);
    let got = records(
        &client
            .conversation_details(q.clone())
            .try_collect::<Vec<_>>()
            .await
            .unwrap(),
    );
    assert_eq!(got, truth(&sim, &q));
    let stats = client.stats();
    assert!(stats.replays_401 >= 1, "{stats:?}");
    assert!(stats.token_fetches >= 2, "{stats:?}");
    assert_eq!(stats.token_failures, 0);
}

#[tokio::test]
async fn throttling_unavailability_and_dropped_connections_are_ridden_out() {
    let sim = Simulator::builder()
        .conversations(300)
        .seed(8)
        .faults([
            (
                2,
                Fault::TooManyRequests {
                    retry_after_secs: 1,
                },
            ),
            (4, Fault::Unavailable),
            (6, Fault::Drop),
        ])
        .start()
        .await
        .unwrap();
    let client = builder(&sim)
        .page_size(50)
        .max_parallel_parts(1)
        .prefetch(1)
        .build()
        .unwrap();
    let q = query(WEEK);
    let got = records(
        &client
            .conversation_details(q.clone())
            .try_collect::<Vec<_>>()
            .await
            .unwrap(),
    );
    assert_eq!(got, truth(&sim, &q));
    let stats = client.stats();
    assert_eq!(stats.waits_429, 1, "{stats:?}");
    assert!(stats.other_retries >= 2, "{stats:?}");
}

/// A details export of 500 conversations in pages of 50, one page at a time from one part,
/// so scripted faults land on known pages.
fn one_part_one_page_at_a_time(sim: &SimHandle) -> Client {
    let policy = SplitPolicy {
        max_part: None,
        ..SplitPolicy::default()
    };
    builder(sim)
        .page_size(50)
        .prefetch(1)
        .split_policy(policy)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_page_malformed_once_is_fetched_again_and_the_export_is_exact() {
    let sim = Simulator::builder()
        .conversations(500)
        .seed(9)
        .fault(3, Fault::MalformedJson)
        .start()
        .await
        .unwrap();
    let client = one_part_one_page_at_a_time(&sim);
    let q = query(WEEK);
    let pages: Vec<DetailsPage> = client
        .conversation_details(q.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records(&pages), truth(&sim, &q));
    assert_eq!(sim.stats().malformed, 1);
    assert_eq!(client.stats().decode_retries, 1, "{:?}", client.stats());
}

#[tokio::test]
async fn a_page_malformed_on_every_attempt_ends_the_stream_after_the_pages_before_it() {
    // Page 3 is request 3; it and its two retries (requests 4 and 5) are all malformed.
    let sim = Simulator::builder()
        .conversations(500)
        .seed(9)
        .faults((3..=5).map(|n| (n, Fault::MalformedJson)))
        .start()
        .await
        .unwrap();
    let client = one_part_one_page_at_a_time(&sim);
    let q = query(WEEK);
    let mut export = client.conversation_details(q.clone());
    let mut pages = Vec::new();
    let err = loop {
        match export.try_next().await {
            Ok(Some(p)) => pages.push(p),
            Ok(None) => panic!("the malformed page was not noticed"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    assert_eq!(pages.len(), 2);
    let want: Vec<String> = truth(&sim, &q).into_iter().take(100).collect();
    assert_eq!(records(&pages), want);
    assert!(
        export.try_next().await.unwrap().is_none(),
        "the stream ends after the error"
    );
    assert_eq!(sim.stats().malformed, 3);
    assert_eq!(client.stats().decode_retries, 2);
}

#[tokio::test]
async fn jobs_mode_fetches_a_malformed_status_or_result_page_again() {
    // Requests: 1 submit, then status polls and result pages; every other one is malformed.
    let sim = Simulator::builder()
        .conversations(300)
        .seed(10)
        .faults([2, 4, 6].map(|n| (n, Fault::MalformedJson)))
        .start()
        .await
        .unwrap();
    let client = jobs_builder(&sim).job_page_size(100).build().unwrap();
    let q = query(WEEK);
    let pages: Vec<DetailsPage> = client
        .conversation_details_job(q.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records(&pages), truth(&sim, &q));
    assert_eq!(sim.stats().malformed, 3);
    assert_eq!(client.stats().decode_retries, 3);
}

#[tokio::test]
async fn rejected_credentials_name_the_client_id_and_never_the_secret() {
    let sim = Simulator::builder()
        .conversations(10)
        .start()
        .await
        .unwrap();
    let env = Environment::custom(&sim.base_url(), &sim.base_url()).unwrap();
    let creds = Credentials::new("sim-client", SecretString::from("wrong-s3cret-value"));
    let client = Client::builder(env, creds).build().unwrap();
    let err = client
        .conversation_details(query(WEEK))
        .try_next()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Credentials { client_id, .. } if client_id == "sim-client"),
        "{err:?}"
    );
    assert_eq!(err.kind(), crate::ErrorKind::Credentials);
    let shown = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
    assert!(!shown.contains("wrong-s3cret"), "{shown}");
    let stats = sim.stats();
    assert_eq!(stats.api_requests, 0, "no API call without a token");
    assert!(stats.token_requests <= 2, "{stats:?}");
}

#[tokio::test]
async fn jobs_mode_equals_ground_truth_and_resumes_by_cursor() {
    let sim = Simulator::builder()
        .conversations(750)
        .job_delay(Duration::from_millis(30))
        .seed(10)
        .start()
        .await
        .unwrap();
    let client = jobs_builder(&sim).job_page_size(100).build().unwrap();
    let q = query(WEEK);
    let pages: Vec<DetailsPage> = client
        .conversation_details_job(q.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records(&pages), truth(&sim, &q));
    let Checkpoint::Job(last) = &pages.last().unwrap().checkpoint else {
        panic!()
    };
    assert!(last.cursor.is_none());
    assert_eq!(last.pages, pages.len() as u64);

    let cp = pages[2].checkpoint.clone();
    let rest: Vec<DetailsPage> = client
        .conversation_details_job(q.clone())
        .resume_after(cp)
        .try_collect()
        .await
        .unwrap();
    let mut all = records(&pages[..3]);
    all.extend(records(&rest));
    assert_eq!(all, truth(&sim, &q));
    assert_eq!(sim.stats().jobs_created, 1, "resume reuses the job");
}

#[tokio::test]
async fn job_results_come_a_thousand_to_a_page_whatever_the_query_page_size() {
    let sim = Simulator::builder()
        .conversations(2_500)
        .seed(12)
        .start()
        .await
        .unwrap();
    let client = jobs_builder(&sim).page_size(25).build().unwrap();
    let q = query(WEEK);
    let pages: Vec<DetailsPage> = client
        .conversation_details_job(q.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records(&pages), truth(&sim, &q));
    let sizes: Vec<usize> = pages.iter().map(|p| p.conversations.len()).collect();
    assert_eq!(sizes, [1_000, 1_000, 500]);
    assert_eq!(sim.stats().job_pages_served, 3);
}

#[tokio::test]
async fn a_job_page_size_outside_1_to_1000_is_a_config_error() {
    let sim = Simulator::builder().conversations(1).start().await.unwrap();
    for size in [0, 1_001] {
        let err = builder(&sim).job_page_size(size).build().unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("job page size")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_failed_job_is_a_typed_error() {
    let sim = Simulator::builder()
        .conversations(10)
        .failing_job(1)
        .start()
        .await
        .unwrap();
    let client = builder(&sim).build().unwrap();
    let err = client
        .conversation_details_job(query(WEEK))
        .try_next()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::JobFailed { reason: Some(r), .. } if r.contains("failed")),
        "{err:?}"
    );
}

#[tokio::test]
async fn parts_run_in_parallel_up_to_the_limit() {
    for (parallel, low, high) in [(1, 1, 1), (3, 2, 3)] {
        let sim = Simulator::builder()
            .conversations(700)
            .page_latency(Duration::from_millis(40))
            .seed(11)
            .start()
            .await
            .unwrap();
        let client = builder(&sim)
            .page_size(100)
            .prefetch(1)
            .max_parallel_parts(parallel)
            .build()
            .unwrap();
        let q = query(WEEK);
        let got = records(
            &client
                .conversation_details(q.clone())
                .try_collect::<Vec<_>>()
                .await
                .unwrap(),
        );
        assert_eq!(got, truth(&sim, &q));
        let peak = sim.stats().peak_in_flight;
        assert!(
            (low..=high).contains(&peak),
            "{parallel} parallel parts: peak {peak}"
        );
    }
}
