use std::fmt;
use std::net::IpAddr;

use http::uri::{Scheme, Uri};

/// The origin (scheme, host and port) a token is issued for and may be sent to.
///
/// Host names compare case-insensitively and a missing port means the scheme's default, so
/// `https://API.example.com` and `https://api.example.com:443/x` are the same origin.
#[derive(Clone)]
pub struct Origin {
    https: bool,
    host: String,
    port: u16,
    /// The authority as it was written (`host[:port]`), for the common case of requests
    /// built from the same base URI: equal to it (ignoring case) means the same host and
    /// port, without parsing either.
    authority: String,
}

impl PartialEq for Origin {
    fn eq(&self, other: &Self) -> bool {
        self.https == other.https && self.port == other.port && self.host == other.host
    }
}

impl Eq for Origin {}

/// Why a URI cannot be a bearer-token [`Origin`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// The URI is not absolute (no scheme or host).
    #[error("origin must be an absolute http or https uri")]
    NotAbsolute,
    /// The scheme is neither `http` nor `https`.
    #[error("origin scheme must be http or https")]
    UnsupportedScheme,
    /// Plain `http` to a host that is not loopback: a token would travel in clear text.
    #[error("refusing to send tokens over plain http to non-loopback host {0}")]
    InsecureHost(String),
    /// The string is not a URI.
    #[error("origin is not a valid uri")]
    InvalidUri,
}

impl Origin {
    /// Parses an origin from a URI string such as `https://api.mypurecloud.com`; any path is
    /// ignored.
    ///
    /// # Errors
    ///
    /// See [`Origin::from_uri`].
    pub fn parse(uri: &str) -> Result<Self, OriginError> {
        let uri: Uri = uri.parse().map_err(|_| OriginError::InvalidUri)?;
        Origin::from_uri(&uri)
    }

    /// Takes the origin of an absolute URI.
    ///
    /// # Errors
    ///
    /// [`OriginError`] when the URI is not absolute `http`/`https`, or is plain `http` to a
    /// host that is not loopback (`localhost`, `127.0.0.0/8`, `::1`).
    pub fn from_uri(uri: &Uri) -> Result<Self, OriginError> {
        let origin = Origin::of(uri).ok_or(OriginError::NotAbsolute)??;
        if !origin.https && !is_loopback_host(&origin.host) {
            return Err(OriginError::InsecureHost(origin.host));
        }
        Ok(origin)
    }

    /// The origin of `uri`: `None` for a relative URI.
    fn of(uri: &Uri) -> Option<Result<Self, OriginError>> {
        let host = uri.host()?;
        let authority = uri.authority()?.as_str().to_owned();
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return Some(Err(OriginError::UnsupportedScheme)),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Ok(Origin {
            https,
            host,
            port,
            authority,
        }))
    }

    /// Whether a request to `uri` goes to this origin. A relative URI (no authority) counts as
    /// this origin: it is resolved against the configured base further down the stack.
    ///
    /// Compares in place, without allocating: this runs on every request.
    pub fn matches(&self, uri: &Uri) -> bool {
        let Some(authority) = uri.authority() else {
            return true;
        };
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return false,
        };
        if https != self.https {
            return false;
        }
        // NOTE: byte equality first: a request built from the same base URI is written as the
        // origin was, and comparing bytes is far cheaper than folding case byte by byte.
        let written = authority.as_str();
        if written == self.authority || written.eq_ignore_ascii_case(&self.authority) {
            return true;
        }
        let Some(host) = uri.host() else {
            return false;
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        port == self.port
            && host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(&self.host)
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Origin({self})")
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Whether `host` (without brackets) names the loopback interface.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_ignores_case_path_and_default_port() {
        let origin = Origin::parse("https://API.example.com").unwrap();
        assert!(origin.matches(&"https://api.example.com:443/v2/x?y".parse().unwrap()));
        assert!(origin.matches(&"/relative/path".parse().unwrap()));
        assert!(!origin.matches(&"https://api.example.com:8443/".parse().unwrap()));
        assert!(!origin.matches(&"http://api.example.com/".parse().unwrap()));
        assert!(!origin.matches(&"https://api.example.com.evil.test/".parse().unwrap()));
        assert!(!origin.matches(&"https://evil.test/".parse().unwrap()));
    }

    #[test]
    fn host_case_and_default_ports_are_equivalent_both_ways() {
        let origin = Origin::parse("https://api.example.com:443").unwrap();
        assert!(origin.matches(&"HTTPS://Api.Example.COM/x".parse().unwrap()));
        assert!(origin.matches(&"https://API.EXAMPLE.COM:443".parse().unwrap()));
        assert!(!origin.matches(&"https://api.example.com:80/".parse().unwrap()));
        assert!(!origin.matches(&"https://api.example.co/".parse().unwrap()));
        assert!(!origin.matches(&"https://api.example.comm/".parse().unwrap()));

        let local = Origin::parse("http://LocalHost").unwrap();
        assert!(local.matches(&"http://localhost:80/".parse().unwrap()));
        assert!(!local.matches(&"http://localhost:8080/".parse().unwrap()));
        assert!(!local.matches(&"https://localhost/".parse().unwrap()));

        let v6 = Origin::parse("http://[::1]:9").unwrap();
        assert!(v6.matches(&"http://[::1]:9/x".parse().unwrap()));
        assert!(!v6.matches(&"http://[::1]/x".parse().unwrap()));
        assert!(!v6.matches(&"http://[::2]:9/x".parse().unwrap()));
    }

    #[test]
    fn same_authority_text_and_equivalent_spellings_both_match() {
        let origin = Origin::parse("https://api.example.com:443").unwrap();
        // Written the same way (the fast path) ...
        assert!(origin.matches(&"https://api.example.com:443/x".parse().unwrap()));
        assert!(origin.matches(&"https://API.example.com:443/x".parse().unwrap()));
        // ... or differently (the fallback).
        assert!(origin.matches(&"https://api.example.com/x".parse().unwrap()));
        assert!(origin.matches(&"https://user@api.example.com/x".parse().unwrap()));
        assert!(!origin.matches(&"http://api.example.com:443/x".parse().unwrap()));
        assert!(!origin.matches(&"https://api.example.com@evil.test/".parse().unwrap()));
        assert_eq!(origin, Origin::parse("https://API.EXAMPLE.COM").unwrap());
        assert_ne!(
            origin,
            Origin::parse("https://api.example.com:8443").unwrap()
        );
    }

    #[test]
    fn authority_without_a_scheme_is_not_this_origin() {
        let origin = Origin::parse("https://api.example.com").unwrap();
        assert!(!origin.matches(&"api.example.com:443".parse().unwrap()));
    }

    #[test]
    fn plain_http_is_refused_unless_loopback() {
        assert_eq!(
            Origin::parse("http://api.example.com"),
            Err(OriginError::InsecureHost("api.example.com".into()))
        );
        assert!(Origin::parse("http://127.0.0.1:8080").is_ok());
        assert!(Origin::parse("http://localhost:1").is_ok());
        assert!(Origin::parse("http://[::1]:9").is_ok());
        assert_eq!(Origin::parse("/x"), Err(OriginError::NotAbsolute));
        assert_eq!(
            Origin::parse("ftp://x.test"),
            Err(OriginError::UnsupportedScheme)
        );
    }
}
