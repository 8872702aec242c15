//! LL-HLS against real readers: ffmpeg decodes it, every URI it lists is
//! served, and blocking reload answers when the part exists.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Publisher, Server, run, wait_for};

fn get_with_headers(
    server: &Server,
    path: &str,
) -> (u16, String, Vec<u8>, Option<String>, Option<String>) {
    let url = format!("http://{}{path}", server.http);
    let response = match ureq::get(&url).timeout(Duration::from_secs(20)).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(err) => panic!("GET {path}: {err}"),
    };
    let status = response.status();
    let content_type = response.content_type().to_string();
    let cache = response.header("cache-control").map(str::to_string);
    let cors = response
        .header("access-control-allow-origin")
        .map(str::to_string);
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
    (status, content_type, body, cache, cors)
}

/// The `Content-Encoding` of `path` for a client that takes gzip and brotli.
fn content_encoding(server: &Server, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: tinsel\r\nAccept-Encoding: gzip, br\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let head = String::from_utf8_lossy(&answer[..answer.len().min(4096)]).to_string();
    let head = head.split("\r\n\r\n").next().unwrap_or_default();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-encoding")
            .then(|| value.trim().to_string())
    })
}

fn playlist(server: &Server) -> String {
    wait_for(
        Duration::from_secs(20),
        "a playlist with a complete segment",
        || {
            let (status, body) = server.get("/hls/tree/index.m3u8");
            (status == 200).then_some(body)
        },
    )
}

#[test]
fn ffmpeg_decodes_ten_seconds_of_the_hls_stream() {
    let server = Server::start(&[]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    playlist(&server);
    let url = format!("http://{}/hls/tree/index.m3u8", server.http);
    let (ok, _, err) = run(
        Command::new("ffmpeg").args(["-v", "error", "-i", &url, "-t", "10", "-f", "null", "-"]),
        Duration::from_secs(60),
    );
    assert!(ok && err.trim().is_empty(), "ffmpeg reading HLS: {err}");
    let (ok, out, err) = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
            "-of",
            "json",
            &url,
        ]),
        Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    let probe: serde_json::Value = serde_json::from_str(&out).unwrap();
    let streams = probe["streams"].as_array().unwrap();
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == 1280 && s["height"] == 720),
        "{out}"
    );
    assert!(streams.iter().any(|s| s["codec_name"] == "aac"), "{out}");
}

#[test]
fn playlist_has_the_low_latency_tags_and_every_uri_is_served() {
    let server = Server::start(&["--hls-part-target-ms", "334"]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    // Two complete segments: the keyframe interval is 2 s.
    let text = wait_for(Duration::from_secs(20), "two complete segments", || {
        let text = playlist(&server);
        (text.matches("#EXTINF:").count() >= 2).then_some(text)
    });
    println!("{text}");
    let (status, content_type, _, cache, cors) = get_with_headers(&server, "/hls/tree/index.m3u8");
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/vnd.apple.mpegurl")
    );
    assert_eq!(
        cache.as_deref(),
        Some("public, max-age=1"),
        "a playlist is never cached for long"
    );
    assert_eq!(
        cors.as_deref(),
        Some("*"),
        "players on other origins may read it"
    );

    for tag in [
        "#EXT-X-VERSION:",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002",
        "#EXT-X-PART-INF:PART-TARGET=0.334",
        "#EXT-X-MAP:URI=",
        "#EXT-X-PROGRAM-DATE-TIME:",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=",
    ] {
        assert!(text.contains(tag), "{tag} missing");
    }
    for line in text.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
        let duration: f64 = line["#EXT-X-PART:DURATION=".len()..]
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            duration <= 0.334,
            "a part of {duration} s is over the target: {line}"
        );
    }

    let uris: Vec<String> = text
        .lines()
        .filter_map(|line| {
            if line.starts_with("#EXT-X-PRELOAD-HINT") {
                None
            } else if let Some(start) = line.find("URI=\"") {
                Some(line[start + 5..].split('"').next().unwrap().to_string())
            } else if !line.starts_with('#') && !line.is_empty() {
                Some(line.to_string())
            } else {
                None
            }
        })
        .collect();
    assert!(
        uris.iter().any(|u| u.starts_with("init"))
            && uris.iter().any(|u| u.starts_with("seg"))
            && uris.iter().any(|u| u.starts_with("part"))
    );
    for uri in &uris {
        let (status, content_type, body, cache, _) =
            get_with_headers(&server, &format!("/hls/tree/{uri}"));
        assert_eq!(status, 200, "{uri}");
        assert_eq!(content_type, "video/mp4", "{uri}");
        assert_eq!(
            cache.as_deref(),
            Some("public, max-age=31536000, immutable"),
            "{uri}"
        );
        let kind = &body[4..8];
        assert!(
            kind == b"ftyp" || kind == b"moof",
            "{uri} starts with {:?}",
            String::from_utf8_lossy(kind)
        );
    }
    println!("served all {} URIs of the playlist", uris.len());
    // Text is compressed for clients that take it; media never is, it is
    // compressed video and audio already.
    assert!(content_encoding(&server, "/hls/tree/index.m3u8").is_some());
    for uri in &uris {
        assert_eq!(
            content_encoding(&server, &format!("/hls/tree/{uri}")),
            None,
            "{uri} is sent as it is"
        );
    }
    assert_eq!(
        server.tree_status()["viewers"]["hls"],
        1,
        "this client counts as one HLS viewer"
    );

    let (status, _, body, _, _) = get_with_headers(&server, "/hls/nope/index.m3u8");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
}

/// The playlist lists the part as complete (not only as the preload hint).
fn lists_part(playlist: &str, uri: &str) -> bool {
    playlist
        .lines()
        .any(|line| line.starts_with("#EXT-X-PART:") && line.contains(uri))
}

fn preload_hint(text: &str) -> (u64, usize) {
    let line = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .unwrap();
    let uri = line
        .split("URI=\"part")
        .nth(1)
        .unwrap()
        .trim_end_matches(".m4s\"");
    let (msn, index) = uri.split_once('.').unwrap();
    (msn.parse().unwrap(), index.parse().unwrap())
}

#[test]
fn blocking_reload_answers_when_the_part_exists_and_refuses_the_far_future() {
    let server = Server::start(&[]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    let mut delays = Vec::new();
    let mut text = playlist(&server);
    for _ in 0..10 {
        let (msn, part) = preload_hint(&text);
        let uri = format!("URI=\"part{msn}.{part}.m4s\"");
        // A second client polls without blocking, every 5 ms, to see when the
        // part appears; the blocking request should come back about then.
        let (seen, answered, body) = std::thread::scope(|scope| {
            let poller = scope.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    let (_, body) = server.get("/hls/tree/index.m3u8");
                    if lists_part(&body, &uri) {
                        return Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                None
            });
            let asked = Instant::now();
            let (status, body) = server.get(&format!(
                "/hls/tree/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"
            ));
            let answered = Instant::now();
            assert_eq!(status, 200, "{body}");
            assert!(
                lists_part(&body, &uri),
                "the answer lists part {msn}.{part}"
            );
            delays.push(answered - asked);
            (
                poller.join().unwrap().expect("the poller saw the part"),
                answered,
                body,
            )
        });
        let late = answered.saturating_duration_since(seen);
        delays.push(late);
        text = body;
    }
    let (waited, late): (Vec<_>, Vec<_>) = delays.chunks(2).map(|pair| (pair[0], pair[1])).unzip();
    let worst = *late.iter().max().unwrap();
    println!(
        "blocking reload: held {:?} ms; answered after the part appeared by {:?} ms (worst {worst:?})",
        waited.iter().map(Duration::as_millis).collect::<Vec<_>>(),
        late.iter().map(Duration::as_millis).collect::<Vec<_>>(),
    );
    assert!(
        worst < Duration::from_millis(334),
        "answered {worst:?} after the part was there"
    );
    assert!(
        waited.iter().any(|w| *w > Duration::from_millis(100)),
        "the server did hold requests"
    );

    let (msn, _) = preload_hint(&text);
    let asked = Instant::now();
    let (status, body) = server.get(&format!(
        "/hls/tree/index.m3u8?_HLS_msn={}&_HLS_part=0",
        msn + 10
    ));
    assert_eq!(status, 400, "{body}");
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "the far future fails fast: {:?}",
        asked.elapsed()
    );
    assert!(body.contains("ahead"), "{body}");
}

#[test]
fn publisher_restart_adds_a_discontinuity_and_offline_is_404() {
    let server = Server::start(&[]);
    let mut publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    playlist(&server);
    publisher.kill();
    server.wait_live(false);
    let (status, body) = server.get("/hls/tree/index.m3u8");
    assert_eq!(status, 404);
    assert!(body.contains("not live"), "{body}");

    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    let text = wait_for(
        Duration::from_secs(20),
        "a discontinuity and a segment after it",
        || {
            let (status, text) = server.get("/hls/tree/index.m3u8");
            let after = text.split("#EXT-X-DISCONTINUITY\n").nth(1)?;
            (status == 200 && after.contains("#EXTINF")).then_some(text)
        },
    );
    let maps = text.matches("#EXT-X-MAP:").count();
    assert_eq!(maps, 2, "a new init segment after the restart:\n{text}");
    let url = format!("http://{}/hls/tree/index.m3u8", server.http);
    let (ok, _, err) = run(
        Command::new("ffmpeg").args(["-v", "error", "-i", &url, "-t", "4", "-f", "null", "-"]),
        Duration::from_secs(60),
    );
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg after the restart: {err}"
    );
}
