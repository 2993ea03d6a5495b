//! Async jobs and the users list, over real loopback HTTP.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{raw_conversations, TestClient, ALL, JOBS};
use http::{Method, StatusCode};
use keel_sim::Simulator;
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn job_is_queued_then_fulfilled_and_pages_by_cursor_to_the_end() {
    let sim = Simulator::builder()
        .conversations(230)
        .job_delay(Duration::from_secs(10))
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let query = json!({"interval": ALL, "order": "asc"});
    let created = c.post_json(JOBS, Some(&token), &query).await;
    assert_eq!(created.status, StatusCode::ACCEPTED);
    let id = created.json()["jobId"].as_str().unwrap().to_owned();

    let status = c.get(&format!("{JOBS}/{id}"), Some(&token)).await;
    assert_eq!(status.json()["state"], "QUEUED");
    let early = c.get(&format!("{JOBS}/{id}/results"), Some(&token)).await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST);

    tokio::time::advance(Duration::from_secs(10)).await;
    let status = c.get(&format!("{JOBS}/{id}"), Some(&token)).await;
    assert_eq!(status.json()["state"], "FULFILLED");

    let mut served = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => format!("{JOBS}/{id}/results?pageSize=100"),
            Some(c) => format!("{JOBS}/{id}/results?pageSize=100&cursor={c}"),
        };
        let r = c.get(&path, Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK);
        pages += 1;
        served.extend(raw_conversations(&r.body).unwrap());
        match r.json()["cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = sim.ground_truth(&query).unwrap().collect();
    assert_eq!(served, expected);
    assert_eq!(sim.stats().job_pages_served, 3);
    assert_eq!(sim.stats().jobs_created, 1);

    let forged = c
        .get(&format!("{JOBS}/{id}/results?cursor=bm9wZQ"), Some(&token))
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    let unknown = c
        .get(
            &format!("{JOBS}/00000000-0000-4000-8000-000000000000"),
            Some(&token),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.json()["contextId"].is_string());
}

#[tokio::test(start_paused = true)]
async fn jobs_fail_on_demand_and_expire_after_their_ttl() {
    let sim = Simulator::builder()
        .failing_job(2)
        .job_ttl(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let q = json!({"interval": ALL});
    let first = c.post_json(JOBS, Some(&token), &q).await.json()["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = c.post_json(JOBS, Some(&token), &q).await.json()["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    assert_eq!(
        c.get(&format!("{JOBS}/{first}"), Some(&token)).await.json()["state"],
        "FULFILLED"
    );
    let failed = c
        .get(&format!("{JOBS}/{second}"), Some(&token))
        .await
        .json();
    assert_eq!(failed["state"], "FAILED");
    assert!(failed["errorMessage"].is_string());
    let results = c
        .get(&format!("{JOBS}/{second}/results"), Some(&token))
        .await;
    assert_eq!(results.status, StatusCode::BAD_REQUEST);

    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        c.get(&format!("{JOBS}/{first}"), Some(&token)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get(&format!("{JOBS}/{first}/results"), Some(&token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn jobs_validate_their_body_and_can_be_deleted() {
    let sim = Simulator::builder().start().await.unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let bad = c
        .post_json(JOBS, Some(&token), &json!({"order": "asc"}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let id = c
        .post_json(JOBS, Some(&token), &json!({"interval": ALL}))
        .await
        .json()["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let del = c
        .try_send(
            Method::DELETE,
            &format!("{JOBS}/{id}"),
            Some(&token),
            None,
            "application/json",
        )
        .await
        .unwrap();
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(
        c.get(&format!("{JOBS}/{id}"), Some(&token)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn users_list_follows_next_uri_to_the_last_page() {
    let sim = Simulator::builder().users(60).start().await.unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let mut path = "/api/v2/users?pageSize=25&pageNumber=1".to_owned();
    let mut ids = HashSet::new();
    let mut pages = 0;
    loop {
        let r = c.get(&path, Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK);
        let body = r.json();
        pages += 1;
        assert_eq!(body["total"], 60);
        assert_eq!(body["pageCount"], 3);
        assert_eq!(body["pageSize"], 25);
        assert_eq!(body["pageNumber"], pages);
        assert_eq!(body["lastUri"], "/api/v2/users?pageSize=25&pageNumber=3");
        for e in body["entities"].as_array().unwrap() {
            assert!(ids.insert(e["id"].as_str().unwrap().to_owned()));
        }
        match body["nextUri"].as_str() {
            Some(next) => path = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 60);
    assert_eq!(sim.stats().user_pages_served, 3);
    let bad = c.get("/api/v2/users?pageSize=0", Some(&token)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
