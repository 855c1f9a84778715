//! The upstream's health as every upstream exchange reports it: the breaker
//! (`breaker.rs`) plus what its probe needs, shared by the client and by tarball bodies
//! still streaming after their request returned.

use std::sync::Arc;
use std::time::Duration;

use crate::public::breaker::{Breaker, Transition};

/// The breaker with what its probe needs; shared with tarball bodies still streaming.
pub struct Health {
    pub breaker: Breaker,
    pub client: reqwest::Client,
    pub probe_url: String,
    pub probe_deadline: Duration,
}

impl Health {
    pub fn success(&self) {
        self.breaker.success();
    }

    pub fn failure(self: &Arc<Self>, why: &str) {
        if self.breaker.failure(why) == Transition::Opened {
            self.ensure_probe();
        }
    }

    /// While the breaker is open, asks the upstream's root every probe interval; the first
    /// answer below 500 closes it. At most one probe task; called again on every refused
    /// request, so a probe lost with its runtime is restarted.
    pub fn ensure_probe(self: &Arc<Self>) {
        if self.breaker.allows() || !self.breaker.start_probing() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.breaker.stop_probing();
            return;
        };
        let this = self.clone();
        rt.spawn(async move {
            while !this.breaker.allows() {
                tokio::time::sleep(this.breaker.probe_interval()).await;
                let answer = tokio::time::timeout(
                    this.probe_deadline,
                    this.client.get(&this.probe_url).send(),
                )
                .await;
                match answer {
                    Ok(Ok(r)) if r.status().as_u16() < 500 => this.success(),
                    _ => this.breaker.probe_failed(),
                }
            }
            this.breaker.stop_probing();
        });
    }
}
