//! Hop-by-hop, credential and session headers, removed by the [`Gateway`](crate::Gateway).

use http::header::{
    HeaderName, AUTHORIZATION, CONNECTION, COOKIE, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION,
    SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::HeaderMap;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), besides those
/// a `Connection` header names.
const HOP_BY_HOP: [&str; 4] = ["keep-alive", "proxy-connection", "te", "trailer"];

/// Removes the hop-by-hop headers of `headers`: `Connection` and every header it names,
/// `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade` and every `Proxy-*` header
/// (`Proxy-Authorization`, `Proxy-Authenticate`, `Proxy-Connection`, …).
///
/// ```
/// use http::HeaderMap;
/// use keel_gateway::remove_hop_by_hop;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("connection", "keep-alive, x-session".parse().unwrap());
/// headers.insert("x-session", "abc".parse().unwrap());
/// headers.insert("keep-alive", "timeout=5".parse().unwrap());
/// headers.insert("content-type", "application/json".parse().unwrap());
/// remove_hop_by_hop(&mut headers);
/// assert_eq!(headers.len(), 1);
/// assert!(headers.contains_key("content-type"));
/// ```
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy
        .into_iter()
        .chain([PROXY_AUTHORIZATION, PROXY_AUTHENTICATE])
    {
        headers.remove(name);
    }
}

/// Removes the caller's own credentials: `Authorization` and `Cookie` (`Proxy-Authorization`
/// is hop-by-hop and goes with [`remove_hop_by_hop`]).
pub(crate) fn remove_credentials(headers: &mut HeaderMap) {
    headers.remove(AUTHORIZATION);
    headers.remove(COOKIE);
}

/// Removes the upstream's session cookies from its response: `Set-Cookie` (and the obsolete
/// `Set-Cookie2`). They belong to the gateway's own session with the upstream, which callers
/// must neither see nor be able to replay.
pub(crate) fn remove_upstream_cookies(headers: &mut HeaderMap) {
    headers.remove(SET_COOKIE);
    headers.remove("set-cookie2");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn removes_every_hop_by_hop_header_and_those_connection_names() {
        let mut h = headers(&[
            ("connection", "close, X-Trace-Hop"),
            ("connection", "x-other"),
            ("x-trace-hop", "1"),
            ("x-other", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic abc"),
            ("proxy-authenticate", "Basic"),
            ("proxy-connection", "keep-alive"),
            ("proxy-foo", "x"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("content-type", "application/json"),
            ("x-request-id", "r-1"),
        ]);
        remove_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, ["content-type", "x-request-id"]);
    }

    #[test]
    fn a_malformed_connection_header_still_goes() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            http::HeaderValue::from_bytes(b"bad \xff name").unwrap(),
        );
        h.insert("x-kept", "1".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert!(!h.contains_key(CONNECTION));
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn credentials_are_removed() {
        let mut h = headers(&[
            ("authorization", "Bearer caller"),
            ("cookie", "session=1"),
            ("accept", "*/*"),
        ]);
        remove_credentials(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn every_upstream_set_cookie_is_removed() {
        let mut h = headers(&[
            ("set-cookie", "sid=upstream; HttpOnly"),
            ("set-cookie", "lb=node-2; Path=/"),
            ("set-cookie2", "old=1"),
            ("content-type", "application/json"),
        ]);
        remove_upstream_cookies(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, ["content-type"]);
    }
}
