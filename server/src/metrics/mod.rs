//! `GET /metrics`: what this node is doing, in the Prometheus exposition
//! format (OpenMetrics text), for dashboards and autoscalers.
//!
//! Two kinds of figures: counters that handlers bump as things happen (HLS
//! requests, WHEP offers, lights commands), kept here; and figures read at
//! scrape time from where they already live (viewers and traffic from the
//! hub and the outputs, the tweet poller's status, the process itself), so
//! nothing is counted twice. Names follow Prometheus's conventions and
//! MediaMTX's families where they overlap: a `tinsel_` prefix, `_total` on
//! counters, bytes rather than bitrates.

mod process;
mod scrape;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::control::{AuditEntry, Source};
use crate::state::AppState;

/// The media type of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BlockingLabels {
    pub kind: &'static str,
    /// `ready` (answered as soon as it existed), `timeout`, or `cancelled`
    /// (the client hung up first).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LightsLabels {
    /// Who asked: admin, schedule or tweet (never who exactly: a label per
    /// admin or tweet would grow without end).
    source: &'static str,
    result: &'static str,
}

/// The counters handlers bump; cheap to clone (every clone counts into the
/// same figures).
#[derive(Clone, Default)]
pub struct Metrics {
    /// HLS requests answered, by file kind (playlist, part, segment, init).
    pub hls_requests: Family<KindLabel, Counter>,
    /// Blocking playlist reloads and part requests, by how they ended.
    pub hls_blocking: Family<BlockingLabels, Counter>,
    /// Blocking requests waiting now.
    pub hls_waiting: Gauge,
    /// WHEP offers, by result (answered, or why not).
    pub whep_offers: Family<ResultLabel, Counter>,
    lights_commands: Family<LightsLabels, Counter>,
}

impl Metrics {
    /// Counts every lights command from the audit log, where every command
    /// (admin, schedule, tweet) ends up once, until `token` is cancelled.
    pub fn count_lights(
        &self,
        mut audit: broadcast::Receiver<AuditEntry>,
        token: CancellationToken,
    ) {
        let commands = self.lights_commands.clone();
        tokio::spawn(async move {
            loop {
                let entry = tokio::select! {
                    () = token.cancelled() => return,
                    entry = audit.recv() => entry,
                };
                match entry {
                    Ok(entry) => {
                        let source = source_kind(&entry.source);
                        let result = if entry.ok { "ok" } else { "failed" };
                        commands
                            .get_or_create(&LightsLabels { source, result })
                            .inc();
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Everything, as of now.
    pub fn render(&self, state: &AppState) -> String {
        let mut registry = Registry::default();
        registry.register(
            "tinsel_hls_requests",
            "LL-HLS requests answered, by file kind",
            self.hls_requests.clone(),
        );
        registry.register(
            "tinsel_hls_blocking_requests",
            "Blocking playlist reloads and part requests, by kind and how they ended",
            self.hls_blocking.clone(),
        );
        registry.register(
            "tinsel_hls_blocking_requests_waiting",
            "Blocking playlist reloads and part requests waiting now",
            self.hls_waiting.clone(),
        );
        registry.register(
            "tinsel_webrtc_offers",
            "WHEP offers, by result",
            self.whep_offers.clone(),
        );
        registry.register(
            "tinsel_lights_commands",
            "Lights commands, by who asked and whether the PDU did it",
            self.lights_commands.clone(),
        );
        registry.register_collector(Box::new(scrape::Snapshot::take(state)));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

/// `admin:alice` → `admin`, as the audit log writes a source.
fn source_kind(source: &str) -> &'static str {
    match Source::parse(source) {
        Source::Admin(_) => "admin",
        Source::Schedule => "schedule",
        Source::Tweet(_) => "tweet",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_labelled_by_its_kind_not_its_name() {
        assert_eq!(source_kind("admin:alice"), "admin");
        assert_eq!(source_kind("schedule"), "schedule");
        assert_eq!(source_kind("tweet:1234"), "tweet");
    }
}
