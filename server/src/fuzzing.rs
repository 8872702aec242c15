//! Entry points for the fuzz targets (`fuzz/`), one per parser of bytes a
//! stranger or an outside peer controls.
//!
//! The cargo-fuzz targets are one line each calling these, and
//! `tests/fuzz_inputs.rs` feeds every committed seed and every input that
//! ever crashed one through the same functions on stable, so a crash found
//! once stays a plain regression test. Each function takes any bytes and must
//! return without panicking, whatever they are.

use crate::media::flv;

/// A target: it gets one input and must return.
pub type Target = fn(&[u8]);

/// Every target, by the name its `fuzz/fuzz_targets/NAME.rs` has.
pub const TARGETS: &[(&str, Target)] = &[
    ("rtmp_session", rtmp_session),
    ("amf0_values", amf0_values),
    ("flv_tags", flv_tags),
    ("sdp_offer", sdp_offer),
    ("stun_demux", stun_demux),
    ("hls_query", hls_query),
    ("x_api_response", x_api_response),
    ("snmp_reply", snmp_reply),
];

/// One RTMP connection after the handshake, as a stranger drives it: the
/// chunk reader, AMF0, the command sequence, publishing and playing (the first
/// byte is how many bytes each read hands over). The seeds are what FFmpeg
/// sends publishing and ffprobe sends playing, the handshake cut off.
pub fn rtmp_session(data: &[u8]) {
    crate::rtmp::session::fuzz_session(data);
}

/// AMF0 values within the command limits; what decodes, encodes to bytes
/// that decode to the same encoding (bytes, not values: NaN is not equal to
/// itself).
pub fn amf0_values(data: &[u8]) {
    use crate::rtmp::amf0;
    if let Ok(values) = amf0::decode_all(data, &amf0::COMMAND_LIMITS) {
        let encoded = amf0::encode(&values);
        let again = amf0::decode_all(&encoded, &amf0::COMMAND_LIMITS)
            .expect("what Tinsel encodes decodes within the same limits");
        assert_eq!(amf0::encode(&again), encoded, "AMF0 round trip");
    }
}

/// An RTMP video (first byte even) or audio (odd) message body, as a
/// publisher sends it: the FLV tag header, the AVC decoder configuration
/// record with its SPS and PPS (read by h264-reader), the NAL units of an
/// access unit, the AAC AudioSpecificConfig.
pub fn flv_tags(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    if kind % 2 == 0 {
        let _ = flv::parse_video(body);
    } else {
        let _ = flv::parse_audio(body);
    }
}

/// A WHEP offer as a browser (or a stranger) posts it: the size and shape
/// checks, then the H.264 payload types and the profile chosen for a 720p
/// High stream. The seed is an offer Chromium made.
pub fn sdp_offer(data: &[u8]) {
    use crate::webrtc::sdp;
    let Ok(offer) = sdp::check_offer(data, &sdp::OfferLimits::default()) else {
        return;
    };
    let offered = sdp::offered_h264(offer);
    let stream = crate::media::codec::VideoParams {
        profile: "High".into(),
        profile_idc: 100,
        constraint_flags: 0,
        level_idc: 31,
        width: 1280,
        height: 720,
    };
    let _ = sdp::choose_h264(&offered, &stream);
}

/// Datagrams on the shared WebRTC UDP port, each `[sender port][length]
/// bytes...`, routed to one session whose ICE ufrag is `evtj` (the ufrag of
/// RFC 5769's sample request, the seed); the routes learned never exceed the
/// cap.
pub fn stun_demux(data: &[u8]) {
    use std::net::{Ipv4Addr, SocketAddr};
    const MAX_REMOTES: usize = 4;
    let mut datagrams = Vec::new();
    let mut rest = data;
    while let [port, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let from = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 40_000 + u16::from(*port)));
        datagrams.push((from, &tail[..len]));
        let _ = crate::webrtc::udp_mux::stun_local_ufrag(&tail[..len]);
        rest = &tail[len..];
    }
    let local = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 8189));
    let (_, learned) =
        crate::webrtc::udp_mux::demux_for_fuzz("evtj", local, datagrams, MAX_REMOTES);
    assert!(learned <= MAX_REMOTES, "learned {learned} routes");
}

/// The query of an LL-HLS playlist request (`_HLS_msn`, `_HLS_part`,
/// `_HLS_skip`).
pub fn hls_query(data: &[u8]) {
    let _ = crate::http::hls_query::parse_directives(&String::from_utf8_lossy(data));
}

/// An X API recent-search answer: the first byte picks the status, then
/// header lines (`name: value`), an empty line, and the body; the rate-limit
/// headers and the wait they ask for are read as the poller reads them.
pub fn x_api_response(data: &[u8]) {
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    use std::time::{Duration, SystemTime};
    const STATUSES: [u16; 8] = [200, 200, 400, 401, 403, 429, 500, 503];
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let status = reqwest::StatusCode::from_u16(STATUSES[usize::from(pick) % STATUSES.len()])
        .expect("a valid status");
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (&[][..], rest),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        if let Some(colon) = line.iter().position(|&b| b == b':')
            && let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
            )
        {
            headers.append(name, value);
        }
    }
    let limit = crate::tweets::api::rate_limit(&headers);
    if let Some(reset) = limit.reset {
        let max = Duration::from_secs(900);
        let wait = crate::tweets::backoff::until_reset(reset, SystemTime::now(), max);
        assert!(wait <= max, "waits {wait:?} for a reset");
    }
    let _ = crate::tweets::api::read_answer(status, body);
}

/// A datagram that comes back to an SNMP v2c get of APC outlet 1's state,
/// request id 0x12345678, community `private` (the seed is the answer "on").
pub fn snmp_reply(data: &[u8]) {
    use crate::control::snmp_message::{RequestKind, read_reply};
    const ARCS: [u64; 15] = [1, 3, 6, 1, 4, 1, 318, 1, 1, 4, 4, 2, 1, 3, 1];
    let oid = snmp2::Oid::from(&ARCS[..]).expect("the APC outlet OID");
    let _ = read_reply(data, 0x1234_5678, b"private", RequestKind::Get, &[oid]);
}
