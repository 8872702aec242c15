//! The watch page's last resort, config `youtube_fallback`: which values are
//! a YouTube video or channel, checked at start so a typo is not found by
//! a viewer on the night (pure).
//!
//! The page embeds `VIDEO_ID` or `channel:CHANNEL_ID` (see the frontend's
//! `player/youtube.rs`). A watch, share, live or embed URL is taken too and
//! reduced to its video id, since that is what people copy.

/// What a valid value looks like, for the error that refuses another.
pub const EXPECTED: &str = "an 11-character YouTube video id like \"dQw4w9WgXcQ\", a video URL \
     like \"https://www.youtube.com/watch?v=dQw4w9WgXcQ\" or \"https://youtu.be/dQw4w9WgXcQ\", \
     or \"channel:UC\" and 22 more characters for a channel's live stream";

/// The value the page gets (`VIDEO_ID` or `channel:CHANNEL_ID`), or `None`
/// when `value` is neither, nor a video URL.
pub fn fallback(value: &str) -> Option<String> {
    let value = value.trim();
    if let Some(channel) = value.strip_prefix("channel:") {
        let ok = channel.len() == 24 && channel.starts_with("UC") && is_id(channel);
        return ok.then(|| value.to_string());
    }
    if value.len() == 11 && is_id(value) {
        return Some(value.to_string());
    }
    video_in_url(value).map(str::to_string)
}

/// The video id in a youtube.com or youtu.be URL.
fn video_in_url(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (host, rest) = rest.split_once('/')?;
    let host = host.strip_prefix("www.").unwrap_or(host);
    let host = host.strip_prefix("m.").unwrap_or(host);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let candidate = match host {
        "youtu.be" => path,
        "youtube.com" | "youtube-nocookie.com" => match path.split_once('/') {
            Some(("live" | "embed" | "shorts", id)) => id,
            _ if path == "watch" => query.split('&').find_map(|pair| pair.strip_prefix("v="))?,
            _ => return None,
        },
        _ => return None,
    };
    let candidate = candidate.trim_end_matches('/');
    (candidate.len() == 11 && is_id(candidate)).then_some(candidate)
}

/// YouTube ids are letters, digits, `-` and `_`.
fn is_id(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_urls_become_the_id() {
        for value in [
            "dQw4w9WgXcQ",
            " dQw4w9WgXcQ ",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "https://www.youtube.com/watch?feature=share&v=dQw4w9WgXcQ&t=42",
            "https://m.youtube.com/watch?v=dQw4w9WgXcQ",
            "https://youtu.be/dQw4w9WgXcQ",
            "https://youtu.be/dQw4w9WgXcQ?si=abc",
            "https://www.youtube.com/live/dQw4w9WgXcQ",
            "https://www.youtube.com/embed/dQw4w9WgXcQ",
            "http://youtube.com/shorts/dQw4w9WgXcQ/",
        ] {
            assert_eq!(fallback(value).as_deref(), Some("dQw4w9WgXcQ"), "{value}");
        }
        assert_eq!(
            fallback("channel:UC_x5XG1OV2P6uZZ5FSM9Ttw").as_deref(),
            Some("channel:UC_x5XG1OV2P6uZZ5FSM9Ttw")
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for value in [
            "",
            "VIDEO_ID",
            "dQw4w9WgXc",
            "dQw4w9WgXcQQ",
            "dQw4w9WgX\"Q",
            "https://example.com/watch?v=dQw4w9WgXcQ",
            "https://www.youtube.com/watch?v=short",
            "https://www.youtube.com/@somechannel",
            "channel:",
            "channel:UC_x5XG1OV2P6uZZ5FSM9Tt",
            "channel:XX_x5XG1OV2P6uZZ5FSM9Ttw",
            "youtube.com/watch?v=dQw4w9WgXcQ",
        ] {
            assert_eq!(fallback(value), None, "{value}");
        }
    }
}
