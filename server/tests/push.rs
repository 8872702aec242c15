//! Pushing the stream on, as to YouTube, tested against nginx-rtmp as the
//! target: ffprobe sees the stream there; the target is stopped and started
//! again and the push resumes by itself; the publisher leaves and comes back
//! and a fresh push starts.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Publisher, Server, probe_three_seconds, temp_dir, wait_for};

/// Where Debian's libnginx-mod-rtmp puts the module.
const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// nginx-rtmp on `port`, in the foreground, killed when dropped.
struct Nginx(Child);

impl Nginx {
    fn start(dir: &Path, port: u16) -> Nginx {
        let config = dir.join("nginx.conf");
        std::fs::write(
            &config,
            format!(
                "load_module {NGINX_RTMP_MODULE};\n\
                 master_process off;\ndaemon off;\n\
                 error_log {dir}/error.log;\npid {dir}/nginx.pid;\n\
                 events {{ worker_connections 64; }}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&config)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx runs (apt-get install nginx libnginx-mod-rtmp)");
        wait_for(Duration::from_secs(10), "nginx-rtmp to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Nginx(child)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn push_status(server: &Server) -> serde_json::Value {
    let (status, body) = server.admin_get("/api/push");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()[0].clone()
}

/// ffprobe reads the pushed stream from nginx: H.264 720p and AAC.
fn assert_target_plays(url: &str) {
    let (probe, out) = probe_three_seconds(
        url,
        &[
            "-show_entries",
            "stream=codec_type,codec_name,width,height,nb_read_frames",
        ],
    );
    let streams = probe["streams"].as_array().unwrap();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect(&out);
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .expect(&out);
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(audio["codec_name"], "aac");
    let frames: u64 = video["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(frames >= 30, "only {frames} frames in 3 s: {out}");
}

#[test]
fn the_stream_is_pushed_on_and_the_push_survives_the_target_restarting() {
    let port = free_port();
    let nginx_dir = temp_dir("nginx");
    let mut nginx = Nginx::start(&nginx_dir, port);
    let secret = "youtube-like-key-0123";
    let push = format!("rtmp://127.0.0.1:{port}/live/{secret}");
    let server = Server::start(&["--push", &push]);
    let mut publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);

    let target_url = format!("rtmp://127.0.0.1:{port}/live/{secret}");
    wait_for(Duration::from_secs(20), "the push to connect", || {
        (push_status(&server)["state"] == "live").then_some(())
    });
    assert_target_plays(&target_url);
    let status = push_status(&server);
    assert!(
        !status["target"].as_str().unwrap().contains(secret),
        "{status}"
    );
    assert!(status["bytes_sent"].as_u64().unwrap() > 100_000, "{status}");
    println!("pushed to nginx-rtmp: {status}");

    // The target goes away: the push says so and retries...
    drop(nginx);
    let failed = wait_for(Duration::from_secs(30), "the push to notice", || {
        let status = push_status(&server);
        (status["state"] == "retrying").then_some(status)
    });
    assert!(failed["last_error"].is_string(), "{failed}");
    println!("target stopped: {failed}");
    // ...and resumes by itself when it is back.
    nginx = Nginx::start(&nginx_dir, port);
    wait_for(Duration::from_secs(40), "the push to resume", || {
        (push_status(&server)["state"] == "live").then_some(())
    });
    assert_target_plays(&target_url);
    println!("target back: the push resumed and ffprobe reads it again");

    // The publisher leaves: the push ends; it comes back: a fresh push.
    publisher.kill();
    wait_for(
        Duration::from_secs(20),
        "the push to end with the publisher",
        || (push_status(&server)["state"] == "waiting").then_some(()),
    );
    let _publisher = Publisher::start(&server.publish_url());
    wait_for(Duration::from_secs(30), "a fresh push", || {
        (push_status(&server)["state"] == "live").then_some(())
    });
    assert_target_plays(&target_url);
    println!("publisher back: pushing again");
    drop(nginx);

    // The key never reaches the log.
    assert!(server.logs().iter().all(|line| !line.contains(secret)));
}
