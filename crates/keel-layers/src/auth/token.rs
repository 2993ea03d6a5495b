use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use tokio::time::Instant;
use tower::BoxError;

/// An access token: the `Authorization` header value to send (for example `Bearer xyz`),
/// marked sensitive, with its optional expiry.
///
/// Cloning a `Token` is one reference-count increment. Each `Token` made with
/// [`Token::new`] or [`Token::bearer`] gets a fresh [`TokenId`], which is how a cache tells
/// "the token that was rejected" from "the token that replaced it", even if a server
/// hands out the same string twice.
///
/// `Debug` prints `[redacted]` in place of the value.
#[derive(Clone)]
pub struct Token(Arc<TokenInner>);

struct TokenInner {
    value: HeaderValue,
    issued_at: Instant,
    expires_at: Option<Instant>,
    id: TokenId,
}

/// The identity of one [`Token`], cheap to copy and to compare, carrying no secret.
///
/// [`Bearer`](super::Bearer) puts the `TokenId` it sent into the extensions of a `401`
/// response, so that [`RefreshOn401`](super::RefreshOn401) can invalidate exactly the
/// rejected token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenId(u64);

static NEXT_TOKEN_ID: AtomicU64 = AtomicU64::new(1);

impl Token {
    /// Makes a token from a complete `Authorization` value (marked sensitive here) that is
    /// valid until `expires_at` (`None`: until invalidated).
    pub fn new(mut value: HeaderValue, expires_at: Option<Instant>) -> Self {
        value.set_sensitive(true);
        Token(Arc::new(TokenInner {
            value,
            issued_at: Instant::now(),
            expires_at,
            id: TokenId(NEXT_TOKEN_ID.fetch_add(1, Ordering::Relaxed)),
        }))
    }

    /// Makes a `Bearer <access_token>` token that expires `expires_in` from now (a lifetime
    /// too long to represent means no expiry).
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidResponse`] when the access token is empty or holds a character
    /// other than visible ASCII (`!` to `~`): a space, a control character or a non-ASCII
    /// character. The message does not repeat the token.
    pub fn bearer(access_token: &str, expires_in: Option<Duration>) -> Result<Self, TokenError> {
        Ok(Token::new(
            bearer_header(access_token)?,
            expires_in.and_then(|d| Instant::now().checked_add(d)),
        ))
    }

    /// The `Authorization` header value, marked sensitive.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0.value
    }

    /// When the token expires, if it does.
    pub fn expires_at(&self) -> Option<Instant> {
        self.0.expires_at
    }

    /// When this `Token` value was made (its lifetime starts here).
    pub fn issued_at(&self) -> Instant {
        self.0.issued_at
    }

    /// This token's identity.
    pub fn id(&self) -> TokenId {
        self.0.id
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired_at(&self, now: Instant) -> bool {
        self.0.expires_at.is_some_and(|at| now >= at)
    }
}

impl From<&Token> for TokenId {
    fn from(token: &Token) -> Self {
        token.id()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &format_args!("[redacted]"))
            .field("expires_at", &self.0.expires_at)
            .field("id", &self.0.id)
            .finish()
    }
}

/// Why a token could not be had. Cloneable, so one failed fetch can reach every waiter.
///
/// No variant holds a secret or a token; messages are lowercase.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token endpoint refused the credentials (HTTP 400 or 401). Permanent: not retried.
    #[error("token endpoint rejected the client credentials ({status}): {}{}", Escaped(error), description.as_deref().map(|d| format!(" ({})", Escaped(d))).unwrap_or_default())]
    Rejected {
        /// The HTTP status of the refusal.
        status: StatusCode,
        /// The OAuth `error` code (`invalid_client`, …), or `unknown`. Text from the server:
        /// `Display` shows it with control characters escaped.
        error: String,
        /// The OAuth `error_description`, if any (server text, escaped in `Display` as `error`).
        description: Option<String>,
    },
    /// The token endpoint answered with a status that is neither success nor a refusal.
    #[error("token endpoint answered {0}")]
    Status(StatusCode),
    /// The token request failed in transport (connect error, reset, timeout).
    #[error("token request failed: {0}")]
    Transport(Arc<BoxError>),
    /// The token request took longer than its per-attempt timeout.
    #[error("token request timed out after {0:?}")]
    Timeout(Duration),
    /// The token response was not a usable token response.
    #[error("invalid token response: {0}")]
    InvalidResponse(String),
    /// The token endpoint issued a token that expires in less than a second (`expires_in` of
    /// 0 or a fraction): a fault of the endpoint, retried like a 5xx, never used (it would
    /// cost a token fetch per request).
    #[error("token endpoint issued a token that expires in {expires_in:?} (less than a second)")]
    LifetimeTooShort {
        /// The lifetime the endpoint gave.
        expires_in: Duration,
    },
    /// The token response body was larger than the limit.
    #[error("token response body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The token URL is not `https` (plain `http` is allowed for loopback hosts only).
    #[error("refusing to send client credentials over plain http to a non-loopback host")]
    InsecureTokenUrl,
    /// Transient failures went on past the retry limits; `last` is the final one.
    #[error("token endpoint unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// How many requests were made.
        attempts: u32,
        /// The last failure.
        last: Box<TokenError>,
    },
    /// A custom [`TokenSource`](super::TokenSource) failed.
    #[error("token source failed: {0}")]
    Source(Arc<BoxError>),
}

impl TokenError {
    /// Wraps the error of a custom token source.
    pub fn source_error(err: impl Into<BoxError>) -> Self {
        TokenError::Source(Arc::new(err.into()))
    }

    /// Whether trying again later may succeed (transport failures, 429 and 5xx answers).
    pub fn is_transient(&self) -> bool {
        match self {
            TokenError::Status(s) => *s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error(),
            TokenError::Transport(_)
            | TokenError::Timeout(_)
            | TokenError::LifetimeTooShort { .. } => true,
            _ => false,
        }
    }
}

/// Shows server text with control characters escaped (`\n`, `\u{1b}`, …), so an error
/// message cannot move a terminal's cursor, change its colours or forge a log line.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// `Bearer <access_token>` as a header value, without leaving a copy of the token behind in
/// temporary strings.
///
/// The token must be one or more visible ASCII characters (`%x21-7E`): RFC 6749's access
/// token is `1*VSCHAR`, and RFC 6750's `b64token` is a subset of these; a space would split
/// the `Authorization` value, and control or non-ASCII characters are no token's.
pub(crate) fn bearer_header(access_token: &str) -> Result<HeaderValue, TokenError> {
    if access_token.is_empty() {
        return Err(TokenError::InvalidResponse("empty access token".into()));
    }
    if !access_token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::InvalidResponse(
            "access token holds a character other than visible ascii (a space, a control or a non-ascii character)"
                .into(),
        ));
    }
    let mut value = zeroize::Zeroizing::new(String::with_capacity(7 + access_token.len()));
    value.push_str("Bearer ");
    value.push_str(access_token);
    HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(value.as_bytes()))
        .map_err(|_| TokenError::InvalidResponse("access token is not a valid header value".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_shows_server_text_with_control_characters_escaped() {
        let err = TokenError::Rejected {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client\x1b[31m".into(),
            description: Some("line one\nforged: line two\u{7}".into()),
        };
        let shown = err.to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(
            shown,
            "token endpoint rejected the client credentials (401 Unauthorized): \
             invalid_client\\u{1b}[31m (line one\\nforged: line two\\u{7})"
        );
    }

    #[test]
    fn bearer_takes_every_visible_ascii_character() {
        let visible: String = (0x21u8..=0x7e).map(char::from).collect();
        let token = Token::bearer(&visible, None).unwrap();
        assert_eq!(
            token.header_value().as_bytes(),
            format!("Bearer {visible}").as_bytes()
        );
    }

    #[test]
    fn bearer_refuses_empty_and_non_visible_tokens_without_echoing_them() {
        for bad in [
            "",
            "SECRET-PART with-space",
            "SECRET-PART\twith-tab",
            "SECRET-PART\u{7f}",
            "SECRET-PART\u{1}",
            "SECRET-PART-caf\u{e9}",
            "SECRET-PART\u{a0}",
        ] {
            let err = Token::bearer(bad, None).unwrap_err();
            assert!(
                matches!(err, TokenError::InvalidResponse(_)),
                "{bad:?}: {err:?}"
            );
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("SECRET-PART"), "{bad:?}: {shown}");
        }
    }
}
