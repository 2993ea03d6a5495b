//! Where a Genesys Cloud organization lives: its API and login base URLs.
//!
//! Every Genesys Cloud region has one domain (`mypurecloud.com`, `usw2.pure.cloud`, …); the
//! API is served from `https://api.<domain>` and OAuth tokens from `https://login.<domain>`.
//! Gateways, proxies and tests give explicit URLs instead. Because the client sends a client
//! secret to the login URL and bearer tokens to the API URL, plain `http` is refused unless
//! the host is loopback (`localhost`, `127.0.0.0/8`, `::1`).
//!
//! # Example
//!
//! ```
//! use keel_genesys::Environment;
//!
//! let env = Environment::region("mypurecloud.ie").unwrap();
//! assert_eq!(env.api_url().to_string(), "https://api.mypurecloud.ie/");
//! assert_eq!(env.login_url().to_string(), "https://login.mypurecloud.ie/");
//!
//! let local = Environment::custom("http://127.0.0.1:8080", "http://127.0.0.1:8080").unwrap();
//! assert_eq!(local.api_url().port_u16(), Some(8080));
//!
//! assert!(Environment::custom("http://example.com", "https://login.example.com").is_err());
//! ```

use std::net::IpAddr;

use http::Uri;

use crate::error::Error;

/// Every Genesys Cloud region: `(domain, AWS region name)`.
pub const REGIONS: &[(&str, &str)] = &[
    ("mypurecloud.com", "us-east-1"),
    ("use2.us-gov-pure.cloud", "us-east-2 (FedRAMP)"),
    ("usw2.pure.cloud", "us-west-2"),
    ("cac1.pure.cloud", "ca-central-1"),
    ("sae1.pure.cloud", "sa-east-1"),
    ("mypurecloud.ie", "eu-west-1"),
    ("euw2.pure.cloud", "eu-west-2"),
    ("mypurecloud.de", "eu-central-1"),
    ("euc2.pure.cloud", "eu-central-2"),
    ("mec1.pure.cloud", "me-central-1"),
    ("aps1.pure.cloud", "ap-south-1"),
    ("apne2.pure.cloud", "ap-northeast-2"),
    ("mypurecloud.com.au", "ap-southeast-2"),
    ("mypurecloud.jp", "ap-northeast-1"),
    ("apne3.pure.cloud", "ap-northeast-3"),
];

/// The API and login base URLs of one Genesys Cloud organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    api: Uri,
    login: Uri,
}

impl Environment {
    /// The environment of a Genesys Cloud region, by domain (`"mypurecloud.com"`,
    /// `"usw2.pure.cloud"`, …; a leading `api.`/`login.` or `https://` is tolerated).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the domain is not a known Genesys Cloud region (see [`REGIONS`]).
    pub fn region(domain: &str) -> Result<Self, Error> {
        let d = domain.trim().trim_end_matches('/').to_ascii_lowercase();
        let d = d.strip_prefix("https://").unwrap_or(&d);
        let d = d
            .strip_prefix("api.")
            .or_else(|| d.strip_prefix("login."))
            .unwrap_or(d);
        let Some((known, _)) = REGIONS.iter().find(|(k, _)| *k == d) else {
            let all: Vec<&str> = REGIONS.iter().map(|(k, _)| *k).collect();
            return Err(Error::config(format!(
                "unknown Genesys Cloud environment {domain:?}; known: {}",
                all.join(", ")
            )));
        };
        Ok(Self {
            api: parse_base(&format!("https://api.{known}"), "api")?,
            login: parse_base(&format!("https://login.{known}"), "login")?,
        })
    }

    /// An environment with explicit base URLs (gateways, proxies, simulators).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if a URL does not parse, is not `http`/`https`, carries a query, or
    /// is plain `http` to a host that is not loopback.
    pub fn custom(api: &str, login: &str) -> Result<Self, Error> {
        Ok(Self {
            api: parse_base(api, "api")?,
            login: parse_base(login, "login")?,
        })
    }

    /// The API base URL, e.g. `https://api.mypurecloud.com/`.
    pub fn api_url(&self) -> &Uri {
        &self.api
    }

    /// The login base URL, e.g. `https://login.mypurecloud.com/`.
    pub fn login_url(&self) -> &Uri {
        &self.login
    }

    /// `api_url` joined with an absolute path such as `/api/v2/analytics/...`.
    pub(crate) fn api_endpoint(&self, path_and_query: &str) -> Result<Uri, Error> {
        join(&self.api, path_and_query)
    }

    /// The token endpoint: `login_url` + `/oauth/token`.
    pub(crate) fn token_url(&self) -> Result<Uri, Error> {
        join(&self.login, "/oauth/token")
    }
}

fn join(base: &Uri, path: &str) -> Result<Uri, Error> {
    let prefix = base.path().trim_end_matches('/');
    let mut parts = base.clone().into_parts();
    let pq = format!("{prefix}{path}");
    parts.path_and_query = Some(
        pq.parse()
            .map_err(|_| Error::config(format!("invalid request path {path:?}")))?,
    );
    Uri::from_parts(parts).map_err(|_| Error::config(format!("invalid request path {path:?}")))
}

fn parse_base(url: &str, what: &str) -> Result<Uri, Error> {
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|_| Error::config(format!("{what} url {url:?} is not a valid url")))?;
    let host = uri
        .host()
        .ok_or_else(|| Error::config(format!("{what} url {url:?} has no host")))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback(host) => {}
        Some("http") => {
            return Err(Error::config(format!(
                "{what} url {url:?} is plain http to a non-loopback host; use https"
            )))
        }
        _ => return Err(Error::config(format!("{what} url {url:?} must be http(s)"))),
    }
    if uri.query().is_some() {
        return Err(Error::config(format!(
            "{what} url {url:?} must not have a query"
        )));
    }
    // NOTE: normalise to a path ending in `/`, so `join` appends exactly one slash.
    let path = uri.path().trim_end_matches('/').to_owned();
    let mut parts = uri.into_parts();
    parts.path_and_query = Some(
        format!("{path}/")
            .parse()
            .map_err(|_| Error::config(format!("{what} url {url:?} has an invalid path")))?,
    );
    Uri::from_parts(parts).map_err(|_| Error::config(format!("{what} url {url:?} is not valid")))
}

/// Whether a URL host is loopback: `localhost` or a loopback IP (IPv6 in brackets).
pub(crate) fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_maps_to_api_and_login_hosts() {
        for (domain, _) in REGIONS {
            let env = Environment::region(domain).unwrap();
            assert_eq!(env.api_url().host(), Some(&*format!("api.{domain}")));
            assert_eq!(env.login_url().host(), Some(&*format!("login.{domain}")));
            assert_eq!(env.api_url().scheme_str(), Some("https"));
            assert_eq!(env.login_url().scheme_str(), Some("https"));
        }
    }

    #[test]
    fn region_accepts_prefixed_forms() {
        let want = Environment::region("usw2.pure.cloud").unwrap();
        for form in [
            "api.usw2.pure.cloud",
            "https://login.usw2.pure.cloud/",
            "USW2.pure.cloud",
        ] {
            assert_eq!(Environment::region(form).unwrap(), want, "{form}");
        }
    }

    #[test]
    fn unknown_region_is_a_config_error() {
        let err = Environment::region("example.com").unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(err.to_string().contains("example.com"));
    }

    #[test]
    fn plain_http_is_refused_unless_loopback() {
        for ok in [
            "http://localhost:1234",
            "http://127.0.0.1:1",
            "http://127.9.9.9",
            "http://[::1]:80",
        ] {
            Environment::custom(ok, ok).unwrap();
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "http://localhost.evil.com",
        ] {
            let err = Environment::custom(bad, "https://login.example.com").unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}");
            let err = Environment::custom("https://api.example.com", bad).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}");
        }
        Environment::custom(
            "https://gw.example.com/genesys",
            "https://login.example.com",
        )
        .unwrap();
    }

    #[test]
    fn other_schemes_and_queries_are_refused() {
        assert!(Environment::custom("ftp://x.com", "https://x.com").is_err());
        assert!(Environment::custom("https://x.com/?a=b", "https://x.com").is_err());
        assert!(Environment::custom("not a url", "https://x.com").is_err());
    }

    #[test]
    fn endpoints_join_base_path() {
        let env =
            Environment::custom("https://gw.example.com/genesys/", "http://127.0.0.1:9").unwrap();
        assert_eq!(
            env.api_endpoint("/api/v2/analytics/conversations/details/query")
                .unwrap(),
            "https://gw.example.com/genesys/api/v2/analytics/conversations/details/query"
        );
        assert_eq!(env.token_url().unwrap(), "http://127.0.0.1:9/oauth/token");
    }
}
