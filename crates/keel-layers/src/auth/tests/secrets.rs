// NOTE: the TRACE-capture test lives in `tests/auth_logs.rs`: it needs a global subscriber,
// which a test binary shared with other tests cannot install reliably.

use super::*;

#[test]
fn debug_output_and_errors_redact_secrets() {
    let token = Token::bearer("very-private-token", None).unwrap();
    let debug = format!("{token:?}");
    assert!(
        debug.contains("[redacted]") && !debug.contains("very-private"),
        "{debug}"
    );
    let (source, _handle) = client_credentials();
    let debug = format!("{source:?}");
    assert!(
        debug.contains("[redacted]") && !debug.contains(SECRET),
        "{debug}"
    );
    let err = Token::bearer("bad\ntoken-value", None).unwrap_err();
    assert!(!err.to_string().contains("token-value"), "{err}");
}
