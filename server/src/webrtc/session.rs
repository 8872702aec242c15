//! One WebRTC viewer, driven here: the `rtc` crate's peer connection is
//! sans-IO, so the viewer's one task owns it and does its I/O.
//!
//! That is what makes a viewer cheap. A frame's RTP packets are written into
//! the peer connection one after the other (its interceptors keep them for
//! NACKs and count them for sender reports, then SRTP encrypts them), and
//! what comes out is sent to the viewer in one `sendmsg` (UDP GSO), not one
//! task wake-up, channel hop, lock and syscall per packet.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::feed::{Feed, FeedSubscription, Unit};
use super::ice_tcp::{IceTcp, TcpEvent};
use super::keyframe;
use super::replay::{Answer, ReplayBudget};
use super::udp_mux::{Datagram, SessionPort};
use crate::media::counters::Output;

/// Datagrams handed to the peer connection before it is polled again.
const READ_BURST: usize = 64;
/// Packets written into the peer connection before what it made is sent:
/// its queues keep the size they grow to, so a keyframe's hundred packets
/// go out in steps, not all at once.
const WRITE_BATCH: usize = 16;
/// The most bytes one GSO send carries (the kernel's limit is 64 KiB).
const MAX_BATCH_BYTES: usize = WRITE_BATCH * 1500;

/// Buffers GSO batches are assembled in, shared by every session: a send
/// rarely waits, so a few serve thousands of viewers, where one each would
/// cost every viewer tens of kilobytes.
static BATCHES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// A timer that is due again at once waits this long, so that a timer the
/// peer connection keeps reporting as due cannot spin the task.
const MIN_TIMER_GAP: Duration = Duration::from_millis(1);

/// One of the viewer's two outgoing RTP streams.
pub struct Media {
    pub track_id: String,
    pub ssrc: u32,
    pub payload_type: u8,
    pub sequence: u16,
}

pub struct Session {
    pub pc: RTCPeerConnection,
    pub port: SessionPort,
    pub tcp: Option<IceTcp>,
    pub video: Media,
    pub audio: Media,
    /// Random start of this viewer's RTP timestamps (RFC 3550, 5.1).
    pub offset: u32,
    pub replay: ReplayBudget,
    /// What the peer connection wrote, waiting to be sent.
    out: Vec<TaggedBytesMut>,
    /// Packets written since the last flush.
    written: usize,
    /// Bytes sent since they were last added to the stream's totals.
    sent: usize,
}

enum Which {
    Video,
    Audio,
}

impl Session {
    pub fn new(
        pc: RTCPeerConnection,
        port: SessionPort,
        tcp: Option<IceTcp>,
        video: Media,
        audio: Media,
        replay: ReplayBudget,
    ) -> Self {
        Self {
            pc,
            port,
            tcp,
            video,
            audio,
            offset: rand::random(),
            replay,
            out: Vec::new(),
            written: 0,
            sent: 0,
        }
    }

    /// Streams to the viewer once it connects, and closes the peer connection
    /// however it ends. Returns whether the viewer ever connected.
    pub async fn run(
        mut self,
        feed: &Feed,
        connect_timeout: Duration,
        connected_flag: &AtomicBool,
        token: CancellationToken,
    ) -> bool {
        let connect_deadline = tokio::time::Instant::now() + connect_timeout;
        let mut subscription: Option<FeedSubscription> = None;
        let mut timer_was_due = false;
        let started = Instant::now();
        loop {
            let mut ended = false;
            while let Some(event) = self.pc.poll_event() {
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                    match state {
                        RTCPeerConnectionState::Connected if subscription.is_none() => {
                            connected_flag.store(true, Ordering::Relaxed);
                            let mut joined = feed.subscribe();
                            let burst: Vec<_> = joined.burst.drain(..).collect();
                            self.send_gop(&burst).await;
                            subscription = Some(joined);
                        }
                        RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                        | RTCPeerConnectionState::Disconnected => ended = true,
                        _ => {}
                    }
                }
            }
            if ended {
                break;
            }
            let mut asked = false;
            while let Some(message) = self.pc.poll_read() {
                // The keyframe interceptor lets only PLI and FIR through.
                if let RTCMessage::RtcpPacket(_, packets) = message.message {
                    asked |= packets
                        .iter()
                        .any(|p| keyframe::is_keyframe_request(p.as_ref()));
                }
            }
            if asked {
                self.keyframe_requested(feed).await;
            }
            // What the last wake-up made, and what events and RTCP made.
            self.flush().await;
            self.count_sent(feed);

            let now = Instant::now();
            let due = self
                .pc
                .poll_timeout()
                .unwrap_or(now + Duration::from_secs(3600));
            let wake = if due <= now {
                if timer_was_due {
                    now + MIN_TIMER_GAP
                } else {
                    timer_was_due = true;
                    let _ = self.pc.handle_timeout(now);
                    continue;
                }
            } else {
                due
            };
            timer_was_due = false;
            let tcp = self.tcp.as_mut();
            tokio::select! {
                () = token.cancelled() => break,
                () = tokio::time::sleep_until(connect_deadline), if subscription.is_none() => break,
                () = tokio::time::sleep_until(wake.into()) => {
                    let _ = self.pc.handle_timeout(Instant::now());
                }
                datagram = self.port.inbox.recv() => {
                    let Some(datagram) = datagram else { break };
                    self.read_udp(datagram);
                    for _ in 1..READ_BURST {
                        let Ok(datagram) = self.port.inbox.try_recv() else { break };
                        self.read_udp(datagram);
                    }
                }
                event = next_tcp(tcp) => {
                    if let TcpEvent::Frame { local, peer, data } = event {
                        self.read(local, peer, TransportProtocol::TCP, data);
                    }
                }
                unit = next_unit(subscription.as_mut()) => {
                    let Some(unit) = unit else { break };
                    self.send(&unit, None).await;
                }
            }
        }
        let connected = subscription.is_some();
        if connected {
            debug!(
                seconds = started.elapsed().as_secs(),
                "WebRTC viewer streamed"
            );
        }
        // What closing writes (DTLS close_notify) goes out before the routes go.
        let _ = self.pc.close();
        self.flush().await;
        self.count_sent(feed);
        connected
    }

    /// Adds what went out to the stream's totals, once a turn of the loop
    /// rather than a datagram at a time.
    fn count_sent(&mut self, feed: &Feed) {
        if self.sent > 0 {
            feed.counters()
                .sent(Output::Webrtc, std::mem::take(&mut self.sent));
        }
    }

    fn read_udp(&mut self, datagram: Datagram) {
        let local = SocketAddr::new(datagram.to, self.port.port());
        let (from, data) = (datagram.from, datagram.data);
        self.read(local, from, TransportProtocol::UDP, data);
    }

    fn read(
        &mut self,
        local_addr: SocketAddr,
        peer_addr: SocketAddr,
        transport_protocol: TransportProtocol,
        message: BytesMut,
    ) {
        let message = TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr,
                peer_addr,
                transport_protocol,
                ecn: None,
            },
            message,
        };
        // A datagram the peer connection cannot use is a stranger's or a
        // lost cause; UDP would have dropped it too.
        if let Err(err) = self.pc.handle_read(message) {
            debug!(%err, %peer_addr, "WebRTC datagram refused");
        }
    }

    /// Sends what the peer connection wrote: runs of datagrams to the same
    /// peer in one GSO send each (all but the last of a run the same size).
    async fn flush(&mut self) {
        self.written = 0;
        while let Some(message) = self.pc.poll_write() {
            self.out.push(message);
        }
        let max_segments = self.port.max_segments().max(1);
        let out = std::mem::take(&mut self.out);
        self.sent += out.iter().map(|m| m.message.len()).sum::<usize>();
        let mut start = 0;
        while start < out.len() {
            let end = start + run_length(&out[start..], max_segments);
            let first = &out[start];
            let (transport, segment) = (first.transport, first.message.len());
            if transport.transport_protocol == TransportProtocol::TCP {
                if let Some(tcp) = &self.tcp {
                    tcp.send(transport.peer_addr, &first.message);
                }
            } else {
                let (from, to) = (transport.local_addr.ip(), transport.peer_addr);
                if end - start == 1 {
                    self.port.send(from, to, &first.message, None).await;
                } else {
                    let mut batch = take_batch();
                    for message in &out[start..end] {
                        batch.extend_from_slice(&message.message);
                    }
                    self.port.send(from, to, &batch, Some(segment)).await;
                    give_back(batch);
                }
            }
            start = end;
        }
        self.out = out;
        self.out.clear();
    }

    async fn keyframe_requested(&mut self, feed: &Feed) {
        let gop = feed.gop();
        let answer = self.replay.request(gop.iter().map(|u| u.bytes()).sum());
        debug!(?answer, "WebRTC viewer asked for a keyframe");
        if let Answer::Replay = answer {
            self.send_gop(&gop).await;
        }
    }

    /// A GOP packed one tick apart just before its last frame: the browser
    /// decodes through it at once and shows live frames, instead of playing a
    /// GOP-old picture through its jitter buffer. Sent frame by frame: the
    /// peer connection's queues keep the size they grow to, and a whole GOP
    /// written at once would leave every viewer holding a megabyte.
    async fn send_gop(&mut self, gop: &[Arc<Unit>]) {
        let Some(Unit::Video { dts: live_edge, .. }) = gop.last().map(|u| &**u) else {
            return;
        };
        let edge = self.video_timestamp(*live_edge);
        let count = gop.len() as u32;
        for (i, unit) in gop.iter().enumerate() {
            self.send(unit, Some(edge.wrapping_sub(count - 1 - i as u32)))
                .await;
            self.flush().await;
        }
    }

    fn video_timestamp(&self, dts_ms: u64) -> u32 {
        // RTP timestamps wrap (RFC 3550, 5.1); only differences matter.
        ((dts_ms * 90) as u32).wrapping_add(self.offset)
    }

    /// Writes a unit into the peer connection: live with `timestamp` `None`,
    /// else as part of a GOP packed at that timestamp.
    async fn send(&mut self, unit: &Unit, timestamp: Option<u32>) {
        let live = timestamp.is_none();
        let now = Instant::now();
        match unit {
            Unit::Video {
                dts,
                keyframe,
                payloads,
            } => {
                let timestamp = timestamp.unwrap_or_else(|| self.video_timestamp(*dts));
                let last = payloads.len().saturating_sub(1);
                for (i, payload) in payloads.iter().enumerate() {
                    self.write(now, Which::Video, timestamp, payload.clone(), i == last);
                    if self.written >= WRITE_BATCH {
                        self.flush().await;
                    }
                }
                if live {
                    self.replay.sent(unit.bytes(), *keyframe);
                }
            }
            Unit::Audio { timestamp, payload } => {
                let timestamp = (*timestamp as u32).wrapping_add(self.offset);
                self.replay.sent(payload.len(), false);
                self.write(now, Which::Audio, timestamp, payload.clone(), false);
            }
        }
    }

    fn write(&mut self, now: Instant, which: Which, timestamp: u32, payload: Bytes, marker: bool) {
        let media = match which {
            Which::Video => &mut self.video,
            Which::Audio => &mut self.audio,
        };
        let header = rtp::header::Header {
            version: 2,
            marker,
            payload_type: media.payload_type,
            sequence_number: media.sequence,
            timestamp,
            ssrc: media.ssrc,
            ..Default::default()
        };
        media.sequence = media.sequence.wrapping_add(1);
        self.written += 1;
        let message = TaggedRTCMessage {
            now,
            message: RTCMessage::RtpPacket(media.track_id.clone(), rtp::Packet { header, payload }),
        };
        if let Err(err) = self.pc.handle_write(message) {
            debug!(%err, "WebRTC packet not sent");
        }
    }
}

async fn next_tcp(tcp: Option<&mut IceTcp>) -> TcpEvent {
    match tcp {
        Some(tcp) => tcp.next().await,
        None => std::future::pending().await,
    }
}

async fn next_unit(subscription: Option<&mut FeedSubscription>) -> Option<Arc<Unit>> {
    match subscription {
        Some(subscription) => subscription.recv().await,
        None => std::future::pending().await,
    }
}

/// How many of `out`, from its first, go in one send: a run of UDP
/// datagrams to the same peer from the same address, all the first one's
/// size but the last, which may be shorter (what UDP GSO sends), within
/// `max_segments` and [`MAX_BATCH_BYTES`]. TCP goes one at a time.
fn run_length(out: &[TaggedBytesMut], max_segments: usize) -> usize {
    let Some(first) = out.first() else {
        return 0;
    };
    let segment = first.message.len();
    if first.transport.transport_protocol != TransportProtocol::UDP || segment == 0 {
        return 1;
    }
    let mut end = 1;
    let mut total = segment;
    while end < out.len() && end < max_segments {
        let next = &out[end];
        let len = next.message.len();
        if next.transport != first.transport
            || len == 0
            || len > segment
            || total + len > MAX_BATCH_BYTES
        {
            break;
        }
        total += len;
        end += 1;
        // A shorter datagram can only be the last of a run.
        if len < segment {
            break;
        }
    }
    end
}

fn take_batch() -> Vec<u8> {
    let mut batches = BATCHES.lock().unwrap_or_else(|p| p.into_inner());
    batches
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(MAX_BATCH_BYTES))
}

fn give_back(mut batch: Vec<u8>) {
    batch.clear();
    let mut batches = BATCHES.lock().unwrap_or_else(|p| p.into_inner());
    // More than a few means sends were waiting on a full socket buffer.
    if batches.len() < 16 {
        batches.push(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(peer: u16, protocol: TransportProtocol, len: usize) -> TaggedBytesMut {
        TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: "192.0.2.1:8189".parse().unwrap(),
                peer_addr: SocketAddr::from(([192, 0, 2, 7], peer)),
                transport_protocol: protocol,
                ecn: None,
            },
            message: BytesMut::from(&vec![0u8; len][..]),
        }
    }

    fn runs(out: &[TaggedBytesMut], max_segments: usize) -> Vec<usize> {
        let mut lengths = Vec::new();
        let mut start = 0;
        while start < out.len() {
            let n = run_length(&out[start..], max_segments);
            lengths.push(n);
            start += n;
        }
        lengths
    }

    #[test]
    fn a_frame_to_one_viewer_goes_in_one_send_with_its_short_last_packet() {
        let udp = TransportProtocol::UDP;
        let frame: Vec<_> = [1200, 1200, 1200, 1200, 700]
            .into_iter()
            .map(|len| datagram(5000, udp, len))
            .collect();
        assert_eq!(runs(&frame, 64), vec![5]);
        // Without GSO every datagram goes on its own.
        assert_eq!(runs(&frame, 1), vec![1, 1, 1, 1, 1]);
    }

    #[test]
    fn runs_end_at_a_bigger_datagram_another_peer_tcp_or_the_byte_cap() {
        let (udp, tcp) = (TransportProtocol::UDP, TransportProtocol::TCP);
        let out = vec![
            datagram(5000, udp, 200),
            // Bigger than the run's segment: starts the next run.
            datagram(5000, udp, 1200),
            datagram(5000, udp, 1200),
            datagram(5001, udp, 1200),
            datagram(5001, tcp, 1200),
            datagram(5001, tcp, 1200),
            datagram(5001, udp, 1200),
        ];
        assert_eq!(runs(&out, 64), vec![1, 2, 1, 1, 1, 1]);
        let many: Vec<_> = (0..40).map(|_| datagram(5000, udp, 1500)).collect();
        let lengths = runs(&many, 64);
        assert!(
            lengths.iter().all(|n| n * 1500 <= MAX_BATCH_BYTES),
            "{lengths:?}"
        );
        assert_eq!(lengths.iter().sum::<usize>(), 40);
    }
}
