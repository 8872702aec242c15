//! Many viewers, slow viewers and publisher restarts, seen from the project's
//! RTMP load tool.

mod common;

use std::time::{Duration, Instant};

use common::{Publisher, Server, wait_for};
use tinsel_load::{Track, Viewer, run_many, summarize};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn fifty_viewers_all_receive_the_stream() {
    let server = Server::start(&[]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    // A keyframe in the cache: the publisher sends one every 2 s.
    std::thread::sleep(Duration::from_millis(2500));

    let reports = runtime().block_on(run_many(
        &server.play_url(),
        50,
        Duration::from_secs(1),
        Duration::from_secs(6),
    ));
    let summary = summarize(&reports, 30.0);
    println!("50 viewers:\n{summary}");
    assert_eq!(
        summary.failed,
        0,
        "{:?}",
        reports
            .iter()
            .filter_map(|r| r.error.as_ref())
            .collect::<Vec<_>>()
    );
    assert!(reports.iter().all(|r| r.time_to_first_keyframe.is_some()
        && r.video_frames > 100
        && r.audio_frames > 100));
    assert_eq!(summary.keeping_up, 50, "every viewer keeps up");
    let ttfk = summary.ttfk_median.unwrap();
    assert!(
        ttfk < Duration::from_millis(500),
        "median time to first keyframe {ttfk:?}: the GOP cache starts viewers at once"
    );
    let behind = summary.behind_live_median.unwrap();
    assert!(
        behind < Duration::from_millis(300),
        "median behind live {behind:?}: the cached GOP is packed at the live edge"
    );
    // Each session counts itself out once it sees its socket close, a moment
    // after the load tool hangs up.
    wait_for(
        Duration::from_secs(10),
        "the RTMP viewer count back to 0 after the viewers leave",
        || (server.tree_status()["viewers"]["rtmp"] == 0).then_some(()),
    );
}

#[test]
fn viewer_keeps_receiving_across_a_publisher_restart_with_rising_timestamps() {
    let server = Server::start(&[]);
    let mut publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    let rt = runtime();
    rt.block_on(async {
        let mut viewer = Viewer::connect(&server.play_url(), Duration::from_secs(10))
            .await
            .unwrap();
        let mut last_ts = [None::<u32>, None::<u32>];
        let mut check = |media: &tinsel_load::Media| {
            let slot = &mut last_ts[matches!(media.track, Track::Audio) as usize];
            if let Some(prev) = *slot {
                assert!(
                    media.timestamp >= prev,
                    "timestamps go back: {prev} then {}",
                    media.timestamp
                );
            }
            *slot = Some(media.timestamp);
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut keyframes = 0;
        while keyframes < 1 {
            assert!(Instant::now() < deadline, "no keyframe before the restart");
            let media = tokio::time::timeout(Duration::from_secs(10), viewer.next_media())
                .await
                .unwrap()
                .unwrap()
                .expect("connection open");
            check(&media);
            keyframes += usize::from(media.keyframe && !media.config);
        }
        publisher.kill();
        let _publisher = Publisher::start(&server.publish_url());
        // After the restart the same connection gets new codec configuration,
        // then a keyframe, then frames on.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut configs, mut after) = (0, 0);
        while after < 90 {
            assert!(
                Instant::now() < deadline,
                "only {after} frames after the restart"
            );
            let media = tokio::time::timeout(Duration::from_secs(15), viewer.next_media())
                .await
                .unwrap()
                .unwrap()
                .expect("the connection stays open");
            check(&media);
            if media.config {
                configs += 1;
            } else if configs > 0 {
                after += 1;
            }
        }
        println!(
            "same connection: {configs} configuration records and {after} frames after the restart"
        );
    });
}

#[test]
fn stalled_viewer_slows_nobody_and_is_dropped() {
    let server = Server::start(&["--viewer-stall-timeout-s", "3"]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    let rt = runtime();
    let rss_before = server.rss_kib();
    rt.block_on(async {
        // Connects and plays, then never reads again.
        let stalled = Viewer::connect(&server.play_url(), Duration::from_secs(10)).await.unwrap();
        let mut healthy = Viewer::connect(&server.play_url(), Duration::from_secs(10)).await.unwrap();
        let start = Instant::now();
        let mut frames = 0u64;
        let mut rss_peak = rss_before;
        let mut measuring_from = None;
        while start.elapsed() < Duration::from_secs(12) {
            let media = tokio::time::timeout(Duration::from_secs(5), healthy.next_media()).await.unwrap().unwrap().expect("open");
            if matches!(media.track, Track::Video) && !media.config {
                if measuring_from.is_none() && start.elapsed() > Duration::from_secs(2) {
                    measuring_from = Some(Instant::now());
                }
                if measuring_from.is_some() {
                    frames += 1;
                }
            }
            rss_peak = rss_peak.max(server.rss_kib());
        }
        let fps = frames as f64 / measuring_from.unwrap().elapsed().as_secs_f64();
        println!("healthy viewer: {fps:.1} fps while another stalled; server RSS {rss_before} KiB before, {rss_peak} KiB at most");
        assert!(fps > 27.0, "the healthy viewer got {fps:.1} fps of 30");
        assert!(rss_peak < rss_before + 64 * 1024, "memory grew from {rss_before} to {rss_peak} KiB");
        wait_for(Duration::from_secs(20), "the stalled viewer to be dropped", || {
            (server.tree_status()["viewers"]["rtmp"] == 1).then_some(())
        });
        assert!(server.logs().iter().any(|l| l.contains("RTMP player dropped")));
        drop(stalled);
    });
}
