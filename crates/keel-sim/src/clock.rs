//! The simulator clock that live data is judged by: real time, or a time tests move.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Real time plus an offset (moved by `advance`).
    Real { offset_ms: i64 },
    /// Frozen at this Unix time until moved.
    Manual { now_ms: i64 },
}

/// Unix milliseconds now, by the system clock.
fn real_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The simulator's notion of "now", in Unix milliseconds.
#[derive(Debug)]
pub(crate) struct SimClock(Mutex<Mode>);

impl SimClock {
    /// Real time, or frozen at `start_ms` when given.
    pub(crate) fn new(start_ms: Option<i64>) -> Self {
        Self(Mutex::new(match start_ms {
            Some(now_ms) => Mode::Manual { now_ms },
            None => Mode::Real { offset_ms: 0 },
        }))
    }

    pub(crate) fn now_ms(&self) -> i64 {
        match *self.0.lock().expect("clock poisoned") {
            Mode::Real { offset_ms } => real_ms().saturating_add(offset_ms),
            Mode::Manual { now_ms } => now_ms,
        }
    }

    /// Moves the clock forward by `d` (a real clock keeps ticking from there).
    pub(crate) fn advance(&self, d: Duration) -> i64 {
        let mut mode = self.0.lock().expect("clock poisoned");
        match &mut *mode {
            Mode::Real { offset_ms } => {
                *offset_ms = offset_ms.saturating_add(ms(d));
                real_ms().saturating_add(*offset_ms)
            }
            Mode::Manual { now_ms } => {
                *now_ms = now_ms.saturating_add(ms(d));
                *now_ms
            }
        }
    }

    /// Freezes the clock at `now_ms`.
    pub(crate) fn set(&self, now_ms: i64) {
        *self.0.lock().expect("clock poisoned") = Mode::Manual { now_ms };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = SimClock::new(Some(1_000));
        assert_eq!(c.now_ms(), 1_000);
        assert_eq!(c.advance(Duration::from_secs(2)), 3_000);
        assert_eq!(c.now_ms(), 3_000);
        c.set(10);
        assert_eq!(c.now_ms(), 10);
    }

    #[test]
    fn real_clock_follows_system_time_plus_advances() {
        let c = SimClock::new(None);
        let before = real_ms();
        c.advance(Duration::from_secs(3_600));
        let now = c.now_ms();
        assert!(now >= before + 3_600_000 && now <= real_ms() + 3_600_000);
    }
}
