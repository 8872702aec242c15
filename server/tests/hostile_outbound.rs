//! Outbound peers are not trusted either. The real `tinsel` binary polls a
//! stand-in X API that turns hostile (a 50 MB body, an endless chunked body,
//! 100,000-deep JSON, wrong types, an absurd `x-rate-limit-reset`, a 429 that
//! resets in ten years, a slow drip), and drives a PDU whose SNMP agent is a
//! small UDP responder in this test sending crafted BER (wrong types,
//! truncated, oversize, another request id, another OID, a flood). Each
//! fault is a clear error in the status, memory stays bounded, the server
//! stays up, and the good peers (the stand-in once it behaves again, a real
//! net-snmp `snmpd` serving a second PDU) keep working.
//!
//! The stand-in X API speaks raw HTTP/1.1 over a `TcpListener`, so it can lie
//! about lengths and never end a body.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::{Server, run, temp_dir, wait_for};

const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAhostile-test";
const TWEET_ID: u64 = 1_862_000_000_000_000_001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XMode {
    /// A valid answer: the tweet, once added.
    Good,
    /// 50 MB, announced in `Content-Length`.
    Huge,
    /// Chunked, never ending.
    Endless,
    /// `{"data":` and 100,000 nested arrays.
    Deep,
    /// Every field the wrong type.
    WrongTypes,
    /// A good answer with `x-rate-limit-remaining: 0` and a reset no calendar holds.
    AbsurdReset,
    /// 429, resetting in ten years.
    FarReset,
    /// One byte every 300 ms.
    Drip,
}

struct XState {
    mode: XMode,
    tweet: bool,
    /// Every request: the mode it met, and when.
    served: Vec<(XMode, Instant)>,
}

#[derive(Clone)]
struct HostileX {
    addr: SocketAddr,
    state: Arc<Mutex<XState>>,
}

impl HostileX {
    fn start() -> HostileX {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(XState {
            mode: XMode::Good,
            tweet: false,
            served: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().take(10_000) {
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || answer(stream, &shared));
            }
        });
        HostileX { addr, state }
    }

    fn set(&self, mode: XMode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn served(&self, mode: XMode) -> Vec<Instant> {
        let state = self.state.lock().unwrap();
        state
            .served
            .iter()
            .filter(|(m, _)| *m == mode)
            .map(|(_, at)| *at)
            .collect()
    }
}

fn epoch_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn head(status: &str, remaining: u64, reset: u64, length: Option<usize>) -> String {
    let length = match length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".into(),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{length}\
         x-rate-limit-limit: 450\r\nx-rate-limit-remaining: {remaining}\r\n\
         x-rate-limit-reset: {reset}\r\nConnection: close\r\n\r\n"
    )
}

fn answer(mut stream: TcpStream, state: &Mutex<XState>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut request = Vec::new();
    let mut byte = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&byte[..n]),
        }
    }
    let (mode, tweet) = {
        let mut state = state.lock().unwrap();
        let mode = state.mode;
        state.served.push((mode, Instant::now()));
        (mode, state.tweet)
    };
    let reset = epoch_s() + 900;
    let send = |stream: &mut TcpStream, status: &str, body: &str| {
        let _ = stream.write_all(head(status, 449, reset, Some(body.len())).as_bytes());
        let _ = stream.write_all(body.as_bytes());
    };
    match mode {
        XMode::Good => {
            let body = if tweet {
                format!(
                    r##"{{"data":[{{"id":"{TWEET_ID}","text":"the #tinseltree","author_id":"42"}}],
                    "includes":{{"users":[{{"id":"42","name":"Ann","username":"ann"}}]}},
                    "meta":{{"newest_id":"{TWEET_ID}","result_count":1}}}}"##
                )
            } else {
                r#"{"meta":{"result_count":0}}"#.to_string()
            };
            send(&mut stream, "200 OK", &body);
        }
        XMode::Huge => {
            let total = 50 * 1024 * 1024;
            if stream
                .write_all(head("200 OK", 449, reset, Some(total)).as_bytes())
                .is_err()
            {
                return;
            }
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..total / chunk.len() {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
        XMode::Endless => {
            if stream
                .write_all(head("200 OK", 449, reset, None).as_bytes())
                .is_err()
            {
                return;
            }
            let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
            chunk.extend(std::iter::repeat_n(b'[', 64 * 1024));
            chunk.extend_from_slice(b"\r\n");
            // Bounded for the test's sake: 4 GiB, far past any cap.
            for _ in 0..65_536 {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
        XMode::Deep => {
            let body = format!(
                "{{\"data\":{}{}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            );
            send(&mut stream, "200 OK", &body);
        }
        XMode::WrongTypes => send(
            &mut stream,
            "200 OK",
            r#"{"data":{"id":5,"text":[]},"includes":"none","meta":[1,2,3]}"#,
        ),
        XMode::AbsurdReset => {
            let body = r#"{"meta":{"result_count":0}}"#;
            let _ = stream
                .write_all(head("200 OK", 0, 99_999_999_999_999, Some(body.len())).as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
        XMode::FarReset => {
            let body = r#"{"title":"Too Many Requests","detail":"Too Many Requests","status":429}"#;
            let ten_years = epoch_s() + 10 * 365 * 86_400;
            let _ = stream.write_all(
                head("429 Too Many Requests", 0, ten_years, Some(body.len())).as_bytes(),
            );
            let _ = stream.write_all(body.as_bytes());
        }
        XMode::Drip => {
            let body = r#"{"meta":{"result_count":0}}"#;
            if stream
                .write_all(head("200 OK", 449, reset, Some(body.len())).as_bytes())
                .is_err()
            {
                return;
            }
            for b in body.bytes() {
                std::thread::sleep(Duration::from_millis(300));
                if stream.write_all(&[b]).is_err() {
                    return;
                }
            }
        }
    }
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

fn outlet(server: &Server, name: &str) -> Value {
    lights(server)
        .into_iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("outlet {name} is listed"))
}

fn no_panics(server: &Server) {
    let logs = server.logs();
    let panics: Vec<&String> = logs.iter().filter(|l| l.contains("panicked")).collect();
    assert!(panics.is_empty(), "{panics:#?}");
}

#[test]
fn a_hostile_x_api_gives_clear_errors_bounded_memory_and_the_poller_keeps_polling() {
    let x = HostileX::start();
    let dir = temp_dir("hostile-x");
    let data = dir.join("data");
    let config = dir.join("tinsel.toml");
    std::fs::write(
        &config,
        format!(
            "relay_guard_switches = 100000\nrelay_guard_window_s = 1\n\
             [twitter]\nbearer_token = \"{TOKEN}\"\nquery = \"#tinseltree\"\n\
             api_base = \"http://{}\"\npoll_interval_s = 1\nmax_wait_s = 2\ntimeout_s = 2\n\
             action = \"flash\"\nseconds = 2\noutlets = [\"outlet-1\"]\n",
            x.addr
        ),
    )
    .unwrap();
    let server = Server::start_in(data, &["--config", config.to_str().unwrap()]);
    wait_for(Duration::from_secs(15), "a first good poll", || {
        (tweets_status(&server)["state"] == "ok" && !x.served(XMode::Good).is_empty()).then_some(())
    });
    let baseline = server.rss_kib();
    let mut peak = baseline;
    println!("RSS after the first good poll: {baseline} KiB");

    let faults = [
        (XMode::Deep, "failing", "does not parse"),
        (XMode::Huge, "failing", "over 1048576 bytes"),
        (XMode::WrongTypes, "failing", "does not parse"),
        (XMode::Endless, "failing", "over 1048576 bytes"),
        (
            XMode::AbsurdReset,
            "rate_limited",
            "the rate limit is used up until",
        ),
        (
            XMode::Drip,
            "failing",
            "did not finish answering within 2 s",
        ),
        (XMode::FarReset, "rate_limited", "waiting until"),
    ];
    for (mode, state, detail) in faults {
        let started = Instant::now();
        x.set(mode);
        // Two requests in this mode: the first one's outcome is in the status.
        let status = wait_for(
            Duration::from_secs(30),
            &format!("two polls meeting {mode:?}"),
            || {
                let s = tweets_status(&server);
                (x.served(mode).len() >= 2).then_some(s)
            },
        );
        let rss = server.rss_kib();
        peak = peak.max(rss);
        println!(
            "{mode:?}: state {} in {:.1} s, RSS {rss} KiB; {}",
            status["state"],
            started.elapsed().as_secs_f64(),
            status["detail"]
        );
        assert_eq!(status["state"], state, "{mode:?}: {status}");
        let text = status["detail"].as_str().unwrap();
        assert!(text.contains(detail), "{mode:?}: {text}");
        assert!(text.len() < 400 && !text.contains('\n'), "{mode:?}: {text}");
        assert_eq!(server.get("/healthz").0, 200);
    }
    // The 429's ten years were waited as max_wait_s (2 s).
    let far = x.served(XMode::FarReset);
    let gap = far[1] - far[0];
    assert!(gap < Duration::from_secs(5), "the 429 was waited {gap:?}");

    // Good again: a matching tweet is picked up and fires.
    {
        let mut state = x.state.lock().unwrap();
        state.tweet = true;
        state.mode = XMode::Good;
    }
    let status = wait_for(Duration::from_secs(20), "the tweet fired", || {
        let s = tweets_status(&server);
        (s["fired"] == 1 && s["state"] == "ok").then_some(s)
    });
    println!("after the faults: {status}");
    let rss = server.rss_kib();
    peak = peak.max(rss);
    println!(
        "RSS baseline {baseline} KiB, peak {peak} KiB (+{} KiB) over {} requests",
        peak - baseline,
        x.state.lock().unwrap().served.len()
    );
    let logs = server.logs();
    assert!(
        logs.iter()
            .any(|l| l.contains("refused") && l.contains("max_response_bytes")),
        "the oversize answers are logged as refusals"
    );
    // Reading the 50 MB body would alone add 50 MiB.
    assert!(
        peak - baseline < 32 * 1024,
        "RSS grew from {baseline} KiB to {peak} KiB"
    );
    no_panics(&server);
}

/// What the hostile SNMP agent sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentMode {
    WrongType,
    Truncated,
    Oversize,
    WrongRequestId,
    WrongOid,
    /// 3,000 datagrams of garbage for each request.
    Flood,
}

fn tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
}

fn integer(n: i64, out: &mut Vec<u8>) {
    let bytes = n.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(0x02, &bytes[start..], out);
}

/// A v2c GetResponse with `bindings` (OID bytes, encoded value).
fn response(request_id: i32, community: &[u8], bindings: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut list = Vec::new();
    for (oid, value) in bindings {
        let mut binding = Vec::new();
        tlv(0x06, oid, &mut binding);
        binding.extend_from_slice(value);
        tlv(0x30, &binding, &mut list);
    }
    let mut pdu = Vec::new();
    integer(i64::from(request_id), &mut pdu);
    integer(0, &mut pdu);
    integer(0, &mut pdu);
    tlv(0x30, &list, &mut pdu);
    let mut message = Vec::new();
    integer(1, &mut message);
    tlv(0x04, community, &mut message);
    tlv(0xa2, &pdu, &mut message);
    let mut out = Vec::new();
    tlv(0x30, &message, &mut out);
    out
}

struct HostileAgent {
    addr: SocketAddr,
    mode: Arc<Mutex<AgentMode>>,
    requests: Arc<Mutex<u64>>,
}

impl HostileAgent {
    fn start() -> HostileAgent {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(AgentMode::WrongType));
        let requests = Arc::new(Mutex::new(0));
        let (shared_mode, count) = (Arc::clone(&mode), Arc::clone(&requests));
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            let mut seed = 0x9e37_79b9_u32;
            // Bounded: the test ends long before.
            for _ in 0..100_000 {
                let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                *count.lock().unwrap() += 1;
                let Ok(pdu) = snmp2::Pdu::from_bytes(&buf[..len]) else {
                    continue;
                };
                let (id, community) = (pdu.req_id, pdu.community.to_vec());
                let asked: Vec<Vec<u8>> = pdu
                    .varbinds
                    .map(|(oid, _)| oid.as_bytes().to_vec())
                    .collect();
                let oid = asked.first().cloned().unwrap_or_default();
                let mut one = Vec::new();
                integer(1, &mut one);
                let good = response(id, &community, &[(&oid[..], one.clone())]);
                let mode = *shared_mode.lock().unwrap();
                let replies: Vec<Vec<u8>> = match mode {
                    AgentMode::WrongType => {
                        let mut text = Vec::new();
                        tlv(0x04, b"on", &mut text);
                        vec![response(id, &community, &[(&oid[..], text)])]
                    }
                    AgentMode::Truncated => vec![good[..good.len() / 2].to_vec()],
                    AgentMode::Oversize => {
                        let many: Vec<(&[u8], Vec<u8>)> =
                            (0..2500).map(|_| (&oid[..], one.clone())).collect();
                        vec![response(id, &community, &many)]
                    }
                    AgentMode::WrongRequestId => {
                        vec![response(
                            id.wrapping_add(1),
                            &community,
                            &[(&oid[..], one.clone())],
                        )]
                    }
                    AgentMode::WrongOid => {
                        // sysName.0
                        let sys_name = [0x2b, 6, 1, 2, 1, 1, 5, 0];
                        vec![response(id, &community, &[(&sys_name[..], one.clone())])]
                    }
                    AgentMode::Flood => (0..3000)
                        .map(|_| {
                            (0..(seed % 300) as usize + 1)
                                .map(|_| {
                                    seed ^= seed << 13;
                                    seed ^= seed >> 17;
                                    seed ^= seed << 5;
                                    seed as u8
                                })
                                .collect()
                        })
                        .collect(),
                };
                for reply in replies {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        HostileAgent {
            addr,
            mode,
            requests,
        }
    }

    fn set(&self, mode: AgentMode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn requests(&self) -> u64 {
        *self.requests.lock().unwrap()
    }
}

const OUTLET_CTL: &str = ".1.3.6.1.4.1.318.1.1.4.4.2.1.3";

/// An `snmpd` serving four APC outlets, as in `pdu_snmp.rs`.
struct Snmpd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Snmpd {
    fn start() -> Snmpd {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("apc-outlets");
        std::fs::write(&script, include_str!("data/apc-outlets.py")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("snmpd.conf");
        std::fs::write(
            &config,
            format!(
                "rocommunity public 127.0.0.1\nrwcommunity private 127.0.0.1\n\
                 pass_persist {OUTLET_CTL} {} {}\n",
                script.display(),
                dir.path().join("outlets").display()
            ),
        )
        .unwrap();
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let binary = ["/usr/sbin/snmpd", "/usr/local/sbin/snmpd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("snmpd"));
        let child = Command::new(binary)
            .args(["-f", "-Lo", "-C", "-c"])
            .arg(&config)
            .arg(format!("udp:127.0.0.1:{port}"))
            .env("SNMP_PERSISTENT_DIR", dir.path().join("persist"))
            .env("MIBS", "")
            .env("MIBDIRS", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start snmpd (install the Debian packages snmpd and snmp)");
        let snmpd = Snmpd {
            child,
            port,
            _dir: dir,
        };
        wait_for(Duration::from_secs(10), "snmpd answering", || {
            snmpd.snmp("snmpget", &[]).then_some(())
        });
        snmpd
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn snmp(&self, tool: &str, value: &[&str]) -> bool {
        run(
            Command::new(tool)
                .args(["-v2c", "-c", "private", "-t", "1", "-r", "0"])
                .arg(self.address())
                .arg(format!("{OUTLET_CTL}.1"))
                .args(value)
                .env("MIBS", ""),
            Duration::from_secs(5),
        )
        .0
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_pdu_config(dir: &Path, hostile: SocketAddr, real: &str) -> PathBuf {
    let path = dir.join("tinsel.toml");
    std::fs::write(
        &path,
        format!(
            "lights_poll_s = 1\n\
             [[pdu]]\nname = \"hostile\"\naddress = \"{hostile}\"\ncommunity = \"private\"\n\
             timeout_ms = 200\nretries = 1\n\
             [[pdu]]\nname = \"real\"\naddress = \"{real}\"\ncommunity = \"private\"\n\
             [[outlet]]\nname = \"bad-1\"\npdu = \"hostile\"\nindex = 1\n\
             [[outlet]]\nname = \"good-1\"\npdu = \"real\"\nindex = 1\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_hostile_snmp_agent_is_an_error_for_its_outlet_and_the_real_pdu_keeps_working() {
    let agent = HostileAgent::start();
    let snmpd = Snmpd::start();
    let dir = temp_dir("hostile-snmp");
    let config = write_pdu_config(&dir, agent.addr, &snmpd.address());
    let server = Server::start_in(dir.join("data"), &["--config", config.to_str().unwrap()]);
    wait_for(Duration::from_secs(15), "good-1 read as off", || {
        (outlet(&server, "good-1")["on"] == false).then_some(())
    });
    let baseline = server.rss_kib();
    let mut peak = baseline;

    let cases = [
        (AgentMode::WrongType, "is a string, not an integer"),
        (
            AgentMode::Truncated,
            "none answered the request (the last was a datagram that does not decode as SNMP)",
        ),
        (AgentMode::Oversize, "2 values for 1 OIDs"),
        (
            AgentMode::WrongRequestId,
            "none answered the request (the last was a response with another request id)",
        ),
        (
            AgentMode::WrongOid,
            "the answer names 1.3.6.1.2.1.1.5.0 where 1.3.6.1.4.1.318.1.1.4.4.2.1.3.1 was asked",
        ),
        (
            AgentMode::Flood,
            "datagrams in 0.4 s (2 tries of 0.2 s) but none answered",
        ),
    ];
    for (mode, want) in cases {
        let started = Instant::now();
        agent.set(mode);
        let error = wait_for(
            Duration::from_secs(15),
            &format!("bad-1's error for {mode:?}"),
            || {
                let bad = outlet(&server, "bad-1");
                bad["error"]
                    .as_str()
                    .filter(|e| e.contains(want))
                    .map(str::to_string)
            },
        );
        let good = outlet(&server, "good-1");
        let rss = server.rss_kib();
        peak = peak.max(rss);
        println!(
            "{mode:?}: in {:.1} s, RSS {rss} KiB: {error}",
            started.elapsed().as_secs_f64()
        );
        assert!(error.starts_with("PDU hostile ("), "{error}");
        assert_eq!(
            bad_on(&server),
            Value::Null,
            "the state is unknown, not guessed"
        );
        assert_eq!(
            (good["on"].clone(), good["error"].clone()),
            (Value::Bool(false), Value::Null),
            "{good}"
        );
        assert_eq!(server.get("/healthz").0, 200);
    }
    let flood = outlet(&server, "bad-1")["error"]
        .as_str()
        .unwrap()
        .to_string();
    let sent: u32 = flood
        .split(" sent ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Each try reads at most 1,000 of the 3,000 sent; the kernel may drop some.
    assert!(
        (2..=2000).contains(&sent),
        "at most 1,000 datagrams are read per try: {flood}"
    );

    // The real PDU still follows the hardware: switched at the PDU, seen here.
    assert!(snmpd.snmp("snmpset", &["i", "1"]), "snmpset");
    wait_for(Duration::from_secs(10), "good-1 on after the poll", || {
        (outlet(&server, "good-1")["on"] == true).then_some(())
    });
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l.contains("refused") && l.contains("MAX_DATAGRAMS_PER_TRY")),
        "the skipped datagrams are logged as refusals"
    );
    println!(
        "RSS baseline {baseline} KiB, peak {peak} KiB; the hostile agent got {} requests",
        agent.requests()
    );
    assert!(
        peak - baseline < 16 * 1024,
        "RSS grew from {baseline} KiB to {peak} KiB"
    );
    no_panics(&server);
}

fn bad_on(server: &Server) -> Value {
    outlet(server, "bad-1")["on"].clone()
}

#[test]
fn config_values_that_feed_arithmetic_are_bounded_with_a_clear_error() {
    let tinsel = || Command::new(env!("CARGO_BIN_EXE_tinsel"));
    let dir = temp_dir("bounds");
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["--admin-idle-timeout-min", "9223372036854775807"],
            "",
            "admin_idle_timeout_min = 9223372036854775807 is too large: it must be at most 43200",
        ),
        (
            &["--lights-poll-s", "18446744073709551615"],
            "",
            "lights_poll_s = 18446744073709551615 is too large: it must be at most 86400",
        ),
        (
            &["--relay-guard-window-s", "18446744073709551615"],
            "",
            "relay_guard_window_s = 18446744073709551615 is too large: it must be at most 86400",
        ),
        (
            &[],
            "[[pdu]]\nname = \"p\"\naddress = \"127.0.0.1:1\"\ncommunity = \"c\"\nretries = 4294967295\n",
            "pdu \"p\": retries = 4294967295 is too large: it must be at most 10",
        ),
        (
            &[],
            "[twitter]\nbearer_token = \"t\"\nquery = \"q\"\nmax_wait_s = 9223372036854775807\n",
            "[twitter] max_wait_s = 9223372036854775807 is out of range: use 1 to 86400",
        ),
    ];
    for (i, (flags, file, want)) in cases.into_iter().enumerate() {
        let config = dir.join(format!("case{i}.toml"));
        std::fs::write(&config, file).unwrap();
        let (ok, _, err) = run(
            tinsel()
                .args([
                    "serve",
                    "--http-listen",
                    "127.0.0.1:0",
                    "--rtmp-listen",
                    "127.0.0.1:0",
                ])
                .arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--config")
                .arg(&config)
                .args(flags),
            Duration::from_secs(10),
        );
        assert!(!ok, "{flags:?} {file:?} was accepted");
        assert!(err.contains(want), "{flags:?} {file:?}: {err}");
    }
}
