//! The conversation-details query over real loopback HTTP.

mod common;

use common::{page, raw_conversations, TestClient, ALL, DETAILS_QUERY};
use http::StatusCode;
use keel_sim::Simulator;
use serde_json::json;

#[tokio::test]
async fn paging_to_the_end_serves_every_conversation_once_byte_for_byte() {
    let sim = Simulator::builder()
        .conversations(250)
        .seed(3)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let mut served = Vec::new();
    for number in 1..=3 {
        let r = c.query(&token, &page(ALL, 100, number)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["totalHits"], 250);
        served.extend(raw_conversations(&r.body).unwrap());
    }
    let expected: Vec<String> = sim.ground_truth(&page(ALL, 1, 1)).unwrap().collect();
    assert_eq!(served.len(), 250);
    assert_eq!(served, expected);
    assert_eq!(served[0], sim.conversation_json(0));
    let starts: Vec<String> = served
        .iter()
        .map(|s| {
            serde_json::from_str::<serde_json::Value>(s).unwrap()["conversationStart"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "ascending by conversationStart"
    );
    assert_eq!(sim.stats().pages_served, 3);
    assert_eq!(sim.stats().conversations_served, 250);
}

#[tokio::test]
async fn a_page_past_the_end_has_total_hits_and_no_conversations_key() {
    let sim = Simulator::builder()
        .conversations(30)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let r = c.query(&token, &page(ALL, 25, 3)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"{\"totalHits\":30}");
    let last = c.query(&token, &page(ALL, 25, 2)).await;
    assert_eq!(raw_conversations(&last.body).unwrap().len(), 5);
}

#[tokio::test]
async fn descending_order_reverses_the_ground_truth() {
    let sim = Simulator::builder()
        .conversations(40)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let mut body = page(ALL, 100, 1);
    body["order"] = json!("desc");
    let served = raw_conversations(&c.query(&token, &body).await.body).unwrap();
    let mut asc: Vec<String> = sim.ground_truth(&page(ALL, 1, 1)).unwrap().collect();
    asc.reverse();
    assert_eq!(served, asc);
    assert_eq!(served, sim.ground_truth(&body).unwrap().collect::<Vec<_>>());
}

#[tokio::test]
async fn interval_selects_conversation_start_in_half_open_range() {
    let sim = Simulator::builder()
        .conversations(1_000)
        .start()
        .await
        .unwrap();
    let start = |i| {
        serde_json::from_str::<serde_json::Value>(&sim.conversation_json(i)).unwrap()
            ["conversationStart"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let interval = format!("{}/{}", start(10), start(20));
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let r = c.query(&token, &page(&interval, 100, 1)).await;
    assert_eq!(
        r.json()["totalHits"],
        10,
        "[start of #10, start of #20) holds #10..#19"
    );
    let served = raw_conversations(&r.body).unwrap();
    assert_eq!(served.first().unwrap(), &sim.conversation_json(10));
    assert_eq!(served.last().unwrap(), &sim.conversation_json(19));
    let before = c
        .query(
            &token,
            &page("2025-01-01T00:00:00Z/2025-02-01T00:00:00Z", 10, 1),
        )
        .await;
    assert_eq!(&before.body[..], b"{\"totalHits\":0}");
}

fn sessions(conv: &serde_json::Value) -> Vec<serde_json::Value> {
    conv["participants"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["sessions"].as_array().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn segment_and_conversation_filters_select_matching_conversations() {
    let sim = Simulator::builder()
        .conversations(600)
        .seed(11)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let fetch = |body: serde_json::Value| {
        let c = c.clone();
        let token = token.clone();
        async move {
            let r = c.query(&token, &body).await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{}",
                String::from_utf8_lossy(&r.body)
            );
            let total = r.json()["totalHits"].as_u64().unwrap();
            let convs: Vec<serde_json::Value> = raw_conversations(&r.body)
                .unwrap_or_default()
                .iter()
                .map(|s| serde_json::from_str(s).unwrap())
                .collect();
            (total, convs)
        }
    };
    let pred = |dim: &str, value: &str| json!({"type": "dimension", "dimension": dim, "operator": "matches", "value": value});

    let mut voice = page(ALL, 100, 1);
    voice["segmentFilters"] = json!([{"type": "and", "predicates": [pred("mediaType", "voice")]}]);
    let (total, convs) = fetch(voice.clone()).await;
    assert!(total > 100 && total < 600, "{total}");
    assert!(convs
        .iter()
        .all(|cv| sessions(cv).iter().any(|s| s["mediaType"] == "voice")));
    assert_eq!(total as usize, sim.ground_truth(&voice).unwrap().len());

    let mut chat_or_email = page(ALL, 100, 1);
    chat_or_email["segmentFilters"] = json!([{"type": "or", "predicates": [pred("mediaType", "chat"), pred("mediaType", "email")]}]);
    let (total_ce, convs) = fetch(chat_or_email).await;
    assert!(total_ce > 0 && total_ce + total < 600);
    assert!(convs.iter().all(|cv| sessions(cv)
        .iter()
        .all(|s| s["mediaType"] == "chat" || s["mediaType"] == "email")));

    let mut outbound_seg = page(ALL, 100, 1);
    outbound_seg["segmentFilters"] =
        json!([{"type": "and", "predicates": [pred("direction", "outbound")]}]);
    let (total_os, convs) = fetch(outbound_seg).await;
    assert!(total_os > 0 && total_os < 600);
    assert!(convs
        .iter()
        .all(|cv| sessions(cv).iter().any(|s| s["direction"] == "outbound")));

    let mut outbound = page(ALL, 100, 1);
    outbound["conversationFilters"] =
        json!([{"type": "and", "predicates": [pred("originatingDirection", "outbound")]}]);
    let (total_o, convs) = fetch(outbound).await;
    assert!(
        total_o > 0 && total_o < total_os,
        "some inbound conversations have an outbound transfer"
    );
    assert!(convs
        .iter()
        .all(|cv| cv["originatingDirection"] == "outbound"));

    let first: serde_json::Value = serde_json::from_str(&sim.conversation_json(0)).unwrap();
    let division = first["divisionIds"][0].as_str().unwrap().to_owned();
    let mut by_division = page(ALL, 100, 1);
    by_division["conversationFilters"] =
        json!([{"type": "and", "predicates": [pred("divisionId", &division)]}]);
    let (total_d, convs) = fetch(by_division.clone()).await;
    assert!(total_d > 0 && total_d < 600);
    assert!(convs.iter().all(|cv| cv["divisionIds"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d == division.as_str())));

    let mut both = by_division;
    both["segmentFilters"] = json!([{"type": "and", "predicates": [pred("mediaType", "voice")]}]);
    let (total_b, _) = fetch(both.clone()).await;
    assert!(total_b < total_d && total_b > 0);
    let served: Vec<String> = sim.ground_truth(&both).unwrap().collect();
    assert_eq!(served.len() as u64, total_b);
}

#[tokio::test]
async fn validation_errors_are_400_with_genesys_error_bodies() {
    let sim = Simulator::builder().start().await.unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let cases = [
        (page(ALL, 0, 1), "pageSize"),
        (page(ALL, 101, 1), "pageSize"),
        (page(ALL, 10, 0), "pageNumber"),
        (
            json!({"paging": {"pageSize": 10, "pageNumber": 1}}),
            "interval",
        ),
        (page("not-an-interval", 10, 1), "interval"),
        (
            page(ALL, 100, 1001),
            "Pagination may not exceed 100000 results.",
        ),
        (
            page(ALL, 50, 2001),
            "Pagination may not exceed 100000 results.",
        ),
    ];
    for (body, needle) in cases {
        let r = c.query(&token, &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let e = r.json();
        assert_eq!(e["code"], "bad.request");
        assert_eq!(e["status"], 400);
        assert!(e["message"].as_str().unwrap().contains(needle), "{e}");
        assert_eq!(e["contextId"].as_str(), r.header("inin-correlation-id"));
    }
    assert_eq!(
        c.query(&token, &page(ALL, 100, 1000)).await.status,
        StatusCode::OK,
        "exactly 100,000 is allowed"
    );
    let garbage = c
        .try_send(
            http::Method::POST,
            DETAILS_QUERY,
            Some(&token),
            Some(b"{nope".to_vec()),
            "application/json",
        )
        .await
        .unwrap();
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert_eq!(sim.stats().bad_requests, 8);
}

#[tokio::test]
async fn late_conversations_grow_total_hits_between_pages() {
    let sim = Simulator::builder()
        .conversations(100)
        .late_conversations(50, 1)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    assert_eq!(sim.visible_conversations(), 100);
    let first = c.query(&token, &page(ALL, 60, 1)).await;
    assert_eq!(first.json()["totalHits"], 100);
    let second = c.query(&token, &page(ALL, 60, 2)).await;
    assert_eq!(second.json()["totalHits"], 150);
    assert_eq!(sim.visible_conversations(), 150);
    assert_eq!(sim.ground_truth(&page(ALL, 1, 1)).unwrap().len(), 150);
}

#[tokio::test]
async fn two_hundred_thousand_conversations_start_instantly_and_page_from_the_end() {
    let sim = Simulator::builder()
        .conversations(200_000)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let r = c.query(&token, &page(ALL, 100, 1000)).await;
    assert_eq!(r.json()["totalHits"], 200_000);
    let served = raw_conversations(&r.body).unwrap();
    assert_eq!(served[99], sim.conversation_json(99_999));
}
