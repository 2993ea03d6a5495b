use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;
use tokio::time::Instant;
use zeroize::Zeroize;

use crate::auth::token::bearer_header;
use crate::auth::{Token, TokenError};

/// A token that lives less than this would be fetched again for nearly every request: the
/// token endpoint is at fault, and the answer is treated as a transient failure.
const MIN_LIFETIME: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<ExpiresIn>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Seconds(u64),
    Fractional(f64),
    Text(String),
}

impl ExpiresIn {
    fn seconds(&self) -> Option<u64> {
        match self {
            ExpiresIn::Seconds(s) => Some(*s),
            ExpiresIn::Fractional(f) if f.is_finite() && *f >= 0.0 => Some(*f as u64),
            ExpiresIn::Fractional(_) => None,
            ExpiresIn::Text(t) => t.trim().parse().ok(),
        }
    }
}

pub(super) fn parse_token(body: &[u8], sent_at: Instant) -> Result<Token, TokenError> {
    // NOTE: serde_json's message may quote the input, so only its position is reported.
    let mut parsed: TokenResponse = serde_json::from_slice(body).map_err(|e| {
        TokenError::InvalidResponse(format!(
            "not a token response ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let result = (|| {
        if let Some(kind) = &parsed.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(TokenError::InvalidResponse(format!(
                    "unsupported token type {:?}",
                    truncate(kind)
                )));
            }
        }
        if parsed.access_token.is_empty() {
            return Err(TokenError::InvalidResponse("empty access token".into()));
        }
        let expires_in = match &parsed.expires_in {
            None => None,
            Some(e) => Some(Duration::from_secs(e.seconds().ok_or_else(|| {
                TokenError::InvalidResponse("expires_in is not a number of seconds".into())
            })?)),
        };
        if let Some(short) = expires_in.filter(|d| *d < MIN_LIFETIME) {
            return Err(TokenError::LifetimeTooShort { expires_in: short });
        }
        let header = bearer_header(&parsed.access_token)?;
        // NOTE: the lifetime counts from when the request was sent, erring on the early side;
        // a lifetime too long to represent means no expiry.
        Ok(Token::new(
            header,
            expires_in.and_then(|d| sent_at.checked_add(d)),
        ))
    })();
    parsed.access_token.zeroize();
    result
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// The error for a 400/401 answer. The server's own words are kept (cut short), except the
/// client secret: a token endpoint that echoes the request must not put it in a message.
pub(super) fn rejected(status: StatusCode, body: &[u8], secret: &str) -> TokenError {
    let parsed: OAuthError = serde_json::from_slice(body).unwrap_or_default();
    let clean = |s: &str| {
        if secret.is_empty() {
            truncate(s)
        } else {
            truncate(&s.replace(secret, "[redacted]"))
        }
    };
    TokenError::Rejected {
        status,
        error: parsed
            .error
            .as_deref()
            .map_or_else(|| "unknown".into(), clean),
        description: parsed.error_description.as_deref().map(clean),
    }
}

fn truncate(s: &str) -> String {
    const MAX: usize = 256;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
