//! WHEP (WebRTC-HTTP Egress Protocol): `POST /whep/NAME` with an SDP offer
//! answers `201 Created` with the SDP answer and the session's `Location`;
//! `DELETE` on that location ends the session.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use tower_http::cors::{Any, CorsLayer};

use super::error::ApiError;
use crate::state::AppState;
use crate::webrtc::whep::WhepError;

pub fn webrtc_routes() -> Router<AppState> {
    Router::new()
        .route("/whep/{name}", post(session_create))
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
    body: Bytes,
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
    let offer = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the offer is not UTF-8 text".into()))?;
    let (id, answer) = state
        .whep
        .create(&name, offer, peer)
        .await
        .map_err(|err| match err {
            WhepError::UnknownStream(_) | WhepError::NotLive(_) => {
                ApiError::NotFound(err.to_string())
            }
            WhepError::BadOffer(_) | WhepError::Codec(_) => ApiError::BadRequest(err.to_string()),
            WhepError::Gathering(_) => ApiError::Unavailable(err.to_string()),
            WhepError::Rtc(_) => ApiError::Internal(err.to_string()),
        })?;
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
