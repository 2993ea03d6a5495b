//! Where the export's client credentials come from: the environment or a file, never a flag.

use std::path::Path;

use secrecy::SecretString;

use super::error::ExportError;
use crate::client::{Credentials, CLIENT_ID_VAR, CLIENT_SECRET_VAR};

/// Reads credentials from `file` (lines `GENESYS_CLIENT_ID=…`, `GENESYS_CLIENT_SECRET=…`,
/// `#` comments, optional quotes) when given, else from the process environment.
///
/// # Errors
/// [`ExportError::MissingCredentials`] naming what is missing, or
/// [`ExportError::CredentialsFile`] when the file cannot be read.
pub fn load(file: Option<&Path>) -> Result<Credentials, ExportError> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map(zeroize::Zeroizing::new)
                .map_err(|source| ExportError::CredentialsFile {
                    path: path.to_owned(),
                    source,
                })?;
            from_lookup(
                |key| lookup_in_file(&text, key),
                &format!(" in {}", path.display()),
            )
        }
        None => from_lookup(|key| std::env::var(key).ok(), ""),
    }
}

fn from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
    where_: &str,
) -> Result<Credentials, ExportError> {
    let get = |key: &str| {
        lookup(key)
            .map(zeroize::Zeroizing::new)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ExportError::MissingCredentials {
                missing: format!("{key}{where_}"),
            })
    };
    let client_id = get(CLIENT_ID_VAR)?;
    let secret = SecretString::from(get(CLIENT_SECRET_VAR)?);
    Ok(Credentials::new(client_id, secret))
}

fn lookup_in_file(text: &str, key: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v)
                .to_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::io::Write;

    #[test]
    fn file_with_comments_quotes_and_export_prefix_is_read() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "# keel\nexport GENESYS_CLIENT_ID=abc\nGENESYS_CLIENT_SECRET=\"s3=cr#t\""
        )
        .unwrap();
        let c = load(Some(f.path())).unwrap();
        assert_eq!(c.client_id(), "abc");
        assert_eq!(c.secret().expose_secret(), "s3=cr#t");
    }

    #[test]
    fn missing_secret_in_file_is_named() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "GENESYS_CLIENT_ID=abc").unwrap();
        let e = load(Some(f.path())).unwrap_err();
        assert!(
            matches!(&e, ExportError::MissingCredentials { missing } if missing.starts_with(CLIENT_SECRET_VAR))
        );
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn empty_values_count_as_missing_and_id_is_checked_first() {
        let e = from_lookup(|_| Some("  ".into()), "").unwrap_err();
        assert!(
            e.to_string().contains("GENESYS_CLIENT_ID is not set"),
            "{e}"
        );
    }

    #[test]
    fn unreadable_file_is_a_usage_error() {
        let e = load(Some(Path::new("/nonexistent/keel/creds"))).unwrap_err();
        assert!(matches!(e, ExportError::CredentialsFile { .. }));
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let c = from_lookup(|k| Some(format!("value-of-{k}")), "").unwrap();
        let dbg = format!("{c:?}");
        assert!(dbg.contains("value-of-GENESYS_CLIENT_ID"));
        assert!(!dbg.contains("value-of-GENESYS_CLIENT_SECRET"), "{dbg}");
    }
}
