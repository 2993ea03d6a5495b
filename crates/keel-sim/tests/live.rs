//! Live data: conversations in progress at the simulator clock, ending and arriving as it moves.

mod common;

use std::time::Duration;

use common::{page, raw_conversations, TestClient, JOBS};
use http::StatusCode;
use keel_sim::{SimHandle, Simulator};
use serde_json::{json, Value};

/// Data from 2026-01-01T00:00Z over one hour; the clock starts at its end.
const DATA_START: i64 = 1_767_225_600_000;
const T0: i64 = DATA_START + 3_600_000;
const DAY: &str = "2026-01-01T00:00:00.000Z/2026-01-02T00:00:00.000Z";

async fn live_sim() -> SimHandle {
    Simulator::builder()
        .conversations(120)
        .seed(9)
        .data_start_ms(DATA_START)
        .data_span(Duration::from_secs(3_600))
        .clock_at_ms(T0)
        .arrivals_per_minute(2.0)
        .start()
        .await
        .unwrap()
}

fn parse(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap()
}

fn iso(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Every conversation of `body`'s query, paging to the end.
async fn export(c: &TestClient, token: &str, body: &Value) -> (u64, Vec<String>) {
    let mut out = Vec::new();
    for number in 1.. {
        let mut b = body.clone();
        b["paging"] = json!({"pageSize": 100, "pageNumber": number});
        let r = c.query(token, &b).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        match raw_conversations(&r.body) {
            Some(page) => out.extend(page),
            None => return (r.json()["totalHits"].as_u64().unwrap(), out),
        }
    }
    unreachable!()
}

/// Generated conversations (from their final JSON) that started by `now`.
fn started_by(sim: &SimHandle, now: i64) -> u64 {
    let now = iso(now);
    (0..400)
        .take_while(|&i| {
            parse(&sim.conversation_json(i))["conversationStart"]
                .as_str()
                .unwrap()
                <= now.as_str()
        })
        .count() as u64
}

/// Checks that `served` is `final_` as it stood at `now`: the final record when it had ended,
/// else without end, MOS, unstarted participants and segments, unemitted metrics, and with
/// the running segment open. Returns whether it was in progress.
fn check_as_of(served: &str, final_: &str, now: i64) -> bool {
    let (s, f) = (parse(served), parse(final_));
    let now = iso(now);
    let end = f["conversationEnd"].as_str().unwrap();
    if end <= now.as_str() {
        assert_eq!(served, final_);
        return false;
    }
    assert!(s.get("conversationEnd").is_none(), "{served}");
    assert!(s.get("mediaStatsMinConversationMos").is_none());
    let (sp, fp) = (
        s["participants"].as_array().unwrap(),
        f["participants"].as_array().unwrap(),
    );
    assert!(!sp.is_empty() && sp.len() <= fp.len());
    for (p, fp) in sp.iter().zip(fp) {
        assert_eq!(p["participantId"], fp["participantId"]);
        let (ss, fs) = (&p["sessions"][0], &fp["sessions"][0]);
        let segs = ss["segments"].as_array().unwrap();
        let fsegs = fs["segments"].as_array().unwrap();
        assert!(!segs.is_empty() && segs.len() <= fsegs.len());
        for (k, (seg, fseg)) in segs.iter().zip(fsegs).enumerate() {
            assert_eq!(seg["segmentStart"], fseg["segmentStart"]);
            assert!(seg["segmentStart"].as_str().unwrap() <= now.as_str());
            let ended = fseg["segmentEnd"].as_str().unwrap() <= now.as_str();
            assert_eq!(seg.get("segmentEnd").is_some(), ended, "{seg}");
            if !ended {
                assert_eq!(k, segs.len() - 1, "only the last segment is open");
                assert!(seg.get("disconnectType").is_none());
            } else {
                assert_eq!(seg, fseg);
            }
        }
        for m in ss
            .get("metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            assert!(m["emitDate"].as_str().unwrap() <= now.as_str());
            assert!(fs["metrics"].as_array().unwrap().contains(m));
        }
    }
    true
}

#[tokio::test]
async fn in_progress_conversations_end_and_new_ones_arrive_as_the_clock_moves() {
    let sim = live_sim().await;
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let body = json!({"interval": DAY, "order": "asc"});
    assert_eq!(sim.now_ms(), T0);

    let (total, first) = export(&c, &token, &body).await;
    assert_eq!(total, started_by(&sim, T0));
    assert_eq!(total, sim.visible_conversations());
    assert_eq!(first.len() as u64, total);
    let mut in_progress = Vec::new();
    for (i, served) in first.iter().enumerate() {
        if check_as_of(served, &sim.conversation_json(i as u64), T0) {
            in_progress.push(i as u64);
        }
    }
    assert!(
        in_progress.len() > 5 && in_progress.len() < 60,
        "{}",
        in_progress.len()
    );
    assert_eq!(first, sim.ground_truth(&body).unwrap().collect::<Vec<_>>());

    // Longest conversation: 30.5 minutes; 31 minutes later all of them have ended.
    let t1 = sim.advance(Duration::from_secs(31 * 60));
    assert_eq!(t1, T0 + 31 * 60_000);
    let (total1, second) = export(&c, &token, &body).await;
    assert_eq!(total1, started_by(&sim, t1));
    assert!(
        total1 >= total + 60,
        "about 2 arrivals a minute: {total} -> {total1}"
    );
    for &i in &in_progress {
        assert_eq!(
            second[i as usize],
            sim.conversation_json(i),
            "#{i} is final now"
        );
    }
    let now = iso(t1);
    for (i, served) in second.iter().enumerate().skip(total as usize) {
        let v = parse(served);
        let start = v["conversationStart"].as_str().unwrap();
        assert!(
            start > iso(T0).as_str() && start <= now.as_str(),
            "an arrival: {start}"
        );
        check_as_of(served, &sim.conversation_json(i as u64), t1);
    }
}

#[tokio::test]
async fn an_or_of_conversation_ids_refetches_exactly_those_conversations() {
    let sim = live_sim().await;
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let (_, all) = export(&c, &token, &json!({"interval": DAY})).await;
    let open: Vec<(usize, String)> = all
        .iter()
        .enumerate()
        .filter(|(_, r)| parse(r).get("conversationEnd").is_none())
        .map(|(i, r)| (i, parse(r)["conversationId"].as_str().unwrap().to_owned()))
        .collect();
    assert!(open.len() > 5);
    let predicates: Vec<Value> = open
        .iter()
        .rev()
        .map(|(_, id)| json!({"type": "dimension", "dimension": "conversationId", "operator": "matches", "value": id}))
        .collect();
    let by_id = json!({
        "interval": DAY,
        "conversationFilters": [{"type": "or", "predicates": predicates}],
    });
    let (total, served) = export(&c, &token, &by_id).await;
    assert_eq!(total as usize, open.len());
    let expected: Vec<&String> = open.iter().map(|(i, _)| &all[*i]).collect();
    assert_eq!(
        served.iter().collect::<Vec<_>>(),
        expected,
        "in start order, as of now"
    );

    sim.advance(Duration::from_secs(3_600));
    let (_, later) = export(&c, &token, &by_id).await;
    let finals: Vec<String> = open
        .iter()
        .map(|(i, _)| sim.conversation_json(*i as u64))
        .collect();
    assert_eq!(later, finals);
    for ((_, id), final_) in open.iter().zip(&finals) {
        assert_eq!(sim.conversation_json_now(id).as_ref(), Some(final_));
    }
}

#[tokio::test]
async fn a_job_answers_as_of_its_submission_and_the_clock_is_served_over_http() {
    let sim = live_sim().await;
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let body = json!({"interval": DAY});
    let at_submission: Vec<String> = sim.ground_truth(&body).unwrap().collect();
    let job = c.post_json(JOBS, Some(&token), &body).await;
    let id = job.json()["jobId"].as_str().unwrap().to_owned();

    let moved = c
        .post_json("/__clock", None, &json!({"advanceMs": 600_000}))
        .await;
    assert_eq!(moved.json()["nowMs"], T0 + 600_000);
    assert_eq!(sim.now_ms(), T0 + 600_000);
    assert_ne!(
        sim.ground_truth(&body).unwrap().collect::<Vec<_>>(),
        at_submission
    );
    let results = c
        .get(&format!("{JOBS}/{id}/results?pageSize=1000"), Some(&token))
        .await;
    assert_eq!(raw_conversations(&results.body).unwrap(), at_submission);

    let set = c
        .post_json("/__clock", None, &json!({"nowMs": DATA_START - 1}))
        .await;
    assert_eq!(set.json()["nowMs"], DATA_START - 1);
    assert_eq!(
        c.get("/__clock", None).await.json()["nowMs"],
        DATA_START - 1
    );
    let (total, _) = export(&c, &token, &body).await;
    assert_eq!(total, 0, "nothing has started yet");
    assert_eq!(sim.conversation_json_now(&sim.conversation_id(0)), None);
    assert_eq!(
        c.post_json("/__clock", None, &json!({"later": 1}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn without_live_data_every_conversation_is_final_whatever_the_time() {
    let sim = Simulator::builder()
        .conversations(30)
        .data_start_ms(4_102_444_800_000) // 2100: in the future
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let r = c
        .query(
            &token,
            &page("2100-01-01T00:00:00Z/2100-02-01T00:00:00Z", 100, 1),
        )
        .await;
    let served = raw_conversations(&r.body).unwrap();
    assert_eq!(served.len(), 30);
    assert_eq!(served[29], sim.conversation_json(29));
    assert!(parse(&served[29]).get("conversationEnd").is_some());
}

#[tokio::test]
async fn arrival_rates_out_of_range_and_arrivals_with_late_conversations_are_refused() {
    for rate in [0.0, -1.0, f64::NAN, 0.000_1] {
        let err = Simulator::builder()
            .arrivals_per_minute(rate)
            .start()
            .await
            .unwrap_err();
        assert!(
            matches!(err, keel_sim::SimError::Config(_)),
            "{rate}: {err}"
        );
    }
    let err = Simulator::builder()
        .arrivals_per_minute(1.0)
        .late_conversations(5, 1)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("late conversations"), "{err}");
    assert!(Simulator::builder()
        .arrivals_per_minute(0.001)
        .start()
        .await
        .is_ok());
}

#[tokio::test]
async fn conversation_json_now_is_none_until_the_api_would_serve_it() {
    let sim = Simulator::builder()
        .conversations(10)
        .late_conversations(5, 1)
        .start()
        .await
        .unwrap();
    let late = sim.conversation_id(12);
    assert_eq!(sim.conversation_index(&late), Some(12));
    assert_eq!(
        sim.conversation_json_now(&late),
        None,
        "late, not visible yet"
    );
    assert_eq!(
        sim.conversation_json_now(&sim.conversation_id(9)),
        Some(sim.conversation_json(9))
    );
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    c.query(&token, &page(common::ALL, 5, 1)).await;
    assert_eq!(
        sim.conversation_json_now(&late),
        Some(sim.conversation_json(12))
    );
    assert_eq!(
        sim.conversation_index("00000000-0000-4000-8000-000000000000"),
        None
    );

    let live = live_sim().await;
    let next = live.visible_conversations();
    let id = live.conversation_id(next);
    assert_eq!(live.conversation_json_now(&id), None, "starts after now");
    live.advance(Duration::from_secs(3_600));
    assert_eq!(
        live.conversation_json_now(&id),
        Some(live.conversation_json(next))
    );
}
