//! The load driver: N concurrent callers issue requests back to back for a fixed time, each
//! recording its latencies into its own histogram.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use keel_bench::load::{drive, Target};
//!
//! #[derive(Clone)]
//! struct Noop;
//! impl Target for Noop {
//!     async fn call(&mut self) -> Result<(), tower::BoxError> {
//!         tokio::task::yield_now().await;
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let round = drive(&Noop, 4, Duration::from_millis(20)).await;
//! assert!(round.requests > 0);
//! assert_eq!(round.errors, 0);
//! # });
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tower::BoxError;

/// Something that sends one request and reads its whole response.
pub trait Target: Clone + Send + 'static {
    /// Sends one request and drains the response body; an error or a non-2xx status is `Err`.
    fn call(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// The outcome of one timed round.
#[derive(Debug, Clone)]
pub struct Round {
    /// Requests completed successfully.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Wall time from the first request to the last caller's finish.
    pub elapsed: Duration,
    /// Latencies of the successful requests, in nanoseconds.
    pub latency: Histogram<u64>,
    /// CPU time this process's threads (client and server alike) used during the round.
    pub cpu: Duration,
    /// Time this process's threads were runnable but waiting for a CPU during the round:
    /// how much other work on the machine got in the way.
    pub cpu_wait: Duration,
}

impl Round {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU time per successful request, in microseconds.
    pub fn cpu_us_per_request(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }

    /// The latency at quantile `q` (0.5 = median), in microseconds.
    pub fn latency_us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1_000.0
    }
}

/// A latency histogram from 1 ns to 60 s with 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static histogram bounds are valid")
}

/// Runs `concurrency` callers, each a clone of `target`, for `duration`.
pub async fn drive<T: Target>(target: &T, concurrency: usize, duration: Duration) -> Round {
    let cpu_before = CpuTime::of_process();
    let start = Instant::now();
    let deadline = start + duration;
    let mut callers = JoinSet::new();
    for _ in 0..concurrency {
        let mut target = target.clone();
        callers.spawn(async move {
            let mut latency = histogram();
            let (mut ok, mut errors) = (0u64, 0u64);
            loop {
                let sent = Instant::now();
                if sent >= deadline {
                    break;
                }
                match target.call().await {
                    Ok(()) => {
                        ok += 1;
                        let _ = latency.record(sent.elapsed().as_nanos() as u64);
                    }
                    Err(_) => errors += 1,
                }
            }
            (ok, errors, latency)
        });
    }
    let mut round = Round {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
        cpu: Duration::ZERO,
        cpu_wait: Duration::ZERO,
    };
    while let Some(joined) = callers.join_next().await {
        let (ok, errors, latency) = joined.expect("a load caller panicked");
        round.requests += ok;
        round.errors += errors;
        let _ = round.latency.add(&latency);
    }
    round.elapsed = start.elapsed();
    let used = CpuTime::of_process().since(cpu_before);
    round.cpu = used.run;
    round.cpu_wait = used.wait;
    round
}

/// CPU time of this process's threads, from `/proc/self/task/*/schedstat` (nanosecond
/// resolution, no privileges needed; zero where the file does not exist).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time on a CPU.
    pub run: Duration,
    /// Time runnable but waiting for a CPU.
    pub wait: Duration,
}

impl CpuTime {
    /// The sum over this process's current threads.
    pub fn of_process() -> Self {
        let mut total = CpuTime::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return total;
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            let mut fields = stat
                .split_whitespace()
                .map(|f| f.parse::<u64>().unwrap_or(0));
            total.run += Duration::from_nanos(fields.next().unwrap_or(0));
            total.wait += Duration::from_nanos(fields.next().unwrap_or(0));
        }
        total
    }

    /// The time used between `earlier` and `self` (threads that exited in between are not
    /// counted; the benches keep their threads for the whole run).
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            run: self.run.saturating_sub(earlier.run),
            wait: self.wait.saturating_sub(earlier.wait),
        }
    }
}

/// Sends `n` requests one after another, ignoring their latencies (connection warm-up).
///
/// # Errors
///
/// The first failed request's error.
pub async fn warm_up<T: Target>(target: &T, concurrency: usize, n: usize) -> Result<(), BoxError> {
    let mut callers = JoinSet::new();
    for _ in 0..concurrency {
        let mut target = target.clone();
        callers.spawn(async move {
            for _ in 0..n {
                target.call().await?;
            }
            Ok::<(), BoxError>(())
        });
    }
    while let Some(joined) = callers.join_next().await {
        joined.expect("a warm-up caller panicked")?;
    }
    Ok(())
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Failing;

    impl Target for Failing {
        async fn call(&mut self) -> Result<(), BoxError> {
            tokio::task::yield_now().await;
            Err("refused".into())
        }
    }

    #[tokio::test]
    async fn failed_requests_count_as_errors_not_requests() {
        let round = drive(&Failing, 3, Duration::from_millis(20)).await;
        assert_eq!(round.requests, 0);
        assert!(round.errors > 0);
        assert!(round.latency.is_empty());
    }

    #[tokio::test]
    async fn warm_up_reports_the_first_failure() {
        assert!(warm_up(&Failing, 2, 1).await.is_err());
    }

    #[test]
    fn cpu_time_grows_while_this_process_computes() {
        let before = CpuTime::of_process();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let used = CpuTime::of_process().since(before);
        assert!(
            used.run > Duration::from_millis(1),
            "{used:?} after a busy loop ({x})"
        );
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
