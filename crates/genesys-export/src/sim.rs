//! `--sim`: an embedded keel-sim, with faults on, that the export runs against like any API.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;

use crate::cli::Args;
use crate::error::ExportError;
use keel_genesys::{Credentials, Environment};

/// A simulator started in-process for `--sim`; stops when dropped.
#[derive(Debug)]
pub(crate) struct EmbeddedSim {
    handle: keel_sim::SimHandle,
    faults: String,
}

impl EmbeddedSim {
    /// Starts a simulator holding `--sim-conversations` conversations over the 23 hours
    /// before the current hour (inside the default `--since 24h`), with, unless
    /// `--sim-no-faults`: 30-second tokens revoked after 20 requests, a rate limit, a
    /// scripted 429 (`Retry-After` in seconds), a 503, a 502 and a dropped connection, and 1%
    /// random 503s.
    pub(crate) async fn start(args: &Args) -> Result<Self, ExportError> {
        // NOTE: the data is anchored to the start of the current UTC hour, so a `--resume`
        // within the hour meets the same data; later, the fingerprint (see `label`) differs and
        // the resume is refused instead of mixing two data sets.
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let hour_ms = now_ms - now_ms.rem_euclid(3_600_000);
        let span = Duration::from_secs(23 * 3_600);
        let mut config = keel_sim::SimConfig {
            conversations: args.sim_conversations,
            data_start_ms: hour_ms - span.as_millis() as i64,
            data_span: span,
            seed: 7,
            page_latency: args.sim_page_latency.unwrap_or(Duration::from_millis(5)),
            ..keel_sim::SimConfig::default()
        };
        let faults = if args.sim_no_faults {
            "none".to_owned()
        } else {
            config.token_lifetime = Duration::from_secs(30);
            config.revoke_after_requests = Some(20);
            config.rate_limit_per_sec = Some(300);
            config.unavailable_probability = 0.01;
            config.faults = BTreeMap::from([
                (
                    5,
                    keel_sim::Fault::TooManyRequests {
                        retry_after_secs: 1,
                    },
                ),
                (11, keel_sim::Fault::Unavailable),
                (17, keel_sim::Fault::Drop),
                (23, keel_sim::Fault::Status(502)),
            ]);
            "30 s tokens, revoked early every 20 requests, rate limit 300/s, 429 (Retry-After) on request 5, \
             503 on request 11, dropped connection on request 17, 502 on request 23, 1% random 503s"
                .to_owned()
        };
        let handle = keel_sim::Simulator::start(config)
            .await
            .map_err(|e| ExportError::Api {
                context: "cannot start the embedded simulator".into(),
                source: Box::new(e),
            })?;
        Ok(EmbeddedSim { handle, faults })
    }

    /// What a checkpoint records as the API: the simulator and its data set.
    pub(crate) fn label(&self) -> String {
        let c = self.handle.config();
        format!(
            "sim (seed {}, {} conversations from unix ms {}, faults: {})",
            c.seed, c.conversations, c.data_start_ms, self.faults
        )
    }

    /// The line printed on stderr: that this is a simulator, where, with which faults.
    pub(crate) fn describe(&self) -> String {
        format!(
            "genesys-export: --sim: exporting from an embedded keel-sim simulator at {} (not Genesys Cloud); faults: {}",
            self.handle.base_url(),
            self.faults
        )
    }

    /// The simulator as an environment: API and login on its one loopback URL.
    pub(crate) fn environment(&self) -> Result<Environment, ExportError> {
        let url = self.handle.base_url().to_string();
        Environment::custom(&url, &url)
            .map_err(|e| ExportError::Usage(format!("bad simulator url: {e}")))
    }

    /// The credentials the simulator accepts.
    pub(crate) fn credentials(&self) -> Credentials {
        Credentials::new(
            self.handle.client_id(),
            SecretString::from(self.handle.client_secret().to_owned()),
        )
    }
}
