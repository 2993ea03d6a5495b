//! The retry loop reaches the gate and the pacing permits only through [`RateState`]: a
//! second, test-only implementation sees every closure and wakes its waiters itself.

use tokio::sync::Notify;

use super::*;

/// A gate that records what the loop asks of it, and whose waiters wake only when the test
/// opens it (its `wait` ignores the deadline it is given).
#[derive(Debug, Default)]
struct ScriptedGate {
    closed_until: Mutex<Vec<Instant>>,
    open: AtomicBool,
    opened: Notify,
    acquired: AtomicUsize,
    throttled: AtomicUsize,
}

impl ScriptedGate {
    fn closures(&self) -> Vec<Instant> {
        self.closed_until.lock().unwrap().clone()
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.opened.notify_waiters();
    }
}

impl RateState for Arc<ScriptedGate> {
    fn try_acquire(&self, now: Instant) -> Result<(), Instant> {
        if self.open.load(Ordering::SeqCst) {
            self.acquired.fetch_add(1, Ordering::SeqCst);
            Ok(())
        } else {
            Err(now + secs(3600))
        }
    }

    fn wait(&self, _until: Instant) -> GateWait {
        let gate = Arc::clone(self);
        Box::pin(async move {
            let opened = gate.opened.notified();
            if !gate.open.load(Ordering::SeqCst) {
                opened.await;
            }
        })
    }

    fn close_until(&self, until: Instant) {
        self.closed_until.lock().unwrap().push(until);
        self.open.store(false, Ordering::SeqCst);
    }

    fn throttled(&self, _now: Instant) {
        self.throttled.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn the_retry_loop_uses_only_the_rate_state_it_was_given() {
    let gate = Arc::new(ScriptedGate::default());
    gate.open.store(true, Ordering::SeqCst);
    let mock = Mock::new(|n, _| match n {
        0 => reply(429, &[("retry-after", "30")], ""),
        _ => reply(200, &[], "ok"),
    });
    let policy = BackoffPolicy::new().rate_state(Arc::clone(&gate));
    let svc = Backoff::new(mock.clone(), policy);
    let started = Instant::now();

    // The first request meets a 429: the gate is closed through the trait, until +30 s.
    let first = tokio::spawn(svc.clone().oneshot(get()));
    tokio::task::yield_now().await;
    assert_eq!(gate.closures(), [started + secs(30)]);
    assert_eq!(gate.throttled.load(Ordering::SeqCst), 1);

    // A new request waits at the closed gate; it is woken by the gate opening at +2 s,
    // not by a timer (the gate asked it to come back in an hour, the 429 said 30 s).
    let second = tokio::spawn(svc.clone().oneshot(get()));
    sleep(secs(2)).await;
    assert_eq!(mock.arrivals().len(), 1, "held at the gate");
    gate.open();
    assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(started.elapsed(), secs(2));
    assert_eq!(mock.arrivals()[1], secs(2));

    // The retry of the first request also went through the gate after its 30 s wait.
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(started.elapsed(), secs(30));
    assert_eq!(gate.acquired.load(Ordering::SeqCst), 3);
}
