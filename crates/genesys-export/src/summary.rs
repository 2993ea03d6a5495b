//! What an export did, printed on stderr at the end.

use std::fmt;
use std::time::Duration;

/// Counters of a finished (or stopped) export. No secrets: only counts and the output name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Conversations in the output, including those of earlier runs when resumed.
    pub conversations: u64,
    /// Pages in the output, including those of earlier runs when resumed.
    pub pages: u64,
    /// Of [`Summary::conversations`], those an earlier run wrote.
    pub resumed_conversations: u64,
    /// Of the conversations this run wrote, the late arrivals: conversations that appeared
    /// in their part of the interval while it was paged (see
    /// [`Progress::late_arrivals`](keel_genesys::export::Progress::late_arrivals)).
    pub late_arrivals: u64,
    /// Access tokens fetched by this run.
    pub token_fetches: u64,
    /// Requests replayed after a 401 (token revoked or expired).
    pub replays_401: u64,
    /// Waits after a 429.
    pub waits_429: u64,
    /// Other retries (503, dropped connections, …).
    pub other_retries: u64,
    /// Pages (or job polls) fetched again because their body could not be decoded.
    pub decode_retries: u64,
    /// Wall time of this run.
    pub elapsed: Duration,
    /// Where the records went.
    pub output: String,
    /// Peak resident memory of the process, bytes, where the OS says (Linux `VmHWM`).
    pub peak_memory: Option<u64>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "genesys-export: {} conversations, {} pages to {} in {:.2} s",
            self.conversations,
            self.pages,
            self.output,
            self.elapsed.as_secs_f64()
        )?;
        if self.late_arrivals > 0 {
            write!(
                f,
                " (including {} late arrivals, which appeared while their part was paged)",
                self.late_arrivals
            )?;
        }
        if self.resumed_conversations > 0 {
            write!(
                f,
                " ({} conversations from the resumed run)",
                self.resumed_conversations
            )?;
        }
        write!(
            f,
            "\n  token fetches: {}, 401 replays: {}, 429 waits: {}, other retries: {}, \
             decode retries: {}",
            self.token_fetches,
            self.replays_401,
            self.waits_429,
            self.other_retries,
            self.decode_retries
        )?;
        if let Some(bytes) = self.peak_memory {
            write!(
                f,
                "\n  peak memory: {:.1} MiB",
                bytes as f64 / (1024.0 * 1024.0)
            )?;
        }
        Ok(())
    }
}

/// The process's peak resident set size (`VmHWM` in `/proc/self/status`), when available.
pub(crate) fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    crate::vm_hwm::parse_vm_hwm(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_every_counter() {
        let s = Summary {
            conversations: 5_000,
            pages: 50,
            resumed_conversations: 0,
            late_arrivals: 0,
            token_fetches: 3,
            replays_401: 1,
            waits_429: 4,
            other_retries: 2,
            decode_retries: 1,
            elapsed: Duration::from_millis(2_346),
            output: "out.ndjson".into(),
            peak_memory: Some(12 * 1024 * 1024),
        };
        assert_eq!(
            s.to_string(),
            "genesys-export: 5000 conversations, 50 pages to out.ndjson in 2.35 s\n  \
             token fetches: 3, 401 replays: 1, 429 waits: 4, other retries: 2, decode retries: 1\n  peak memory: 12.0 MiB"
        );
    }

    #[test]
    fn resumed_runs_say_how_much_came_before() {
        let s = Summary {
            conversations: 10,
            resumed_conversations: 4,
            ..Summary::default()
        };
        assert!(s
            .to_string()
            .contains("(4 conversations from the resumed run)"));
    }

    #[test]
    fn late_arrivals_are_told_when_there_were_some() {
        let s = Summary {
            conversations: 2_040,
            late_arrivals: 40,
            ..Summary::default()
        };
        assert!(
            s.to_string().starts_with(
                "genesys-export: 2040 conversations, 0 pages to  in 0.00 s (including 40 late \
                 arrivals, which appeared while their part was paged)"
            ),
            "{s}"
        );
        assert!(!Summary::default().to_string().contains("late"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_memory_is_known_on_linux() {
        assert!(peak_memory().unwrap() > 0);
    }
}
