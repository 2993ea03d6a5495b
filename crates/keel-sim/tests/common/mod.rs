//! A small hyper-util client for talking to the simulator in tests.
#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keel_sim::SimHandle;
use serde_json::Value;

pub const DETAILS_QUERY: &str = "/api/v2/analytics/conversations/details/query";
pub const JOBS: &str = "/api/v2/analytics/conversations/details/jobs";
/// Covers the default data span (7 days from 2026-01-01).
pub const ALL: &str = "2026-01-01T00:00:00.000Z/2026-01-08T00:00:00.000Z";

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

#[derive(Debug, Clone)]
pub struct TestClient {
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl TestClient {
    pub fn new(sim: &SimHandle) -> Self {
        Self {
            http: Client::builder(TokioExecutor::new()).build_http(),
            base: sim.base_url(),
        }
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<Reply, String> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header("content-type", content_type);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let resp = self.http.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e:?}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.try_send(
            Method::POST,
            path,
            token,
            Some(serde_json::to_vec(body).unwrap()),
            "application/json",
        )
        .await
        .unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.try_send(Method::GET, path, token, None, "application/json")
            .await
            .unwrap()
    }

    pub async fn token_with(&self, basic: Option<(&str, &str)>, form: &str) -> Reply {
        use base64::Engine;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/oauth/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            req = req.header("authorization", format!("Basic {b}"));
        }
        let req = req.body(Full::new(Bytes::from(form.to_owned()))).unwrap();
        let resp = self.http.request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    pub async fn token(&self, sim: &SimHandle) -> String {
        let r = self
            .token_with(
                Some((sim.client_id(), sim.client_secret())),
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.json()["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn query(&self, token: &str, body: &Value) -> Reply {
        self.post_json(DETAILS_QUERY, Some(token), body).await
    }
}

/// The raw JSON of each conversation in a details or job page, byte for byte.
pub fn raw_conversations(body: &[u8]) -> Option<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        conversations: Option<Vec<&'a serde_json::value::RawValue>>,
    }
    let page: Page<'_> = serde_json::from_slice(body).unwrap();
    page.conversations
        .map(|v| v.into_iter().map(|r| r.get().to_owned()).collect())
}

pub fn page(interval: &str, size: u64, number: u64) -> Value {
    serde_json::json!({
        "interval": interval,
        "order": "asc",
        "orderBy": "conversationStart",
        "paging": { "pageSize": size, "pageNumber": number },
    })
}
