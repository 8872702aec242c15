//! WHEP (WebRTC-HTTP Egress Protocol): `POST /whep/NAME` with an SDP offer
//! answers `201 Created` with the SDP answer and the session's `Location`;
//! `DELETE` on that location ends the session.
//!
//! The route reads at most `whep_max_offer_bytes` of a body itself (413 past
//! that, before the rest is read), and every refusal of a stranger's offer is
//! a 4xx, or a 503 when the server is full, with the reason; only the server's
//! own failures are 500s.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use tower_http::cors::{Any, CorsLayer};

use super::error::ApiError;
use crate::limits::refused;
use crate::metrics::ResultLabel;
use crate::state::AppState;
use crate::webrtc::sdp::SdpError;
use crate::webrtc::whep::WhepError;

pub fn webrtc_routes() -> Router<AppState> {
    Router::new()
        // The handler applies the configured offer limit as it reads; the
        // extractor's default limit does not apply to a raw body.
        .route(
            "/whep/{name}",
            post(session_create).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/whep/{name}/{id}",
            patch(session_patch).delete(session_delete),
        )
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::AUTHORIZATION,
                    header::IF_MATCH,
                ])
                .expose_headers([header::LOCATION, header::ETAG, header::LINK]),
        )
}

async fn session_create(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let is_sdp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/sdp"));
    if !is_sdp {
        return Err(ApiError::UnsupportedMediaType(
            "send the SDP offer with Content-Type: application/sdp".into(),
        ));
    }
    let max = state.config.whep_limits.whep_max_offer_bytes;
    let too_large = |bytes: Option<usize>| {
        let err = WhepError::Offer(SdpError::TooLarge {
            bytes: bytes.unwrap_or(max + 1),
            max,
        });
        refused(peer, "whep_max_offer_bytes", &err);
        payload_too_large(err.to_string())
    };
    // A declared length over the limit is refused before a byte is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(declared) = declared.filter(|&d| d > max) {
        return Ok(too_large(Some(declared)));
    }
    let Ok(offer) = axum::body::to_bytes(body, max).await else {
        // Over the limit, or the body broke off: either way nothing to answer.
        return Ok(too_large(None));
    };
    let offers = &state.metrics.whep_offers;
    // On an edge that is not ready (no origin answers, or draining), a
    // viewer of a stream that is not live here would wait for nothing: say
    // so now, so the player tries another node or later.
    if state.demand.is_some()
        && let Some(reason) = state.readiness.reason()
        && !state
            .hub
            .snapshot(&name, std::time::Instant::now())
            .is_ok_and(|s| s.live)
    {
        offers
            .get_or_create(&ResultLabel {
                result: "not_ready",
            })
            .inc();
        return Err(ApiError::Unavailable(format!(
            "this edge cannot start the stream now: {reason}; try again in a moment"
        )));
    }
    let mut created = state.whep.create(&name, &offer, peer);
    // On an edge, an offer starts the pull of a stream nobody watched here
    // yet; it is answered once the stream's first keyframe has come.
    if let Some(demand) = &state.demand {
        demand.ask(&name);
        let deadline = tokio::time::Instant::now() + crate::edge::CONNECT_TIMEOUT * 2;
        while matches!(created, Err(WhepError::NotLive(_)))
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            created = state.whep.create(&name, &offer, peer);
        }
    }
    let (id, answer) = match created {
        Ok(created) => created,
        Err(err) => {
            let result = err.kind();
            offers.get_or_create(&ResultLabel { result }).inc();
            return Ok(whep_refusal(peer, err));
        }
    };
    offers
        .get_or_create(&ResultLabel { result: "answered" })
        .inc();
    let mut response = (StatusCode::CREATED, answer).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/whep/{name}/{id}")) {
        headers.insert(header::LOCATION, location);
    }
    // STUN and TURN servers for the viewer, as WHIP/WHEP announce them
    // (RFC 9725, 4.4: Link headers with rel="ice-server").
    for server in &state.config.webrtc.ice_servers {
        if let Ok(link) = HeaderValue::from_str(&format!("<{server}>; rel=\"ice-server\"")) {
            headers.append(header::LINK, link);
        }
    }
    Ok(response)
}

/// A failed offer as the client should see it, and one log line for it.
fn whep_refusal(peer: SocketAddr, err: WhepError) -> Response {
    match &err {
        WhepError::Offer(sdp) => {
            if let Some(limit) = sdp.limit() {
                refused(peer, limit, &err);
            }
        }
        WhepError::Full(full) => refused(peer, full.limit(), &err),
        _ => {}
    }
    let message = err.to_string();
    match err {
        WhepError::Offer(SdpError::TooLarge { .. }) => payload_too_large(message),
        WhepError::UnknownStream(_) | WhepError::NotLive(_) => {
            ApiError::NotFound(message).into_response()
        }
        WhepError::Offer(_) | WhepError::Negotiation(_) => {
            ApiError::BadRequest(message).into_response()
        }
        WhepError::Full(_) => ApiError::Unavailable(message).into_response(),
        WhepError::Setup(_) | WhepError::NoAddress(_) => {
            ApiError::Internal(message).into_response()
        }
    }
}

/// 413 with the reason, shaped like every other [`ApiError`].
fn payload_too_large(message: String) -> Response {
    let mut response = ApiError::BadRequest(message).into_response();
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    response
}

async fn session_delete(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state.whep.delete(&id) {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::NotFound(format!("no WHEP session {id}")))
    }
}

/// Trickle ICE and ICE restarts are not supported: every candidate is in the
/// first answer. RFC 9725 (4.3.1) has the server say so with 405.
async fn session_patch() -> Response {
    let mut response = (
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE is not supported: the answer has every candidate",
    )
        .into_response();
    response.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("POST, DELETE, OPTIONS"),
    );
    response
}
