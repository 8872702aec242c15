//! The tweet poller against a stand-in X API v2: an HTTP server in this test
//! process that answers `GET /2/tweets/search/recent` as X does (bearer
//! token check, `since_id`, `max_results`, `next_token`, `expansions=author_id`,
//! `user.fields`, `x-rate-limit-*` headers, X's error JSON), and can be told
//! to answer 429, 503 or malformed JSON. The real `tinsel` binary polls it;
//! outlets are read over `GET /api/lights`, and the audit log and tweet
//! claims from the SQLite file.

mod common;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use common::snmpd::{Snmpd, assert_flash, wait_sets};
use common::{Server, temp_dir, wait_for};

const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAtest-bearer";
const FIRST_ID: u64 = 1_861_000_000_000_000_000;

/// What the stand-in answers next, before any normal answer.
#[derive(Debug, Clone, Copy)]
enum Fault {
    TooManyRequests { reset_in_s: u64 },
    Unavailable,
    Malformed,
}

#[derive(Default)]
struct XState {
    /// (id, text, author id), any order.
    tweets: Vec<(u64, String, String)>,
    users: HashMap<String, String>,
    faults: VecDeque<Fault>,
    /// Every request: when, and its query parameters.
    requests: Vec<(SystemTime, HashMap<String, String>)>,
    /// The reset time given with a 429, so the test can check it was honoured.
    reset_at: Option<u64>,
    /// Answer as if `since_id` were absent, so every poll sees every tweet
    /// and only the claims keep a tweet from firing twice.
    ignore_since_id: bool,
}

#[derive(Clone)]
struct FakeX {
    addr: SocketAddr,
    state: Arc<Mutex<XState>>,
}

impl FakeX {
    fn start() -> FakeX {
        let state = Arc::new(Mutex::new(XState::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/2/tweets/search/recent", get(search))
                    .with_state(shared);
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        FakeX { addr, state }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds `count` tweets matching "#tinseltree" by users u0..u4; returns their IDs.
    fn add_tweets(&self, count: u64) -> Vec<u64> {
        let mut state = self.state.lock().unwrap();
        let next = state
            .tweets
            .iter()
            .map(|t| t.0 + 1)
            .max()
            .unwrap_or(FIRST_ID);
        let ids: Vec<u64> = (next..next + count).collect();
        for id in &ids {
            let author = format!("{}", 100 + id % 5);
            state.users.insert(author.clone(), format!("elf{}", id % 5));
            state
                .tweets
                .push((*id, format!("Look at the #tinseltree {id}"), author));
        }
        ids
    }

    fn add_unrelated(&self) {
        let mut state = self.state.lock().unwrap();
        let id = state
            .tweets
            .iter()
            .map(|t| t.0 + 1)
            .max()
            .unwrap_or(FIRST_ID);
        state
            .tweets
            .push((id, "nothing to see".into(), "999".into()));
    }

    fn fault(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    fn requests(&self) -> Vec<(SystemTime, HashMap<String, String>)> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn epoch_s(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn x_error(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        axum::Json(json!({"title": title, "detail": detail, "type": "about:blank", "status": status.as_u16()})),
    )
        .into_response()
}

async fn search(
    State(state): State<Arc<Mutex<XState>>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let now = SystemTime::now();
    let mut state = state.lock().unwrap();
    state.requests.push((now, params.clone()));
    let reset = epoch_s(now) + 900;
    let mut limits = HeaderMap::new();
    limits.insert("x-rate-limit-limit", "450".parse().unwrap());
    limits.insert("x-rate-limit-remaining", "449".parse().unwrap());
    limits.insert("x-rate-limit-reset", reset.to_string().parse().unwrap());

    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (
            limits,
            x_error(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"),
        )
            .into_response();
    }
    if let Some(fault) = state.faults.pop_front() {
        return match fault {
            Fault::TooManyRequests { reset_in_s } => {
                let reset = epoch_s(now) + reset_in_s;
                state.reset_at = Some(reset);
                limits.insert("x-rate-limit-remaining", "0".parse().unwrap());
                limits.insert("x-rate-limit-reset", reset.to_string().parse().unwrap());
                (
                    limits,
                    x_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Too Many Requests",
                        "Too Many Requests",
                    ),
                )
                    .into_response()
            }
            Fault::Unavailable => (
                limits,
                x_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "Service Unavailable",
                ),
            )
                .into_response(),
            Fault::Malformed => (
                limits,
                [("content-type", "application/json")],
                "{\"data\":[{\"id\":\"18",
            )
                .into_response(),
        };
    }
    let max_results: u64 = match params.get("max_results").map(|v| v.parse()) {
        None => 10,
        Some(Ok(n)) if (10..=100).contains(&n) => n,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                limits,
                axum::Json(json!({
                    "errors": [{"parameters": {"max_results": [params["max_results"]]},
                                "message": "The `max_results` query parameter value is not between 10 and 100"}],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request"
                })),
            )
                .into_response();
        }
    };
    let terms: Vec<String> = params
        .get("query")
        .map(|q| q.split(" OR ").map(|t| t.trim().to_lowercase()).collect())
        .unwrap_or_default();
    let since: u64 = params
        .get("since_id")
        .filter(|_| !state.ignore_since_id)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut matching: Vec<&(u64, String, String)> = state
        .tweets
        .iter()
        .filter(|(id, text, _)| {
            *id > since && terms.iter().any(|t| text.to_lowercase().contains(t))
        })
        .collect();
    matching.sort_by_key(|t| std::cmp::Reverse(t.0));
    let offset: usize = params
        .get("next_token")
        .and_then(|t| t.strip_prefix("page"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let page: Vec<_> = matching
        .iter()
        .skip(offset)
        .take(max_results as usize)
        .collect();
    if page.is_empty() {
        return (limits, axum::Json(json!({"meta": {"result_count": 0}}))).into_response();
    }
    let expand = params
        .get("expansions")
        .is_some_and(|e| e.split(',').any(|x| x == "author_id"));
    let user_fields: Vec<String> = params
        .get("user.fields")
        .map(|f| f.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let data: Vec<Value> = page
        .iter()
        .map(|(id, text, author)| {
            json!({"id": id.to_string(), "text": text, "author_id": author,
                   "edit_history_tweet_ids": [id.to_string()]})
        })
        .collect();
    let mut users: Vec<Value> = Vec::new();
    if expand {
        for (_, _, author) in &page {
            if users.iter().any(|u| u["id"] == **author) {
                continue;
            }
            let name = state
                .users
                .get(author)
                .cloned()
                .unwrap_or_else(|| format!("user{author}"));
            // X sends id, name and username for an expanded user; user.fields adds others.
            let mut user = json!({"id": author, "name": name.to_uppercase(), "username": name});
            for field in &user_fields {
                match field.as_str() {
                    "created_at" => user[field] = json!("2020-12-01T09:00:00.000Z"),
                    "verified" | "protected" => user[field] = json!(false),
                    "description" | "location" | "url" => user[field] = json!(""),
                    _ => {}
                }
            }
            users.push(user);
        }
    }
    let mut meta = json!({
        "newest_id": page.first().unwrap().0.to_string(),
        "oldest_id": page.last().unwrap().0.to_string(),
        "result_count": page.len(),
    });
    if offset + page.len() < matching.len() {
        meta["next_token"] = json!(format!("page{}", offset + page.len()));
    }
    let mut body = json!({"data": data, "meta": meta});
    if expand {
        body["includes"] = json!({"users": users});
    }
    (limits, axum::Json(body)).into_response()
}

/// A config file for the poller, whose tweets flash for 3 s; `extra` goes at
/// the top level.
fn config(dir: &Path, x: &FakeX, token: &str, outlets: &str, extra: &str) -> PathBuf {
    config_acting(
        dir,
        x,
        token,
        outlets,
        extra,
        "action = \"flash\"\nseconds = 3",
    )
}

/// Tweets that switch the outlets on: one switch each, so the flood lets
/// them through as fast as the guard allows; for tests of the poller, not
/// of flashes.
const SWITCH_ON: &str = "action = \"on\"";

fn config_acting(
    dir: &Path,
    x: &FakeX,
    token: &str,
    outlets: &str,
    extra: &str,
    action: &str,
) -> PathBuf {
    let path = dir.join("tinsel.toml");
    std::fs::write(
        &path,
        format!(
            "{extra}\n[twitter]\nbearer_token = \"{token}\"\nquery = \"#tinseltree OR #xmastree\"\n\
             api_base = \"{}\"\npoll_interval_s = 1\n{action}\noutlets = {outlets}\n",
            x.base()
        ),
    )
    .unwrap();
    path
}

fn start(data_dir: &Path, config: &Path) -> Server {
    Server::start_in(
        data_dir.to_path_buf(),
        &["--config", config.to_str().unwrap()],
    )
}

/// One audit entry: (source, outlet, action, result, whether it worked).
type Row = (String, String, String, String, bool);

/// The commands in the audit log that came from tweets. The ends of their
/// flashes are left out.
fn tweet_audit(data_dir: &Path) -> Vec<Row> {
    tweet_audit_all(data_dir)
        .into_iter()
        .filter(|r| r.2 != "flash end")
        .collect()
}

fn tweet_audit_all(data_dir: &Path) -> Vec<Row> {
    query_db(data_dir, |pool| async move {
        sqlx::query_as(
            "SELECT source, outlet, action, result, ok FROM light_audit \
             WHERE source LIKE 'tweet:%' ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    })
}

fn claimed(data_dir: &Path) -> Vec<(String, String)> {
    query_db(data_dir, |pool| async move {
        sqlx::query_as("SELECT id, claimed_by FROM tweets")
            .fetch_all(&pool)
            .await
            .unwrap()
    })
}

fn query_db<T, F: std::future::Future<Output = T>>(
    data_dir: &Path,
    query: impl FnOnce(sqlx::SqlitePool) -> F,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data_dir.join("tinsel.db"))
            .read_only(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let out = query(pool.clone()).await;
        pool.close().await;
        out
    })
}

fn tweets_status(server: &Server) -> Value {
    let (status, body) = server.admin_get("/api/tweets");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn lights(server: &Server) -> Vec<Value> {
    let (status, body) = server.get("/api/lights");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// A guard so loose that only the flashes' own length spaces them.
const LOOSE_GUARD: &str = "relay_guard_switches = 100000\nrelay_guard_window_s = 1";

#[test]
fn matching_tweets_flash_outlets_are_audited_and_never_fire_twice_across_restarts() {
    let x = FakeX::start();
    let dir = temp_dir("tweets-restart");
    let data = dir.join("data");
    let cfg = config(
        &dir,
        &x,
        TOKEN,
        r#"["outlet-1", "outlet-2", "outlet-3"]"#,
        LOOSE_GUARD,
    );
    let first = x.add_tweets(3);
    x.add_unrelated();
    let mut server = start(&data, &cfg);

    // The outlets light up while the flash lasts.
    wait_for(
        Duration::from_secs(15),
        "outlets 1-3 on from a tweet",
        || {
            let l = lights(&server);
            (l[0]["on"] == true && l[1]["on"] == true && l[2]["on"] == true && l[3]["on"] != true)
                .then_some(())
        },
    );
    let audit = wait_for(
        Duration::from_secs(15),
        "3 tweet entries in the audit",
        || {
            let a = tweet_audit(&data);
            (a.len() >= 3).then_some(a)
        },
    );
    // Three tweets in one poll: the oldest flashes the tree, the others
    // would only be lost in its flash, so they are counted as coalesced.
    assert_eq!(audit.len(), 3, "{audit:#?}");
    for id in &first[..1] {
        let rows: Vec<_> = audit
            .iter()
            .filter(|r| r.0 == format!("tweet:{id}"))
            .collect();
        assert_eq!(rows.len(), 3, "tweet {id}: {rows:#?}");
        let author = format!("@elf{}", id % 5);
        assert!(
            rows.iter().all(|r| r.2 == format!("flash 3 s for {author}")
                && r.3 == "flashed on for 3 s (read back: on)"
                && r.4),
            "{rows:#?}"
        );
    }
    let status = tweets_status(&server);
    assert_eq!(status["state"], "ok", "{status}");
    assert_eq!(
        (status["fired"].as_u64(), status["coalesced"].as_u64()),
        (Some(1), Some(2)),
        "{status}"
    );
    // The flash ends and the outlets go back off.
    wait_for(Duration::from_secs(15), "outlets back off", || {
        lights(&server)[..3]
            .iter()
            .all(|o| o["on"] == false)
            .then_some(())
    });
    assert!(server.terminate().success());

    let before_restart = x.requests().len();
    let newest = first.iter().max().unwrap();
    let second = x.add_tweets(1)[0];
    let server = start(&data, &cfg);
    wait_for(
        Duration::from_secs(15),
        "the new tweet in the audit",
        || {
            tweet_audit(&data)
                .iter()
                .any(|r| r.0 == format!("tweet:{second}"))
                .then_some(())
        },
    );
    let after = x.requests();
    assert_eq!(
        after[before_restart].1.get("since_id").map(String::as_str),
        Some(newest.to_string().as_str()),
        "the first poll after a restart asks only for newer tweets"
    );
    // A few more polls pass; no tweet fires again.
    let polls = after.len();
    wait_for(Duration::from_secs(10), "two more polls", || {
        (x.requests().len() >= polls + 2).then_some(())
    });
    let audit = tweet_audit(&data);
    assert_eq!(audit.len(), 6, "{audit:#?}");
    for (id, rows) in [(first[0], 3), (first[1], 0), (first[2], 0), (second, 3)] {
        assert_eq!(
            audit
                .iter()
                .filter(|r| r.0 == format!("tweet:{id}"))
                .count(),
            rows,
            "tweet {id}"
        );
    }
    assert_eq!(tweets_status(&server)["fired"], 1);
}

#[test]
fn a_429_is_waited_out_and_faults_are_reported_not_fatal() {
    let x = FakeX::start();
    let dir = temp_dir("tweets-faults");
    let data = dir.join("data");
    let cfg = config_acting(&dir, &x, TOKEN, r#"["outlet-1"]"#, LOOSE_GUARD, SWITCH_ON);
    x.fault(Fault::TooManyRequests { reset_in_s: 3 });
    let ids = x.add_tweets(1);
    let server = start(&data, &cfg);

    let status = wait_for(Duration::from_secs(10), "state rate_limited", || {
        let s = tweets_status(&server);
        (s["state"] == "rate_limited").then_some(s)
    });
    assert!(
        status["detail"].as_str().unwrap().contains("rate limit"),
        "{status}"
    );
    wait_for(
        Duration::from_secs(15),
        "the tweet fired after the reset",
        || (tweet_audit(&data).len() == 1).then_some(()),
    );
    let requests = x.requests();
    let reset = x.state.lock().unwrap().reset_at.unwrap();
    let before_reset = requests.iter().filter(|r| epoch_s(r.0) < reset).count();
    assert_eq!(
        before_reset, 1,
        "only the 429 came before the reset at {reset}"
    );
    assert!(requests.len() >= 2);
    assert_eq!(tweet_audit(&data)[0].0, format!("tweet:{}", ids[0]));

    // Malformed JSON: logged, reported, and the next poll goes on.
    x.fault(Fault::Malformed);
    let status = wait_for(Duration::from_secs(10), "state failing: malformed", || {
        let s = tweets_status(&server);
        (s["state"] == "failing").then_some(s)
    });
    assert!(
        status["detail"]
            .as_str()
            .unwrap()
            .contains("does not parse"),
        "{status}"
    );
    assert!(
        server.logs().iter().any(|l| l.contains("does not parse")),
        "the malformed answer is logged"
    );
    let more = x.add_tweets(1);
    wait_for(
        Duration::from_secs(15),
        "a tweet after the malformed answer",
        || {
            tweet_audit(&data)
                .iter()
                .any(|r| r.0 == format!("tweet:{}", more[0]))
                .then_some(())
        },
    );
    assert_eq!(tweets_status(&server)["state"], "ok");

    // 503: failing with backoff, then recovery.
    x.fault(Fault::Unavailable);
    x.fault(Fault::Unavailable);
    let status = wait_for(Duration::from_secs(10), "state failing: 503", || {
        let s = tweets_status(&server);
        (s["state"] == "failing" && s["detail"].as_str().unwrap().contains("503")).then_some(s)
    });
    assert!(
        status["detail"].as_str().unwrap().contains("backoff"),
        "{status}"
    );
    let last = x.add_tweets(1);
    wait_for(Duration::from_secs(20), "a tweet after the 503s", || {
        tweet_audit(&data)
            .iter()
            .any(|r| r.0 == format!("tweet:{}", last[0]))
            .then_some(())
    });
    // The two 503s were followed by waits of 1 s and then 2 s.
    let times: Vec<SystemTime> = x.requests().iter().map(|r| r.0).collect();
    let gaps: Vec<Duration> = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap())
        .collect();
    assert!(
        gaps.iter()
            .rev()
            .take(3)
            .any(|g| *g >= Duration::from_millis(1900)),
        "{gaps:?}"
    );
}

#[test]
fn a_bad_token_says_so_and_no_token_says_how_to_enable() {
    let x = FakeX::start();
    let dir = temp_dir("tweets-token");
    let cfg = config(&dir, &x, "wrong-token", r#"["outlet-1"]"#, "");
    x.add_tweets(1);
    let server = start(&dir.join("data"), &cfg);
    let status = wait_for(Duration::from_secs(10), "state failing: token", || {
        let s = tweets_status(&server);
        (s["state"] == "failing").then_some(s)
    });
    let detail = status["detail"].as_str().unwrap();
    assert!(
        detail.contains("bearer token") && detail.contains("401"),
        "{status}"
    );
    assert!(
        !server.logs().iter().any(|l| l.contains("wrong-token")),
        "the token stays out of logs"
    );
    assert!(tweet_audit(&dir.join("data")).is_empty());

    let plain = Server::start(&[]);
    let status = tweets_status(&plain);
    assert_eq!(status["enabled"], false);
    assert_eq!(status["state"], "off");
    assert!(
        status["how_to_enable"]
            .as_str()
            .unwrap()
            .contains("bearer_token"),
        "{status}"
    );
}

#[test]
fn two_servers_on_one_database_fire_each_of_200_tweets_once() {
    let x = FakeX::start();
    let dir = temp_dir("tweets-two");
    let data = dir.join("data");
    let cfg = config_acting(&dir, &x, TOKEN, r#"["outlet-1"]"#, LOOSE_GUARD, SWITCH_ON);
    x.state.lock().unwrap().ignore_since_id = true;
    let a = start(&data, &cfg);
    let b = start(&data, &cfg);
    // Both are polling before the tweets come.
    wait_for(Duration::from_secs(10), "both servers polled", || {
        (tweets_status(&a)["last_poll_at"].is_string()
            && tweets_status(&b)["last_poll_at"].is_string())
        .then_some(())
    });
    let ids = x.add_tweets(200);
    wait_for(
        Duration::from_secs(60),
        "200 tweets claimed and fired",
        || {
            let (sa, sb) = (tweets_status(&a), tweets_status(&b));
            let fired = sa["fired"].as_u64().unwrap() + sb["fired"].as_u64().unwrap();
            (fired >= 200 && tweet_audit(&data).len() >= 200).then_some(())
        },
    );
    // The stand-in ignores since_id, so each server sees all 200 again on its
    // next polls; only the claims keep them from firing twice.
    let (sa, sb) = wait_for(
        Duration::from_secs(20),
        "both servers re-saw every tweet as already claimed",
        || {
            let (sa, sb) = (tweets_status(&a), tweets_status(&b));
            (sa["already_claimed"].as_u64().unwrap() >= 200
                && sb["already_claimed"].as_u64().unwrap() >= 200)
                .then_some((sa, sb))
        },
    );
    let audit = tweet_audit(&data);
    let claims = claimed(&data);
    eprintln!(
        "two servers: {} tweets, fired by A {} and B {}, already claimed A {} B {}, audit rows {}",
        ids.len(),
        sa["fired"],
        sb["fired"],
        sa["already_claimed"],
        sb["already_claimed"],
        audit.len()
    );
    assert_eq!(audit.len(), 200, "each tweet fires exactly once");
    for id in &ids {
        assert_eq!(
            audit
                .iter()
                .filter(|r| r.0 == format!("tweet:{id}"))
                .count(),
            1,
            "tweet {id}"
        );
    }
    assert_eq!(claims.len(), 200);
    assert_eq!(
        sa["fired"].as_u64().unwrap() + sb["fired"].as_u64().unwrap(),
        200
    );
}

#[test]
fn a_flood_of_1000_tweets_switches_within_the_relay_guard_and_the_server_stays_responsive() {
    let x = FakeX::start();
    let dir = temp_dir("tweets-flood");
    let data = dir.join("data");
    // 4 switches per 4 s: a flash (two switches) at most every 2 s.
    let cfg = config(
        &dir,
        &x,
        TOKEN,
        r#"["outlet-1", "outlet-2"]"#,
        "relay_guard_switches = 4\nrelay_guard_window_s = 4",
    );
    let server = start(&data, &cfg);
    wait_for(Duration::from_secs(10), "first poll", || {
        tweets_status(&server)["last_poll_at"]
            .is_string()
            .then_some(())
    });
    let flood_at = Instant::now();
    x.add_tweets(1000);
    // The server answers quickly all through the flood.
    let mut slowest = Duration::ZERO;
    let status = wait_for(Duration::from_secs(30), "1000 tweets counted", || {
        let asked = Instant::now();
        let (code, _) = server.get("/healthz");
        slowest = slowest.max(asked.elapsed());
        assert_eq!(code, 200);
        let s = tweets_status(&server);
        (s["fired"].as_u64().unwrap() + s["coalesced"].as_u64().unwrap() >= 1000).then_some(s)
    });
    // More tweets keep coming for a while, every poll.
    let mut added = 1000;
    while flood_at.elapsed() < Duration::from_secs(9) {
        x.add_tweets(50);
        added += 50;
        let asked = Instant::now();
        assert_eq!(server.get("/healthz").0, 200);
        slowest = slowest.max(asked.elapsed());
        std::thread::sleep(Duration::from_millis(250));
    }
    let end = wait_for(Duration::from_secs(10), "every tweet counted", || {
        let s = tweets_status(&server);
        (s["fired"].as_u64().unwrap() + s["coalesced"].as_u64().unwrap() >= added).then_some(s)
    });
    let elapsed = flood_at.elapsed();
    wait_for(Duration::from_secs(15), "the last flash ended", || {
        lights(&server)[..2]
            .iter()
            .all(|o| o["on"] == false)
            .then_some(())
    });
    let audit = tweet_audit_all(&data);
    // Each flash that switched on has a "flash end" that switched back.
    let switches_per_outlet = audit
        .iter()
        .filter(|r| r.1 == "outlet-1" && r.2 == "flash end")
        .count()
        * 2;
    let refused = audit.iter().filter(|r| !r.4).count();
    eprintln!(
        "flood: first poll fired {} coalesced {}; after {} tweets in {:.1} s: fired {} coalesced {}, \
         outlet-1 switches {} (guard 4 per 4 s), refused {}, slowest /healthz {:?}",
        status["fired"],
        status["coalesced"],
        added,
        elapsed.as_secs_f64(),
        end["fired"],
        end["coalesced"],
        switches_per_outlet,
        refused,
        slowest
    );
    assert_eq!(
        status["fired"], 1,
        "the 1000 tweets of one poll are one command: {status}"
    );
    assert_eq!(
        refused, 0,
        "the relay guard never had to refuse a tweet command: {audit:#?}"
    );
    // A 4-per-4 s guard allows 4 switches in each 4 s window the flood spans.
    let elapsed_windows = elapsed.as_secs_f64() / 4.0;
    assert!(
        (switches_per_outlet as f64) <= 4.0 * (elapsed_windows.ceil() + 1.0),
        "{switches_per_outlet} switches in {elapsed_windows:.1} windows"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "slowest answer {slowest:?}"
    );
}

#[test]
fn ten_tweets_in_a_burst_on_a_lit_tree_make_one_visible_flash() {
    let agent = Snmpd::start();
    // The tree lit, as on any evening.
    agent.set(1, 1);
    let x = FakeX::start();
    let dir = temp_dir("tweets-burst");
    let data = dir.join("data");
    let pdu = format!(
        "[[pdu]]\nname = \"pdu1\"\naddress = \"{}\"\ncommunity = \"private\"\n\
         [[outlet]]\nname = \"tree-lights\"\npdu = \"pdu1\"\nindex = 1\n",
        agent.address()
    );
    // The default relay guard: 10 switches a minute.
    let cfg = config(&dir, &x, TOKEN, r#"["tree-lights"]"#, &pdu);
    let from = agent.sets().len();
    let ids = x.add_tweets(10);
    let server = start(&data, &cfg);
    // The agent sees the lit tree go dark for 3 s, and lit again.
    let sets = wait_sets(&agent, 1, from, 2);
    assert_flash(&sets, 2, 1, 3, "ten tweets on a lit tree");
    let status = wait_for(Duration::from_secs(10), "all ten counted", || {
        let s = tweets_status(&server);
        (s["fired"].as_u64().unwrap_or(0) + s["coalesced"].as_u64().unwrap_or(0) >= 10).then_some(s)
    });
    assert_eq!(
        (status["fired"].as_u64(), status["coalesced"].as_u64()),
        (Some(1), Some(9)),
        "{status}"
    );
    let audit = tweet_audit_all(&data);
    let first = format!("tweet:{}", ids[0]);
    let rows: Vec<(&str, &str, &str, bool)> = audit
        .iter()
        .map(|r| (r.0.as_str(), r.2.as_str(), r.3.as_str(), r.4))
        .collect();
    assert_eq!(rows[0].0, first, "the oldest tweet fires: {rows:?}");
    assert_eq!(
        rows[0].2, "flashed off for 3 s (read back: off)",
        "{rows:?}"
    );
    assert!(rows[0].1.starts_with("flash 3 s for @"), "{rows:?}");
    assert_eq!(
        rows[1],
        (first.as_str(), "flash end", "back on (read back: on)", true)
    );
    // Later polls bring nothing new: the agent is told nothing more.
    let polls = x.requests().len();
    wait_for(Duration::from_secs(10), "two more polls", || {
        (x.requests().len() >= polls + 2).then_some(())
    });
    assert_eq!(
        agent.sets_of(1, from).len(),
        2,
        "{:?}",
        agent.sets_of(1, from)
    );
    assert_eq!(agent.get(1), Some(1), "the tree is lit again");
    println!(
        "ten tweets in a burst: fired 1, coalesced 9; the agent saw off then on {} ms apart",
        sets[1].0
    );
}
