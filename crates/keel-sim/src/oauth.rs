//! `POST /oauth/token`: the OAuth 2.0 client-credentials grant, with scripted outages.

use base64::Engine;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL};
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::time::Instant;

use crate::server::reply::{self, Resp};
use crate::state::State;
use crate::stats::Counters;

#[derive(Debug, Deserialize)]
struct Form {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(state: &State, error: &str, description: &str) -> Resp {
    Counters::bump(&state.stats.token_rejections);
    let body = serde_json::json!({
        "error": error,
        "description": description,
        "error_description": description,
    });
    reply::json(
        StatusCode::BAD_REQUEST,
        serde_json::to_vec(&body).expect("json"),
    )
}

fn basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

pub(crate) async fn token(state: &State, req: Request<Incoming>, context_id: &str) -> Resp {
    let stats = &state.stats;
    let n = stats
        .token_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    let c = &state.config;
    if n <= c.token_outage_requests
        || Instant::now() < crate::state::later(state.origin, c.token_outage_for)
    {
        Counters::bump(&stats.token_unavailable);
        return reply::unavailable(
            state,
            "The token service is temporarily unavailable.",
            context_id,
        );
    }
    if req.method() != Method::POST {
        return oauth_error(
            state,
            "invalid_request",
            "the token endpoint only accepts POST",
        );
    }
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| basic(v.as_bytes()));
    let Some(body) = crate::server::read_body_pub(req.into_body()).await else {
        return oauth_error(
            state,
            "invalid_request",
            "the request body could not be read",
        );
    };
    let form: Form = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(_) => return oauth_error(state, "invalid_request", "the request body is not a form"),
    };
    let creds = header.or(match (form.client_id, form.client_secret) {
        (Some(id), Some(secret)) => Some((id, secret)),
        _ => None,
    });
    let client = creds.and_then(|(id, secret)| state.client_with(&id, &secret));
    let Some(client) = client else {
        return oauth_error(
            state,
            "invalid_client",
            "client not found or secret mismatch",
        );
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            state,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    let access_token = state.tokens.issue(Instant::now(), client);
    Counters::bump(&stats.tokens_issued);
    Counters::bump(&state.clients[client].counters.token_grants);
    let body = serde_json::json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": c.token_lifetime.as_secs(),
    });
    let mut resp = reply::json(StatusCode::OK, serde_json::to_vec(&body).expect("json"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
