//! Which way to play next: a pure state machine, fed with what happened and
//! the time, that answers which mode to (re)start. No browser in here, so it
//! is tested with plain `cargo test`.
//!
//! The ladder, lowest latency first: WebRTC, then LL-HLS, then the YouTube
//! embed, which is also what an offline stream shows. A mode that fails (ICE
//! failed, the server refused, no frame within [`START_TIMEOUT`], no new frame
//! for [`STALL_TIMEOUT`]) is skipped until something gives it a new chance: the
//! publisher coming back, a change of network, the visitor's pick, or
//! [`RETRY_LIVE`] spent on YouTube while the stream is live.

use std::time::Duration;

/// How the page plays the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    WebRtc,
    Hls,
    YouTube,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::WebRtc => "WebRTC",
            Mode::Hls => "HLS",
            Mode::YouTube => "YouTube",
        }
    }

    /// Plays the stream itself (not the fallback).
    pub fn is_live(self) -> bool {
        self != Mode::YouTube
    }
}

/// What the visitor asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Auto,
    Only(Mode),
}

/// Something that happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The server says the stream is live (and has video) or not.
    Live(bool),
    /// The current mode showed a new frame.
    Progress,
    /// The current mode cannot play: refused, ICE failed, a fatal player error.
    Failed,
    /// The device's network changed (`online`, a new connection type): a
    /// WebRTC path does not survive it, and a failed mode may work now.
    NetworkChanged,
    /// The visitor picked a mode, or Auto.
    Choose(Choice),
}

/// No first frame this long after starting a live mode: it failed.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// No new frame this long while playing: stalled, try the next mode.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(4);
/// A mode the visitor picked that failed is started again after this.
pub const RETRY_PICKED: Duration = Duration::from_secs(5);
/// On YouTube while the stream is live (everything else failed): try again.
pub const RETRY_LIVE: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Watchdog {
    choice: Choice,
    /// `None` until the server has said.
    live: Option<bool>,
    current: Option<Mode>,
    /// Modes that failed since their last chance.
    failed: Vec<Mode>,
    /// When the current mode started.
    started: Duration,
    /// When the current mode last showed a new frame.
    progress: Option<Duration>,
}

impl Watchdog {
    pub fn new(choice: Choice) -> Self {
        Self {
            choice,
            live: None,
            current: None,
            failed: Vec::new(),
            started: Duration::ZERO,
            progress: None,
        }
    }

    /// The mode playing now; `None` before the server said whether it is live.
    pub fn mode(&self) -> Option<Mode> {
        self.current
    }

    pub fn choice(&self) -> Choice {
        self.choice
    }

    /// Takes in what happened; answers the mode to start (again) now, if any.
    pub fn handle_input(&mut self, input: Input, now: Duration) -> Option<Mode> {
        match input {
            Input::Live(live) => {
                if live && self.live != Some(true) {
                    // The publisher is back: every live mode gets a new chance.
                    self.failed.clear();
                }
                self.live = Some(live);
                self.decide(now, false)
            }
            Input::Progress => {
                self.progress = Some(now);
                None
            }
            Input::Failed => self.fail(now),
            Input::NetworkChanged => {
                self.failed.clear();
                let restart = self.current.is_some_and(Mode::is_live);
                self.decide(now, restart)
            }
            Input::Choose(choice) => {
                self.choice = choice;
                self.failed.clear();
                self.decide(now, false)
            }
        }
    }

    /// Call about once a second: stalls and retries are found here.
    pub fn handle_timeout(&mut self, now: Duration) -> Option<Mode> {
        let current = self.current?;
        let since = now.saturating_sub(self.started);
        if current.is_live() {
            let stalled = match self.progress {
                None => since >= START_TIMEOUT,
                Some(at) => now.saturating_sub(at) >= STALL_TIMEOUT,
            };
            if stalled {
                return self.fail(now);
            }
            if self.failed.contains(&current) && since >= RETRY_PICKED {
                return self.decide(now, true);
            }
        } else if self.live == Some(true) && since >= RETRY_LIVE {
            self.failed.clear();
            return self.decide(now, false);
        }
        None
    }

    fn fail(&mut self, now: Duration) -> Option<Mode> {
        let current = self.current?;
        if current.is_live() && !self.failed.contains(&current) {
            self.failed.push(current);
        }
        match self.choice {
            // The visitor's pick stays; it is retried after a pause.
            Choice::Only(mode) if mode == current => {
                self.started = now;
                self.progress = None;
                None
            }
            _ => self.decide(now, false),
        }
    }

    /// Which mode should play now.
    fn target(&self) -> Option<Mode> {
        match self.live? {
            false => Some(Mode::YouTube),
            true => match self.choice {
                Choice::Only(mode) => Some(mode),
                Choice::Auto => [Mode::WebRtc, Mode::Hls]
                    .into_iter()
                    .find(|m| !self.failed.contains(m))
                    .or(Some(Mode::YouTube)),
            },
        }
    }

    fn decide(&mut self, now: Duration, restart: bool) -> Option<Mode> {
        let target = self.target()?;
        if Some(target) == self.current && !restart {
            return None;
        }
        if restart {
            self.failed.retain(|m| *m != target);
        }
        self.current = Some(target);
        self.started = now;
        self.progress = None;
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn live_auto() -> Watchdog {
        let mut w = Watchdog::new(Choice::Auto);
        assert_eq!(w.handle_input(Input::Live(true), s(0)), Some(Mode::WebRtc));
        w
    }

    #[test]
    fn waits_for_the_server_then_starts_with_webrtc() {
        let mut w = Watchdog::new(Choice::Auto);
        assert_eq!(w.handle_timeout(s(30)), None);
        assert_eq!(w.mode(), None);
        assert_eq!(w.handle_input(Input::Live(true), s(31)), Some(Mode::WebRtc));
        assert_eq!(
            w.handle_input(Input::Live(true), s(32)),
            None,
            "no restart on a repeated status"
        );
    }

    #[test]
    fn offline_shows_youtube_and_the_publisher_coming_back_plays_live() {
        let mut w = Watchdog::new(Choice::Auto);
        assert_eq!(
            w.handle_input(Input::Live(false), s(0)),
            Some(Mode::YouTube)
        );
        assert_eq!(w.handle_timeout(s(60)), None, "no retries while offline");
        assert_eq!(w.handle_input(Input::Live(true), s(61)), Some(Mode::WebRtc));
        assert_eq!(
            w.handle_input(Input::Live(false), s(70)),
            Some(Mode::YouTube)
        );
    }

    #[test]
    fn ice_failure_falls_back_to_hls_then_youtube() {
        let mut w = live_auto();
        assert_eq!(w.handle_input(Input::Failed, s(3)), Some(Mode::Hls));
        assert_eq!(w.handle_input(Input::Failed, s(5)), Some(Mode::YouTube));
        assert_eq!(
            w.handle_input(Input::Failed, s(6)),
            None,
            "YouTube is the floor"
        );
    }

    #[test]
    fn no_first_frame_in_time_counts_as_failure() {
        let mut w = live_auto();
        assert_eq!(w.handle_timeout(START_TIMEOUT - s(1)), None);
        assert_eq!(w.handle_timeout(START_TIMEOUT), Some(Mode::Hls));
    }

    #[test]
    fn a_stall_moves_down_while_steady_frames_keep_the_mode() {
        let mut w = live_auto();
        for t in 1..30 {
            w.handle_input(Input::Progress, s(t));
            assert_eq!(w.handle_timeout(s(t)), None);
        }
        assert_eq!(w.handle_timeout(s(29) + STALL_TIMEOUT - s(1)), None);
        assert_eq!(w.handle_timeout(s(29) + STALL_TIMEOUT), Some(Mode::Hls));
    }

    #[test]
    fn youtube_while_live_retries_the_live_modes() {
        let mut w = live_auto();
        w.handle_input(Input::Failed, s(1));
        assert_eq!(w.handle_input(Input::Failed, s(2)), Some(Mode::YouTube));
        assert_eq!(w.handle_timeout(s(2) + RETRY_LIVE - s(1)), None);
        assert_eq!(w.handle_timeout(s(2) + RETRY_LIVE), Some(Mode::WebRtc));
    }

    #[test]
    fn a_network_change_restarts_webrtc_and_lifts_failures() {
        let mut w = live_auto();
        assert_eq!(
            w.handle_input(Input::NetworkChanged, s(5)),
            Some(Mode::WebRtc)
        );
        assert_eq!(w.handle_input(Input::Failed, s(6)), Some(Mode::Hls));
        assert_eq!(
            w.handle_input(Input::NetworkChanged, s(20)),
            Some(Mode::WebRtc)
        );
    }

    #[test]
    fn a_network_change_leaves_the_offline_embed_alone() {
        let mut w = Watchdog::new(Choice::Auto);
        w.handle_input(Input::Live(false), s(0));
        assert_eq!(w.handle_input(Input::NetworkChanged, s(1)), None);
    }

    #[test]
    fn the_visitors_pick_holds_and_is_retried() {
        let mut w = live_auto();
        assert_eq!(
            w.handle_input(Input::Choose(Choice::Only(Mode::Hls)), s(1)),
            Some(Mode::Hls)
        );
        assert_eq!(w.handle_input(Input::Failed, s(2)), None, "stays on HLS");
        assert_eq!(w.mode(), Some(Mode::Hls));
        assert_eq!(w.handle_timeout(s(2) + RETRY_PICKED), Some(Mode::Hls));
        assert_eq!(
            w.handle_input(Input::Choose(Choice::Only(Mode::YouTube)), s(20)),
            Some(Mode::YouTube)
        );
        assert_eq!(w.handle_timeout(s(200)), None, "a picked YouTube stays");
        assert_eq!(
            w.handle_input(Input::Choose(Choice::Auto), s(201)),
            Some(Mode::WebRtc)
        );
    }

    #[test]
    fn offline_beats_the_pick() {
        let mut w = Watchdog::new(Choice::Only(Mode::WebRtc));
        assert_eq!(
            w.handle_input(Input::Live(false), s(0)),
            Some(Mode::YouTube)
        );
        assert_eq!(w.handle_input(Input::Live(true), s(1)), Some(Mode::WebRtc));
    }
}
