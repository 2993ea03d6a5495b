//! Sending one API request through the stack and classifying its outcome.

use std::error::Error as StdError;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use keel_layers::auth::TokenError;
use keel_layers::backoff::RetrySafe;
use tower::ServiceExt;

use super::stack::BodyTooLarge;
use super::Client;
use crate::error::{ApiErrorBody, BoxError, Error};

/// Longest error body kept for parsing the Genesys error fields.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

impl Client {
    /// Sends a read-only request to `path` (absolute, under the API base URL) and returns the
    /// body of a 2xx answer. Every request is marked safe to repeat: the client only queries.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, Error> {
        let endpoint = path.split('?').next().unwrap_or(path);
        let uri = self.inner.env.api_endpoint(path)?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, "application/json")
            .extension(RetrySafe);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::config(format!("invalid request to {endpoint}: {e}")))?;
        let res = match self.inner.http.clone().oneshot(req).await {
            Ok(res) => res,
            Err(e) => return Err(self.classify(endpoint, e)),
        };
        let status = res.status();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(bytes);
        }
        Err(api_error(status, endpoint, &bytes))
    }

    fn classify(&self, endpoint: &str, err: BoxError) -> Error {
        let client_id = self.inner.client_id.clone();
        if let Some(token) = find::<TokenError>(err.as_ref()) {
            return match token {
                TokenError::Rejected { .. } => Error::Credentials {
                    client_id,
                    source: Some(Box::new(token.clone())),
                },
                other => Error::Token {
                    client_id,
                    source: Box::new(other.clone()),
                },
            };
        }
        if let Some(too_large) = find::<BodyTooLarge>(err.as_ref()) {
            return Error::decode(endpoint, too_large.to_string());
        }
        Error::Transport {
            endpoint: endpoint.to_owned(),
            source: err,
        }
    }
}

fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        next = e.source();
    }
    None
}

fn api_error(status: StatusCode, endpoint: &str, body: &[u8]) -> Error {
    let body = &body[..body.len().min(ERROR_BODY_LIMIT)];
    let body = serde_json::from_slice::<ApiErrorBody>(body).unwrap_or_default();
    Error::Api {
        status,
        endpoint: endpoint.to_owned(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_the_genesys_fields() {
        let body = br#"{"message":"Pagination may not exceed 100000 results.","code":"bad.request","status":400,"contextId":"ctx-1","details":[]}"#;
        let err = api_error(StatusCode::BAD_REQUEST, "/api/v2/x", body);
        let Error::Api { status, body, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*status, StatusCode::BAD_REQUEST);
        assert_eq!(body.code.as_deref(), Some("bad.request"));
        assert_eq!(body.context_id.as_deref(), Some("ctx-1"));
        assert_eq!(body.status, Some(400));
        assert!(err.to_string().contains("Pagination may not exceed"));
        let err = api_error(StatusCode::BAD_GATEWAY, "/api/v2/x", b"<html>");
        assert!(matches!(err, Error::Api { ref body, .. } if body.message.is_none()));
    }
}
