//! OAuth client credentials of a Genesys Cloud client-credentials grant.

use std::fmt;

use secrecy::SecretString;

use crate::error::Error;

/// Environment variable holding the OAuth client id.
pub const CLIENT_ID_VAR: &str = "GENESYS_CLIENT_ID";
/// Environment variable holding the OAuth client secret.
pub const CLIENT_SECRET_VAR: &str = "GENESYS_CLIENT_SECRET";

/// The credential variable that [`Credentials::lookup`] found unset or blank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not set")]
pub struct MissingVar(pub &'static str);

/// An OAuth client id and its secret. `Debug` shows the id only.
#[derive(Clone)]
pub struct Credentials {
    client_id: String,
    secret: SecretString,
}

impl Credentials {
    /// Credentials from an id and a secret.
    pub fn new(client_id: impl Into<String>, secret: SecretString) -> Self {
        Self {
            client_id: client_id.into(),
            secret,
        }
    }

    /// Credentials from `GENESYS_CLIENT_ID` and `GENESYS_CLIENT_SECRET`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable that is unset, empty or not UTF-8.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Credentials from any variable lookup (the environment, a parsed file, a test map).
    /// Values are trimmed; a blank one counts as unset.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable that is missing or empty.
    pub fn from_lookup(lookup: impl FnMut(&str) -> Option<String>) -> Result<Self, Error> {
        Self::lookup(lookup).map_err(|MissingVar(name)| Error::config(format!("{name} is not set")))
    }

    /// Reads `GENESYS_CLIENT_ID` then `GENESYS_CLIENT_SECRET` through `lookup`: each value
    /// trimmed (the looked-up string is wiped, only the trimmed copy lives on), an unset or
    /// blank one missing. The one place that reads credential variables; callers map
    /// [`MissingVar`] to their own error.
    ///
    /// # Errors
    ///
    /// [`MissingVar`] naming the first variable that is missing or blank.
    pub fn lookup(mut lookup: impl FnMut(&str) -> Option<String>) -> Result<Self, MissingVar> {
        let mut get = |name: &'static str| {
            lookup(name)
                .map(zeroize::Zeroizing::new)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or(MissingVar(name))
        };
        let client_id = get(CLIENT_ID_VAR)?;
        let secret = get(CLIENT_SECRET_VAR)?;
        Ok(Self::new(client_id, SecretString::from(secret)))
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The secret, still wrapped: reading it takes an explicit
    /// [`ExposeSecret::expose_secret`](secrecy::ExposeSecret::expose_secret).
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credentials::new("my-id", SecretString::from("hunter2-s3cret"));
        let dbg = format!("{c:?} {c:#?}");
        assert!(dbg.contains("my-id"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn lookup_reads_both_variables_and_names_the_missing_one() {
        let mut vars = HashMap::from([(CLIENT_ID_VAR, "id"), (CLIENT_SECRET_VAR, "sec")]);
        let c = Credentials::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.client_id(), "id");
        assert_eq!(c.secret().expose_secret(), "sec");
        vars.insert(CLIENT_SECRET_VAR, "  ");
        let err = Credentials::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap_err();
        assert!(err.to_string().contains(CLIENT_SECRET_VAR), "{err}");
        assert!(!err.to_string().contains("id\""));
        vars.remove(CLIENT_ID_VAR);
        let err = Credentials::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap_err();
        assert!(err.to_string().contains(CLIENT_ID_VAR), "{err}");
    }

    #[test]
    fn lookup_trims_values_and_names_the_first_blank_one() {
        let vars = HashMap::from([(CLIENT_ID_VAR, " id\n"), (CLIENT_SECRET_VAR, "\tsec ")]);
        let c = Credentials::lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!((c.client_id(), c.secret().expose_secret()), ("id", "sec"));
        let blank = |_: &str| Some(" \t ".to_owned());
        assert_eq!(
            Credentials::lookup(blank).unwrap_err(),
            MissingVar(CLIENT_ID_VAR)
        );
        let no_secret = |k: &str| (k == CLIENT_ID_VAR).then(|| "id".to_owned());
        assert_eq!(
            Credentials::lookup(no_secret).unwrap_err(),
            MissingVar(CLIENT_SECRET_VAR)
        );
    }
}
