//! Property tests of every parser that reads what a server sends: `Retry-After`, rate-limit
//! reset headers, token responses and details pages. Arbitrary input never panics, valid
//! input parses to what it says, and errors never echo a token back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use keel_genesys::models::{
    AnalyticsConversation, ConversationQuery, DetailsResponse, Interval, JobResultsResponse,
    JobStatus, JobSubmitResponse,
};
use keel_genesys::{Client, Credentials, Environment, ErrorKind};
use keel_layers::auth::{ClientCredentials, TokenError, TokenSource};
use keel_layers::backoff::{parse_ratelimit_reset, parse_retry_after, server_delay, BackoffPolicy};
use proptest::prelude::*;
use secrecy::SecretString;
use tokio::net::TcpListener;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for Unix time `secs`.
fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // NOTE: civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

#[test]
fn http_date_formats_like_rfc_9110() {
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
}

/// Header-ish text: digits, dots, signs, letters, spaces, commas, colons and the odd byte.
fn header_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..48),
        "[0-9. +\\-eE]{0,40}".prop_map(String::into_bytes),
        "[A-Za-z0-9 ,:.\\-]{0,40}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn retry_after_never_panics(bytes in header_text(), now in 0u64..8_000_000_000) {
        if let Ok(v) = HeaderValue::from_bytes(&bytes) {
            let _ = parse_retry_after(&v, at(now));
        }
    }

    #[test]
    fn retry_after_delta_seconds_are_read_exactly(n in any::<u64>(), pad in "[ \t]{0,3}") {
        let v = HeaderValue::from_str(&format!("{pad}{n}{pad}")).unwrap();
        prop_assert_eq!(parse_retry_after(&v, at(0)), Some(Duration::from_secs(n)));
    }

    #[test]
    fn retry_after_past_u64_saturates(digits in "[1-9][0-9]{20,60}") {
        let v = HeaderValue::from_str(&digits).unwrap();
        prop_assert_eq!(parse_retry_after(&v, at(0)), Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn retry_after_http_dates_are_measured_from_now(
        now in 1_000_000_000u64..4_000_000_000,
        delta in -100_000i64..100_000,
    ) {
        let when = now.checked_add_signed(delta).unwrap();
        let v = HeaderValue::from_str(&http_date(when)).unwrap();
        let expected = (delta > 0).then(|| Duration::from_secs(delta as u64));
        prop_assert_eq!(parse_retry_after(&v, at(now)), expected);
    }

    #[test]
    fn ratelimit_reset_never_panics(bytes in header_text(), now in 0u64..8_000_000_000) {
        if let Ok(v) = HeaderValue::from_bytes(&bytes) {
            if let Some(d) = parse_ratelimit_reset(&v, at(now)) {
                // A wait is never negative (Duration) and a Unix time lies in the future.
                prop_assert!(d.as_secs_f64().is_finite());
            }
        }
    }

    #[test]
    fn ratelimit_reset_seconds_and_fractions(whole in 0u64..1_000_000_000, frac in 0u32..1000) {
        let v = HeaderValue::from_str(&format!("{whole}.{frac:03}")).unwrap();
        let got = parse_ratelimit_reset(&v, at(0)).unwrap();
        let want = whole as f64 + f64::from(frac) / 1000.0;
        prop_assert!((got.as_secs_f64() - want).abs() < 1e-3, "{got:?} vs {want}");
    }

    #[test]
    // NOTE: values under 1,000,000,000 are read as seconds to wait (the documented threshold),
    // so the Unix times tried stay above it whatever `delta` is.
    fn ratelimit_reset_unix_times_are_measured_from_now(
        now in 1_000_100_000u64..4_000_000_000,
        delta in -100_000i64..100_000,
    ) {
        let when = now.checked_add_signed(delta).unwrap();
        let v = HeaderValue::from_str(&when.to_string()).unwrap();
        let expected = (delta > 0).then(|| Duration::from_secs(delta as u64));
        prop_assert_eq!(parse_ratelimit_reset(&v, at(now)), expected);
    }

    #[test]
    fn huge_ratelimit_values_do_not_panic(digits in "[0-9]{10,400}(\\.[0-9]{0,50})?") {
        let v = HeaderValue::from_str(&digits).unwrap();
        let _ = parse_ratelimit_reset(&v, at(1_700_000_000));
    }

    #[test]
    fn server_delay_never_panics_on_any_header_mix(
        headers in proptest::collection::vec(
            (
                prop_oneof![
                    Just("retry-after"), Just("date"), Just("inin-ratelimit-reset"),
                    Just("x-ratelimit-reset"), Just("ratelimit-reset"), Just("inin-ratelimit-count"),
                ],
                header_text(),
            ),
            0..6,
        ),
        now in 0u64..8_000_000_000,
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::from_bytes(&value) {
                map.append(HeaderName::from_static(name), v);
            }
        }
        let _ = server_delay(&map, at(now));
    }

    #[test]
    fn a_valid_retry_after_wins_over_ratelimit_headers(secs in 0u64..100_000, reset in "[0-9]{1,8}") {
        let mut map = HeaderMap::new();
        map.insert("inin-ratelimit-reset", HeaderValue::from_str(&reset).unwrap());
        map.insert("retry-after", HeaderValue::from(secs));
        let (wait, _) = server_delay(&map, at(1_700_000_000)).unwrap();
        prop_assert_eq!(wait, Duration::from_secs(secs));
    }
}

/// Fetches a token from a stand-in token endpoint answering `status` with `body`, once.
fn fetch_token(status: u16, body: Vec<u8>) -> Result<keel_layers::auth::Token, TokenError> {
    let body = Bytes::from(body);
    let http = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let mut res = Response::new(Full::new(body.clone()));
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        async move { Ok::<_, std::io::Error>(res) }
    });
    let grant = ClientCredentials::new(
        "https://login.example.com/oauth/token".parse().unwrap(),
        "id",
        SecretString::from("secret"),
        http,
    )
    .max_attempts(1);
    runtime().block_on(grant.fetch())
}

/// A JSON value of any shape, for token fields.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A token response that is plausible, with each field sometimes wrong.
fn token_response() -> impl Strategy<
    Value = (
        Option<serde_json::Value>,
        Option<serde_json::Value>,
        Option<serde_json::Value>,
    ),
> {
    (
        proptest::option::of(prop_oneof![
            "tok-[A-Za-z0-9._~+/=-]{1,60}".prop_map(serde_json::Value::from),
            json_value(),
        ]),
        proptest::option::of(prop_oneof![
            Just(serde_json::Value::from("bearer")),
            Just(serde_json::Value::from("Bearer")),
            json_value(),
        ]),
        proptest::option::of(prop_oneof![
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            "[0-9 ]{0,25}".prop_map(serde_json::Value::from),
            json_value(),
        ]),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_token_endpoint_answer_is_a_token_or_a_typed_error(
        status in 100u16..600,
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ],
    ) {
        match fetch_token(status, body) {
            Ok(_) => prop_assert!((200..300).contains(&status)),
            Err(TokenError::Rejected { status: s, .. }) => {
                prop_assert!(matches!(s.as_u16(), 400 | 401))
            }
            Err(_) => {}
        }
    }

    #[test]
    fn token_responses_parse_only_when_valid_and_errors_never_echo_the_token(
        (access, kind, expires) in token_response(),
    ) {
        let mut obj = serde_json::Map::new();
        if let Some(a) = &access { obj.insert("access_token".into(), a.clone()); }
        if let Some(k) = &kind { obj.insert("token_type".into(), k.clone()); }
        if let Some(e) = &expires { obj.insert("expires_in".into(), e.clone()); }
        let body = serde_json::to_vec(&serde_json::Value::Object(obj)).unwrap();
        let result = fetch_token(200, body);
        let token_text = access.as_ref().and_then(|a| a.as_str()).unwrap_or("");
        let kind_ok = kind.as_ref().is_none_or(|k| {
            k.is_null() || k.as_str().is_some_and(|k| k.eq_ignore_ascii_case("bearer"))
        });
        // NOTE: keel takes a token of visible ASCII only (RFC 6749's VSCHAR without the space,
        // a superset of RFC 6750's b64token); it is otherwise opaque to the client.
        let access_ok = !token_text.is_empty() && token_text.bytes().all(|b| b.is_ascii_graphic());
        match &result {
            Ok(token) => {
                prop_assert!(kind_ok && access_ok, "accepted {access:?} {kind:?} {expires:?}");
                let want = format!("Bearer {token_text}");
                prop_assert_eq!(token.header_value().as_bytes(), want.as_bytes());
                let shown = format!("{:?}", token);
                prop_assert!(!shown.contains(token_text));
            }
            Err(e) => {
                if token_text.len() >= 8 {
                    prop_assert!(!format!("{e} {e:?}").contains(token_text), "{e:?}");
                }
                if access.is_some_and(|a| a.as_str().is_some()) && kind_ok && access_ok {
                    // Only the lifetime can be wrong then: not a number, or under a second (a
                    // transient endpoint fault, so it ends the attempts as `Unavailable`).
                    let short = |e: &TokenError| matches!(e, TokenError::LifetimeTooShort { .. });
                    prop_assert!(
                        matches!(e, TokenError::InvalidResponse(_))
                            || matches!(e, TokenError::Unavailable { last, .. } if short(last)),
                        "{e:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn models_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<DetailsResponse>(&bytes);
        let _ = serde_json::from_slice::<JobResultsResponse>(&bytes);
        let _ = serde_json::from_slice::<JobStatus>(&bytes);
        let _ = serde_json::from_slice::<JobSubmitResponse>(&bytes);
        let _ = serde_json::from_slice::<AnalyticsConversation>(&bytes);
        let _ = serde_json::from_slice::<ConversationQuery>(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = text.parse::<Interval>();
        }
    }

    #[test]
    fn models_never_panic_on_arbitrary_json(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let _ = serde_json::from_slice::<DetailsResponse>(&bytes);
        let _ = serde_json::from_slice::<JobResultsResponse>(&bytes);
        let _ = serde_json::from_slice::<JobStatus>(&bytes);
        let _ = serde_json::from_slice::<AnalyticsConversation>(&bytes);
        let _ = serde_json::from_slice::<ConversationQuery>(&bytes);
    }

    #[test]
    fn interval_text_never_panics(text in "[0-9TZ:.+\\-/ ]{0,60}") {
        let _ = text.parse::<Interval>();
    }

    #[test]
    fn details_pages_keep_each_conversation_byte_for_byte(
        convs in proptest::collection::vec(json_value(), 0..6),
        total in proptest::option::of(any::<u64>()),
    ) {
        let raw: Vec<String> = convs.iter().map(|c| serde_json::to_string(c).unwrap()).collect();
        let mut body = String::from("{");
        if let Some(t) = total { body.push_str(&format!("\"totalHits\":{t},")); }
        body.push_str(&format!("\"conversations\":[{}]}}", raw.join(" , ")));
        let page: DetailsResponse = serde_json::from_str(&body).unwrap();
        prop_assert_eq!(page.total_hits, total);
        let got: Vec<&str> = page.conversations.as_deref().unwrap_or(&[]).iter().map(|r| r.get()).collect();
        prop_assert_eq!(got, raw.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// A loopback API whose details pages are whatever the test put in `page`.
async fn page_server(page: Arc<Mutex<Bytes>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = if req.uri().path() == "/oauth/token" {
                        Bytes::from_static(
                            br#"{"access_token":"t0k","token_type":"bearer","expires_in":3600}"#,
                        )
                    } else {
                        page.lock().unwrap().clone()
                    };
                    async move { Ok::<_, hyper::Error>(Response::new(Full::new(body))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    base
}

/// Page bodies a hostile or broken API could send: JSON of any shape, pages with odd
/// `totalHits`, conversations without ids, duplicates, and raw bytes.
fn page_body() -> impl Strategy<Value = Vec<u8>> {
    let conversation = prop_oneof![
        "[a-f0-9-]{1,36}".prop_map(|id| serde_json::json!({ "conversationId": id, "conversationStart": "2026-01-01T01:00:00.000Z" })),
        json_value(),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (
            proptest::option::of(json_value()),
            proptest::collection::vec(conversation, 0..5)
        )
            .prop_map(|(total, convs)| {
                let mut page = serde_json::json!({ "conversations": convs });
                if let Some(t) = total {
                    page["totalHits"] = t;
                }
                serde_json::to_vec(&page).unwrap()
            }),
        (
            any::<u64>(),
            proptest::collection::vec("[a-f0-9]{1,8}", 0..5)
        )
            .prop_map(|(total, ids)| {
                let convs: Vec<_> = ids
                    .iter()
                    .map(|id| serde_json::json!({ "conversationId": id }))
                    .collect();
                serde_json::to_vec(
                    &serde_json::json!({ "totalHits": total, "conversations": convs }),
                )
                .unwrap()
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The real client's page decoding, over loopback: any page body ends the export with
    /// pages or a typed error, never a panic or a hang.
    #[test]
    fn any_details_page_body_ends_in_pages_or_a_typed_error(bodies in proptest::collection::vec(page_body(), 1..4)) {
        let rt = runtime();
        rt.block_on(async {
            let page = Arc::new(Mutex::new(Bytes::new()));
            let base = page_server(page.clone()).await;
            let client = Client::builder(
                Environment::custom(&base, &base).unwrap(),
                Credentials::new("id", SecretString::from("secret")),
            )
            .request_timeout(Duration::from_secs(5))
            .backoff(BackoffPolicy::default().max_attempts(1))
            // NOTE: fetching a bad page again gets the same body: it would add only wall time.
            .decode_retries(0)
            .prefetch(1)
            .build()
            .unwrap();
            let query = ConversationQuery::new("2026-01-01T00:00:00Z/2026-01-01T06:00:00Z".parse().unwrap());
            for body in bodies {
                *page.lock().unwrap() = Bytes::from(body);
                let export = client.conversation_details(query.clone());
                let outcome: Vec<_> = tokio::time::timeout(Duration::from_secs(20), export.take(50).collect::<Vec<_>>())
                    .await
                    .expect("the export ends");
                for item in outcome {
                    if let Err(e) = item {
                        assert!(matches!(e.kind(), ErrorKind::Decode | ErrorKind::ResultSetChanged | ErrorKind::Api | ErrorKind::Usage), "{e:?}");
                    }
                }
            }
        });
    }
}
