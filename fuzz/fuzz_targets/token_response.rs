//! The OAuth token endpoint's answer: any status, any body, through `ClientCredentials`.
//! Must not panic; a token only from a 2xx; an error never echoes the body's token.
#![no_main]

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use keel_layers::auth::{ClientCredentials, TokenError, TokenSource};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
}

fuzz_target!(|data: &[u8]| {
    let Some((&code, body)) = data.split_first() else {
        return;
    };
    let status = StatusCode::from_u16(200 + u16::from(code) % 400).unwrap();
    let body = Bytes::copy_from_slice(body);
    let reply = body.clone();
    let http = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let mut res = Response::new(Full::new(reply.clone()));
        *res.status_mut() = status;
        async move { Ok::<_, std::io::Error>(res) }
    });
    let grant = ClientCredentials::new(
        "https://login.example.com/oauth/token".parse().unwrap(),
        "fuzz",
        SecretString::from("fuzz-secret"),
        http,
    )
    .max_attempts(1);
    let result = RUNTIME.with(|rt| rt.block_on(grant.fetch()));
    match result {
        Ok(_) => assert!(status.is_success()),
        Err(e) => {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                if let Some(token) = v.get("access_token").and_then(|t| t.as_str()) {
                    if token.len() >= 8 && !matches!(e, TokenError::Rejected { .. }) {
                        assert!(!format!("{e} {e:?}").contains(token));
                    }
                }
            }
        }
    }
});
