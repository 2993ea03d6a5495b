//! Finds the Python of the virtualenv that has the official Genesys Cloud SDK
//! (`PureCloudPlatformClientV2`), for the checks that run it against keel.
//!
//! The virtualenv is `$KEEL_PY_VENV` (default `/tmp/keel-venv`). Without the SDK a check says
//! so loudly and skips, unless `KEEL_REQUIRE_PYTHON_SDK=1` (as `.ci/run` sets), when it fails.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The venv's `python` if it can import the SDK; `None` (after a loud message) if it cannot and
/// the SDK is not required. `check` names the check being skipped.
///
/// # Panics
///
/// When the SDK is missing and `KEEL_REQUIRE_PYTHON_SDK=1`.
pub(crate) fn sdk_python(check: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("KEEL_PY_VENV").unwrap_or_else(|| "/tmp/keel-venv".into());
    let python = PathBuf::from(venv).join("bin").join("python");
    let importable = Command::new(&python)
        .args(["-c", "import PureCloudPlatformClientV2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if importable {
        return Some(python);
    }
    let bar = "!".repeat(80);
    let message = format!(
        "\n\n{bar}\n\
         !!! SKIPPED: {check} NOT RUN.\n\
         !!! {} cannot import PureCloudPlatformClientV2.\n\
         !!! Create it: python3 -m venv /tmp/keel-venv && \
         /tmp/keel-venv/bin/pip install PureCloudPlatformClientV2\n\
         !!! (or point KEEL_PY_VENV at a virtualenv that has it)\n\
         {bar}\n",
        python.display()
    );
    let required = std::env::var("KEEL_REQUIRE_PYTHON_SDK").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "KEEL_REQUIRE_PYTHON_SDK=1 but the SDK is missing: {message}"
    );
    eprintln!("{message}");
    None
}
