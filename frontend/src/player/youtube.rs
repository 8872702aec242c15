//! The last resort: YouTube's embed player, for a video or a channel's live
//! stream (config `youtube_fallback`: `VIDEO_ID` or `channel:CHANNEL_ID`).

/// The iframe's address, muted and inline so it may start by itself on phones;
/// `None` when the configured value is not an id YouTube could have made.
pub fn embed_url(fallback: &str) -> Option<String> {
    let fallback = fallback.trim();
    let (path, query) = match fallback.strip_prefix("channel:") {
        Some(channel) => (
            "live_stream".to_string(),
            format!("channel={}&", id(channel)?),
        ),
        None => (id(fallback)?.to_string(), String::new()),
    };
    Some(format!(
        "https://www.youtube.com/embed/{path}?{query}autoplay=1&mute=1&playsinline=1"
    ))
}

/// YouTube ids are letters, digits, `-` and `_`; anything else is refused
/// rather than escaped into a URL.
fn id(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_and_channel() {
        assert_eq!(
            embed_url("dQw4w9WgXcQ").as_deref(),
            Some("https://www.youtube.com/embed/dQw4w9WgXcQ?autoplay=1&mute=1&playsinline=1")
        );
        assert_eq!(
            embed_url("channel:UC_x5XG1OV2P6uZZ5FSM9Ttw").as_deref(),
            Some(
                "https://www.youtube.com/embed/live_stream?channel=UC_x5XG1OV2P6uZZ5FSM9Ttw&autoplay=1&mute=1&playsinline=1"
            )
        );
    }

    #[test]
    fn refuses_what_is_not_an_id() {
        assert_eq!(embed_url(""), None);
        assert_eq!(embed_url("channel:"), None);
        assert_eq!(embed_url("abc\"><script>"), None);
        assert_eq!(embed_url("../x"), None);
    }
}
