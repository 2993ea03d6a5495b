//! Where the rows go: `sqlite:PATH` or a `postgres://` / `postgresql://` URL.

use std::fmt;
use std::path::PathBuf;

use crate::error::DbError;

/// A database destination, parsed from the text a user gives (`--out`).
///
/// `Display` and `Debug` never show a password: a password in a PostgreSQL URL (user info or
/// a `password=` parameter) is shown as `***`. A URL without a password is the recommended
/// form; the password then comes from `PGPASSWORD` or a `.pgpass` file (`PGPASSFILE`), read
/// when connecting.
///
/// # Example
///
/// ```
/// use keel_genesys_db::Destination;
///
/// let d = Destination::parse("postgres://etl:hunter2@db.internal/cx").unwrap();
/// assert!(d.has_password_in_url());
/// assert_eq!(d.to_string(), "postgres://etl:***@db.internal/cx");
///
/// let s = Destination::parse("sqlite:exports/cx.db").unwrap();
/// assert_eq!(s.to_string(), "sqlite:exports/cx.db");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum Destination {
    /// An SQLite database file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres(PgUrl),
}

/// A PostgreSQL connection URL whose password, if any, is never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    url: String,
    redacted: String,
    has_password: bool,
}

impl PgUrl {
    /// The URL including its password, for the driver only.
    #[cfg(feature = "postgres")]
    pub(crate) fn secret_url(&self) -> &str {
        &self.url
    }

    /// The password given in the URL, if any (to scrub it from driver messages).
    #[cfg(feature = "postgres")]
    pub(crate) fn url_password(&self) -> Option<String> {
        let u = url::Url::parse(&self.url).ok()?;
        let from_query = u
            .query_pairs()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.into_owned());
        let from_userinfo = u.password().map(|p| {
            url::form_urlencoded::parse(format!("p={p}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        });
        from_userinfo.or(from_query).filter(|p| !p.is_empty())
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({:?})", self.redacted)
    }
}

impl Destination {
    /// Parses `sqlite:PATH` (also `sqlite://PATH`), `postgres://…` or `postgresql://…`.
    ///
    /// # Errors
    /// [`DbError::Destination`] for any other form, an empty path, or a URL that does not
    /// parse (the message never holds the password).
    pub fn parse(text: &str) -> Result<Self, DbError> {
        if let Some(rest) = text.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(DbError::Destination(
                    "`sqlite:` needs a file path, e.g. sqlite:exports/cx.db".into(),
                ));
            }
            return Ok(Destination::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return parse_pg(text).map(Destination::Postgres);
        }
        Err(DbError::Destination(
            "expected sqlite:PATH, postgres://… or postgresql://…".into(),
        ))
    }

    /// Whether a PostgreSQL URL carries a password (the caller should warn once: `ps` and
    /// shell history show command lines; prefer `PGPASSWORD` or `.pgpass`).
    pub fn has_password_in_url(&self) -> bool {
        matches!(self, Destination::Postgres(u) if u.has_password)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            Destination::Postgres(u) => fmt::Display::fmt(u, f),
        }
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Destination({self})")
    }
}

#[cfg(feature = "postgres")]
fn parse_pg(text: &str) -> Result<PgUrl, DbError> {
    let mut u = url::Url::parse(text)
        .map_err(|e| DbError::Destination(format!("not a valid PostgreSQL URL ({e})")))?;
    let mut has_password = u.password().is_some_and(|p| !p.is_empty());
    if has_password {
        let _ = u.set_password(Some("***"));
    }
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.iter().any(|(k, _)| is_secret_param(k)) {
        has_password |= pairs.iter().any(|(k, _)| k == "password");
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, if is_secret_param(k) { "***" } else { v });
        }
    }
    Ok(PgUrl {
        url: text.to_owned(),
        redacted: u.to_string().replace("%2A%2A%2A", "***"),
        has_password,
    })
}

#[cfg(feature = "postgres")]
fn is_secret_param(key: &str) -> bool {
    matches!(key, "password" | "sslpassword")
}

#[cfg(not(feature = "postgres"))]
fn parse_pg(_text: &str) -> Result<PgUrl, DbError> {
    Err(DbError::Destination(
        "PostgreSQL support is not compiled in (feature `postgres`)".into(),
    ))
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_never_displayed() {
        for (text, shown) in [
            (
                "postgres://u:p%40ss-w0rd@h:5433/db",
                "postgres://u:***@h:5433/db",
            ),
            (
                "postgresql://u@h/db?password=p%40ss-w0rd&sslmode=require",
                "postgresql://u@h/db?password=***&sslmode=require",
            ),
        ] {
            let d = Destination::parse(text).unwrap();
            assert!(d.has_password_in_url());
            assert_eq!(d.to_string(), shown);
            let debug = format!("{d:?}");
            assert!(
                !debug.contains("p%40ss") && !debug.contains("p@ss"),
                "{debug}"
            );
            let Destination::Postgres(u) = &d else {
                panic!()
            };
            assert_eq!(u.url_password().as_deref(), Some("p@ss-w0rd"));
        }
    }

    #[test]
    fn a_url_without_password_is_shown_as_is() {
        let d = Destination::parse("postgres://etl@db.internal/cx").unwrap();
        assert!(!d.has_password_in_url());
        assert_eq!(d.to_string(), "postgres://etl@db.internal/cx");
    }

    #[test]
    fn sqlite_paths_and_unknown_schemes() {
        assert_eq!(
            Destination::parse("sqlite:///tmp/x.db").unwrap(),
            Destination::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            Destination::parse("sqlite:rel.db").unwrap(),
            Destination::Sqlite("rel.db".into())
        );
        assert!(matches!(
            Destination::parse("sqlite:"),
            Err(DbError::Destination(_))
        ));
        assert!(matches!(
            Destination::parse("mysql://u:pw@h/db"),
            Err(DbError::Destination(m)) if !m.contains("pw")
        ));
    }

    #[test]
    fn a_malformed_url_error_does_not_echo_it() {
        let e = Destination::parse("postgres://u:secretpw@h:notaport/db").unwrap_err();
        assert!(!e.to_string().contains("secretpw"), "{e}");
    }
}
