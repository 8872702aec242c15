//! `GET /api/events?stream=NAME`: the watch page's live feed, as server-sent
//! events, so the page never polls.
//!
//! - `stream`: the stream's status, the same JSON as one entry of
//!   `/api/streams`; sent at once, whenever it goes live or offline or its
//!   viewer count changes, and every two seconds for fps and bitrate. It is
//!   worked out once for every page ([`super::status_board`]).
//! - `lights`: every outlet (`[OutletState]`, as `/api/lights`); sent at once
//!   and on every change.
//! - `action`: a new entry of the lights' audit log (`AuditEntry`), as it
//!   happens, for the page's "latest actions".
//!
//! A comment line every [`KEEP_ALIVE`] keeps proxies from closing an idle
//! connection; the browser's `EventSource` reconnects by itself when it drops.
//! The feed ends when the server shuts down, so it never holds up a drain.
//! Feeds are capped per address and in all ([`FeedSlots`]); beyond a cap the
//! answer is 429 or 503 with the reason (`EventSource` does not retry after
//! one: the page has to be reloaded).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tinsel_frontend::api::{AuditEntry, OutletState};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::status_board::{StatusBoard, StatusJson};
use crate::config::is_valid_name;
use crate::limits::refused;
use crate::limits::slots::{Full, Slot, Slots};
use crate::state::AppState;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The server's shutdown signal, for responses that would otherwise never end.
#[derive(Clone)]
pub struct Shutdown(pub CancellationToken);

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// The stream to follow; the first configured one when absent.
    stream: Option<String>,
}

/// The places for open feeds: `http_max_sse` in all, `http_max_sse_per_ip`
/// from one address. A feed lives as long as the page, so without a cap one
/// client could hold any number of connections and tasks.
#[derive(Clone)]
pub struct FeedSlots(pub Slots);

pub async fn events_get(
    State(state): State<AppState>,
    Extension((FeedSlots(slots), board)): Extension<(FeedSlots, StatusBoard)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    query: Result<Query<EventsQuery>, QueryRejection>,
    shutdown: Option<Extension<Shutdown>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let slot = slots.try_take(peer.ip()).map_err(|full| {
        let (limit, error) = match full {
            Full::Total { max } => (
                "http_max_sse",
                ApiError::Unavailable(format!(
                    "all {max} live-event feeds are taken; reload the page in a minute"
                )),
            ),
            Full::PerAddress { max } => (
                "http_max_sse_per_ip",
                ApiError::TooManyRequests {
                    message: format!(
                        "your address already has {max} live-event feeds open; close some pages"
                    ),
                    retry_after_s: 10,
                },
            ),
        };
        refused(peer, limit, format_args!("event feed: {full}"));
        error
    })?;
    if let Some(name) = query.stream.as_deref().filter(|n| !is_valid_name(n)) {
        // Not echoed back: it may be any length.
        return Err(ApiError::NotFound(format!(
            "no such stream ({} bytes): a stream name is 1 to 64 of a-z, 0-9, '-' and '_'",
            name.len()
        )));
    }
    let name = match query.stream {
        Some(name) => name,
        None => state
            .config
            .streams
            .first()
            .map(|s| s.name.clone())
            .ok_or_else(|| ApiError::NotFound("no stream is configured".into()))?,
    };
    let Some(status) = board.subscribe(&name) else {
        return Err(ApiError::NotFound(format!("no stream named {name:?}")));
    };
    let mut lights = state.lights.subscribe();
    // The page gets the outlets at once, not only after the next change.
    lights.mark_changed();
    let actions = state.lights.audit_events();
    let feed = Feed {
        _slot: slot,
        _demand: state.demand.as_ref().map(|d| d.hold(&name)),
        status: Some(status),
        lights: Some(lights),
        actions: Some(actions),
        token: shutdown.map(|Extension(s)| s.0).unwrap_or_default(),
    };
    let events = futures_util::stream::unfold(feed, |mut feed| async move {
        feed.next_event().await.map(|event| (Ok(event), feed))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// One page's feed: what it was last told, so only news goes out.
struct Feed {
    /// Given back when the page goes away or the server stops.
    _slot: Slot,
    /// On an edge, an open page wants its stream pulled.
    _demand: Option<crate::edge::demand::Hold>,
    token: CancellationToken,
    /// The stream's status; `None` once the board is gone (stopping).
    status: Option<watch::Receiver<StatusJson>>,
    /// `None` once the controller is gone (the server is stopping).
    lights: Option<watch::Receiver<Vec<OutletState>>>,
    actions: Option<broadcast::Receiver<AuditEntry>>,
}

impl Feed {
    /// The next event for the page; `None` when the server shuts down.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            tokio::select! {
                () = self.token.cancelled() => return None,
                status = news(&mut self.status), if self.status.is_some() => match status {
                    Some(Some(json)) => {
                        return Some(Event::default().event("stream").data(&*json));
                    }
                    Some(None) => {}
                    None => self.status = None,
                },
                changed = changed(&mut self.lights), if self.lights.is_some() => match changed {
                    Some(outlets) => return json_event("lights", &outlets),
                    None => self.lights = None,
                },
                entry = recv(&mut self.actions), if self.actions.is_some() => match entry {
                    Ok(entry) => return json_event("action", &entry),
                    // A page too slow for the log skips what it missed.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => self.actions = None,
                },
            }
        }
    }
}

/// The stream's status after its next change; `None` when the board is gone.
async fn news(status: &mut Option<watch::Receiver<StatusJson>>) -> Option<StatusJson> {
    let status = status.as_mut()?;
    status.changed().await.ok()?;
    Some(status.borrow_and_update().clone())
}

/// The outlets after their next change; `None` when the controller is gone.
async fn changed(
    lights: &mut Option<watch::Receiver<Vec<OutletState>>>,
) -> Option<Vec<OutletState>> {
    let lights = lights.as_mut()?;
    lights.changed().await.ok()?;
    Some(lights.borrow_and_update().clone())
}

async fn recv(
    actions: &mut Option<broadcast::Receiver<AuditEntry>>,
) -> Result<AuditEntry, RecvError> {
    match actions.as_mut() {
        Some(actions) => actions.recv().await,
        None => Err(RecvError::Closed),
    }
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Option<Event> {
    Event::default().event(name).json_data(data).ok()
}
