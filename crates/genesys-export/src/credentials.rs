//! Where the export's client credentials come from: the environment or a file, never a flag.

use std::path::Path;

use crate::error::ExportError;
use keel_genesys::client::{Credentials, MissingVar};

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

/// [`Credentials::lookup`], its missing variable reported as found `where_` (` in <file>`, or
/// nothing for the environment).
fn from_lookup(
    lookup: impl FnMut(&str) -> Option<String>,
    where_: &str,
) -> Result<Credentials, ExportError> {
    Credentials::lookup(lookup).map_err(|MissingVar(name)| ExportError::MissingCredentials {
        missing: format!("{name}{where_}"),
    })
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
    use keel_genesys::client::{CLIENT_ID_VAR, CLIENT_SECRET_VAR};
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
    fn the_export_reads_values_exactly_as_the_library_does() {
        type Vars = &'static [(&'static str, &'static str)];
        let cases: [Vars; 5] = [
            &[(CLIENT_ID_VAR, " id "), (CLIENT_SECRET_VAR, "\tsec\n")],
            &[(CLIENT_ID_VAR, "id"), (CLIENT_SECRET_VAR, "   ")],
            &[(CLIENT_ID_VAR, ""), (CLIENT_SECRET_VAR, "sec")],
            &[(CLIENT_SECRET_VAR, "sec")],
            &[],
        ];
        for vars in cases {
            let lookup = |k: &str| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            };
            match (from_lookup(lookup, ""), Credentials::from_lookup(lookup)) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.client_id(), b.client_id());
                    assert_eq!(a.secret().expose_secret(), b.secret().expose_secret());
                }
                (
                    Err(ExportError::MissingCredentials { missing }),
                    Err(keel_genesys::Error::Config(lib)),
                ) => assert_eq!(lib, format!("{missing} is not set")),
                (a, b) => panic!("{vars:?}: export {a:?}, library {b:?}"),
            }
        }
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
