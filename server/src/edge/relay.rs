//! The origin's lights and actions, relayed to this edge's watch pages: one
//! live-event feed (`/api/events`) from the first origin that answers, read
//! here and handed to the local [`Mirror`], whatever the number of pages.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::settings::EdgeSettings;
use crate::control::{AuditEntry, Mirror, OutletState};

/// The most one event may hold: the outlets' states are a few KiB.
const MAX_EVENT_BYTES: usize = 256 * 1024;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(10);
/// The origin sends a comment every 15 s; nothing for this long means the
/// feed is gone even if the connection is not.
const SILENCE: Duration = Duration::from_secs(45);

/// Feeds `mirror` from the origins' event feeds until `token` is cancelled.
pub async fn run(
    settings: Arc<EdgeSettings>,
    stream: String,
    mirror: Mirror,
    token: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            warn!(
                "cannot make the HTTP client for the origin's events: {err}; the lights stay unknown here"
            );
            return;
        }
    };
    let mut retry = FIRST_RETRY;
    loop {
        for base in &settings.origin_http {
            let url = format!("{base}/api/events?stream={stream}");
            tokio::select! {
                () = token.cancelled() => return,
                ended = follow(&client, &url, &mirror) => match ended {
                    Ok(()) => {
                        debug!(%url, "the origin's event feed ended");
                        retry = FIRST_RETRY;
                    }
                    Err(err) => debug!(%url, "the origin's event feed failed: {err}"),
                },
            }
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(LONGEST_RETRY);
    }
}

/// Reads one feed until it ends.
async fn follow(client: &reqwest::Client, url: &str, mirror: &Mirror) -> Result<(), String> {
    let mut response = client
        .get(url)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    info!(%url, "relaying the origin's lights and actions");
    let mut events = EventReader::default();
    loop {
        let chunk = tokio::time::timeout(SILENCE, response.chunk())
            .await
            .map_err(|_| format!("nothing for {SILENCE:?}"))?
            .map_err(|e| e.to_string())?;
        let Some(chunk) = chunk else { return Ok(()) };
        for (name, data) in events.push(&chunk)? {
            match name.as_str() {
                "lights" => match serde_json::from_str::<Vec<OutletState>>(&data) {
                    Ok(states) => mirror.states(states),
                    Err(err) => debug!("an unreadable lights event: {err}"),
                },
                "action" => match serde_json::from_str::<AuditEntry>(&data) {
                    Ok(entry) => mirror.action(entry),
                    Err(err) => debug!("an unreadable action event: {err}"),
                },
                _ => {}
            }
        }
    }
}

/// Server-sent events as they come in pieces: `event:` and `data:` lines,
/// an empty line ending each (the subset Tinsel's feed writes).
#[derive(Default)]
struct EventReader {
    buffer: Vec<u8>,
    name: String,
    data: String,
}

impl EventReader {
    /// The events `bytes` completed, as (name, data).
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(format!("an event over {MAX_EVENT_BYTES} bytes"));
        }
        let mut done = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    done.push((
                        std::mem::take(&mut self.name),
                        std::mem::take(&mut self.data),
                    ));
                }
                self.name.clear();
            } else if let Some(name) = line.strip_prefix("event:") {
                self.name = name.trim_start().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(data.strip_prefix(' ').unwrap_or(data));
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text = b": keep-alive\n\nevent: lights\ndata: [1,2]\n\nevent: action\r\ndata: {\"a\":1}\r\n\r\n";
        for cut in 0..text.len() {
            let mut reader = EventReader::default();
            let mut got = reader.push(&text[..cut]).unwrap();
            got.extend(reader.push(&text[cut..]).unwrap());
            assert_eq!(
                got,
                [
                    ("lights".to_string(), "[1,2]".to_string()),
                    ("action".to_string(), "{\"a\":1}".to_string())
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut reader = EventReader::default();
        let line = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(reader.push(&line).is_err());
    }
}
