//! Output that fits its reader: colour only for a terminal that wants it.
//!
//! Logs and messages go to stderr, which is as often a file, a pipe or a CI log as a terminal;
//! ANSI escapes there are noise. So the program colours its output only when stderr is a
//! terminal and `NO_COLOR` is unset or empty (<https://no-color.org>).

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Whether to colour output written to a terminal (`is_terminal`) given the value of
/// `NO_COLOR`: only on a terminal, and only when `NO_COLOR` is unset or empty.
pub fn use_color(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the program's tracing subscriber: to stderr, warnings only unless `RUST_LOG` asks
/// (retried failures are in the summary, so tower-http's per-failure lines are off by
/// default), coloured only as [`use_color`] says for stderr and `NO_COLOR`. No layer logs a
/// secret or a token at any level.
pub fn init_tracing() {
    let ansi = use_color(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,tower_http::trace=off")),
        )
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_color(true, None));
        assert!(use_color(true, Some(OsStr::new(""))));
        assert!(!use_color(true, Some(OsStr::new("1"))));
        assert!(!use_color(false, None));
        assert!(!use_color(false, Some(OsStr::new(""))));
    }
}
