//! Request paths the gateway refuses to forward: dot segments and ambiguous encodings.
//!
//! The gateway puts the caller's path under the upstream's base path, and a route such as
//! `/api/*` decides what may be forwarded at all. A dot segment (`..`) in that path, raw or
//! percent-encoded, would be resolved by the upstream (or a proxy in between) *after* that
//! decision, so `/api/../oauth/token` would reach a path outside the allowed prefix with the
//! gateway's token. Normalising here would not help: the upstream may decode once more, or
//! treat `%2f` or `\` as a separator. So such paths are refused, not rewritten.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// Why a request path was refused; the [`Gateway`](crate::Gateway) answers `400 Bad
/// Request` with code `gateway.path.rejected`, and forwards nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/` (e.g. the `*` of `OPTIONS *`).
    #[error("request path must start with '/'")]
    NotAbsolute,
    /// A segment is `.` or `..` once percent-decoded (any number of times, any case), or
    /// before a `;` parameter (`..;x`).
    #[error("request path has a dot segment")]
    DotSegment,
    /// A `\`, or a `/` or `\` that only appears once the path is percent-decoded (`%2f`,
    /// `%5c`, `%252f`): upstreams disagree on whether those separate segments.
    #[error("request path has an encoded or backslash separator")]
    AmbiguousSeparator,
    /// A `%` not followed by two hex digits.
    #[error("request path has a malformed percent-encoding")]
    MalformedEscape,
    /// A control character once percent-decoded (`%00`, `%0a`, …).
    #[error("request path has an encoded control character")]
    ControlCharacter,
}

/// Checks that `path` (as received, still percent-encoded) names the same resource
/// wherever it is resolved: it starts with `/`, and no segment is a dot segment or holds
/// a separator or control character, however many times it is percent-decoded.
///
/// The [`Gateway`](crate::Gateway) applies this to every request before it joins the path
/// to its upstream; a router can apply it before routing, too.
///
/// ```
/// use keel_gateway::{check_path, PathError};
///
/// assert_eq!(check_path("/api/v2/users/%20x"), Ok(()));
/// assert_eq!(check_path("/api/../oauth/token"), Err(PathError::DotSegment));
/// assert_eq!(check_path("/api/.%2E/oauth/token"), Err(PathError::DotSegment));
/// assert_eq!(check_path("/api/..%2foauth"), Err(PathError::AmbiguousSeparator));
/// ```
///
/// # Errors
///
/// The first [`PathError`] found.
pub fn check_path(path: &str) -> Result<(), PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    if rest.contains('\\') {
        return Err(PathError::AmbiguousSeparator);
    }
    rest.split('/').try_for_each(check_segment)
}

fn check_segment(raw: &str) -> Result<(), PathError> {
    check_escapes(raw.as_bytes())?;
    let mut segment = Cow::Borrowed(raw.as_bytes());
    loop {
        if is_dot_segment(&segment) {
            return Err(PathError::DotSegment);
        }
        let decoded: Cow<'_, [u8]> = percent_decode(&segment).into();
        // NOTE: a decoding that changes anything makes the segment shorter, so this ends.
        if decoded == segment {
            return Ok(());
        }
        if decoded.iter().any(|b| matches!(b, b'/' | b'\\')) {
            return Err(PathError::AmbiguousSeparator);
        }
        if decoded.iter().any(u8::is_ascii_control) {
            return Err(PathError::ControlCharacter);
        }
        segment = Cow::Owned(decoded.into_owned());
    }
}

/// `.` and `..`, also with a `;` parameter after them (which some servers drop).
fn is_dot_segment(segment: &[u8]) -> bool {
    let name = segment.split(|b| *b == b';').next().unwrap_or_default();
    name == b"." || name == b".."
}

/// Every `%` of the path as received starts a two-hex-digit escape. (Once decoded, a `%`
/// is a literal character: `100%25` is the segment `100%`.)
fn check_escapes(raw: &[u8]) -> Result<(), PathError> {
    let mut i = 0;
    while let Some(at) = raw[i..].iter().position(|b| *b == b'%') {
        let start = i + at;
        let escape = raw
            .get(start + 1..start + 3)
            .ok_or(PathError::MalformedEscape)?;
        if !escape.iter().all(u8::is_ascii_hexdigit) {
            return Err(PathError::MalformedEscape);
        }
        i = start + 3;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_api_paths_pass() {
        for ok in [
            "/",
            "/api/v2/users",
            "/api/v2/users/",
            "/api/v2/analytics/conversations/details/query",
            "/api/v2/users/a.b/..x/x../.../%2e%2e%2e",
            "/api/v2/x%20y/100%25/%41",
            "/api//v2",
            "/api/v2/users;x=1",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn raw_and_encoded_dot_segments_are_refused_in_any_case_and_any_position() {
        for bad in [
            "/..",
            "/.",
            "/api/..",
            "/api/.",
            "/api/../oauth/token",
            "/api/./v2",
            "/api/%2e%2e/oauth/token",
            "/api/%2E%2E/oauth/token",
            "/api/.%2E/oauth/token",
            "/api/%2e./oauth/token",
            "/api/%2e/v2",
            "/api/%252e%252e/oauth/token",
            "/api/%25252e./x",
            "/api/..;jsessionid=1/oauth/token",
            "/api/%2e%2e;x/oauth/token",
        ] {
            assert_eq!(check_path(bad), Err(PathError::DotSegment), "{bad}");
        }
    }

    #[test]
    fn separators_that_appear_only_when_decoded_are_refused() {
        for bad in [
            "/api/..%2foauth/token",
            "/api/..%2Foauth/token",
            "/api/v2%2f..%2f..%2foauth",
            "/api/%252f",
            "/api/..%5coauth",
            "/api/..\\oauth",
        ] {
            assert_eq!(check_path(bad), Err(PathError::AmbiguousSeparator), "{bad}");
        }
    }

    #[test]
    fn malformed_escapes_and_control_characters_are_refused() {
        for bad in ["/api/%", "/api/%2", "/api/%zz", "/api/%2g/x"] {
            assert_eq!(check_path(bad), Err(PathError::MalformedEscape), "{bad}");
        }
        for bad in ["/api/%00", "/api/x%0a", "/api/%7f", "/api/%2500"] {
            assert_eq!(check_path(bad), Err(PathError::ControlCharacter), "{bad}");
        }
        assert_eq!(check_path("*"), Err(PathError::NotAbsolute));
        assert_eq!(check_path(""), Err(PathError::NotAbsolute));
    }

    /// Decodes `path` completely, as the most lenient upstream would, and resolves it.
    fn fully_decoded_segments(path: &str) -> Vec<Vec<u8>> {
        let mut bytes = path.as_bytes().to_vec();
        loop {
            let next: Vec<u8> = percent_decode(&bytes).collect();
            if next == bytes {
                break;
            }
            bytes = next;
        }
        bytes
            .split(|b| *b == b'/' || *b == b'\\')
            .map(|s| s.split(|b| *b == b';').next().unwrap_or_default().to_vec())
            .collect()
    }

    proptest! {
        /// Whatever an upstream that decodes any number of times and splits on `/` and `\`
        /// makes of an accepted path, it finds no dot segment in it.
        #[test]
        fn an_accepted_path_has_no_dot_segment_however_it_is_decoded(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("."), Just(".."), Just("%2e"), Just("%2E"), Just("%25"), Just("%2f"),
                    Just("%5c"), Just("2e"), Just("/"), Just(";"), Just("a"), Just("%"),
                ],
                0..8,
            )
        ) {
            let path = format!("/api/{}", parts.concat());
            if check_path(&path).is_ok() {
                let segments = fully_decoded_segments(&path);
                prop_assert!(
                    segments.iter().all(|s| s != b"." && s != b".."),
                    "{path} was accepted"
                );
            }
        }
    }
}
