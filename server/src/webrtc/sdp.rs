//! Which H.264 payload type to answer a WHEP offer with, and the fmtp line that
//! says what the stream really is (RFC 6184, 8.1 and 8.2.2; pure).
//!
//! Tinsel forwards the encoder's H.264 as it is, so the answer cannot fit the
//! stream to the browser: it can only pick, among the formats the browser
//! offered, one whose decoder takes the stream, and then describe the stream
//! truthfully. An answer that claims Constrained Baseline while the bitstream
//! is High gives black video in Safari.
//!
//! An offer is a stranger's text: [`check_offer`] holds it to a size and a
//! shape before anything else reads it, and [`offered_h264`] costs one pass
//! and at most one entry per payload type whatever the offer repeats.

use std::fmt;

use thiserror::Error;

use crate::media::codec::VideoParams;

/// constraint_set flags in profile-iop, the second byte of profile-level-id
/// (H.264, 7.4.2.1.1).
const SET0: u8 = 0x80;
const SET1: u8 = 0x40;
const SET3: u8 = 0x10;
const SET4: u8 = 0x08;
const SET5: u8 = 0x04;

/// `level_idc` of Level 1b where the profile itself does not mark it with
/// constraint_set3_flag (H.264, A.3.1 and 7.4.2.1.1).
const LEVEL_1B: u8 = 9;

/// "If no profile-level-id is present, the Baseline profile, without
/// additional constraints at Level 1, MUST be inferred" (RFC 6184, 8.1).
const DEFAULT_PROFILE_LEVEL_ID: ProfileLevelId = ProfileLevelId {
    profile_idc: 66,
    iop: 0,
    level_idc: 10,
};

/// RTP payload types are seven bits (RFC 3550, 5.1).
const PAYLOAD_TYPES: usize = 128;

/// m-sections an offer may have. A WHEP viewer needs one video and one audio
/// section (and perhaps a data channel); each section becomes a transceiver,
/// so a few spare is plenty and thousands would be a lever.
pub const MAX_MEDIA_SECTIONS: usize = 8;

/// One H.264 format of the offer's video m-section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedH264<'a> {
    pub payload_type: u8,
    /// The parameters of its `a=fmtp` line, empty when there is none.
    pub fmtp: &'a str,
}

/// The size and shape an offer must keep (from
/// [`WhepLimits`](super::limits::WhepLimits)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferLimits {
    pub max_bytes: usize,
    pub max_lines: usize,
    pub max_line_bytes: usize,
    pub max_payload_types: usize,
    pub max_candidates: usize,
}

impl From<&super::limits::WhepLimits> for OfferLimits {
    fn from(limits: &super::limits::WhepLimits) -> Self {
        Self {
            max_bytes: limits.whep_max_offer_bytes,
            max_lines: limits.whep_max_offer_lines,
            max_line_bytes: limits.whep_max_offer_line_bytes,
            max_payload_types: limits.whep_max_payload_types,
            max_candidates: limits.whep_max_offer_candidates,
        }
    }
}

impl Default for OfferLimits {
    fn default() -> Self {
        Self::from(&super::limits::WhepLimits::default())
    }
}

/// The H.264 format to put in the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264Answer {
    /// One the browser offered, as RFC 6184, 8.2.2 asks: "the same RTP
    /// payload type number used in the offer SHOULD also be used in the answer".
    pub payload_type: u8,
    /// Parameters for `a=fmtp:<payload_type>`.
    pub fmtp: String,
    /// The stream's profile-level-id, as in `fmtp`, for logs.
    pub profile_level_id: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("the offer is not UTF-8 text; send the browser's SDP offer as it is")]
    NotUtf8,
    #[error("the body is not an SDP offer (it must start with v=0)")]
    NotSdp,
    #[error(
        "the offer is {bytes} bytes, more than the {max} this server takes \
         (whep_max_offer_bytes); a browser's offer is under 10 KB"
    )]
    TooLarge { bytes: usize, max: usize },
    #[error(
        "the offer has more than {max} lines (whep_max_offer_lines); a browser's has about 200"
    )]
    TooManyLines { max: usize },
    #[error(
        "line {line} of the offer is {bytes} bytes, more than {max} (whep_max_offer_line_bytes)"
    )]
    LineTooLong {
        line: usize,
        bytes: usize,
        max: usize,
    },
    #[error(
        "the m= line on line {line} lists {count} payload types, more than {max} \
         (whep_max_payload_types)"
    )]
    TooManyPayloadTypes {
        line: usize,
        count: usize,
        max: usize,
    },
    #[error("the offer has more than {max} media sections; WHEP plays one video and one audio")]
    TooManyMediaSections { max: usize },
    #[error(
        "the offer has more than {max} ICE candidates (whep_max_offer_candidates); a browser \
         offers a handful"
    )]
    TooManyCandidates { max: usize },
    #[error("the offer has no video section with H.264; play the stream in a browser with H.264")]
    NoH264,
    #[error(
        "the browser offers no H.264 in packetization-mode 1 (it offers {offered}); Tinsel sends \
         the encoder's H.264 as it is, so play the stream in a browser with H.264 for WebRTC \
         (Firefox needs its OpenH264 plugin)"
    )]
    NoPacketizationMode1 { offered: String },
    #[error(
        "the browser decodes H.264 {offered}, but the stream is {stream}, which none of those \
         take: set the encoder's H.264 profile to {advice} (OBS: Output settings, Profile), with \
         8-bit 4:2:0 colour (NV12)"
    )]
    Profile {
        offered: String,
        stream: String,
        advice: String,
    },
}

impl SdpError {
    /// The limit key a refusal names in the log, for an offer of the wrong
    /// size or shape.
    pub fn limit(&self) -> Option<&'static str> {
        Some(match self {
            Self::TooLarge { .. } => "whep_max_offer_bytes",
            Self::TooManyLines { .. } => "whep_max_offer_lines",
            Self::LineTooLong { .. } => "whep_max_offer_line_bytes",
            Self::TooManyPayloadTypes { .. } => "whep_max_payload_types",
            Self::TooManyCandidates { .. } => "whep_max_offer_candidates",
            Self::TooManyMediaSections { .. } => "whep_max_media_sections",
            _ => return None,
        })
    }
}

/// Holds a stranger's offer to `limits` before anything costly reads it, in
/// one pass with no allocation, and returns it as text.
///
/// # Errors
/// Not UTF-8, not SDP, or over a limit; the error names the limit.
pub fn check_offer<'a>(offer: &'a [u8], limits: &OfferLimits) -> Result<&'a str, SdpError> {
    if offer.len() > limits.max_bytes {
        return Err(SdpError::TooLarge {
            bytes: offer.len(),
            max: limits.max_bytes,
        });
    }
    let offer = std::str::from_utf8(offer).map_err(|_| SdpError::NotUtf8)?;
    // "An SDP description [...] MUST begin with a v= line" (RFC 8866, 5).
    if !offer.starts_with("v=0") {
        return Err(SdpError::NotSdp);
    }
    let (mut sections, mut candidates) = (0, 0);
    for (index, line) in offer.split('\n').enumerate() {
        let number = index + 1;
        if number > limits.max_lines {
            return Err(SdpError::TooManyLines {
                max: limits.max_lines,
            });
        }
        if line.len() > limits.max_line_bytes {
            return Err(SdpError::LineTooLong {
                line: number,
                bytes: line.len(),
                max: limits.max_line_bytes,
            });
        }
        if let Some(media) = line.strip_prefix("m=") {
            sections += 1;
            if sections > MAX_MEDIA_SECTIONS {
                return Err(SdpError::TooManyMediaSections {
                    max: MAX_MEDIA_SECTIONS,
                });
            }
            // m=<media> <port> <proto> <fmt> ... (RFC 8866, 5.14)
            let count = media.split_ascii_whitespace().skip(3).count();
            if count > limits.max_payload_types {
                return Err(SdpError::TooManyPayloadTypes {
                    line: number,
                    count,
                    max: limits.max_payload_types,
                });
            }
        } else if line.starts_with("a=candidate:") {
            candidates += 1;
            if candidates > limits.max_candidates {
                return Err(SdpError::TooManyCandidates {
                    max: limits.max_candidates,
                });
            }
        }
    }
    Ok(offer)
}

/// The offer's H.264 formats, from the SDP text (`a=rtpmap:<pt> H264/90000`
/// and `a=fmtp:<pt> ...` lines of its first video m-section), in the order
/// of the m= line, which is the browser's preference (RFC 3264, 5.1).
///
/// One pass over the text, and at most one format per payload type: a payload
/// type listed again on the m= line, or given a second rtpmap or fmtp, keeps
/// its first place and its first line; one above 127 is no RTP payload type.
pub fn offered_h264(offer_sdp: &str) -> Vec<OfferedH264<'_>> {
    let mut formats: Vec<u8> = Vec::new();
    let mut h264 = [false; PAYLOAD_TYPES];
    let mut fmtp: [Option<&str>; PAYLOAD_TYPES] = [None; PAYLOAD_TYPES];
    let mut in_video = false;
    for line in offer_sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            if in_video {
                break;
            }
            in_video = media.starts_with("video ");
            if in_video {
                // m=<media> <port> <proto> <fmt> ... (RFC 8866, 5.14)
                let mut listed = [false; PAYLOAD_TYPES];
                formats = media
                    .split_whitespace()
                    .skip(3)
                    .filter_map(|f| f.parse::<u8>().ok())
                    .filter(|&pt| {
                        let fresh = usize::from(pt) < PAYLOAD_TYPES && !listed[usize::from(pt)];
                        if fresh {
                            listed[usize::from(pt)] = true;
                        }
                        fresh
                    })
                    .collect();
            }
            continue;
        }
        if !in_video {
            continue;
        }
        if let Some((pt, encoding)) = attribute(line, "a=rtpmap:") {
            let mut parts = encoding.split('/');
            let name = parts.next().unwrap_or_default();
            if name.eq_ignore_ascii_case("H264") && parts.next() == Some("90000") {
                h264[usize::from(pt)] = true;
            }
        } else if let Some((pt, parameters)) = attribute(line, "a=fmtp:") {
            fmtp[usize::from(pt)].get_or_insert(parameters);
        }
    }
    formats
        .into_iter()
        .filter(|&pt| h264[usize::from(pt)])
        .map(|pt| OfferedH264 {
            payload_type: pt,
            fmtp: fmtp[usize::from(pt)].unwrap_or_default(),
        })
        .collect()
}

/// `<prefix><pt> <value>` as (pt, value), for a payload type RTP can carry.
fn attribute<'a>(line: &'a str, prefix: &str) -> Option<(u8, &'a str)> {
    let (pt, value) = line.strip_prefix(prefix)?.split_once(' ')?;
    let pt: u8 = pt.parse().ok()?;
    (usize::from(pt) < PAYLOAD_TYPES).then_some((pt, value.trim()))
}

/// Picks the offered format for `stream` and the fmtp line to answer with.
///
/// Among formats in packetization-mode 1 whose decoder takes the stream, the
/// first in the browser's order wins, preferring one of the stream's own
/// profile (as libwebrtc classes them), then one of its `profile_idc`.
///
/// # Errors
/// No format in packetization-mode 1, or none whose decoder takes the stream;
/// the message names what was offered and what the stream is.
pub fn choose_h264(offered: &[OfferedH264], stream: &VideoParams) -> Result<H264Answer, SdpError> {
    let usable: Vec<(u8, Fmtp)> = offered
        .iter()
        .map(|offer| (offer.payload_type, Fmtp::parse(offer.fmtp)))
        .filter(|(_, fmtp)| fmtp.packetization_mode == Some(1))
        .collect();
    if usable.is_empty() {
        return Err(SdpError::NoPacketizationMode1 {
            offered: describe_offer(offered),
        });
    }
    let own_class = Decoder::of(stream.profile_idc, stream.constraint_flags);
    let chosen = usable
        .iter()
        .filter_map(|(pt, fmtp)| {
            let offer = fmtp.profile_level_id?;
            let decoder = Decoder::of(offer.profile_idc, offer.iop)?;
            let preference = if Some(decoder) == own_class {
                0
            } else if offer.profile_idc == stream.profile_idc {
                1
            } else {
                2
            };
            decoder
                .takes(stream)
                .then_some((preference, *pt, offer, fmtp.level_asymmetry_allowed))
        })
        .min_by_key(|&(preference, ..)| preference);
    let stream_id = ProfileLevelId {
        profile_idc: stream.profile_idc,
        iop: stream.constraint_flags,
        level_idc: stream.level_idc,
    };
    let Some((_, payload_type, offer, asymmetry)) = chosen else {
        return Err(SdpError::Profile {
            offered: describe_usable(&usable),
            stream: format!(
                "{} {} ({stream_id})",
                stream.profile,
                stream_id.level_name()
            ),
            advice: advice(&usable),
        });
    };
    // The profile part is the stream's own, even where it differs from the
    // offer's (42c0 for 42e0, 6400 for 640c): a deliberate deviation from
    // "the answerer MUST either maintain all configuration parameters or
    // remove the media format" (RFC 6184, 8.2.2), because the answer has to
    // describe the bitstream. libwebrtc matches H.264 formats by profile class
    // and packetization mode only, and sets up its decoder from its own offer
    // for that payload type, so browsers accept it.
    //
    // The level: with level-asymmetry-allowed=1 on both sides, the level in
    // the answer is what the answerer could receive (8.1), so a send-only
    // answerer may state its stream's level even above the offer's. Without
    // it the level is symmetric and may only be lowered (8.2.2), so the answer
    // says the lower of the two. Either way the stream goes out at its own
    // level, since nothing is re-encoded: a deliberate deviation where the
    // offer's level is lower; libwebrtc picks decoders by profile, not level.
    let level = if asymmetry {
        stream_id.level()
    } else {
        lower_level(stream_id.level(), offer.level())
    };
    let answer = stream_id.with_level(level);
    Ok(H264Answer {
        payload_type,
        fmtp: format!("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={answer}"),
        profile_level_id: answer.to_string(),
    })
}

/// The parameters of an H.264 `a=fmtp` line that matter here (RFC 6184, 8.1).
struct Fmtp {
    /// `None` when absent, which means 0: "When the value of
    /// packetization-mode is equal to 0 or packetization-mode is not present,
    /// the single NAL mode MUST be used."
    packetization_mode: Option<u8>,
    /// `None` when present but not three bytes of hex.
    profile_level_id: Option<ProfileLevelId>,
    level_asymmetry_allowed: bool,
}

impl Fmtp {
    fn parse(parameters: &str) -> Self {
        let mut fmtp = Fmtp {
            packetization_mode: None,
            profile_level_id: Some(DEFAULT_PROFILE_LEVEL_ID),
            level_asymmetry_allowed: false,
        };
        for (key, value) in parameters
            .split(';')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
        {
            if key.eq_ignore_ascii_case("packetization-mode") {
                fmtp.packetization_mode = value.parse().ok();
            } else if key.eq_ignore_ascii_case("profile-level-id") {
                fmtp.profile_level_id = ProfileLevelId::parse(value);
            } else if key.eq_ignore_ascii_case("level-asymmetry-allowed") {
                fmtp.level_asymmetry_allowed = value == "1";
            }
        }
        fmtp
    }
}

/// The three bytes of profile-level-id, hex in SDP (RFC 6184, 8.1): profile_idc,
/// profile-iop (the constraint flags) and level_idc, as in the SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProfileLevelId {
    profile_idc: u8,
    iop: u8,
    level_idc: u8,
}

impl ProfileLevelId {
    fn parse(hex: &str) -> Option<Self> {
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let [_, profile_idc, iop, level_idc] = u32::from_str_radix(hex, 16).ok()?.to_be_bytes();
        Some(Self {
            profile_idc,
            iop,
            level_idc,
        })
    }

    /// Profiles whose Level 1b is level_idc 11 with constraint_set3_flag.
    fn marks_1b_with_set3(self) -> bool {
        matches!(self.profile_idc, 66 | 77 | 88)
    }

    /// The level as `level_idc`, with Level 1b as [`LEVEL_1B`] whatever the profile.
    fn level(self) -> u8 {
        if self.marks_1b_with_set3() && self.level_idc == 11 && self.iop & SET3 != 0 {
            LEVEL_1B
        } else {
            self.level_idc
        }
    }

    /// The same profile at `level` (from [`Self::level`]).
    fn with_level(self, level: u8) -> Self {
        let (iop, level_idc) = match (self.marks_1b_with_set3(), level == LEVEL_1B) {
            (true, true) => (self.iop | SET3, 11),
            (true, false) => (self.iop & !SET3, level),
            (false, _) => (self.iop, level),
        };
        Self {
            iop,
            level_idc,
            ..self
        }
    }

    fn level_name(self) -> String {
        match self.level() {
            LEVEL_1B => "1b".to_string(),
            level => format!("{}.{}", level / 10, level % 10),
        }
    }
}

impl fmt::Display for ProfileLevelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}{:02x}{:02x}",
            self.profile_idc, self.iop, self.level_idc
        )
    }
}

/// The lower of two levels from [`ProfileLevelId::level`]: Level 1b lies
/// between 1 and 1.1.
fn lower_level(a: u8, b: u8) -> u8 {
    let rank = |level: u8| match level {
        LEVEL_1B => 105,
        level => u16::from(level) * 10,
    };
    if rank(a) <= rank(b) { a } else { b }
}

/// The decoder an offered profile-level-id asks for, in the classes libwebrtc
/// uses (its `h264_profile_level_id.cc`, after H.264 Annex A.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    ConstrainedBaseline,
    Baseline,
    Main,
    ConstrainedHigh,
    High,
    High444,
}

impl Decoder {
    fn of(profile_idc: u8, iop: u8) -> Option<Self> {
        Some(match profile_idc {
            66 if iop & SET1 != 0 => Self::ConstrainedBaseline,
            66 => Self::Baseline,
            77 if iop & SET0 != 0 => Self::ConstrainedBaseline,
            77 => Self::Main,
            88 if iop & SET0 != 0 && iop & SET1 != 0 => Self::ConstrainedBaseline,
            88 if iop & SET0 != 0 => Self::Baseline,
            100 if iop & (SET4 | SET5) == SET4 | SET5 => Self::ConstrainedHigh,
            100 => Self::High,
            244 => Self::High444,
            _ => return None,
        })
    }

    /// Whether this decoder takes `stream`, going by its profile_idc and
    /// constraint flags (H.264, A.2): constraint_set0_flag promises the
    /// Baseline constraints, constraint_set1_flag the Main ones.
    fn takes(self, stream: &VideoParams) -> bool {
        let (idc, flags) = (stream.profile_idc, stream.constraint_flags);
        let main = idc == 77 || flags & SET1 != 0;
        match self {
            // A.2.1.1: Baseline that also obeys the Main constraints.
            Self::ConstrainedBaseline => match idc {
                66 => flags & SET1 != 0,
                77 => flags & SET0 != 0,
                88 => flags & SET0 != 0 && flags & SET1 != 0,
                _ => false,
            },
            Self::Baseline => idc == 66 || flags & SET0 != 0,
            Self::Main => main,
            // A Constrained High decoder is only promised streams without B
            // slices and interlace (constraint_set4/5). A deliberate
            // leniency: x264 never sets those flags, browsers' WebRTC cannot
            // take B-frames anyway, and the decoders behind such offers
            // (VideoToolbox in Safari) are full High decoders.
            Self::ConstrainedHigh | Self::High => idc == 100 || main,
            Self::High444 => matches!(idc, 100 | 110 | 122 | 244) || main,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::ConstrainedBaseline => "Constrained Baseline",
            Self::Baseline => "Baseline",
            Self::Main => "Main",
            Self::ConstrainedHigh => "Constrained High",
            Self::High => "High",
            Self::High444 => "High 4:4:4 Predictive",
        }
    }
}

/// The offered formats, for an error: profile, level and packetization mode.
fn describe_offer(offered: &[OfferedH264]) -> String {
    if offered.is_empty() {
        return "no H.264 at all".to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    for offer in offered {
        let fmtp = Fmtp::parse(offer.fmtp);
        let part = format!(
            "{} in packetization-mode {}",
            fmtp.profile_level_id
                .map_or("an unreadable profile".to_string(), describe_profile),
            fmtp.packetization_mode.unwrap_or(0)
        );
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    parts.join(", ")
}

/// The formats in packetization-mode 1, for an error.
fn describe_usable(usable: &[(u8, Fmtp)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in usable
        .iter()
        .filter_map(|(_, fmtp)| fmtp.profile_level_id)
        .map(describe_profile)
    {
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    parts.join(", ")
}

fn describe_profile(id: ProfileLevelId) -> String {
    let name = Decoder::of(id.profile_idc, id.iop).map_or_else(
        || format!("profile_idc {}", id.profile_idc),
        |decoder| decoder.name().to_string(),
    );
    format!("{name} {} ({id})", id.level_name())
}

/// The x264 profiles whose output one of the usable formats takes.
fn advice(usable: &[(u8, Fmtp)]) -> String {
    let decoders: Vec<Decoder> = usable
        .iter()
        .filter_map(|(_, fmtp)| fmtp.profile_level_id)
        .filter_map(|id| Decoder::of(id.profile_idc, id.iop))
        .collect();
    let has = |wanted: &[Decoder]| decoders.iter().any(|d| wanted.contains(d));
    // x264's high is 6400xx, main 4d40xx and baseline 42c0xx: Constrained
    // Baseline, which every decoder class takes.
    let high = [Decoder::High, Decoder::ConstrainedHigh, Decoder::High444];
    let better: Vec<&str> = [
        has(&high).then_some("high"),
        (has(&high) || has(&[Decoder::Main])).then_some("main"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if better.is_empty() {
        "baseline".to_string()
    } else {
        format!("{} or baseline", better.join(", "))
    }
}

/// The answer with every host candidate's address replaced by `public`: for
/// a server behind 1:1 NAT, whose viewers must be told the outside address.
/// (The `webrtc` crate keeps a 1:1 NAT setting but does not apply it.)
pub fn with_public_address(answer: &str, public: std::net::IpAddr) -> String {
    let public = public.to_string();
    answer
        .split_inclusive('\n')
        .map(|line| {
            let mut fields: Vec<&str> = line.split(' ').collect();
            let is_host = line.starts_with("a=candidate:")
                && fields.len() >= 8
                && fields[6] == "typ"
                && fields[7].trim_end() == "host";
            if is_host {
                fields[4] = &public;
                fields.join(" ")
            } else {
                line.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The video part of an offer from Chrome (Linux, a recvonly transceiver
    /// per kind), abridged: rtcp-fb lines kept for one format only.
    const CHROME_OFFER: &str = "v=0\r\n\
        o=- 4215775240449105457 2 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        a=extmap-allow-mixed\r\n\
        a=msid-semantic: WMS\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=mid:0\r\n\
        a=recvonly\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        a=fmtp:111 minptime=10;useinbandfec=1\r\n\
        a=rtpmap:63 red/48000/2\r\n\
        a=fmtp:63 111/111\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 41 42 43 44 45 46 112 113 114 115 116 117 118\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=rtcp:9 IN IP4 0.0.0.0\r\n\
        a=mid:1\r\n\
        a=recvonly\r\n\
        a=rtcp-mux\r\n\
        a=rtcp-rsize\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtcp-fb:96 goog-remb\r\n\
        a=rtcp-fb:96 transport-cc\r\n\
        a=rtcp-fb:96 ccm fir\r\n\
        a=rtcp-fb:96 nack\r\n\
        a=rtcp-fb:96 nack pli\r\n\
        a=rtpmap:97 rtx/90000\r\n\
        a=fmtp:97 apt=96\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:103 rtx/90000\r\n\
        a=fmtp:103 apt=102\r\n\
        a=rtpmap:104 H264/90000\r\n\
        a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
        a=rtpmap:105 rtx/90000\r\n\
        a=fmtp:105 apt=104\r\n\
        a=rtpmap:106 H264/90000\r\n\
        a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:107 rtx/90000\r\n\
        a=fmtp:107 apt=106\r\n\
        a=rtpmap:108 H264/90000\r\n\
        a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
        a=rtpmap:109 rtx/90000\r\n\
        a=fmtp:109 apt=108\r\n\
        a=rtpmap:127 H264/90000\r\n\
        a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
        a=rtpmap:125 rtx/90000\r\n\
        a=fmtp:125 apt=127\r\n\
        a=rtpmap:39 H264/90000\r\n\
        a=fmtp:39 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f\r\n\
        a=rtpmap:40 rtx/90000\r\n\
        a=fmtp:40 apt=39\r\n\
        a=rtpmap:41 H264/90000\r\n\
        a=fmtp:41 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=f4001f\r\n\
        a=rtpmap:42 rtx/90000\r\n\
        a=fmtp:42 apt=41\r\n\
        a=rtpmap:43 H264/90000\r\n\
        a=fmtp:43 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=f4001f\r\n\
        a=rtpmap:44 rtx/90000\r\n\
        a=fmtp:44 apt=43\r\n\
        a=rtpmap:45 AV1/90000\r\n\
        a=fmtp:45 level-idx=5;profile=0;tier=0\r\n\
        a=rtpmap:46 rtx/90000\r\n\
        a=fmtp:46 apt=45\r\n\
        a=rtpmap:112 H264/90000\r\n\
        a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n\
        a=rtpmap:113 rtx/90000\r\n\
        a=fmtp:113 apt=112\r\n\
        a=rtpmap:114 H264/90000\r\n\
        a=fmtp:114 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=64001f\r\n\
        a=rtpmap:115 rtx/90000\r\n\
        a=fmtp:115 apt=114\r\n\
        a=rtpmap:116 red/90000\r\n\
        a=rtpmap:117 rtx/90000\r\n\
        a=fmtp:117 apt=116\r\n\
        a=rtpmap:118 ulpfec/90000\r\n";

    /// The video m-section of an offer from Safari (macOS), abridged the
    /// same way.
    const SAFARI_OFFER: &str = "v=0\r\n\
        o=- 6396322233546421562 2 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 102 103 104 105 106 107 108 109\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=mid:0\r\n\
        a=recvonly\r\n\
        a=rtcp-mux\r\n\
        a=rtpmap:96 H264/90000\r\n\
        a=rtcp-fb:96 goog-remb\r\n\
        a=rtcp-fb:96 transport-cc\r\n\
        a=rtcp-fb:96 ccm fir\r\n\
        a=rtcp-fb:96 nack\r\n\
        a=rtcp-fb:96 nack pli\r\n\
        a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r\n\
        a=rtpmap:97 rtx/90000\r\n\
        a=fmtp:97 apt=96\r\n\
        a=rtpmap:98 H264/90000\r\n\
        a=fmtp:98 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:99 rtx/90000\r\n\
        a=fmtp:99 apt=98\r\n\
        a=rtpmap:100 H264/90000\r\n\
        a=fmtp:100 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=640c1f\r\n\
        a=rtpmap:101 rtx/90000\r\n\
        a=fmtp:101 apt=100\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
        a=rtpmap:103 rtx/90000\r\n\
        a=fmtp:103 apt=102\r\n\
        a=rtpmap:104 H265/90000\r\n\
        a=rtpmap:105 rtx/90000\r\n\
        a=fmtp:105 apt=104\r\n\
        a=rtpmap:106 VP8/90000\r\n\
        a=rtpmap:107 rtx/90000\r\n\
        a=fmtp:107 apt=106\r\n\
        a=rtpmap:108 VP9/90000\r\n\
        a=fmtp:108 profile-id=0\r\n\
        a=rtpmap:109 rtx/90000\r\n\
        a=fmtp:109 apt=108\r\n";

    /// A stream as `video_params` reports it, from its profile-level-id.
    fn stream(profile: &str, profile_level_id: &str) -> VideoParams {
        let id = ProfileLevelId::parse(profile_level_id).unwrap();
        VideoParams {
            profile: profile.to_string(),
            profile_idc: id.profile_idc,
            constraint_flags: id.iop,
            level_idc: id.level_idc,
            width: 1920,
            height: 1080,
        }
    }

    /// x264's profiles as OBS sends them.
    fn x264_high() -> VideoParams {
        stream("High", "640028")
    }
    fn x264_main() -> VideoParams {
        stream("Main", "4d401f")
    }
    fn x264_baseline() -> VideoParams {
        stream("Constrained Baseline", "42c01f")
    }

    fn offer(payload_type: u8, fmtp: &str) -> OfferedH264<'_> {
        OfferedH264 { payload_type, fmtp }
    }

    fn chosen(offer_sdp: &str, stream: &VideoParams) -> (u8, String) {
        let answer = choose_h264(&offered_h264(offer_sdp), stream).unwrap();
        assert_eq!(
            answer.fmtp,
            format!(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={}",
                answer.profile_level_id
            )
        );
        (answer.payload_type, answer.profile_level_id)
    }

    #[test]
    fn reads_the_h264_formats_of_the_video_section_in_order() {
        let offered = offered_h264(CHROME_OFFER);
        let pts: Vec<u8> = offered.iter().map(|o| o.payload_type).collect();
        assert_eq!(pts, vec![102, 104, 106, 108, 127, 39, 41, 43, 112, 114]);
        assert_eq!(
            offered[2].fmtp,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
        );
        let pts: Vec<u8> = offered_h264(SAFARI_OFFER)
            .iter()
            .map(|o| o.payload_type)
            .collect();
        assert_eq!(pts, vec![96, 98, 100, 102]);
    }

    #[test]
    fn reads_lf_only_offers_and_formats_without_fmtp() {
        let sdp = "v=0\nm=video 9 UDP/TLS/RTP/SAVPF 100 101\na=rtpmap:100 h264/90000\n\
                   a=rtpmap:101 VP8/90000\n";
        assert_eq!(offered_h264(sdp), vec![offer(100, "")]);
        assert_eq!(offered_h264("v=0\r\nm=audio 9 RTP/AVP 0\r\n"), vec![]);
    }

    #[test]
    fn reads_the_first_video_section_only() {
        let sdp = "v=0\r\nm=video 9 RTP/AVP 100\r\na=rtpmap:100 H264/90000\r\n\
                   m=video 9 RTP/AVP 101\r\na=rtpmap:101 H264/90000\r\n";
        assert_eq!(offered_h264(sdp), vec![offer(100, "")]);
    }

    #[test]
    fn chrome_gets_the_format_of_the_streams_own_profile() {
        assert_eq!(chosen(CHROME_OFFER, &x264_high()), (112, "640028".into()));
        assert_eq!(chosen(CHROME_OFFER, &x264_main()), (127, "4d401f".into()));
        // 42e01f, not the Baseline 42001f listed before it.
        assert_eq!(
            chosen(CHROME_OFFER, &x264_baseline()),
            (106, "42c01f".into())
        );
    }

    #[test]
    fn safari_gets_constrained_high_for_high_and_main_streams() {
        assert_eq!(chosen(SAFARI_OFFER, &x264_high()), (96, "640028".into()));
        assert_eq!(chosen(SAFARI_OFFER, &x264_main()), (96, "4d401f".into()));
        assert_eq!(
            chosen(SAFARI_OFFER, &x264_baseline()),
            (98, "42c01f".into())
        );
    }

    #[test]
    fn packetization_mode_0_formats_are_skipped() {
        let offered = [
            offer(
                100,
                "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=640c1f",
            ),
            offer(101, "profile-level-id=640c1f"),
            offer(
                96,
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f",
            ),
        ];
        assert_eq!(
            choose_h264(&offered, &x264_high()).unwrap().payload_type,
            96
        );

        let err = choose_h264(&offered[..2], &x264_high()).unwrap_err();
        let SdpError::NoPacketizationMode1 { offered } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            offered,
            "Constrained High 3.1 (640c1f) in packetization-mode 0"
        );
        assert!(err.to_string().contains("OpenH264"), "{err}");
    }

    #[test]
    fn high_stream_against_constrained_baseline_only_fails_with_advice() {
        let offered = [offer(
            98,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        )];
        let err = choose_h264(&offered, &x264_high()).unwrap_err();
        assert_eq!(
            err,
            SdpError::Profile {
                offered: "Constrained Baseline 3.1 (42e01f)".into(),
                stream: "High 4.0 (640028)".into(),
                advice: "baseline".into(),
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("set the encoder's H.264 profile to baseline"),
            "{message}"
        );
    }

    #[test]
    fn advice_lists_every_x264_profile_that_would_play() {
        let offered = [
            offer(1, "packetization-mode=1;profile-level-id=42e01f"),
            offer(2, "packetization-mode=1;profile-level-id=4d001f"),
        ];
        let high_10 = stream("High 10", "6e0028");
        let Err(SdpError::Profile { advice, .. }) = choose_h264(&offered, &high_10) else {
            panic!("a High 10 stream has no decoder here");
        };
        assert_eq!(advice, "main or baseline");
        let Err(SdpError::Profile { advice, .. }) =
            choose_h264(&offered_h264(SAFARI_OFFER), &high_10)
        else {
            panic!("a High 10 stream has no decoder in Safari");
        };
        assert_eq!(advice, "high, main or baseline");
    }

    #[test]
    fn baseline_without_constraint_set1_needs_a_baseline_decoder() {
        let plain_baseline = stream("Baseline", "420015");
        assert_eq!(
            chosen(CHROME_OFFER, &plain_baseline),
            (102, "420015".into())
        );
        assert!(choose_h264(&offered_h264(SAFARI_OFFER), &plain_baseline).is_err());
    }

    #[test]
    fn constrained_baseline_goes_to_main_or_high_decoders_by_its_flags() {
        let offered = [offer(2, "packetization-mode=1;profile-level-id=4d001f")];
        // constraint_set1_flag: it obeys the Main constraints.
        assert!(choose_h264(&offered, &stream("Constrained Baseline", "42e01f")).is_ok());
        assert!(choose_h264(&offered, &stream("Baseline", "428015")).is_err());
    }

    #[test]
    fn high_stream_takes_a_high_offer_whatever_its_level() {
        let offered = [offer(
            123,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640034",
        )];
        let answer = choose_h264(&offered, &stream("High", "64001f")).unwrap();
        assert_eq!(
            (answer.payload_type, answer.profile_level_id.as_str()),
            (123, "64001f")
        );
    }

    #[test]
    fn level_without_asymmetry_is_the_lower_one() {
        let symmetric = [offer(112, "packetization-mode=1;profile-level-id=64001f")];
        let answer = choose_h264(&symmetric, &x264_high()).unwrap();
        assert_eq!(answer.profile_level_id, "64001f");
        // Level 1b of a Baseline offer is level_idc 11 with constraint_set3_flag.
        let one_b = [offer(1, "packetization-mode=1;profile-level-id=42f00b")];
        let answer = choose_h264(&one_b, &x264_baseline()).unwrap();
        assert_eq!(answer.profile_level_id, "42d00b");
        // A missing profile-level-id is Baseline at Level 1.
        let bare = [offer(7, "packetization-mode=1")];
        let answer = choose_h264(&bare, &x264_baseline()).unwrap();
        assert_eq!(answer.profile_level_id, "42c00a");
        assert!(choose_h264(&bare, &x264_high()).is_err());
    }

    #[test]
    fn unreadable_profile_level_ids_are_skipped() {
        let offered = [
            offer(1, "packetization-mode=1;profile-level-id=+4e01f"),
            offer(2, "packetization-mode=1;profile-level-id=42e01"),
            offer(3, "packetization-mode=1;profile-level-id=42E01F"),
        ];
        assert_eq!(
            choose_h264(&offered, &x264_baseline())
                .unwrap()
                .payload_type,
            3
        );
    }

    #[test]
    fn the_capture_from_x264_ultrafast_is_constrained_baseline() {
        // The record of tests/data/testsrc2-320x240-cb.flv: 42c00d.
        let record = [
            0x01, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0x00, 0x16, 0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05,
            0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0f, 0x03, 0xc5,
            0x0a, 0xa8, 0x01, 0x00, 0x04, 0x68, 0xce, 0x0f, 0xc8,
        ];
        let params = crate::media::codec::video_params(&record).unwrap();
        assert_eq!(chosen(SAFARI_OFFER, &params), (98, "42c00d".into()));
    }

    /// An offer from Chromium 156 (headless, one recvonly transceiver per
    /// kind), whole.
    const CHROMIUM_OFFER: &str = include_str!("../../tests/data/chromium-offer.sdp");

    /// The offer that took the server to 2 GB: one payload type listed 20,000
    /// times on the m= line, and a 50 KB fmtp line for it.
    fn repeated_payload_type_offer() -> String {
        let mut sdp = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
        sdp.push_str("m=video 9 UDP/TLS/RTP/SAVPF");
        sdp.push_str(&" 102".repeat(20_000));
        sdp.push_str("\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;x=");
        sdp.push_str(&"a".repeat(50_000));
        sdp.push_str("\r\n");
        sdp
    }

    #[test]
    fn a_browser_offer_is_well_inside_the_limits() {
        let limits = OfferLimits::default();
        assert_eq!(
            check_offer(CHROMIUM_OFFER.as_bytes(), &limits),
            Ok(CHROMIUM_OFFER)
        );
        assert!(CHROMIUM_OFFER.len() * 4 < limits.max_bytes);
        assert!(CHROMIUM_OFFER.lines().count() * 4 < limits.max_lines);
        let pts: Vec<u8> = offered_h264(CHROMIUM_OFFER)
            .iter()
            .map(|o| o.payload_type)
            .collect();
        assert!(pts.len() >= 6, "{pts:?}");
    }

    #[test]
    fn the_repeated_payload_type_offer_is_refused_and_cheap_even_unchecked() {
        let sdp = repeated_payload_type_offer();
        assert!(sdp.len() > 130_000, "{} bytes", sdp.len());
        let err = check_offer(sdp.as_bytes(), &OfferLimits::default()).unwrap_err();
        assert!(
            matches!(err, SdpError::TooLarge { max: 32768, .. }),
            "{err}"
        );
        assert_eq!(err.limit(), Some("whep_max_offer_bytes"));

        // Read past the check, it is one format whose fmtp is borrowed from
        // the offer, not copied per repeat.
        let started = std::time::Instant::now();
        let offered = offered_h264(&sdp);
        assert_eq!(offered.len(), 1);
        let range = sdp.as_bytes().as_ptr_range();
        assert!(range.contains(&offered[0].fmtp.as_ptr()), "borrowed");
        assert_eq!(
            choose_h264(&offered, &x264_baseline())
                .unwrap()
                .payload_type,
            102
        );
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn long_lines_many_lines_and_many_payload_types_are_refused_by_name() {
        let limits = OfferLimits::default();
        let fmtp = format!(
            "v=0\r\nm=video 9 RTP/AVP 102\r\na=fmtp:102 {}\r\n",
            "x".repeat(5_000)
        );
        assert_eq!(
            check_offer(fmtp.as_bytes(), &limits),
            Err(SdpError::LineTooLong {
                line: 3,
                bytes: 5_012,
                max: 1024
            })
        );
        let lines = format!("v=0\r\n{}", "a=x\r\n".repeat(5_000));
        let err = check_offer(lines.as_bytes(), &limits).unwrap_err();
        assert_eq!(err, SdpError::TooManyLines { max: 1024 });
        assert_eq!(err.limit(), Some("whep_max_offer_lines"));

        let pts: String = (0..100).map(|pt| format!(" {pt}")).collect();
        let many = format!("v=0\r\nm=video 9 RTP/AVP{pts}\r\n");
        assert!(matches!(
            check_offer(many.as_bytes(), &limits),
            Err(SdpError::TooManyPayloadTypes {
                line: 2,
                count: 100,
                max: 64
            })
        ));
        let sections = format!("v=0\r\n{}", "m=audio 9 RTP/AVP 0\r\n".repeat(9));
        assert!(matches!(
            check_offer(sections.as_bytes(), &limits),
            Err(SdpError::TooManyMediaSections { max: 8 })
        ));
        let candidates = format!(
            "v=0\r\n{}",
            "a=candidate:1 1 udp 1 192.0.2.1 9 typ host\r\n".repeat(33)
        );
        assert!(matches!(
            check_offer(candidates.as_bytes(), &limits),
            Err(SdpError::TooManyCandidates { max: 32 })
        ));
    }

    #[test]
    fn what_is_not_sdp_is_refused_before_it_is_read() {
        let limits = OfferLimits::default();
        assert_eq!(
            check_offer(b"\xff\xfe v=0", &limits),
            Err(SdpError::NotUtf8)
        );
        assert_eq!(
            check_offer(b"{\"sdp\": \"v=0\"}", &limits),
            Err(SdpError::NotSdp)
        );
        assert_eq!(check_offer(b"", &limits), Err(SdpError::NotSdp));
        assert_eq!(check_offer(b"v=0", &limits), Ok("v=0"));
    }

    #[test]
    fn payload_types_rtp_cannot_carry_and_repeats_are_ignored() {
        let sdp = "v=0\r\nm=video 9 RTP/AVP 200 102 102 7 102\r\n\
                   a=rtpmap:200 H264/90000\r\na=rtpmap:102 H264/90000\r\n\
                   a=fmtp:102 packetization-mode=1\r\na=fmtp:102 packetization-mode=0\r\n\
                   a=rtpmap:7 H264/90000\r\n";
        assert_eq!(
            offered_h264(sdp),
            vec![offer(102, "packetization-mode=1"), offer(7, "")]
        );
    }

    #[test]
    fn a_public_address_replaces_host_candidates() {
        let answer = "v=0\r\n\
            a=candidate:1 1 udp 2130706431 10.0.0.5 8189 typ host\r\n\
            a=candidate:2 1 tcp 1671430143 10.0.0.5 40999 typ host tcptype passive\r\n\
            a=candidate:3 1 udp 1694498815 198.51.100.1 8189 typ srflx raddr 0.0.0.0 rport 0\r\n";
        let public = with_public_address(answer, "203.0.113.9".parse().unwrap());
        assert!(public.contains("a=candidate:1 1 udp 2130706431 203.0.113.9 8189 typ host\r\n"));
        assert!(public.contains(" 203.0.113.9 40999 typ host tcptype passive\r\n"));
        assert!(public.contains(" 198.51.100.1 8189 typ srflx"));
    }
}
