//! The `tracing` event each retry emits.

use super::*;

/// Records every event's fields as `name=value` strings.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<String>>>>);

struct Fields(Vec<String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={:?}", field.name(), value));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push(format!("{}={}", field.name(), value));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
}

#[tokio::test(start_paused = true)]
async fn each_retry_emits_an_event_with_status_attempt_delay_and_source() {
    use tracing_subscriber::layer::SubscriberExt;
    let recorder = Recorder::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
    let mock = Mock::new(|n, _| match n {
        0 => reply(429, &[("retry-after", "3")], ""),
        1 => reply(503, &[], ""),
        _ => reply(200, &[], "ok"),
    });
    let policy = BackoffPolicy::new().exponential(ms(100), ms(100));
    Backoff::new(mock, policy).oneshot(get()).await.unwrap();
    let events = recorder.0.lock().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    for field in [
        "status=429",
        "attempt=1",
        "delay_ms=3000",
        "source=retry-after",
    ] {
        assert!(
            events[0].iter().any(|f| f == field),
            "{field} missing from {:?}",
            events[0]
        );
    }
    for field in ["status=503", "attempt=2", "source=schedule"] {
        assert!(
            events[1].iter().any(|f| f == field),
            "{field} missing from {:?}",
            events[1]
        );
    }
}
