//! Result sets that change while they are paged: insertions and removals after each page.

mod common;

use std::collections::BTreeSet;

use common::{page, raw_conversations, TestClient, ALL, JOBS};
use http::StatusCode;
use keel_sim::Simulator;
use serde_json::{json, Value};

fn id_of(raw: &str) -> String {
    serde_json::from_str::<Value>(raw).unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn start_of(raw: &str) -> String {
    serde_json::from_str::<Value>(raw).unwrap()["conversationStart"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn insertions_land_inside_the_interval_on_both_sides_of_the_offset_and_grow_total_hits() {
    let sim = Simulator::builder()
        .conversations(200)
        .seed(5)
        .churn_inserts_per_page(3)
        .churn_max_inserts(9)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    assert_eq!(
        sim.churn_truth(),
        Default::default(),
        "nothing before a page"
    );
    let before: Vec<String> = sim.ground_truth(&page(ALL, 1, 1)).unwrap().collect();

    let mut totals = Vec::new();
    let mut served = Vec::new();
    for number in 1..=5 {
        let r = c.query(&token, &page(ALL, 50, number)).await;
        assert_eq!(r.status, StatusCode::OK);
        totals.push(r.json()["totalHits"].as_u64().unwrap());
        served.extend(raw_conversations(&r.body).unwrap_or_default());
    }
    assert_eq!(totals, [200, 203, 206, 209, 209], "3 per page, 9 at most");

    let truth = sim.churn_truth();
    let before_ids: Vec<String> = before.iter().map(|r| id_of(r)).collect();
    assert_eq!(truth.first_page_ids, before_ids);
    assert_eq!(truth.inserted.len(), 9);
    assert!(truth.removed.is_empty());
    assert_eq!(truth.rounds, 5);

    let after: Vec<String> = sim.ground_truth(&page(ALL, 1, 1)).unwrap().collect();
    assert_eq!(after.len(), 209);
    let starts: Vec<String> = after.iter().map(|r| start_of(r)).collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "still in start order"
    );
    let after_ids: BTreeSet<String> = after.iter().map(|r| id_of(r)).collect();
    let expected: BTreeSet<String> = before_ids.iter().chain(&truth.inserted).cloned().collect();
    assert_eq!(after_ids, expected);

    // Each inserted record is served as the truth says, and inside the interval.
    let positions: Vec<usize> = truth
        .inserted
        .iter()
        .map(|id| after.iter().position(|r| id_of(r) == *id).unwrap())
        .collect();
    for (id, &pos) in truth.inserted.iter().zip(&positions) {
        assert_eq!(sim.conversation_json_now(id).unwrap(), after[pos]);
        let start = start_of(&after[pos]);
        assert!(
            start.as_str() >= "2026-01-01" && start.as_str() < "2026-01-08",
            "{start}"
        );
    }
    // Some land before the offsets already served (a page walk then serves a record twice),
    // others after them.
    assert!(
        positions.iter().any(|&p| p < 50) && positions.iter().any(|&p| p >= 100),
        "{positions:?}"
    );
    let served_ids: Vec<String> = served.iter().map(|r| id_of(r)).collect();
    let distinct: BTreeSet<&String> = served_ids.iter().collect();
    assert_ne!(
        (served_ids.len(), distinct.len()),
        (209, 209),
        "paging a growing set by page number is not exactly-once"
    );
}

#[tokio::test]
async fn churn_is_seeded_and_reproducible() {
    async fn run(seed: u64) -> (Vec<String>, keel_sim::ChurnTruth) {
        let sim = Simulator::builder()
            .conversations(120)
            .seed(seed)
            .churn_inserts_per_page(2)
            .churn_removals_per_page(2)
            .churn_pages(4)
            .start()
            .await
            .unwrap();
        let c = TestClient::new(&sim);
        let token = c.token(&sim).await;
        let mut served = Vec::new();
        for number in 1..=6 {
            let r = c.query(&token, &page(ALL, 25, number)).await;
            served.extend(raw_conversations(&r.body).unwrap_or_default());
        }
        (served, sim.churn_truth())
    }
    let (a, ta) = run(17).await;
    let (b, tb) = run(17).await;
    assert_eq!(a, b);
    assert_eq!(ta, tb);
    assert_eq!((ta.inserted.len(), ta.removed.len(), ta.rounds), (8, 8, 4));
    let (c, tc) = run(18).await;
    assert_ne!((a, ta.removed), (c, tc.removed));
}

#[tokio::test]
async fn removals_shrink_the_result_set_and_are_recorded() {
    let sim = Simulator::builder()
        .conversations(100)
        .seed(2)
        .churn_removals_per_page(2)
        .churn_pages(3)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let before: Vec<String> = sim.ground_truth(&page(ALL, 1, 1)).unwrap().collect();
    let mut totals = Vec::new();
    for number in 1..=5 {
        let r = c.query(&token, &page(ALL, 10, number)).await;
        totals.push(r.json()["totalHits"].as_u64().unwrap());
    }
    assert_eq!(
        totals,
        [100, 98, 96, 94, 94],
        "2 after each of the first 3 pages"
    );
    let truth = sim.churn_truth();
    assert_eq!(truth.removed.len(), 6);
    assert!(truth.inserted.is_empty());
    let removed: BTreeSet<&String> = truth.removed.iter().collect();
    assert_eq!(removed.len(), 6, "never the same one twice");
    let after: Vec<String> = sim.ground_truth(&page(ALL, 1, 1)).unwrap().collect();
    let expected: Vec<String> = before
        .into_iter()
        .filter(|r| !removed.contains(&id_of(r)))
        .collect();
    assert_eq!(after, expected);
    for id in &truth.removed {
        assert_eq!(sim.conversation_json_now(id), None);
        assert!(sim.conversation_index(id).is_some(), "still known");
    }

    let over_http = c.get("/__churn", None).await;
    assert_eq!(over_http.status, StatusCode::OK);
    let parsed: keel_sim::ChurnTruth = serde_json::from_slice(&over_http.body).unwrap();
    assert_eq!(parsed, truth);
}

#[tokio::test]
async fn a_job_keeps_the_result_set_of_its_submission() {
    let sim = Simulator::builder()
        .conversations(80)
        .seed(4)
        .churn_inserts_per_page(5)
        .churn_removals_per_page(5)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let at_submission: Vec<String> = sim
        .ground_truth(&json!({"interval": ALL}))
        .unwrap()
        .collect();
    let job = c
        .post_json(JOBS, Some(&token), &json!({"interval": ALL}))
        .await;
    assert_eq!(job.status, StatusCode::ACCEPTED);
    let id = job.json()["jobId"].as_str().unwrap().to_owned();
    for number in 1..=3 {
        c.query(&token, &page(ALL, 10, number)).await;
    }
    assert_eq!(sim.churn_truth().rounds, 3);
    let now: Vec<String> = sim
        .ground_truth(&json!({"interval": ALL}))
        .unwrap()
        .collect();
    assert_ne!(now, at_submission, "the data changed since");
    let results = c
        .get(&format!("{JOBS}/{id}/results?pageSize=1000"), Some(&token))
        .await;
    assert_eq!(results.status, StatusCode::OK);
    assert_eq!(raw_conversations(&results.body).unwrap(), at_submission);
}
