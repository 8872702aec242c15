//! Each stream's LL-HLS state, shared between the task that feeds it and the
//! HTTP handlers that read it, with waiting for what does not exist yet
//! (blocking playlist reload and blocking part requests).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::playlist;
use super::segmenter::{Segmenter, SegmenterSettings};

/// How long a client counts as watching after its last playlist request.
const VIEWER_MEMORY: Duration = Duration::from_secs(15);

/// Every stream's HLS state, by name. Cheap to clone.
#[derive(Clone, Default)]
pub struct HlsStore {
    streams: Arc<HashMap<String, Arc<HlsStream>>>,
}

impl HlsStore {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, settings: &SegmenterSettings) -> Self {
        let first_msn = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let streams = names
            .into_iter()
            .map(|name| {
                (
                    name.to_string(),
                    Arc::new(HlsStream::new(settings.clone(), first_msn)),
                )
            })
            .collect();
        Self {
            streams: Arc::new(streams),
        }
    }

    pub fn stream(&self, name: &str) -> Option<&Arc<HlsStream>> {
        self.streams.get(name)
    }
}

/// What a request for a given segment and part can expect.
#[derive(Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not there yet, but it will be.
    Later,
    /// Further ahead than the server will wait for (RFC 8216bis 6.2.5.2: more
    /// than two segments past the last one, or a part more than the Advance
    /// Part Limit past the last part).
    TooFar,
}

/// RFC 8216bis 6.2.5.2: "The Advance Part Limit is three divided by the Part
/// Target Duration if the Part Target Duration is less than one second, or
/// three otherwise." Rounded up, so a player is never refused for rounding.
fn advance_part_limit(part_target: Duration) -> u64 {
    let millis = part_target.as_millis().max(1) as u64;
    if millis < 1000 {
        3000_u64.div_ceil(millis)
    } else {
        3
    }
}

/// How many parts past the last one written `(msn, part)` is, at least: the
/// parts of a segment not yet begun are all ahead of it.
fn parts_ahead(last: &super::segmenter::Segment, msn: u64, part: usize) -> u64 {
    // Saturating: a stranger's index may be `usize::MAX`.
    let parts_to_it = (part as u64).saturating_add(1);
    if msn < last.msn {
        0
    } else if msn == last.msn && !last.complete {
        // The part being written now has the index `part_count`.
        parts_to_it.saturating_sub(last.part_count as u64)
    } else {
        parts_to_it
    }
}

pub struct HlsStream {
    /// Written by the stream's HLS task only, once per frame; read by every
    /// request, which do not wait for each other.
    segmenter: RwLock<Segmenter>,
    /// The playlist as last written: made once per part, not once per request.
    playlist: Mutex<Option<Bytes>>,
    /// Bumped whenever a part or segment is added, to wake waiting requests.
    changes: watch::Sender<u64>,
    discontinuities_dropped: Mutex<u64>,
    viewers: Mutex<SeenViewers>,
}

/// When each client last fetched the playlist. Forgotten clients are swept
/// out at most once a second, not on every request: LL-HLS players ask
/// several times a second, and a sweep per request would cost every request
/// the whole audience.
#[derive(Default)]
struct SeenViewers {
    seen: HashMap<IpAddr, Instant>,
    swept: Option<Instant>,
}

impl HlsStream {
    fn new(settings: SegmenterSettings, first_msn: u64) -> Self {
        Self {
            segmenter: RwLock::new(Segmenter::new(settings, first_msn)),
            playlist: Mutex::new(None),
            changes: watch::channel(0).0,
            discontinuities_dropped: Mutex::new(0),
            viewers: Mutex::new(SeenViewers::default()),
        }
    }

    // The segmenter is left consistent between frames; a panic in one
    // frame's handling does not make it unusable.
    fn read(&self) -> RwLockReadGuard<'_, Segmenter> {
        self.segmenter.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Segmenter> {
        self.segmenter.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the segmenter and wakes waiting requests if it added a part.
    pub fn update(&self, f: impl FnOnce(&mut Segmenter)) {
        let (changed, lost) = {
            let mut segmenter = self.write();
            let before = progress(&segmenter);
            let dropped_before = discontinuities(&segmenter);
            f(&mut segmenter);
            (
                progress(&segmenter) != before,
                dropped_before.saturating_sub(discontinuities(&segmenter)),
            )
        };
        if !changed {
            return;
        }
        // Rendered once per part, under the read lock: requests for parts
        // and segments go on meanwhile.
        let text = {
            let segmenter = self.read();
            let mut dropped = self
                .discontinuities_dropped
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *dropped += lost;
            playlist::render(&segmenter, *dropped).map(Bytes::from)
        };
        *self.playlist.lock().unwrap_or_else(|p| p.into_inner()) = text;
        self.changes.send_modify(|n| *n += 1);
    }

    /// The current playlist, or `None` before the first complete segment.
    pub fn playlist(&self) -> Option<Bytes> {
        self.playlist
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn target_duration(&self) -> Duration {
        Duration::from_secs(playlist::target_duration(&self.read()))
    }

    pub fn part_target(&self) -> Duration {
        self.read().settings().part_target
    }

    pub fn init(&self, msn: u64) -> Option<Bytes> {
        self.read().init(msn).cloned()
    }

    /// A complete segment's parts, to be sent back to back.
    pub fn segment(&self, msn: u64) -> Option<Vec<Bytes>> {
        self.read()
            .segments()
            .iter()
            .find(|s| s.msn == msn && s.complete)
            .map(|s| s.chunks.clone())
    }

    pub fn part(&self, msn: u64, index: usize) -> Option<Bytes> {
        let segmenter = self.read();
        let segment = segmenter.segments().iter().find(|s| s.msn == msn)?;
        segment.parts.get(index).map(|p| p.bytes.clone())
    }

    /// Whether segment `msn` (and part `part` of it, if given) exists.
    pub fn readiness(&self, msn: u64, part: Option<usize>) -> Readiness {
        let segmenter = self.read();
        let segments = segmenter.segments();
        let next = segments
            .back()
            .map_or(0, |s| if s.complete { s.msn + 1 } else { s.msn });
        if segments.is_empty() || msn > next + 2 {
            return if segments.is_empty() {
                Readiness::Later
            } else {
                Readiness::TooFar
            };
        }
        if segments.front().is_some_and(|s| msn < s.msn) {
            return Readiness::Ready;
        }
        if let (Some(part), Some(last)) = (part, segments.back())
            && parts_ahead(last, msn, part) > advance_part_limit(segmenter.settings().part_target)
        {
            return Readiness::TooFar;
        }
        match segments.iter().find(|s| s.msn == msn) {
            Some(s) if s.complete => Readiness::Ready,
            Some(s) if part.is_some_and(|p| p < s.part_count) => Readiness::Ready,
            _ => Readiness::Later,
        }
    }

    /// Waits until `ready` holds or `timeout` passes; true if it holds.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&Self) -> bool,
    ) -> bool {
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if ready(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return ready(self),
            }
        }
    }

    /// Notes a client fetching the playlist.
    pub fn saw_viewer(&self, ip: IpAddr, now: Instant) {
        let mut viewers = self.viewers.lock().unwrap_or_else(|p| p.into_inner());
        viewers.seen.insert(ip, now);
        if viewers
            .swept
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            viewers
                .seen
                .retain(|_, at| now.duration_since(*at) < VIEWER_MEMORY);
            viewers.swept = Some(now);
        }
    }

    /// Clients that fetched the playlist lately.
    pub fn viewers(&self, now: Instant) -> usize {
        let viewers = self.viewers.lock().unwrap_or_else(|p| p.into_inner());
        viewers
            .seen
            .values()
            .filter(|at| now.duration_since(**at) < VIEWER_MEMORY)
            .count()
    }
}

fn progress(segmenter: &Segmenter) -> (u64, usize, bool) {
    segmenter
        .segments()
        .back()
        .map_or((0, 0, false), |s| (s.msn, s.part_count, s.complete))
}

fn discontinuities(segmenter: &Segmenter) -> u64 {
    segmenter
        .segments()
        .iter()
        .filter(|s| s.discontinuity)
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::segmenter::tests::{feed, started};

    fn stream_with(seconds: u64) -> HlsStream {
        let stream = HlsStream::new(SegmenterSettings::default(), 100);
        stream.update(|s| {
            *s = started();
            feed(s, 0, seconds);
        });
        stream
    }

    #[test]
    fn readiness_follows_the_spec() {
        let stream = stream_with(5);
        // Segments 100 and 101 complete, 102 being written.
        assert_eq!(stream.readiness(100, None), Readiness::Ready);
        assert_eq!(stream.readiness(102, Some(0)), Readiness::Ready);
        assert_eq!(stream.readiness(102, None), Readiness::Later);
        assert_eq!(stream.readiness(102, Some(5)), Readiness::Later);
        assert_eq!(stream.readiness(104, Some(0)), Readiness::Later);
        assert_eq!(stream.readiness(105, Some(0)), Readiness::TooFar);
    }

    #[test]
    fn a_part_past_the_advance_part_limit_is_too_far() {
        let stream = stream_with(5);
        let written = {
            let segmenter = stream.read();
            let last = segmenter.segments().back().unwrap();
            assert!(!last.complete, "the test needs a segment being written");
            (last.msn, last.part_count)
        };
        let (msn, count) = written;
        // A part target of 334 ms allows ceil(3 / 0.334) = 9 parts ahead.
        assert_eq!(advance_part_limit(Duration::from_millis(334)), 9);
        assert_eq!(advance_part_limit(Duration::from_secs(2)), 3);
        assert_eq!(stream.readiness(msn, Some(count + 8)), Readiness::Later);
        assert_eq!(stream.readiness(msn, Some(count + 9)), Readiness::TooFar);
        assert_eq!(stream.readiness(msn + 1, Some(8)), Readiness::Later);
        assert_eq!(stream.readiness(msn + 1, Some(9)), Readiness::TooFar);
        assert_eq!(stream.readiness(msn, Some(usize::MAX)), Readiness::TooFar);
        // Parts of segments already written are never too far.
        assert_eq!(
            stream.readiness(msn - 1, Some(usize::MAX)),
            Readiness::Ready
        );
    }

    #[tokio::test]
    async fn waiting_ends_when_the_part_arrives() {
        let stream = Arc::new(stream_with(5));
        let next = {
            let segmenter = stream.read();
            let current = segmenter.current().unwrap();
            (current.msn, current.part_count)
        };
        let waiter = {
            let stream = Arc::clone(&stream);
            tokio::spawn(async move {
                stream
                    .wait_until(Duration::from_secs(5), |s| {
                        s.readiness(next.0, Some(next.1)) == Readiness::Ready
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        stream.update(|s| feed(s, 5000, 1));
        assert!(waiter.await.unwrap(), "the waiting request was woken");
    }

    #[tokio::test]
    async fn waiting_gives_up_at_the_deadline() {
        let stream = stream_with(5);
        let started = tokio::time::Instant::now();
        assert!(
            !stream
                .wait_until(Duration::from_millis(50), |_| false)
                .await
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn viewers_are_forgotten_after_a_while() {
        let stream = stream_with(0);
        let now = Instant::now();
        stream.saw_viewer("127.0.0.1".parse().unwrap(), now);
        stream.saw_viewer("127.0.0.2".parse().unwrap(), now);
        assert_eq!(stream.viewers(now), 2);
        assert_eq!(stream.viewers(now + VIEWER_MEMORY), 0);
    }
}
