//! LL-HLS over HTTP: `/hls/NAME/index.m3u8` and the init, segment and part
//! files it lists, with blocking playlist reload and blocking part requests.
//!
//! Every answer is the same for every viewer, so that any HTTP cache in front
//! of the origin (deploy/varnish/tinsel.vcl, a CDN) can share it: no cookie,
//! no per-viewer query, no `Vary` on the `Origin` header, and a
//! `Cache-Control` on every answer, errors included (see [`hls_error`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tower_http::cors::{Any, CorsLayer};

use super::error::ApiError;
use super::hls_query::parse_directives;
use crate::config::is_valid_name;
use crate::hls::{HlsStream, Readiness};
use crate::limits::refused;
use crate::media::counters::Output;
use crate::metrics::{BlockingLabels, KindLabel, Metrics};
use crate::state::AppState;

/// Segments and parts never change once written: any cache may keep them.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A playlist changes with every part; a cache may hold it for a moment only.
const PLAYLIST_CACHE: &str = "public, max-age=1";
/// How long a cache may keep an error. Short: a stream that is not live yet
/// soon is. Not `no-store`: a cache makes an uncacheable URL a miss for
/// everyone for a while (Varnish's hit-for-miss, 2 minutes by default), so
/// the next crowd of viewers waiting on a blocking URL would each go to the
/// origin instead of sharing one request. A second is safe for a part that
/// was asked too early: one is refused only when it is further ahead than
/// the Advance Part Limit (3 s at least), so it cannot come into being while
/// the refusal is kept.
const ERROR_CACHE: &str = "public, max-age=1";
/// Blocking playlist requests are kept this many target durations.
const BLOCKING_TARGETS: u32 = 3;

pub fn hls_routes() -> Router<AppState> {
    Router::new()
        .route("/hls/{name}/index.m3u8", get(playlist_get))
        .route("/hls/{name}/{file}", get(media_get))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::HEAD])
                // Any origin gets the same `*`: the answer does not vary with
                // the `Origin` header, and saying it does (tower-http's
                // default) would split a cache per embedding site or per
                // made-up `Origin`.
                .vary([] as [header::HeaderName; 0]),
        )
}

fn live_stream(state: &AppState, name: &str) -> Result<Arc<HlsStream>, ApiError> {
    if state.config.edge.is_some() {
        return Err(ApiError::NotFound(
            "this server is an edge: LL-HLS is packaged once, on the origin; send /hls/ to \
             the origin through the cache in front of it (see deploy/haproxy/haproxy.cfg)"
                .into(),
        ));
    }
    if !is_valid_name(name) {
        // Not looked up, and not echoed back: it may be any length.
        return Err(ApiError::NotFound(
            "no such stream: a stream name is 1 to 64 of a-z, 0-9, '-' and '_'".into(),
        ));
    }
    let stream = state
        .hls
        .stream(name)
        .ok_or_else(|| ApiError::NotFound(format!("no stream named {name:?}")))?;
    let live = state
        .hub
        .snapshot(name, Instant::now())
        .is_ok_and(|s| s.live);
    if !live {
        return Err(ApiError::NotFound(format!("stream {name:?} is not live")));
    }
    Ok(Arc::clone(stream))
}

/// An HLS error as a cache may keep it, for a second ([`ERROR_CACHE`]).
fn hls_error(err: ApiError) -> Response {
    let mut response = err.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(ERROR_CACHE));
    response
}

async fn playlist_get(
    state: State<AppState>,
    name: Path<String>,
    query: RawQuery,
    peer: ConnectInfo<SocketAddr>,
) -> Response {
    playlist_answer(state, name, query, peer)
        .await
        .unwrap_or_else(hls_error)
}

async fn playlist_answer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<Response, ApiError> {
    let directives = parse_directives(query.as_deref().unwrap_or("")).map_err(|err| {
        refused(peer, "hls_delivery_directives", &err);
        ApiError::BadRequest(err.to_string())
    })?;
    let stream = live_stream(&state, &name)?;
    // A part index past usize is past any limit; `readiness` says so.
    let part = directives
        .part
        .map(|p| usize::try_from(p).unwrap_or(usize::MAX));
    if let Some(msn) = directives.msn {
        if stream.readiness(msn, part) == Readiness::TooFar {
            let what = match part {
                Some(part) => format!(
                    "segment {msn} part {part} is further ahead of the stream than a \
                         server waits for (RFC 8216bis 6.2.5.2: two segments, or the Advance \
                         Part Limit); ask for the next part the playlist lists"
                ),
                None => format!(
                    "segment {msn} is more than two segments ahead of the stream \
                         (RFC 8216bis 6.2.5.2); ask for the next one the playlist lists"
                ),
            };
            refused(peer, "hls_delivery_directives", &what);
            return Err(ApiError::BadRequest(what));
        }
        // Three target durations, as the spec allows a server to wait.
        let wait = stream.target_duration() * 3;
        let waiting = Waiting::start(&state.metrics, "playlist");
        let ready = stream
            .wait_until(wait, |s| s.readiness(msn, part) == Readiness::Ready)
            .await;
        waiting.end(ready);
        if !ready {
            return Err(ApiError::Unavailable(format!(
                "segment {msn} did not come within {wait:?}"
            )));
        }
    }
    let text = stream.playlist().ok_or_else(|| {
        ApiError::Unavailable(format!(
            "stream {name:?} is starting; its first segment is on the way"
        ))
    })?;
    stream.saw_viewer(peer.ip(), Instant::now());
    answered(&state, &name, "playlist", text.len());
    // The answer to a blocking request is right for as long as anyone asks
    // that URL: it holds the part asked for (RFC 8216bis 6.2.5.2), and a
    // later copy would hold the same. So a cache may keep it for a few target
    // durations, and every viewer waiting for that part shares one request;
    // only the plain playlist, whose answer moves with the live edge, is
    // kept for a second.
    let cache = match directives.msn {
        Some(_) => HeaderValue::from_str(&format!(
            "public, max-age={}",
            (stream.target_duration() * BLOCKING_TARGETS).as_secs()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(PLAYLIST_CACHE)),
        None => HeaderValue::from_static(PLAYLIST_CACHE),
    };
    Ok(respond(text, "application/vnd.apple.mpegurl", cache))
}

/// A file name from the playlist.
#[derive(Debug, PartialEq, Eq)]
enum File {
    Init(u64),
    Segment(u64),
    Part(u64, usize),
}

fn parse_file(file: &str) -> Option<File> {
    if let Some(msn) = file
        .strip_prefix("init")
        .and_then(|r| r.strip_suffix(".mp4"))
    {
        return msn.parse().ok().map(File::Init);
    }
    if let Some(msn) = file
        .strip_prefix("seg")
        .and_then(|r| r.strip_suffix(".m4s"))
    {
        return msn.parse().ok().map(File::Segment);
    }
    let (msn, index) = file
        .strip_prefix("part")?
        .strip_suffix(".m4s")?
        .split_once('.')?;
    Some(File::Part(msn.parse().ok()?, index.parse().ok()?))
}

async fn media_get(state: State<AppState>, path: Path<(String, String)>) -> Response {
    media_answer(state, path).await.unwrap_or_else(hls_error)
}

async fn media_answer(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let stream = live_stream(&state, &name)?;
    let missing = || {
        ApiError::NotFound(format!(
            "{file} is not (or no longer) in the playlist of {name:?}"
        ))
    };
    // Not echoed back: it may be any length.
    let unknown = || {
        ApiError::NotFound(
            "no such file: the playlist names initN.mp4, segN.m4s and partN.I.m4s".into(),
        )
    };
    let file = parse_file(&file).ok_or_else(unknown)?;
    let bytes = match file {
        File::Init(msn) => stream.init(msn),
        File::Segment(msn) => {
            let chunks = stream.segment(msn).ok_or_else(missing)?;
            answered(
                &state,
                &name,
                "segment",
                chunks.iter().map(Bytes::len).sum(),
            );
            return Ok(respond_chunks(chunks));
        }
        File::Part(msn, index) => match stream.part(msn, index) {
            Some(bytes) => Some(bytes),
            // The part a preload hint names: hold the request until it exists.
            None if stream.readiness(msn, Some(index)) == Readiness::Later => {
                let wait = stream.part_target() * 3;
                let waiting = Waiting::start(&state.metrics, "part");
                let ready = stream
                    .wait_until(wait, |s| s.part(msn, index).is_some())
                    .await;
                waiting.end(ready);
                stream.part(msn, index)
            }
            None => None,
        },
    };
    let bytes = bytes.ok_or_else(missing)?;
    let kind = if matches!(file, File::Init(_)) {
        "init"
    } else {
        "part"
    };
    answered(&state, &name, kind, bytes.len());
    Ok(respond(
        bytes,
        "video/mp4",
        HeaderValue::from_static(IMMUTABLE),
    ))
}

/// Counts a file sent: the request by kind, its bytes to the stream's HLS
/// traffic.
fn answered(state: &AppState, name: &str, kind: &'static str, bytes: usize) {
    state
        .metrics
        .hls_requests
        .get_or_create(&KindLabel { kind })
        .inc();
    if let Ok(counters) = state.hub.counters(name) {
        counters.sent(Output::Hls, bytes);
    }
}

/// A blocking request while it waits: counted in the waiting gauge, and by
/// how it ended; dropped unended, the client hung up first.
struct Waiting<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    outcome: &'static str,
}

impl<'a> Waiting<'a> {
    fn start(metrics: &'a Metrics, kind: &'static str) -> Self {
        metrics.hls_waiting.inc();
        Self {
            metrics,
            kind,
            outcome: "cancelled",
        }
    }

    fn end(mut self, ready: bool) {
        self.outcome = if ready { "ready" } else { "timeout" };
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.metrics.hls_waiting.dec();
        let outcome = self.outcome;
        self.metrics
            .hls_blocking
            .get_or_create(&BlockingLabels {
                kind: self.kind,
                outcome,
            })
            .inc();
    }
}

/// A segment: its parts sent one after the other, never joined into one
/// buffer.
fn respond_chunks(chunks: Vec<Bytes>) -> Response {
    let length: usize = chunks.iter().map(Bytes::len).sum();
    let body = Body::from_stream(futures_util::stream::iter(
        chunks.into_iter().map(Ok::<_, std::convert::Infallible>),
    ));
    let mut response = respond_body(body, "video/mp4", HeaderValue::from_static(IMMUTABLE));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

fn respond(body: Bytes, content_type: &'static str, cache: HeaderValue) -> Response {
    respond_body(Body::from(body), content_type, cache)
}

fn respond_body(body: Body, content_type: &'static str, cache: HeaderValue) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, cache);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(parse_file("init17.mp4"), Some(File::Init(17)));
        assert_eq!(parse_file("seg17.m4s"), Some(File::Segment(17)));
        assert_eq!(parse_file("part17.3.m4s"), Some(File::Part(17, 3)));
        assert_eq!(parse_file("part17.m4s"), None);
        assert_eq!(parse_file("../etc/passwd"), None);
        assert_eq!(parse_file("seg-1.m4s"), None);
    }

    #[test]
    fn an_error_is_kept_a_second_not_made_uncacheable() {
        let response = hls_error(ApiError::Unavailable("segment 7 did not come".into()));
        assert_eq!(response.status(), 503);
        let headers = response.headers();
        assert_eq!(headers[header::CACHE_CONTROL], ERROR_CACHE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
    }
}
