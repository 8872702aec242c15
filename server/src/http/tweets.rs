//! `GET /api/tweets`: the tweet poller's status for the admin panel: on or
//! off (and how to turn it on), failing and why, and what it fired.

use axum::Json;
use axum::extract::State;

use crate::auth::AdminUser;
use crate::state::AppState;
use crate::tweets::TweetsStatus;

/// Admins only: the admin check is the first argument.
pub async fn tweets_status(_admin: AdminUser, State(state): State<AppState>) -> Json<TweetsStatus> {
    Json(state.tweets.status())
}
