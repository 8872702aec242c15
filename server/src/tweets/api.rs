//! The X API v2 recent search client: `GET /2/tweets/search/recent` with a
//! bearer token. Building the request and reading the answer are pure
//! functions; [`Client::search`] only does the HTTP.
//!
//! Answers, per <https://docs.x.com/x-api/posts/search-recent-posts>:
//! - 200: `{"data":[{"id","text","author_id"}],"includes":{"users":[{"id","username"}]},
//!   "meta":{"newest_id","oldest_id","result_count","next_token"}}`; `data` is
//!   absent when nothing matched, and `errors` may sit beside `data` for
//!   partial failures (an author that could not be looked up).
//! - errors: `{"title","detail","type","status"}`, or for a bad request
//!   `{"errors":[{"message",...}],"title","detail","type"}`.
//! - every answer: `x-rate-limit-limit`, `x-rate-limit-remaining`,
//!   `x-rate-limit-reset` (Unix seconds when the window resets).
//!
//! The API is a peer on the network, so nothing it sends is trusted: the
//! answer is read up to `max_response_bytes` and no further, the whole call
//! has one deadline (a slow drip of bytes cannot hold the poller), JSON
//! nesting stays within serde_json's recursion limit (128), and any text
//! from the answer that reaches the status or the log is cut short and
//! stripped of control characters.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::config::Secret;

/// X allows 10 to 100 results a page.
pub const MAX_RESULTS: u32 = 100;
/// Text from an answer shown in the status and the log, in characters.
const MAX_DETAIL_CHARS: usize = 200;

/// One tweet, with its author's username when the expansion gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tweet {
    pub id: String,
    pub text: String,
    pub author_id: Option<String>,
    pub username: Option<String>,
}

impl Tweet {
    /// How the tweet's author reads in the audit log and on the watch page.
    pub fn author(&self) -> String {
        match (&self.username, &self.author_id) {
            (Some(name), _) => format!("@{name}"),
            (None, Some(id)) => format!("user {id}"),
            (None, None) => "someone".into(),
        }
    }

    /// Tweet IDs grow with time; as numbers they sort oldest first.
    pub fn number(&self) -> u64 {
        self.id.parse().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Newest first, as X sends them.
    pub tweets: Vec<Tweet>,
    pub newest_id: Option<String>,
    pub next_token: Option<String>,
}

/// The `x-rate-limit-*` headers, where present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Unix seconds.
    pub reset: Option<u64>,
}

/// Why a search did not give a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error(
        "the X API refused the bearer token ({status}: {detail}); check [twitter] bearer_token or TINSEL_TWITTER_BEARER_TOKEN"
    )]
    BadToken { status: u16, detail: String },
    #[error("the X API rate limit is used up ({detail})")]
    RateLimited { detail: String },
    #[error("the X API rejected the search ({status}: {detail}); check [twitter] query")]
    Rejected { status: u16, detail: String },
    #[error("the X API failed ({status}: {detail}); retrying with backoff")]
    Server { status: u16, detail: String },
    #[error("cannot reach the X API at {base}: {cause}; check the network and [twitter] api_base")]
    Unreachable { base: String, cause: String },
    #[error("the X API answered with JSON that does not parse ({cause}); skipped")]
    Malformed { cause: String },
    #[error(
        "the X API sent an answer over {limit} bytes, which is not read; check [twitter] api_base, or raise [twitter] max_response_bytes"
    )]
    TooLarge { limit: usize },
    #[error(
        "the X API did not finish answering within {seconds} s; retrying with backoff (raise [twitter] timeout_s on a slow network)"
    )]
    TooSlow { seconds: u64 },
}

/// One search call's outcome and the rate limit it reported.
#[derive(Debug)]
pub struct Answer {
    pub page: Result<Page, ApiError>,
    pub rate: RateLimit,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    data: Vec<RawTweet>,
    includes: Option<Includes>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Deserialize)]
struct RawTweet {
    id: String,
    #[serde(default)]
    text: String,
    author_id: Option<String>,
}

#[derive(Deserialize)]
struct Includes {
    #[serde(default)]
    users: Vec<User>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: String,
}

#[derive(Deserialize, Default)]
struct Meta {
    newest_id: Option<String>,
    next_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
    #[serde(default)]
    errors: Vec<ProblemItem>,
}

#[derive(Deserialize)]
struct ProblemItem {
    message: Option<String>,
}

/// The search URL's query parameters.
pub fn search_params(
    query: &str,
    since_id: Option<&str>,
    next_token: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("query", query.to_string()),
        ("max_results", MAX_RESULTS.to_string()),
        ("expansions", "author_id".to_string()),
        ("user.fields", "username".to_string()),
        ("tweet.fields", "author_id".to_string()),
    ];
    if let Some(id) = since_id {
        params.push(("since_id", id.to_string()));
    }
    if let Some(token) = next_token {
        params.push(("next_token", token.to_string()));
    }
    params
}

/// Reads the rate-limit headers.
pub fn rate_limit(headers: &HeaderMap) -> RateLimit {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    };
    RateLimit {
        limit: number("x-rate-limit-limit"),
        remaining: number("x-rate-limit-remaining"),
        reset: number("x-rate-limit-reset"),
    }
}

/// Reads a search answer.
///
/// # Errors
/// What the status and body say went wrong.
pub fn read_answer(status: StatusCode, body: &[u8]) -> Result<Page, ApiError> {
    if status.is_success() {
        return parse_page(body);
    }
    let detail = problem_detail(status, body);
    let code = status.as_u16();
    Err(match code {
        401 | 403 => ApiError::BadToken {
            status: code,
            detail,
        },
        429 => ApiError::RateLimited { detail },
        500..=599 => ApiError::Server {
            status: code,
            detail,
        },
        _ => ApiError::Rejected {
            status: code,
            detail,
        },
    })
}

fn parse_page(body: &[u8]) -> Result<Page, ApiError> {
    // serde_json's default recursion limit stays on: deeper nesting is an error.
    let body: Body = serde_json::from_slice(body).map_err(|err| ApiError::Malformed {
        cause: tidy(&err.to_string()),
    })?;
    let users = body.includes.map(|i| i.users).unwrap_or_default();
    let tweets = body
        .data
        .into_iter()
        // A tweet ID is a decimal number; anything else cannot be ordered or claimed.
        .filter(|t| !t.id.is_empty() && t.id.bytes().all(|b| b.is_ascii_digit()))
        .map(|t| Tweet {
            username: t.author_id.as_ref().and_then(|a| {
                users
                    .iter()
                    .find(|u| &u.id == a)
                    .map(|u| u.username.clone())
            }),
            id: t.id,
            text: t.text,
            author_id: t.author_id,
        })
        .collect();
    Ok(Page {
        tweets,
        newest_id: body.meta.newest_id,
        next_token: body.meta.next_token.filter(|t| !t.is_empty()),
    })
}

/// The most telling text of an error answer: `detail`, the first of
/// `errors[].message`, `title`, or the status's reason.
fn problem_detail(status: StatusCode, body: &[u8]) -> String {
    let problem: Problem = serde_json::from_slice(body).unwrap_or_default();
    let text = problem
        .errors
        .into_iter()
        .find_map(|e| e.message)
        .or(problem.detail)
        .or(problem.title)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    tidy(&text)
}

/// Text from the network made fit for one log line: at most
/// [`MAX_DETAIL_CHARS`] characters, control characters as spaces.
fn tidy(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_DETAIL_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(MAX_DETAIL_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// An HTTP client for one API base and token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Secret,
    timeout: Duration,
    max_body: usize,
}

impl Client {
    /// `timeout` bounds a whole call, answer included; `max_body` the bytes
    /// of an answer.
    ///
    /// # Errors
    /// The TLS backend cannot start.
    pub fn new(
        base: &str,
        token: Secret,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("tinsel/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: base.to_string(),
            token,
            timeout,
            max_body,
        })
    }

    pub async fn search(
        &self,
        query: &str,
        since_id: Option<&str>,
        next_token: Option<&str>,
    ) -> Answer {
        let unreachable = |err: reqwest::Error| {
            if err.is_timeout() {
                ApiError::TooSlow {
                    seconds: self.timeout.as_secs(),
                }
            } else {
                ApiError::Unreachable {
                    base: self.base.clone(),
                    cause: tidy(&err.without_url().to_string()),
                }
            }
        };
        let sent = self
            .http
            .get(format!("{}/2/tweets/search/recent", self.base))
            .query(&search_params(query, since_id, next_token))
            .bearer_auth(self.token.expose())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                return Answer {
                    page: Err(unreachable(err)),
                    rate: RateLimit::default(),
                };
            }
        };
        let rate = rate_limit(response.headers());
        let status = response.status();
        let page = match self.read_body(response).await {
            Ok(body) => read_answer(status, &body),
            Err(Some(err)) => Err(unreachable(err)),
            Err(None) => Err(ApiError::TooLarge {
                limit: self.max_body,
            }),
        };
        Answer { page, rate }
    }

    fn refused(&self, what: impl std::fmt::Display) {
        crate::limits::refused(&self.base, "max_response_bytes", what);
    }

    /// The answer's body, or `Err(None)` as soon as it is known to be over
    /// `max_body` (from `Content-Length`, or while reading an endless one).
    async fn read_body(
        &self,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, Option<reqwest::Error>> {
        let announced = response.content_length().unwrap_or(0);
        if announced > self.max_body as u64 {
            self.refused(format_args!("an answer announced as {announced} bytes"));
            return Err(None);
        }
        // The announced length is within the limit, so reserving it is bounded.
        let mut body = Vec::with_capacity(announced as usize);
        while let Some(chunk) = response.chunk().await.map_err(Some)? {
            if body.len() + chunk.len() > self.max_body {
                self.refused(format_args!(
                    "an answer of more than {} bytes",
                    self.max_body
                ));
                return Err(None);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_with_authors_and_a_next_token() {
        let body = br##"{
            "data": [
                {"id": "1860000000000000002", "text": "the #tinseltree!", "author_id": "42",
                 "edit_history_tweet_ids": ["1860000000000000002"]},
                {"id": "1860000000000000001", "text": "#tinseltree", "author_id": "7"}
            ],
            "includes": {"users": [{"id": "42", "name": "Ann", "username": "ann"}]},
            "meta": {"newest_id": "1860000000000000002", "oldest_id": "1860000000000000001",
                     "result_count": 2, "next_token": "b26v89c19zqg8o3f"}
        }"##;
        let page = read_answer(StatusCode::OK, body).unwrap();
        assert_eq!(page.tweets.len(), 2);
        assert_eq!(page.tweets[0].author(), "@ann");
        assert_eq!(page.tweets[1].author(), "user 7");
        assert_eq!(page.newest_id.as_deref(), Some("1860000000000000002"));
        assert_eq!(page.next_token.as_deref(), Some("b26v89c19zqg8o3f"));
    }

    #[test]
    fn no_matches_is_an_empty_page() {
        let page = read_answer(StatusCode::OK, br#"{"meta":{"result_count":0}}"#).unwrap();
        assert_eq!(page, Page::default());
    }

    #[test]
    fn errors_read_as_what_to_do() {
        let unauthorized = br#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#;
        let err = read_answer(StatusCode::UNAUTHORIZED, unauthorized).unwrap_err();
        assert!(matches!(err, ApiError::BadToken { status: 401, .. }));
        assert!(err.to_string().contains("bearer_token"), "{err}");

        let invalid = br#"{"errors":[{"parameters":{"query":["("]},"message":"There were errors processing your request: no viable alternative at input '('"}],
            "title":"Invalid Request","detail":"One or more parameters to your request was invalid.",
            "type":"https://api.twitter.com/2/problems/invalid-request"}"#;
        let err = read_answer(StatusCode::BAD_REQUEST, invalid).unwrap_err();
        assert!(err.to_string().contains("no viable alternative"), "{err}");

        let err = read_answer(StatusCode::TOO_MANY_REQUESTS, b"").unwrap_err();
        assert_eq!(
            err,
            ApiError::RateLimited {
                detail: "Too Many Requests".into()
            }
        );
        assert!(matches!(
            read_answer(StatusCode::SERVICE_UNAVAILABLE, b"<html>"),
            Err(ApiError::Server { status: 503, .. })
        ));
        assert!(matches!(
            read_answer(StatusCode::OK, br#"{"data":[{"id":"#),
            Err(ApiError::Malformed { .. })
        ));
    }

    #[test]
    fn hostile_answers_are_errors_with_short_one_line_details() {
        // Deep nesting where a value is expected is refused at once; deep
        // nesting in a field that is not read is skipped without recursion.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            read_answer(StatusCode::OK, deep.as_bytes()),
            Err(ApiError::Malformed { .. })
        ));
        let deep_users = format!(
            r#"{{"includes":{{"users":{}{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(matches!(
            read_answer(StatusCode::OK, deep_users.as_bytes()),
            Err(ApiError::Malformed { .. })
        ));
        let ignored_deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(read_answer(StatusCode::OK, ignored_deep.as_bytes()).is_ok());
        for wrong in [
            r#"{"data":{"id":"1"}}"#,
            r#"{"data":[{"id":1}]}"#,
            r#"{"data":[{"id":"1","text":5}]}"#,
            r#"{"meta":{"next_token":[]}}"#,
            r#"{"includes":{"users":[{"id":"1"}]}}"#,
            r#""just a string""#,
            "",
            "\u{0}\u{ff}",
        ] {
            let err = read_answer(StatusCode::OK, wrong.as_bytes()).unwrap_err();
            assert!(
                matches!(err, ApiError::Malformed { .. }),
                "{wrong}: {err:?}"
            );
        }
        let long = format!(
            r#"{{"detail":"{}\nforged log line"}}"#,
            "x".repeat(1_000_000)
        );
        let err = read_answer(StatusCode::BAD_REQUEST, long.as_bytes()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.len() < 400 && !text.contains('\n'),
            "{} chars",
            text.len()
        );
        // A non-digit ID cannot be ordered or claimed: left out, not fatal.
        let page = read_answer(StatusCode::OK, br#"{"data":[{"id":"-1"},{"id":"12"}]}"#).unwrap();
        assert_eq!(page.tweets.len(), 1);
    }

    #[test]
    fn rate_limit_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-rate-limit-limit", "450".parse().unwrap());
        headers.insert("x-rate-limit-remaining", "0".parse().unwrap());
        headers.insert("x-rate-limit-reset", "1764201600".parse().unwrap());
        assert_eq!(
            rate_limit(&headers),
            RateLimit {
                limit: Some(450),
                remaining: Some(0),
                reset: Some(1_764_201_600),
            }
        );
    }

    #[test]
    fn params_ask_for_authors_and_continue_pages() {
        let params = search_params("#tinseltree", Some("5"), Some("abc"));
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("expansions"), Some("author_id"));
        assert_eq!(get("user.fields"), Some("username"));
        assert_eq!(get("since_id"), Some("5"));
        assert_eq!(get("next_token"), Some("abc"));
        assert_eq!(get("max_results"), Some("100"));
    }
}
