//! [`Upstream`]: where the gateway sends requests, and how it rewrites them.

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{HeaderValue, Request, Version};

use crate::headers::{remove_credentials, remove_hop_by_hop};
use crate::path::{check_path, PathError};

/// The base URL a [`Gateway`](crate::Gateway) forwards to: scheme, authority and an optional
/// base path that is put in front of every forwarded path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
    base_path: String,
}

/// Why a URI cannot be an [`Upstream`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// Not an absolute `http` or `https` URI.
    #[error("upstream must be an absolute http or https uri")]
    NotAbsolute,
    /// The URI carries user information (`user:password@`), which the gateway does not send.
    #[error("upstream uri must not contain user information")]
    UserInfo,
    /// The URI has a query string.
    #[error("upstream uri must not have a query")]
    Query,
    /// The base path has a dot segment or an ambiguous encoding ([`check_path`]).
    #[error("upstream uri path refused: {0}")]
    Path(#[source] PathError),
}

impl Upstream {
    /// The upstream at `uri`, e.g. `https://api.mypurecloud.com` or
    /// `http://127.0.0.1:8081/genesys` (requests for `/api/v2/x` then go to
    /// `/genesys/api/v2/x`).
    ///
    /// # Errors
    ///
    /// [`UpstreamError`] when `uri` is not absolute `http`/`https`, has user information, has
    /// a query, or a path that [`check_path`] refuses.
    pub fn new(uri: &Uri) -> Result<Self, UpstreamError> {
        let scheme = match uri.scheme() {
            Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => s.clone(),
            _ => return Err(UpstreamError::NotAbsolute),
        };
        let authority = uri.authority().ok_or(UpstreamError::NotAbsolute)?.clone();
        if authority.as_str().contains('@') {
            return Err(UpstreamError::UserInfo);
        }
        if uri.query().is_some() {
            return Err(UpstreamError::Query);
        }
        check_path(uri.path()).map_err(UpstreamError::Path)?;
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|_| UpstreamError::NotAbsolute)?;
        Ok(Upstream {
            scheme,
            authority,
            host,
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The URI a request for `original` goes to: its path and query under the base path,
    /// on the upstream's scheme and authority (whatever authority `original` names).
    ///
    /// # Errors
    ///
    /// The [`PathError`] of [`check_path`] for `original`'s path: a dot segment or an
    /// ambiguous encoding is never joined to the base path.
    pub fn target(&self, original: &Uri) -> Result<Uri, PathError> {
        let pq = original.path_and_query().map_or("/", PathAndQuery::as_str);
        check_path(original.path_and_query().map_or("/", PathAndQuery::path))?;
        let pq = if self.base_path.is_empty() {
            PathAndQuery::try_from(pq)
        } else {
            PathAndQuery::try_from(format!("{}{pq}", self.base_path))
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        // NOTE: both pieces were valid path-and-query text, so their concatenation is too.
        parts.path_and_query = Some(pq.unwrap_or_else(|_| PathAndQuery::from_static("/")));
        Ok(Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/")))
    }

    /// Rewrites a caller's request for this upstream: the URI ([`target`](Self::target)),
    /// `Host`, HTTP/1.1 (the client negotiates HTTP/2 itself), without hop-by-hop headers and
    /// without the caller's `Authorization` and `Cookie`.
    ///
    /// # Errors
    ///
    /// The [`PathError`] of [`target`](Self::target); the request is dropped.
    pub fn rewrite<B>(&self, mut req: Request<B>) -> Result<Request<B>, PathError> {
        *req.uri_mut() = self.target(req.uri())?;
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        remove_hop_by_hop(headers);
        remove_credentials(headers);
        headers.insert(http::header::HOST, self.host.clone());
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(s: &str) -> Result<Upstream, UpstreamError> {
        Upstream::new(&s.parse().unwrap())
    }

    #[test]
    fn keeps_path_and_query_under_the_base_path() {
        let up = upstream("https://api.example.com/base/").unwrap();
        let target = up
            .target(
                &"http://gw.local:8080/api/v2/users?pageSize=5"
                    .parse()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(
            target,
            "https://api.example.com/base/api/v2/users?pageSize=5"
        );
        let up = upstream("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            up.target(&"/api/v2/x".parse().unwrap()).unwrap(),
            "http://127.0.0.1:9000/api/v2/x"
        );
    }

    #[test]
    fn an_absolute_form_request_cannot_pick_another_host() {
        let up = upstream("https://api.example.com").unwrap();
        let target = up
            .target(&"http://evil.example.net/api/v2/users".parse().unwrap())
            .unwrap();
        assert_eq!(target.host(), Some("api.example.com"));
    }

    #[test]
    fn rewrite_sets_host_and_drops_caller_credentials() {
        let up = upstream("https://api.example.com:8443").unwrap();
        let req = Request::post("http://gw.local/api/v2/q")
            .version(Version::HTTP_2)
            .header("host", "gw.local")
            .header("authorization", "Bearer caller-token")
            .header("cookie", "sid=1")
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let req = up.rewrite(req).unwrap();
        assert_eq!(req.headers()["host"], "api.example.com:8443");
        assert_eq!(req.version(), Version::HTTP_11);
        for gone in ["authorization", "cookie", "connection", "x-hop"] {
            assert!(!req.headers().contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(req.headers()["content-type"], "application/json");
    }

    #[test]
    fn rejects_upstreams_that_are_not_plain_base_urls() {
        assert_eq!(upstream("/relative"), Err(UpstreamError::NotAbsolute));
        assert_eq!(upstream("ftp://x.example"), Err(UpstreamError::NotAbsolute));
        assert_eq!(
            upstream("https://u:p@x.example"),
            Err(UpstreamError::UserInfo)
        );
        assert_eq!(
            upstream("https://x.example/?a=1"),
            Err(UpstreamError::Query)
        );
        assert_eq!(
            upstream("https://x.example/base/../other"),
            Err(UpstreamError::Path(PathError::DotSegment))
        );
    }

    #[test]
    fn a_path_that_could_leave_the_base_path_is_never_joined() {
        let up = upstream("https://api.example.com/genesys").unwrap();
        for path in [
            "/api/../../oauth/token",
            "/api/%2e%2e/%2E%2E/oauth/token",
            "/api/v2/..%2f..%2foauth/token",
        ] {
            let uri: Uri = path.parse().unwrap();
            assert!(up.target(&uri).is_err(), "{path} was joined");
            let req = Request::get(uri).body(()).unwrap();
            assert!(up.rewrite(req).is_err(), "{path} was rewritten");
        }
        let query_dots: Uri = "/api/v2/users?next=/../x".parse().unwrap();
        assert_eq!(
            up.target(&query_dots).unwrap(),
            "https://api.example.com/genesys/api/v2/users?next=/../x"
        );
    }
}
