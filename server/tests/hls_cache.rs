//! LL-HLS through a standard HTTP cache: Varnish (Debian's) runs
//! deploy/varnish/tinsel.vcl in front of the origin. 200 players at the live
//! edge cost the origin about one request per part and per playlist version,
//! a player behind the cache stays as close to live as one at the origin,
//! what a viewer adds (a query, a cookie, an `Origin`) does not split the
//! cache, and viewers waiting on a blocking reload that times out share its
//! one 503 instead of each going to the origin.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Publisher, Server, raise_open_files, temp_dir, wait_for};

/// How many players the crowd has.
const PLAYERS: usize = 200;
/// How long the crowd plays through the cache.
const PLAY: Duration = Duration::from_secs(15);
/// How long the same crowd plays at the origin, for the figure without cache.
const PLAY_DIRECT: Duration = Duration::from_secs(5);

/// Each test runs a publisher, an origin and a cache: on two cores, one at a
/// time, or the latency figure measures the machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `varnishd` in the foreground with the VCL of deploy/varnish/, its backend
/// pointed at `origin`.
struct Varnish {
    child: Child,
    address: SocketAddr,
    /// Its work directory, the VCL it runs and its log.
    dir: PathBuf,
}

impl Varnish {
    fn start(origin: SocketAddr) -> Varnish {
        let vcl_path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/varnish/tinsel.vcl");
        let vcl = std::fs::read_to_string(&vcl_path).expect("deploy/varnish/tinsel.vcl");
        let (host, port) = (".host = \"127.0.0.1\";", ".port = \"8080\";");
        assert!(
            vcl.contains(host) && vcl.contains(port),
            "the test points the VCL's backend at the origin by replacing {host} and {port}"
        );
        let vcl = vcl
            .replace(host, &format!(".host = \"{}\";", origin.ip()))
            .replace(port, &format!(".port = \"{}\";", origin.port()));
        let dir = temp_dir("varnish");
        let file = dir.join("tinsel.vcl");
        std::fs::write(&file, vcl).unwrap();
        // A free port, taken back just before varnishd binds it.
        let address = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let log = std::fs::File::create(dir.join("varnishd.log")).unwrap();
        let child = Command::new("varnishd")
            // No privilege separation: the test runs it as whoever runs the test.
            .args(["-F", "-j", "none", "-n"])
            .arg(dir.join("work"))
            .args(["-a", &address.to_string(), "-f"])
            .arg(&file)
            .args(["-s", "malloc,64m"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("varnishd runs (scripts/setup installs varnish)");
        let mut varnish = Varnish {
            child,
            address,
            dir,
        };
        wait_for(Duration::from_secs(30), "varnishd to answer", || {
            if let Ok(Some(status)) = varnish.child.try_wait() {
                let log = std::fs::read_to_string(varnish.dir.join("varnishd.log"));
                panic!("varnishd ended ({status}): {}", log.unwrap_or_default());
            }
            ureq::get(&format!("http://{}/healthz", varnish.address))
                .timeout(Duration::from_secs(2))
                .call()
                .ok()
                .filter(|r| r.status() == 200)
        });
        varnish
    }

    /// One of varnishstat's counters, e.g. `MAIN.busy_sleep` (requests put
    /// on a waiting list).
    fn counter(&self, name: &str) -> u64 {
        let (ok, out, err) = common::run(
            Command::new("varnishstat")
                .args(["-1", "-n"])
                .arg(self.dir.join("work"))
                .args(["-f", name]),
            Duration::from_secs(10),
        );
        assert!(ok, "varnishstat: {err}");
        out.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {out:?}"))
    }

    fn base(&self) -> String {
        format!("http://{}/hls/tree", self.address)
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The origin's `tinsel_hls_requests_total`, by kind.
fn origin_requests(server: &Server) -> BTreeMap<String, u64> {
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("tinsel_hls_requests_total{kind=\"")?;
            let (kind, value) = rest.split_once("\"}")?;
            Some((kind.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// One sample of the origin's `/metrics`, named with its labels as written
/// there; 0 if it is not there yet.
fn origin_metric(server: &Server, sample: &str) -> u64 {
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, kind: &str) -> u64 {
    after.get(kind).copied().unwrap_or(0) - before.get(kind).copied().unwrap_or(0)
}

/// The preload hint's segment and part.
fn preload_hint(text: &str) -> Option<(u64, u64)> {
    let line = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))?;
    let uri = line
        .split("URI=\"part")
        .nth(1)?
        .trim_end()
        .trim_end_matches(".m4s\"");
    let (msn, index) = uri.split_once('.')?;
    Some((msn.parse().ok()?, index.parse().ok()?))
}

/// What one player did.
#[derive(Default)]
struct Play {
    /// When each part (`partM.I.m4s`) was in hand.
    parts: BTreeMap<String, Instant>,
    /// Each playlist URL asked for (the query names its version).
    playlists: BTreeSet<String>,
    /// Requests sent, by kind, as the origin counts them.
    requests: BTreeMap<&'static str, u64>,
    /// Requests that failed, with why.
    errors: Vec<String>,
}

/// An LL-HLS player at the live edge, as hls.js plays one: the playlist, the
/// init file, then a blocking reload for the part the preload hint names and
/// that part, again and again until `until`.
fn play(base: &str, until: Instant) -> Play {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    let mut play = Play::default();
    let get = |play: &mut Play, kind: &'static str, uri: &str| -> Option<Vec<u8>> {
        *play.requests.entry(kind).or_default() += 1;
        match agent.get(&format!("{base}/{uri}")).call() {
            Ok(response) => {
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut response.into_reader(), &mut body).ok()?;
                Some(body)
            }
            Err(err) => {
                play.errors.push(format!("{uri}: {err}"));
                None
            }
        }
    };
    let Some(mut text) = get(&mut play, "playlist", "index.m3u8") else {
        return play;
    };
    play.playlists.insert("index.m3u8".into());
    let playlist = String::from_utf8_lossy(&text).to_string();
    if let Some(init) = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|l| l.split('"').next())
    {
        get(&mut play, "init", init);
    }
    while Instant::now() < until {
        let Some((msn, part)) = preload_hint(&String::from_utf8_lossy(&text)) else {
            play.errors.push("a playlist without a preload hint".into());
            break;
        };
        let uri = format!("index.m3u8?_HLS_msn={msn}&_HLS_part={part}");
        let Some(next) = get(&mut play, "playlist", &uri) else {
            break;
        };
        play.playlists.insert(uri);
        let name = format!("part{msn}.{part}.m4s");
        if get(&mut play, "part", &name).is_none() {
            break;
        }
        play.parts.insert(name, Instant::now());
        text = next;
    }
    play
}

/// `players` players on `base` for `time`, each on a thread of its own; one
/// more on `probe` alongside them if given.
fn crowd(
    base: &str,
    players: usize,
    time: Duration,
    probe: Option<&str>,
) -> (Vec<Play>, Option<Play>) {
    let until = Instant::now() + time;
    std::thread::scope(|scope| {
        let probe = probe.map(|probe| scope.spawn(move || play(probe, until)));
        let crowd: Vec<_> = (0..players)
            .map(|_| scope.spawn(move || play(base, until)))
            .collect();
        let plays = crowd.into_iter().map(|p| p.join().unwrap()).collect();
        (plays, probe.map(|p| p.join().unwrap()))
    })
}

fn sum(plays: &[Play], kind: &str) -> u64 {
    plays
        .iter()
        .map(|p| p.requests.get(kind).copied().unwrap_or(0))
        .sum()
}

fn started(server: &Server) {
    server.wait_live(true);
    wait_for(
        Duration::from_secs(20),
        "a playlist with a preload hint",
        || {
            let (status, body) = server.get("/hls/tree/index.m3u8");
            (status == 200 && preload_hint(&body).is_some()).then_some(())
        },
    );
}

#[test]
fn two_hundred_players_through_varnish_cost_the_origin_one_request_per_part() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    raise_open_files();
    let server = Server::start(&[]);
    let _publisher = Publisher::start(&server.publish_url());
    started(&server);
    let varnish = Varnish::start(server.http);
    let origin_base = format!("http://{}/hls/tree", server.http);

    // The crowd through the cache, and one player at the origin beside it.
    let before = origin_requests(&server);
    let begun = Instant::now();
    let (plays, direct) = crowd(&varnish.base(), PLAYERS, PLAY, Some(&origin_base));
    let seconds = begun.elapsed().as_secs_f64();
    let after = origin_requests(&server);
    let direct = direct.unwrap();
    let errors: Vec<&String> = plays.iter().flat_map(|p| &p.errors).collect();
    assert!(
        errors.is_empty() && direct.errors.is_empty(),
        "{} requests failed through the cache, e.g. {:?}; at the origin: {:?}",
        errors.len(),
        errors.iter().take(5).collect::<Vec<_>>(),
        direct.errors
    );

    let parts: BTreeSet<&String> = plays.iter().flat_map(|p| p.parts.keys()).collect();
    let versions: BTreeSet<&String> = plays.iter().flat_map(|p| &p.playlists).collect();
    // The origin's count, less what the player at the origin asked itself.
    let origin =
        |kind: &str| delta(&after, &before, kind) - direct.requests.get(kind).copied().unwrap_or(0);
    let (origin_parts, origin_playlists) = (origin("part"), origin("playlist"));
    let (asked_parts, asked_playlists) = (sum(&plays, "part"), sum(&plays, "playlist"));
    println!(
        "{PLAYERS} players through Varnish for {seconds:.1} s: {asked_playlists} playlist and \
         {asked_parts} part requests; the origin answered {origin_playlists} playlist requests \
         for {} playlist versions ({:.2} per version), {origin_parts} part requests for {} parts \
         ({:.2} per part), {} init requests",
        versions.len(),
        origin_playlists as f64 / versions.len() as f64,
        parts.len(),
        origin_parts as f64 / parts.len() as f64,
        origin("init"),
    );
    assert!(
        parts.len() >= 20,
        "the players got only {} parts in {seconds:.1} s",
        parts.len()
    );
    assert!(
        asked_parts >= (PLAYERS * parts.len() / 2) as u64,
        "{asked_parts} part requests for {} parts: the players did not keep up",
        parts.len()
    );
    assert!(
        origin_parts as f64 <= 1.5 * parts.len() as f64 + 3.0,
        "{origin_parts} part requests at the origin for {} parts",
        parts.len()
    );
    assert!(
        origin_playlists as f64 <= 1.5 * versions.len() as f64 + 3.0,
        "{origin_playlists} playlist requests at the origin for {} playlist versions",
        versions.len()
    );
    let with_cache = (origin_parts + origin_playlists + origin("init")) as f64 / seconds;

    // Latency: when the probe at the origin and one player behind the cache
    // had each part.
    let behind = &plays[0];
    let mut lags: Vec<f64> = direct
        .parts
        .iter()
        .filter_map(|(name, at)| {
            let through = behind.parts.get(name)?;
            Some(
                through.saturating_duration_since(*at).as_secs_f64()
                    - at.saturating_duration_since(*through).as_secs_f64(),
            )
        })
        .collect();
    assert!(lags.len() >= 20, "only {} parts in common", lags.len());
    lags.sort_by(f64::total_cmp);
    let median = lags[lags.len() / 2];
    println!(
        "a player behind the cache had each of {} parts {:.0} ms after the player at the origin \
         (median; from {:.0} to {:.0} ms)",
        lags.len(),
        median * 1000.0,
        lags[0] * 1000.0,
        lags[lags.len() - 1] * 1000.0
    );
    assert!(
        median < 0.3,
        "a player behind the cache is {median:.3} s further from live than one at the origin"
    );

    // The same crowd at the origin, for the figure without a cache.
    let before = origin_requests(&server);
    let begun = Instant::now();
    let (plays, _) = crowd(&origin_base, PLAYERS, PLAY_DIRECT, None);
    let seconds = begun.elapsed().as_secs_f64();
    let after = origin_requests(&server);
    let errors: Vec<&String> = plays.iter().flat_map(|p| &p.errors).collect();
    assert!(
        errors.is_empty(),
        "{} requests failed at the origin, e.g. {:?}",
        errors.len(),
        errors.iter().take(5).collect::<Vec<_>>()
    );
    let without_cache = ["part", "playlist", "init"]
        .iter()
        .map(|kind| delta(&after, &before, kind))
        .sum::<u64>() as f64
        / seconds;
    println!(
        "origin requests per second for {PLAYERS} LL-HLS players: {with_cache:.1} through \
         Varnish, {without_cache:.1} without ({:.0} times as many)",
        without_cache / with_cache
    );
    assert!(
        without_cache > 20.0 * with_cache,
        "the cache saves the origin too little: {with_cache:.1} requests/s with it, \
         {without_cache:.1} without"
    );
}

/// Status, `Age`, `X-Cache` and `Cache-Control` of a GET through the cache.
struct Answer {
    status: u16,
    age: Option<u64>,
    x_cache: Option<String>,
    cache_control: Option<String>,
}

fn fetch(varnish: &Varnish, path: &str, header: Option<(&str, &str)>) -> Answer {
    let mut request =
        ureq::get(&format!("http://{}{path}", varnish.address)).timeout(Duration::from_secs(20));
    if let Some((name, value)) = header {
        request = request.set(name, value);
    }
    let response = match request.call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(err) => panic!("GET {path} through Varnish: {err}"),
    };
    let answer = Answer {
        status: response.status(),
        age: response.header("age").and_then(|a| a.parse().ok()),
        x_cache: response.header("x-cache").map(str::to_string),
        cache_control: response.header("cache-control").map(str::to_string),
    };
    let _ = std::io::copy(&mut response.into_reader(), &mut std::io::sink());
    answer
}

#[test]
fn through_varnish_age_is_right_and_every_viewer_gets_the_same_object() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::start(&[]);
    let _publisher = Publisher::start(&server.publish_url());
    started(&server);
    let varnish = Varnish::start(server.http);

    // A part the playlist lists, that nobody has asked the cache for.
    let (_, text) = server.get("/hls/tree/index.m3u8");
    let part = text
        .lines()
        .rev()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .find_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .expect("a part in the playlist")
        .to_string();
    let path = format!("/hls/tree/{part}");
    let before = origin_requests(&server);
    let first = fetch(&varnish, &path, None);
    let fetched = Instant::now();
    assert_eq!(
        (first.status, first.x_cache.as_deref(), first.age),
        (200, Some("MISS"), Some(0)),
        "the first fetch of {part} goes to the origin"
    );
    let later = wait_for(Duration::from_secs(10), "an Age of 2 s on the part", || {
        let answer = fetch(&varnish, &path, None);
        answer.age.is_some_and(|age| age >= 2).then_some(answer)
    });
    let elapsed = fetched.elapsed().as_secs_f64();
    let age = later.age.unwrap();
    println!("{part}: Age {age} s after {elapsed:.1} s in the cache");
    assert_eq!(later.x_cache.as_deref(), Some("HIT"));
    assert!(
        age as f64 <= elapsed + 1.0,
        "Age {age} s after {elapsed:.1} s"
    );
    // What one viewer adds does not make it another object.
    for (what, query, header) in [
        ("a query of its own", "?foo=1&session=17", None),
        ("a cookie", "", Some(("Cookie", "session=viewer-17"))),
        (
            "an Origin",
            "",
            Some(("Origin", "https://elsewhere.example")),
        ),
    ] {
        let answer = fetch(&varnish, &format!("{path}{query}"), header);
        assert_eq!(
            (answer.status, answer.x_cache.as_deref()),
            (200, Some("HIT")),
            "a request with {what} is sent the part in the cache"
        );
        assert!(
            answer.age.is_some_and(|a| a >= age),
            "with {what}: Age {:?}, the object's is {age}",
            answer.age
        );
    }
    let after = origin_requests(&server);
    assert_eq!(
        delta(&after, &before, "part"),
        1,
        "the origin was asked for {part} once"
    );

    // A blocking reload, asked with a junk parameter and the directives the
    // other way round, then as a player asks it: one object.
    let (_, text) = server.get("/hls/tree/index.m3u8");
    let (msn, index) = preload_hint(&text).expect("a preload hint");
    let before = origin_requests(&server);
    let odd = fetch(
        &varnish,
        &format!("/hls/tree/index.m3u8?_HLS_part={index}&t=123&_HLS_msn={msn}"),
        None,
    );
    assert_eq!((odd.status, odd.x_cache.as_deref()), (200, Some("MISS")));
    let blocking = fetch(
        &varnish,
        &format!("/hls/tree/index.m3u8?_HLS_msn={msn}&_HLS_part={index}"),
        None,
    );
    assert_eq!(
        (blocking.status, blocking.x_cache.as_deref()),
        (200, Some("HIT"))
    );
    assert_eq!(
        blocking.cache_control.as_deref(),
        Some("public, max-age=6"),
        "a blocking reload's answer is kept three target durations"
    );
    let after = origin_requests(&server);
    assert_eq!(delta(&after, &before, "playlist"), 1);
    let live = fetch(&varnish, "/hls/tree/index.m3u8", None);
    assert_eq!(live.cache_control.as_deref(), Some("public, max-age=1"));
    assert!(live.age.is_some_and(|a| a <= 1), "Age {:?}", live.age);

    // A refusal is kept a moment as a normal object, not made a pass that
    // would send every waiting viewer to the origin.
    let far = format!("/hls/tree/index.m3u8?_HLS_msn={}", msn + 10);
    let refused = fetch(&varnish, &far, None);
    assert_eq!(
        (refused.status, refused.cache_control.as_deref()),
        (400, Some("public, max-age=1"))
    );
    let again = fetch(&varnish, &far, None);
    assert_eq!(
        (again.status, again.x_cache.as_deref()),
        (400, Some("HIT")),
        "the refusal was kept"
    );
}

#[test]
fn viewers_waiting_on_a_blocking_reload_share_one_request_and_its_timeout() {
    const WAITING: usize = 20;
    const TIMEOUTS: &str =
        r#"tinsel_hls_blocking_requests_total{kind="playlist",outcome="timeout"}"#;
    const WAITING_NOW: &str = "tinsel_hls_blocking_requests_waiting";
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::start(&[]);
    let mut publisher = Publisher::start(&server.publish_url());
    started(&server);
    let varnish = Varnish::start(server.http);

    // Two segments ahead: the origin waits for it, and the publisher is
    // gone before it comes.
    let (_, text) = server.get("/hls/tree/index.m3u8");
    let (msn, _) = preload_hint(&text).expect("a preload hint");
    let path = format!("/hls/tree/index.m3u8?_HLS_msn={}&_HLS_part=0", msn + 2);
    let timeouts = origin_metric(&server, TIMEOUTS);
    let slept = varnish.counter("MAIN.busy_sleep");
    let answers = std::thread::scope(|scope| {
        let viewers: Vec<_> = (0..WAITING)
            .map(|_| scope.spawn(|| fetch(&varnish, &path, None)))
            .collect();
        wait_for(
            Duration::from_secs(5),
            "the other viewers on Varnish's waiting list",
            || (varnish.counter("MAIN.busy_sleep") - slept >= WAITING as u64 - 1).then_some(()),
        );
        let at_origin = origin_metric(&server, WAITING_NOW);
        assert_eq!(
            at_origin, 1,
            "{WAITING} viewers wait for {path}; the origin holds {at_origin} requests"
        );
        publisher.kill();
        viewers
            .into_iter()
            .map(|v| v.join().unwrap())
            .collect::<Vec<_>>()
    });
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert!(
        statuses.iter().all(|&s| s == 503),
        "every waiting viewer is told to ask again: {statuses:?}"
    );
    let again = fetch(&varnish, &path, None);
    assert_eq!(
        (again.status, again.x_cache.as_deref()),
        (503, Some("HIT")),
        "the timeout is kept a moment, not made a pass for everyone"
    );
    let timed_out = origin_metric(&server, TIMEOUTS) - timeouts;
    println!("{WAITING} viewers waited on one blocking request; the origin timed out {timed_out}");
    assert_eq!(timed_out, 1, "one blocking request reached the origin");
}
