//! The Grafana dashboard and the edges' autoscaling, over a real Prometheus
//! scraping an origin and two edges: every query of
//! `deploy/grafana/tinsel.json` is valid and finds its series, and a step of
//! RTMP viewers on the edges moves viewers per edge, and with it the replica
//! count the HorizontalPodAutoscaler's formula asks for, out and back in.

mod common;
#[path = "common/prometheus.rs"]
mod prometheus;

use std::time::{Duration, Instant};

use common::{Publisher, Server, wait_for};
use prometheus::Prometheus;
use tinsel_load::{run_many, summarize};

const SECRET: &str = "cluster-secret-for-the-tests-0123";

/// Viewers per edge the test's autoscaler aims at (the deployment's is 500:
/// deploy/kubernetes/autoscaling.yaml), so that the step below asks for one
/// edge more.
const TARGET: f64 = 40.0;
/// The edges running, as the autoscaler's `currentReplicas`.
const REPLICAS: u32 = 2;
/// The autoscaler's bounds for the test.
const MIN_REPLICAS: u32 = 1;
const MAX_REPLICAS: u32 = 10;
/// The RTMP viewers the step puts on each edge, and for how long.
const STEP: usize = 60;
const STEP_RAMP: Duration = Duration::from_secs(2);
const STEP_HOLD: Duration = Duration::from_secs(10);

/// What the autoscaler scales on: viewers per edge, as prometheus-adapter's
/// `sum by (namespace, pod) (tinsel_stream_viewers)` averaged over the pods.
const VIEWERS_PER_EDGE: &str =
    r#"sum(tinsel_stream_viewers{role="edge"}) / count(tinsel_ready{role="edge"})"#;

/// The replicas the HorizontalPodAutoscaler asks for (its algorithm, as
/// Kubernetes documents it): `ceil(currentReplicas × currentMetric /
/// target)`, no change while the ratio is within the 10 % tolerance, then
/// clamped to the bounds.
fn desired_replicas(current: u32, metric: f64, target: f64) -> u32 {
    let ratio = metric / target;
    if (ratio - 1.0).abs() <= 0.1 {
        return current;
    }
    let desired = (f64::from(current) * ratio).ceil() as u32;
    desired.clamp(MIN_REPLICAS, MAX_REPLICAS)
}

#[test]
fn the_hpa_formula_has_the_tolerance_and_the_bounds() {
    assert_eq!(desired_replicas(2, 60.0, 40.0), 3);
    assert_eq!(desired_replicas(2, 43.0, 40.0), 2, "within 10 %");
    assert_eq!(desired_replicas(2, 37.0, 40.0), 2, "within 10 %");
    assert_eq!(desired_replicas(2, 0.0, 40.0), MIN_REPLICAS);
    assert_eq!(desired_replicas(2, 4000.0, 40.0), MAX_REPLICAS);
}

/// An origin with a publisher, two edges pulling from it at once, and
/// Prometheus scraping the three.
struct Topology {
    origin: Server,
    edges: [Server; 2],
    _publisher: Publisher,
    prometheus: Prometheus,
}

impl Topology {
    fn start() -> Topology {
        let origin = Server::start(&["--cluster-secret", SECRET]);
        // A small picture: the test is about counting viewers, and the
        // machine encodes, serves and plays it all at once.
        let publisher =
            Publisher::start_with(&origin.publish_url(), &["-s", "640x360", "-b:v", "600k"]);
        origin.wait_live(true);
        let rtmp = format!("rtmp://{}", origin.rtmp);
        let http = format!("http://{}", origin.http);
        let edge = || {
            Server::start(&[
                "--cluster-secret",
                SECRET,
                "--origin",
                &rtmp,
                "--origin-http",
                &http,
                "--edge-pull",
                "always",
            ])
        };
        let edges = [edge(), edge()];
        for edge in &edges {
            edge.wait_live(true);
        }
        let addresses = [
            origin.http.to_string(),
            edges[0].http.to_string(),
            edges[1].http.to_string(),
        ];
        let prometheus = Prometheus::start_labelled(&[
            (&addresses[0], &[("role", "origin")]),
            (&addresses[1], &[("role", "edge")]),
            (&addresses[2], &[("role", "edge")]),
        ]);
        let health = wait_for(
            Duration::from_secs(30),
            "Prometheus to scrape the three nodes",
            || {
                prometheus
                    .targets_health()
                    .filter(|targets| targets.len() == 3)
                    .filter(|targets| targets.iter().all(|(health, _)| health != "unknown"))
            },
        );
        for (health, error) in &health {
            assert_eq!(health, "up", "a scrape failed: {error}");
        }
        Topology {
            origin,
            edges,
            _publisher: publisher,
            prometheus,
        }
    }

    /// Traffic for the counters that appear only once something happens:
    /// LL-HLS requests (plain and blocking) and a refused WHEP offer on the
    /// origin, and an admin's lights command there (the simulated PDU).
    fn touch_every_counter(&self) {
        let origin = &self.origin;
        let playlist = wait_for(Duration::from_secs(20), "the origin's playlist", || {
            let (status, body) = origin.get("/hls/tree/index.m3u8");
            (status == 200).then_some(body)
        });
        assert!(playlist.contains("#EXTM3U"), "{playlist}");
        let (status, body) = origin.get("/hls/tree/index.m3u8?_HLS_msn=0");
        assert_eq!(
            status, 200,
            "a blocking reload of a segment already out: {body}"
        );
        let offer = ureq::post(&format!("http://{}/whep/tree", origin.http))
            .set("Content-Type", "application/sdp")
            .timeout(Duration::from_secs(10))
            .send_string("v=0\r\n");
        assert!(
            matches!(offer, Err(ureq::Error::Status(400..=499, _))),
            "a broken offer is refused: {offer:?}"
        );
        let (status, body) = origin.admin_post("/api/lights/outlet-1", r#"{"action":"on"}"#);
        assert_eq!(status, 200, "{body}");
    }

    /// The viewers per edge Prometheus has now.
    fn viewers_per_edge(&self) -> Option<f64> {
        self.prometheus.value(VIEWERS_PER_EDGE)
    }
}

/// Every panel target's PromQL in a Grafana dashboard, with its panel's
/// title, rows' panels included.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.to_string(), expr.to_string()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A dashboard query as Grafana sends it with every stream and instance
/// picked (`All` is the variables' `.*`) and a 5 s rate interval (four
/// scrapes of this Prometheus).
fn expand(expr: &str) -> String {
    [
        ("${stream}", ".*"),
        ("$stream", ".*"),
        ("${instance}", ".*"),
        ("$instance", ".*"),
        ("$__rate_interval", "5s"),
        ("$__interval", "5s"),
        ("$__range", "1m"),
    ]
    .iter()
    .fold(expr.to_string(), |expr, (variable, value)| {
        expr.replace(variable, value)
    })
}

#[test]
fn the_dashboard_queries_work_and_viewers_per_edge_scale_the_edges_out_and_in() {
    let started = Instant::now();
    let topology = Topology::start();
    let prometheus = &topology.prometheus;

    // The dashboard: every query valid, and every one finds series. Most
    // series are there from the start (zeros); the others are made here.
    topology.touch_every_counter();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/tinsel.json"
    ))
    .expect("the dashboard is in deploy/grafana");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 16, "only {} queries", queries.len());
    for variable in ["DS_PROMETHEUS", "instance", "stream"] {
        assert!(
            dashboard["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == variable),
            "no ${variable} variable"
        );
    }
    // A rate over a counter that appeared a moment ago needs two scrapes.
    let found = wait_for(
        Duration::from_secs(20),
        "every dashboard query to find its series",
        || {
            let mut found = Vec::new();
            for (title, expr) in &queries {
                let promql = expand(expr);
                assert!(!promql.contains('$'), "a variable left in {promql}");
                match prometheus.try_query(&promql) {
                    Err(err) => panic!("panel {title:?}: Prometheus refuses {promql}: {err}"),
                    Ok(Some(series)) if !series.is_empty() => found.push(series.len()),
                    Ok(_) => return None,
                }
            }
            Some(found)
        },
    );
    for ((title, _), series) in queries.iter().zip(&found) {
        println!("dashboard: {title:?}: {series} series");
    }

    // Before the step: nobody watches, and the autoscaler asks for no more
    // edges (it asks for fewer: the floor).
    let mut samples: Vec<(f64, f64, u32)> = Vec::new();
    let t0 = Instant::now();
    let sample = |samples: &mut Vec<(f64, f64, u32)>| -> Option<(f64, u32)> {
        let viewers = topology.viewers_per_edge()?;
        let desired = desired_replicas(REPLICAS, viewers, TARGET);
        samples.push((t0.elapsed().as_secs_f64(), viewers, desired));
        Some((viewers, desired))
    };
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let (viewers, desired) = wait_for(Duration::from_secs(10), "viewers per edge", || {
            sample(&mut samples)
        });
        assert_eq!(viewers, 0.0, "viewers per edge before the step");
        assert!(desired <= REPLICAS, "scaled out with nobody watching");
        std::thread::sleep(Duration::from_millis(500));
    }

    // The step: STEP RTMP viewers on each edge, on a runtime of their own
    // thread; the crowd ends by itself after STEP_RAMP + STEP_HOLD.
    let urls: Vec<String> = topology.edges.iter().map(Server::play_url).collect();
    let step_started = t0.elapsed().as_secs_f64();
    let crowd = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let crowds = urls
                .into_iter()
                .map(|url| async move { run_many(&url, STEP, STEP_RAMP, STEP_HOLD).await });
            join_all(crowds).await
        })
    });
    let peak = wait_for(
        STEP_RAMP + STEP_HOLD,
        "the autoscaler to ask for more edges",
        || {
            let (viewers, desired) = sample(&mut samples)?;
            std::thread::sleep(Duration::from_millis(500));
            (desired > REPLICAS && viewers >= 0.95 * STEP as f64).then_some((viewers, desired))
        },
    );
    wait_for(
        STEP_RAMP + STEP_HOLD + Duration::from_secs(15),
        "the crowd to end",
        || {
            sample(&mut samples);
            std::thread::sleep(Duration::from_millis(500));
            crowd.is_finished().then_some(())
        },
    );
    let reports = crowd.join().expect("the crowd's thread");
    let step_ended = t0.elapsed().as_secs_f64();

    // After it: the viewers count themselves out, and the autoscaler asks
    // for fewer edges again.
    let after = wait_for(
        Duration::from_secs(20),
        "the autoscaler to ask for fewer edges",
        || {
            let (viewers, desired) = sample(&mut samples)?;
            std::thread::sleep(Duration::from_millis(500));
            (desired < REPLICAS).then_some((viewers, desired))
        },
    );

    println!("t (s)  viewers per edge  desired edges (target {TARGET}, now {REPLICAS})");
    for (t, viewers, desired) in &samples {
        let mark = if (step_started..step_ended).contains(t) {
            "  step"
        } else {
            ""
        };
        println!("{t:5.1}  {viewers:16.1}  {desired:13}{mark}");
    }
    for (edge, reports) in reports.iter().enumerate() {
        let summary = summarize(reports, 30.0);
        println!(
            "edge {edge}: {} viewers, {} failed, {} keeping up",
            summary.viewers, summary.failed, summary.keeping_up
        );
        assert_eq!(
            summary.failed,
            0,
            "edge {edge}: {:?}",
            reports
                .iter()
                .filter_map(|r| r.error.as_ref())
                .collect::<Vec<_>>()
        );
    }
    let most = samples
        .iter()
        .map(|(_, viewers, _)| *viewers)
        .fold(0.0, f64::max);
    assert!(
        most <= STEP as f64,
        "{most} viewers per edge with {STEP} on each"
    );
    println!(
        "scale out at {:.0} viewers per edge to {} edges, back to {} at {:.0}; {:.1} s in all",
        peak.0,
        peak.1,
        after.1,
        after.0,
        started.elapsed().as_secs_f64()
    );
}

/// Awaits every future of `futures`, each on its own task, in order.
async fn join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("a crowd's task"));
    }
    out
}
