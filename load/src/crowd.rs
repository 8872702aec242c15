//! Watching a stream: one viewer for a fixed time ([`watch`]), or many
//! joining over a ramp ([`run_many`] for RTMP, [`run_crowd`] for any
//! [`Source`]). Every task ends by its deadline.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::report::{Tally, ViewerReport};
use crate::viewer::Viewer;
use crate::whep::{self, WhepClient, WhepError, WhepOptions};

/// What a crowd watches.
#[derive(Clone)]
pub enum Source {
    /// `rtmp://HOST[:PORT]/APP/STREAM`
    Rtmp(String),
    /// A WHEP endpoint, `http(s)://...`; the viewers share `client`.
    Whep {
        url: String,
        client: WhepClient,
        options: WhepOptions,
    },
}

impl Source {
    /// RTMP for an `rtmp://` URL, WHEP for `http://` and `https://`.
    ///
    /// # Errors
    ///
    /// For any other scheme, or when the HTTP client cannot be built.
    pub fn from_url(url: &str, options: WhepOptions) -> Result<Source, WhepError> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        match scheme.map(str::to_ascii_lowercase).as_deref() {
            Some("rtmp") => Ok(Source::Rtmp(url.to_string())),
            Some("http" | "https") => Ok(Source::Whep {
                url: url.to_string(),
                client: WhepClient::new()?,
                options,
            }),
            _ => Err(WhepError::BadUrl {
                url: url.to_string(),
                reason: "neither rtmp:// nor http(s)://".to_string(),
            }),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Source::Rtmp(url) | Source::Whep { url, .. } => url,
        }
    }

    pub fn is_whep(&self) -> bool {
        matches!(self, Source::Whep { .. })
    }

    /// One viewer until `deadline`.
    pub async fn watch_until(&self, deadline: Instant) -> ViewerReport {
        match self {
            Source::Rtmp(url) => watch_until(url, deadline).await,
            Source::Whep {
                url,
                client,
                options,
            } => whep::watch_until(client, url, *options, deadline).await,
        }
    }
}

/// How long past its deadline a viewer task may take to hand in its
/// report before it is written off; covers a busy runtime, nothing more.
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// Connects, plays and reads for `duration`, then reports. The connection
/// attempt counts against `duration` too.
pub async fn watch(url: &str, duration: Duration) -> ViewerReport {
    watch_until(url, Instant::now() + duration).await
}

/// Connects, plays and reads until `deadline`, then reports.
pub async fn watch_until(url: &str, deadline: Instant) -> ViewerReport {
    let timeout = deadline.saturating_duration_since(Instant::now());
    // `connect` bounds itself, and says at which stage it timed out.
    let mut viewer = match Viewer::connect(url, timeout).await {
        Ok(viewer) => viewer,
        Err(err) => return ViewerReport::failed(err.to_string()),
    };
    let mut tally = Tally::new(viewer.connected_at());
    let error = loop {
        match timeout_at(deadline, viewer.next_media()).await {
            Ok(Ok(Some(media))) => tally.record(&media),
            Ok(Ok(None)) => {
                let watched = viewer.connected_at().elapsed();
                break Some(format!(
                    "the server closed the connection after {:.1} s",
                    watched.as_secs_f64()
                ));
            }
            Ok(Err(err)) => break Some(err.to_string()),
            Err(_) => break None,
        }
    };
    // A viewer that left early is measured up to when it left.
    let end = if error.is_some() {
        std::time::Instant::now()
    } else {
        deadline.into_std()
    };
    tally.finish(end, error)
}

/// Starts `viewers` RTMP viewers spread evenly over `ramp`, each watching
/// until `ramp + duration` after the start, and returns their reports in
/// join order. Viewers run as tasks on the current runtime; dropping the
/// future aborts them.
pub async fn run_many(
    url: &str,
    viewers: usize,
    ramp: Duration,
    duration: Duration,
) -> Vec<ViewerReport> {
    run_crowd(&Source::Rtmp(url.to_string()), viewers, ramp, duration).await
}

/// [`run_many`] for any source.
pub async fn run_crowd(
    source: &Source,
    viewers: usize,
    ramp: Duration,
    duration: Duration,
) -> Vec<ViewerReport> {
    spread(viewers, ramp, duration, |deadline| {
        let source = source.clone();
        async move { source.watch_until(deadline).await }
    })
    .await
}

/// Runs `watch(deadline)` for `viewers` viewers joining evenly over `ramp`,
/// all with the deadline `ramp + duration` after the start.
async fn spread<F, Fut>(
    viewers: usize,
    ramp: Duration,
    duration: Duration,
    watch: F,
) -> Vec<ViewerReport>
where
    F: Fn(Instant) -> Fut,
    Fut: Future<Output = ViewerReport> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + ramp + duration;
    let mut tasks = JoinSet::new();
    for index in 0..viewers {
        let join_at = start + ramp.mul_f64(index as f64 / viewers as f64);
        let viewer = watch(deadline);
        tasks.spawn(async move {
            sleep_until(join_at).await;
            (index, viewer.await)
        });
    }
    let mut reports: Vec<Option<ViewerReport>> = vec![None; viewers];
    while let Ok(Some(joined)) = timeout_at(deadline + REPORT_GRACE, tasks.join_next()).await {
        match joined {
            Ok((index, report)) => reports[index] = Some(report),
            // Panics are bugs in this crate; the report slot stays empty
            // and says so below rather than taking the whole run down.
            Err(err) => eprintln!("viewer task failed: {err}"),
        }
    }
    tasks.abort_all();
    reports
        .into_iter()
        .map(|report| {
            report.unwrap_or_else(|| {
                ViewerReport::failed("did not report by its deadline".to_string())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_protocol() {
        let options = WhepOptions::default();
        let rtmp = Source::from_url("rtmp://127.0.0.1/live/tree", options).unwrap();
        assert!(!rtmp.is_whep());
        let whep = Source::from_url("http://127.0.0.1:8080/whep/tree", options).unwrap();
        assert!(whep.is_whep());
        assert_eq!(whep.url(), "http://127.0.0.1:8080/whep/tree");
        assert!(
            Source::from_url("HTTPS://example.org/whep/tree", options).is_ok_and(|s| s.is_whep())
        );
        assert!(Source::from_url("srt://127.0.0.1:9000", options).is_err());
        assert!(Source::from_url("127.0.0.1/live/tree", options).is_err());
    }

    #[tokio::test]
    async fn watch_reports_a_refused_connection_quickly() {
        // Bind then drop to find a port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = Instant::now();
        let report = watch(
            &format!("rtmp://127.0.0.1:{port}/live/tree"),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        let error = report.error.expect("a refused connection is an error");
        assert!(error.contains("could not reach"), "{error}");
    }

    #[tokio::test]
    async fn run_many_is_bounded_by_its_deadline_when_the_server_is_silent() {
        // Accepts connections and never answers the handshake.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let started = Instant::now();
        let reports = run_many(
            &format!("rtmp://127.0.0.1:{port}/live/tree"),
            3,
            Duration::from_millis(200),
            Duration::from_millis(300),
        )
        .await;
        let took = started.elapsed();
        server.abort();
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert_eq!(reports.len(), 3);
        for report in reports {
            let error = report.error.expect("no handshake is an error");
            assert!(error.contains("timed out"), "{error}");
        }
    }
}
