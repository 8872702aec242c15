//! The admin API over HTTP against the real binary: accounts made with
//! `tinsel user add`, login and its throttling, the session cookie, CSRF, and
//! what survives a SIGKILL.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Server, temp_dir, user_add, wait_for};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// A server whose data dir has the account `alice` already.
fn server_with_alice() -> Server {
    let dir = temp_dir("admin");
    let (ok, _, err) = user_add(&dir, "alice", PASSWORD);
    assert!(ok, "{err}");
    Server::start_in(dir, &["--timezone", "UTC"])
}

/// One browser's worth of state: the session cookie and the CSRF token.
#[derive(Default, Clone)]
struct Client {
    cookie: Option<String>,
    csrf: Option<String>,
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Client {
    fn send(&mut self, server: &Server, method: &str, path: &str, body: Option<Value>) -> Answer {
        let mut request = ureq::request(method, &format!("http://{}{path}", server.http))
            .timeout(Duration::from_secs(10));
        if let Some(cookie) = &self.cookie {
            request = request.set("Cookie", cookie);
        }
        if let Some(csrf) = &self.csrf {
            request = request.set("X-CSRF-Token", csrf);
        }
        let result = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
            None => request.call(),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(err) => panic!("{method} {path}: {err}"),
        };
        if let Some(set) = response.header("set-cookie") {
            let pair = set.split(';').next().unwrap_or_default().to_string();
            self.cookie = (!set.contains("Max-Age=0")).then_some(pair);
        }
        let status = response.status();
        let retry_after = response.header("retry-after").map(str::to_string);
        let text = response.into_string().unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"))
        };
        Answer {
            status,
            retry_after,
            body,
        }
    }

    fn log_in(server: &Server, username: &str, password: &str) -> (Client, Answer) {
        let mut client = Client::default();
        let answer = client.send(
            server,
            "POST",
            "/api/session",
            Some(json!({ "username": username, "password": password })),
        );
        client.csrf = answer.body["csrf_token"].as_str().map(str::to_string);
        (client, answer)
    }
}

fn outlet_on(server: &Server, name: &str) -> Value {
    let (status, body) = server.get("/api/lights");
    assert_eq!(status, 200, "{body}");
    let outlets: Value = serde_json::from_str(&body).unwrap();
    outlets
        .as_array()
        .and_then(|list| list.iter().find(|o| o["name"] == name))
        .unwrap_or_else(|| panic!("{name} in {body}"))["on"]
        .clone()
}

/// Every admin route, with a body that would be valid.
fn admin_routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/api/session", None),
        ("DELETE", "/api/session", None),
        (
            "POST",
            "/api/lights/outlet-1",
            Some(json!({ "action": "on" })),
        ),
        ("GET", "/api/audit", None),
        ("GET", "/api/audit?limit=5", None),
        ("GET", "/api/schedules", None),
        (
            "PUT",
            "/api/schedules/outlet-1",
            Some(json!({ "on": "07:30", "off": "19:00" })),
        ),
        ("DELETE", "/api/schedules/outlet-1", None),
        ("GET", "/api/push", None),
        ("GET", "/api/tweets", None),
    ]
}

#[test]
fn every_admin_route_answers_401_json_without_a_session() {
    let server = server_with_alice();
    for (method, path, body) in admin_routes() {
        let answer = Client::default().send(&server, method, path, body.clone());
        assert_eq!(answer.status, 401, "{method} {path}: {}", answer.body);
        assert!(
            answer.body["error"]
                .as_str()
                .is_some_and(|e| e.contains("log in")),
            "{method} {path}: {}",
            answer.body
        );
        // A cookie the server never issued is no session either.
        let mut forged = Client {
            cookie: Some("tinsel_session=AAAAAAAAAAAAAAAAAAAAAA".into()),
            csrf: Some("0".repeat(64)),
        };
        let answer = forged.send(&server, method, path, body);
        assert_eq!(answer.status, 401, "forged cookie, {method} {path}");
    }
    assert_eq!(
        outlet_on(&server, "outlet-1"),
        json!(false),
        "nothing switched"
    );
}

#[test]
fn bad_passwords_get_401_then_429_for_that_account() {
    let server = server_with_alice();
    let (ok, _, err) = user_add(&server.data_dir, "bob", PASSWORD);
    assert!(ok, "accounts can be added while the server runs: {err}");

    for attempt in 1..=5 {
        let (_, answer) = Client::log_in(&server, "alice", "wrong password");
        assert_eq!(answer.status, 401, "attempt {attempt}: {}", answer.body);
        assert_eq!(answer.body["error"], "wrong username or password");
    }
    // An unknown name reads the same as a wrong password.
    let (_, answer) = Client::log_in(&server, "mallory", PASSWORD);
    assert_eq!(answer.status, 401);
    assert_eq!(answer.body["error"], "wrong username or password");

    let (client, answer) = Client::log_in(&server, "alice", "wrong password");
    assert_eq!(answer.status, 429, "{}", answer.body);
    let wait: u64 = answer
        .retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((800..=900).contains(&wait), "Retry-After {wait}");
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("try again in 15 minutes"),
        "{}",
        answer.body
    );
    assert!(client.cookie.is_none(), "no session when throttled");
    // Throttled means throttled: the right password waits too.
    let (_, answer) = Client::log_in(&server, "alice", PASSWORD);
    assert_eq!(answer.status, 429);
    // Another account from the same address is not held up by alice's.
    let (client, answer) = Client::log_in(&server, "bob", PASSWORD);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(client.cookie.is_some());
    println!("throttled after 5 failures, Retry-After {wait} s");
}

/// The `Retry-After` of a 429, in seconds.
fn retry_after(answer: &Answer) -> u64 {
    assert_eq!(answer.status, 429, "{}", answer.body);
    answer
        .retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds")
}

#[test]
fn failed_logins_survive_a_restart() {
    let dir = temp_dir("throttle-restart");
    for name in ["alice", "bob", "carol"] {
        let (ok, _, err) = user_add(&dir, name, PASSWORD);
        assert!(ok, "{err}");
    }
    let server = Server::start_in(dir.clone(), &[]);
    for attempt in 1..=5 {
        let (_, answer) = Client::log_in(&server, "alice", "wrong password");
        assert_eq!(answer.status, 401, "alice, attempt {attempt}");
    }
    for attempt in 1..=4 {
        let (_, answer) = Client::log_in(&server, "carol", "wrong password");
        assert_eq!(answer.status, 401, "carol, attempt {attempt}");
    }
    let before = retry_after(&Client::log_in(&server, "alice", "wrong password").1);
    let measured = std::time::Instant::now();

    // Dropping the server kills it with SIGKILL: nothing is saved on the way out.
    drop(server);
    // Down for a few seconds, so that a window wrongly restarted at startup
    // shows in Retry-After.
    std::thread::sleep(Duration::from_secs(3));
    let server = Server::start_in(dir.clone(), &[]);
    assert!(
        server
            .logs()
            .iter()
            .any(|line| line.contains("failed logins from before the restart still count")),
        "{:#?}",
        server.logs()
    );
    let answer = Client::log_in(&server, "alice", "wrong password").1;
    let after = retry_after(&answer);
    let elapsed = measured.elapsed().as_secs();
    // The window runs on from the first failure, not from the restart.
    assert!(
        (before.saturating_sub(elapsed + 2)..=before + 1 - elapsed).contains(&after),
        "Retry-After {before} s before the restart, {after} s after it, {elapsed} s later"
    );
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("try again in 15 minutes"),
        "{}",
        answer.body
    );
    let (client, answer) = Client::log_in(&server, "alice", PASSWORD);
    assert_eq!(answer.status, 429, "the right password waits too");
    assert!(client.cookie.is_none());
    let (client, answer) = Client::log_in(&server, "bob", PASSWORD);
    assert_eq!(answer.status, 200, "bob is not held up: {}", answer.body);
    assert!(client.cookie.is_some());
    // Carol's four failures came back, and a good login clears them as ever.
    let (_, answer) = Client::log_in(&server, "carol", PASSWORD);
    assert_eq!(answer.status, 200, "{}", answer.body);

    // Cleared in the database too: after another restart carol has five
    // tries again, where the four old failures would leave her one.
    drop(server);
    let server = Server::start_in(dir, &[]);
    for attempt in 1..=5 {
        let (_, answer) = Client::log_in(&server, "carol", "wrong password");
        assert_eq!(
            answer.status, 401,
            "carol after the restart, attempt {attempt}"
        );
    }
    retry_after(&Client::log_in(&server, "carol", "wrong password").1);
    let again = retry_after(&Client::log_in(&server, "alice", "wrong password").1);
    assert!(
        again <= after,
        "alice is still held back: Retry-After {again} s"
    );
    println!(
        "alice: Retry-After {before} s before the restart, {after} s after it ({elapsed} s later), \
         {again} s after a second restart"
    );
}

#[test]
fn an_admin_switches_an_outlet_with_the_csrf_token_then_logs_out() {
    let server = server_with_alice();
    let (mut alice, answer) = Client::log_in(&server, "alice", PASSWORD);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["username"], "alice");
    let cookie = alice.cookie.clone().expect("a session cookie");
    assert!(cookie.starts_with("tinsel_session="), "{cookie}");
    let csrf = alice.csrf.clone().expect("a CSRF token");
    assert_eq!(csrf.len(), 64);

    let shown = alice.send(&server, "GET", "/api/session", None);
    assert_eq!(shown.body["csrf_token"], csrf.as_str());

    // Without the token, or with a wrong one, nothing changes.
    for token in [None, Some("0".repeat(64)), Some(csrf[..63].to_string())] {
        let mut client = Client {
            cookie: Some(cookie.clone()),
            csrf: token.clone(),
        };
        for (method, path, body) in admin_routes()
            .into_iter()
            .filter(|(method, _, _)| *method != "GET")
        {
            let answer = client.send(&server, method, path, body);
            assert_eq!(
                answer.status, 403,
                "{method} {path} with {token:?}: {}",
                answer.body
            );
            assert!(
                answer.body["error"]
                    .as_str()
                    .unwrap()
                    .contains("X-CSRF-Token")
            );
        }
    }
    assert_eq!(outlet_on(&server, "outlet-1"), json!(false));

    let answer = alice.send(
        &server,
        "POST",
        "/api/lights/outlet-1",
        Some(json!({ "action": "on" })),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["on"], true);
    assert_eq!(answer.body["simulated"], true);
    assert_eq!(outlet_on(&server, "outlet-1"), json!(true));

    let answer = alice.send(
        &server,
        "POST",
        "/api/lights/outlet-9",
        Some(json!({ "action": "on" })),
    );
    assert_eq!(answer.status, 404, "{}", answer.body);
    let answer = alice.send(
        &server,
        "POST",
        "/api/lights/outlet-1",
        Some(json!({ "action": "explode" })),
    );
    assert_eq!(answer.status, 400, "{}", answer.body);

    let audit = alice.send(&server, "GET", "/api/audit?limit=10", None);
    assert_eq!(audit.status, 200);
    let newest_ok = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["result"] == "switched on (was off)");
    let entry = newest_ok.unwrap_or_else(|| panic!("an ok entry in {}", audit.body));
    assert_eq!(entry["source"], "admin:alice");
    assert_eq!(entry["outlet"], "outlet-1");

    let answer = alice.send(&server, "DELETE", "/api/session", None);
    assert_eq!(answer.status, 204);
    assert!(alice.cookie.is_none(), "the cookie is removed");
    // The old cookie is worthless now.
    let mut replay = Client {
        cookie: Some(cookie),
        csrf: Some(csrf),
    };
    let answer = replay.send(&server, "GET", "/api/session", None);
    assert_eq!(answer.status, 401);
    let answer = replay.send(
        &server,
        "POST",
        "/api/lights/outlet-1",
        Some(json!({ "action": "off" })),
    );
    assert_eq!(answer.status, 401);
    assert_eq!(outlet_on(&server, "outlet-1"), json!(true));
}

#[test]
fn the_session_cookie_is_http_only_strict_and_secure_when_asked() {
    for (flags, secure) in [(vec![], false), (vec!["--secure-cookies"], true)] {
        let dir = temp_dir("cookie");
        assert!(user_add(&dir, "alice", PASSWORD).0);
        let server = Server::start_in(dir, &flags);
        let response = ureq::post(&format!("http://{}/api/session", server.http))
            .set("Content-Type", "application/json")
            .send_string(&json!({ "username": "alice", "password": PASSWORD }).to_string())
            .unwrap();
        let cookie = response.header("set-cookie").unwrap().to_string();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(cookie.contains("Max-Age=1800"), "30 minutes idle: {cookie}");
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
    }
}

#[test]
fn user_add_reads_the_password_from_stdin() {
    let dir = temp_dir("useradd");
    let (ok, _, err) = user_add(&dir, "alice", "short");
    assert!(!ok);
    assert!(err.contains("shorter than 8 characters"), "{err}");
    let (ok, out, err) = user_add(&dir, "alice", PASSWORD);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("\"alice\" created"), "{out}");
    let (ok, out, _) = user_add(&dir, "alice", "another password");
    assert!(ok);
    assert!(out.contains("\"alice\" has a new password"), "{out}");
    let (ok, _, err) = user_add(&dir, "al ice", PASSWORD);
    assert!(!ok);
    assert!(err.contains("not allowed"), "{err}");

    let server = Server::start_in(dir, &[]);
    assert_eq!(Client::log_in(&server, "alice", PASSWORD).1.status, 401);
    assert_eq!(
        Client::log_in(&server, "alice", "another password")
            .1
            .status,
        200
    );
}

/// `HH:MM:SS` in UTC, `ahead` from now.
fn utc_time_in(ahead: Duration) -> (String, SystemTime) {
    let at = SystemTime::now() + ahead;
    let secs = at.duration_since(UNIX_EPOCH).unwrap().as_secs() % 86_400;
    let text = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    (text, at)
}

#[test]
fn everything_survives_sigkill_and_a_schedule_due_meanwhile_is_applied() {
    let dir = temp_dir("sigkill");
    let server = Server::start_in(dir.clone(), &["--timezone", "UTC"]);
    let (ok, _, err) = user_add(&dir, "alice", PASSWORD);
    assert!(ok, "{err}");
    let (mut alice, answer) = Client::log_in(&server, "alice", PASSWORD);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let on = |client: &mut Client, outlet: &str, action: &str| {
        let answer = client.send(
            &server,
            "POST",
            &format!("/api/lights/{outlet}"),
            Some(json!({ "action": action })),
        );
        assert_eq!(answer.status, 200, "{outlet} {action}: {}", answer.body);
    };
    on(&mut alice, "outlet-2", "on");
    on(&mut alice, "outlet-1", "off");
    let (on_at, due) = utc_time_in(Duration::from_secs(6));
    let (off_at, _) = utc_time_in(Duration::from_secs(3600));
    let answer = alice.send(
        &server,
        "PUT",
        "/api/schedules/outlet-1",
        Some(json!({ "on": on_at, "off": off_at })),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["on"], on_at.as_str());
    // The answer says what the outlet did, as read back: off already.
    assert_eq!(answer.body["result"], "already off", "{}", answer.body);
    assert_eq!(answer.body["state"]["on"], false);
    assert_eq!(outlet_on(&server, "outlet-1"), json!(false), "not due yet");

    // Dropping the server kills it with SIGKILL: no shutdown code runs.
    drop(server);
    wait_for(
        Duration::from_secs(30),
        "the schedule's on-time to pass",
        || (SystemTime::now() > due + Duration::from_secs(1)).then_some(()),
    );
    let server = Server::start_in(dir, &["--timezone", "UTC"]);

    wait_for(
        Duration::from_secs(20),
        "outlet-1 on after catching up",
        || (outlet_on(&server, "outlet-1") == json!(true)).then_some(()),
    );
    assert_eq!(outlet_on(&server, "outlet-2"), json!(true), "state kept");
    // The session outlived the process too.
    let answer = alice.send(&server, "GET", "/api/session", None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (mut again, answer) = Client::log_in(&server, "alice", PASSWORD);
    assert_eq!(answer.status, 200, "the account is still there");
    let schedules = again.send(&server, "GET", "/api/schedules", None);
    assert_eq!(schedules.body["timezone"], "UTC");
    assert_eq!(
        schedules.body["schedules"],
        json!([{ "outlet": "outlet-1", "on": on_at, "off": off_at }])
    );
    let audit = again.send(&server, "GET", "/api/audit?limit=100", None);
    let entries = audit.body.as_array().unwrap();
    let applied = entries.iter().find(|e| {
        e["source"] == "schedule"
            && e["outlet"] == "outlet-1"
            && e["result"] == "switched on (was off)"
    });
    assert!(applied.is_some(), "the catch-up is audited: {}", audit.body);
    assert!(
        entries
            .iter()
            .any(|e| e["source"] == "admin:alice" && e["outlet"] == "outlet-2"),
        "the audit log from before the kill is kept: {}",
        audit.body
    );
    println!(
        "after SIGKILL: {} audit entries, outlet-1 switched on by the schedule",
        entries.len()
    );
}
