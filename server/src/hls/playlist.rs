//! The LL-HLS media playlist (RFC 8216bis), written from the segmenter's window.
//!
//! A small typed writer rather than a playlist crate: hls_m3u8 0.7 has no
//! LL-HLS tags (parts, preload hints, server control), and with m3u8-rs they
//! would all be untyped custom tags anyway. The tests parse the output with
//! hls_m3u8 for the tags it knows.

use std::fmt::Write;

use super::fmp4::VIDEO_TIMESCALE;
use super::segmenter::Segmenter;

/// Version 7 covers every tag written here: fMP4 with EXT-X-MAP needs 6
/// (4.4.4.5); the LL-HLS tags need none of their own, and no EXT-X-SKIP (which
/// needs 9) is written.
const VERSION: u8 = 7;

pub fn init_uri(msn: u64) -> String {
    format!("init{msn}.mp4")
}

pub fn segment_uri(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

pub fn part_uri(msn: u64, index: usize) -> String {
    format!("part{msn}.{index}.m4s")
}

fn seconds(units: u64) -> f64 {
    units as f64 / f64::from(VIDEO_TIMESCALE)
}

/// The EXT-X-TARGETDURATION: no segment, rounded, may be longer (4.4.3.1).
pub fn target_duration(segmenter: &Segmenter) -> u64 {
    let longest = segmenter
        .longest_segment()
        .max(segmenter.current().map_or(0, |s| s.duration));
    (seconds(longest).round() as u64).max(1)
}

/// The playlist text, or `None` while there is not yet a complete segment.
pub fn render(segmenter: &Segmenter, discontinuity_sequence: u64) -> Option<String> {
    let segments = segmenter.segments();
    let first = segments
        .front()
        .filter(|_| segments.iter().any(|s| s.complete))?;
    let part_target = segmenter.settings().part_target.as_secs_f64();
    let mut out = String::with_capacity(4096);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{VERSION}\n#EXT-X-TARGETDURATION:{}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}\n\
         #EXT-X-PART-INF:PART-TARGET={:.3}\n#EXT-X-MEDIA-SEQUENCE:{}\n\
         #EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}\n",
        target_duration(segmenter),
        // At least three part targets (4.4.3.8).
        3.0 * part_target,
        part_target,
        first.msn,
    );
    let mut init = None;
    // A segment just begun has no part to list yet: its tags would dangle
    // before the preload hint, which names its first part.
    for segment in segments
        .iter()
        .filter(|s| s.complete || !s.parts.is_empty())
    {
        if segment.discontinuity && init.is_some() {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if init != Some(segment.init) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init_uri(segment.init));
            init = Some(segment.init);
        }
        let date = humantime::format_rfc3339_millis(segment.program_date_time);
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{date}");
        for (index, part) in segment.parts.iter().enumerate() {
            let _ = write!(
                out,
                "#EXT-X-PART:DURATION={:.5},URI=\"{}\"",
                seconds(part.duration),
                part_uri(segment.msn, index)
            );
            out.push_str(if part.independent {
                ",INDEPENDENT=YES\n"
            } else {
                "\n"
            });
        }
        if segment.complete {
            let _ = write!(
                out,
                "#EXTINF:{:.5},\n{}\n",
                seconds(segment.duration),
                segment_uri(segment.msn)
            );
        }
    }
    let (msn, index) = match segmenter.current() {
        Some(current) => (current.msn, current.part_count),
        None => (segments.back().map_or(first.msn, |s| s.msn + 1), 0),
    };
    let _ = writeln!(
        out,
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
        part_uri(msn, index)
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::segmenter::tests::{feed, started};

    #[test]
    fn nothing_until_a_segment_is_complete() {
        let mut segmenter = started();
        feed(&mut segmenter, 0, 1);
        assert_eq!(render(&segmenter, 0), None);
    }

    #[test]
    fn low_latency_tags_in_order() {
        let mut segmenter = started();
        feed(&mut segmenter, 0, 5);
        let text = render(&segmenter, 0).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..8],
            [
                "#EXTM3U",
                "#EXT-X-VERSION:7",
                "#EXT-X-TARGETDURATION:2",
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002",
                "#EXT-X-PART-INF:PART-TARGET=0.334",
                "#EXT-X-MEDIA-SEQUENCE:100",
                "#EXT-X-DISCONTINUITY-SEQUENCE:0",
                "#EXT-X-MAP:URI=\"init100.mp4\"",
            ]
        );
        assert_eq!(
            lines[8],
            "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z"
        );
        assert!(
            lines[9].starts_with("#EXT-X-PART:DURATION=0.3")
                && lines[9].ends_with("URI=\"part100.0.m4s\",INDEPENDENT=YES"),
            "{}",
            lines[9]
        );
        assert!(text.contains("#EXTINF:2.00000,\nseg100.m4s\n"), "{text}");
        assert!(text.contains("#EXTINF:2.00000,\nseg101.m4s\n"));
        let current = segmenter.current().unwrap();
        assert_eq!(
            lines.last().unwrap().to_string(),
            format!(
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part102.{}.m4s\"",
                current.part_count
            )
        );
    }

    #[test]
    fn parses_with_hls_m3u8() {
        let mut segmenter = started();
        feed(&mut segmenter, 0, 9);
        let text = render(&segmenter, 0).unwrap();
        // hls_m3u8 knows no LL-HLS: it takes the segment being written (parts
        // with no segment URI yet) for a segment missing its URI. Everything up
        // to the last complete segment is plain HLS.
        let complete = &text[..text.rfind(".m4s\n#EXT-X-PROGRAM-DATE-TIME").unwrap() + 5];
        let playlist = hls_m3u8::MediaPlaylist::try_from(complete).expect("hls_m3u8 reads it");
        assert_eq!(playlist.media_sequence, 100);
        assert_eq!(playlist.target_duration, std::time::Duration::from_secs(2));
        assert_eq!(playlist.segments.num_elements(), 4);
    }

    #[test]
    fn a_segment_just_begun_shows_only_as_the_preload_hint() {
        use crate::hls::segmenter::tests::video;
        let mut segmenter = started();
        feed(&mut segmenter, 0, 4);
        // The keyframe at 4 s opens segment 102 and is held back: no part yet.
        segmenter.handle_frame(video(4000, true), std::time::SystemTime::UNIX_EPOCH);
        let current = segmenter.current().unwrap();
        assert_eq!((current.msn, current.part_count), (102, 0));
        let text = render(&segmenter, 0).unwrap();
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        assert_eq!(
            tail,
            [
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part102.0.m4s\"",
                "seg101.m4s",
                "#EXTINF:2.00000,"
            ]
        );
        hls_m3u8::MediaPlaylist::try_from(text.as_str()).expect("hls_m3u8 reads it");
    }
}
