//! The figures read at scrape time from where they live: the hub and the
//! outputs (viewers, traffic), the tweet poller, the process.

use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::process::Process;
use crate::media::counters::Output;
use crate::state::AppState;

/// One stream's figures.
#[derive(Debug)]
struct StreamFigures {
    name: String,
    live: bool,
    viewers: [u64; 3],
    bytes_received: u64,
    frames_received: u64,
    bytes_sent: [u64; 3],
    frames_dropped: [u64; 3],
}

#[derive(Debug)]
pub struct Snapshot {
    ready: bool,
    streams: Vec<StreamFigures>,
    webrtc_sessions: u64,
    tweet_polls_ok: u64,
    tweet_polls_failed: u64,
    process: Option<Process>,
}

impl Snapshot {
    pub fn take(state: &AppState) -> Self {
        let now = Instant::now();
        let streams = state
            .config
            .streams
            .iter()
            .filter_map(|stream| {
                let name = &stream.name;
                let snapshot = state.hub.snapshot(name, now).ok()?;
                let counters = state.hub.counters(name).ok()?;
                let hls = state.hls.stream(name).map_or(0, |s| s.viewers(now));
                let viewers = Output::ALL.map(|output| match output {
                    Output::Rtmp => snapshot.players,
                    Output::Hls => hls,
                    Output::Webrtc => state.whep.viewers(name),
                } as u64);
                Some(StreamFigures {
                    name: name.clone(),
                    live: snapshot.live,
                    viewers,
                    bytes_received: counters.bytes_received(),
                    frames_received: counters.frames_received(),
                    bytes_sent: Output::ALL.map(|o| counters.bytes_sent(o)),
                    frames_dropped: Output::ALL.map(|o| counters.frames_dropped(o)),
                })
            })
            .collect();
        let tweets = state.tweets.status();
        Self {
            ready: state.readiness.is_ready(),
            streams,
            webrtc_sessions: state.whep.sessions_admitted() as u64,
            tweet_polls_ok: tweets.polls.saturating_sub(tweets.failed_polls),
            tweet_polls_failed: tweets.failed_polls,
            process: Process::now(),
        }
    }
}

/// Labels written as pairs: what prometheus-client encodes a `&[(k, v)]` as.
pub(super) type Labels<'a> = [(&'static str, &'a str)];

pub(super) fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(&Labels, i64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

pub(super) fn counter<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(&Labels, N)],
) -> Result<(), std::fmt::Error>
where
    N: prometheus_client::encoding::EncodeCounterValue + Copy,
{
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let version: &Labels = &[("version", env!("CARGO_PKG_VERSION"))];
        gauge(
            e,
            "tinsel_build_info",
            "The running build (always 1)",
            &[(version, 1)],
        )?;
        gauge(
            e,
            "tinsel_ready",
            "1 while this node takes new viewers (see /readyz)",
            &[(&[], i64::from(self.ready))],
        )?;
        let stream_labels: Vec<[(&str, &str); 1]> = self
            .streams
            .iter()
            .map(|s| [("stream", s.name.as_str())])
            .collect();
        let by_output: Vec<Vec<[(&str, &str); 2]>> = self
            .streams
            .iter()
            .map(|s| {
                Output::ALL
                    .iter()
                    .map(|o| [("stream", s.name.as_str()), ("protocol", o.label())])
                    .collect()
            })
            .collect();
        let per_stream = |value: fn(&StreamFigures) -> u64| -> Vec<(&Labels, u64)> {
            self.streams
                .iter()
                .zip(&stream_labels)
                .map(|(s, l)| (&l[..], value(s)))
                .collect()
        };
        let per_output = |value: fn(&StreamFigures) -> [u64; 3], only: &[Output]| {
            let mut samples: Vec<(&Labels, u64)> = Vec::new();
            for (s, labels) in self.streams.iter().zip(&by_output) {
                for (i, output) in Output::ALL.iter().enumerate() {
                    if only.contains(output) {
                        samples.push((&labels[i][..], value(s)[i]));
                    }
                }
            }
            samples
        };
        let up: Vec<(&Labels, i64)> = per_stream(|s| u64::from(s.live))
            .into_iter()
            .map(|(l, v)| (l, v as i64))
            .collect();
        gauge(
            e,
            "tinsel_stream_publisher_up",
            "1 while a publisher is sending the stream",
            &up,
        )?;
        let viewers: Vec<(&Labels, i64)> = per_output(|s| s.viewers, &Output::ALL)
            .into_iter()
            .map(|(l, v)| (l, v as i64))
            .collect();
        gauge(
            e,
            "tinsel_stream_viewers",
            "Viewers now, by stream and protocol (HLS: addresses seen in the last 30 s)",
            &viewers,
        )?;
        counter(
            e,
            "tinsel_stream_bytes_received",
            "Media bytes received from the publisher",
            &per_stream(|s| s.bytes_received),
        )?;
        counter(
            e,
            "tinsel_stream_frames_received",
            "Frames received from the publisher",
            &per_stream(|s| s.frames_received),
        )?;
        counter(
            e,
            "tinsel_stream_bytes_sent",
            "Bytes sent to viewers, by stream and protocol",
            &per_output(|s| s.bytes_sent, &Output::ALL),
        )?;
        counter(
            e,
            "tinsel_stream_frames_dropped",
            "Frames slow viewers skipped to catch up with the live edge",
            &per_output(|s| s.frames_dropped, &[Output::Rtmp, Output::Webrtc]),
        )?;
        gauge(
            e,
            "tinsel_webrtc_sessions",
            "WHEP sessions now, connecting or connected",
            &[(&[], self.webrtc_sessions as i64)],
        )?;
        counter(
            e,
            "tinsel_tweet_polls",
            "Polls of the X API, by result",
            &[
                (&[("result", "ok")], self.tweet_polls_ok),
                (&[("result", "failed")], self.tweet_polls_failed),
            ],
        )?;
        if let Some(process) = &self.process {
            process.encode(e)?;
        }
        Ok(())
    }
}
