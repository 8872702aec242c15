//! The browser side of the player: feeds the [`Watchdog`] with what happens
//! (the server's live flag, frames shown, failures, network changes, the
//! visitor's pick) and starts or stops WebRTC, HLS and the embed as it says.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::HtmlVideoElement;

use super::watchdog::{Choice, Input, Mode, Watchdog};
use super::{hls, whep};

/// How often progress, stalls and latency are looked at.
const TICK: Duration = Duration::from_secs(1);

/// What the controller is given by the component.
pub struct Wiring {
    pub stream: String,
    pub video: HtmlVideoElement,
    pub live: Signal<bool>,
    pub choice: RwSignal<Choice>,
    pub mode: RwSignal<Option<Mode>>,
    pub latency: RwSignal<Option<f64>>,
}

enum Engine {
    Idle,
    WebRtc(whep::Session),
    Hls(hls::Session),
}

struct Controller {
    watchdog: Watchdog,
    wiring: Wiring,
    engine: Engine,
    /// Bumped on every switch, so a late failure of an old engine is ignored.
    generation: u32,
    /// Frames shown and playback position at the last tick.
    frames: u32,
    position: f64,
    me: Weak<RefCell<Controller>>,
}

/// Wires the player up; it runs until the page goes away.
pub fn start(wiring: Wiring) {
    let Wiring { live, choice, .. } = wiring;
    let controller = Rc::new_cyclic(|me| {
        RefCell::new(Controller {
            watchdog: Watchdog::new(choice.get_untracked()),
            wiring,
            engine: Engine::Idle,
            generation: 0,
            frames: 0,
            position: 0.0,
            me: me.clone(),
        })
    });

    let c = Rc::clone(&controller);
    Effect::new(move |_| {
        let live = live.get();
        c.borrow_mut().input(Input::Live(live));
    });
    let c = Rc::clone(&controller);
    Effect::new(move |previous: Option<Choice>| {
        let picked = choice.get();
        if previous.is_some_and(|p| p != picked) {
            c.borrow_mut().input(Input::Choose(picked));
        }
        picked
    });

    let c = Rc::clone(&controller);
    let ticker = set_interval_with_handle(move || c.borrow_mut().tick(), TICK).ok();
    let c = Rc::clone(&controller);
    let online = window_event_listener(leptos::ev::online, move |_| {
        c.borrow_mut().input(Input::NetworkChanged)
    });
    // A phone moving from Wi-Fi to mobile data: the Network Information API,
    // where the browser has it.
    let c = Rc::clone(&controller);
    let on_change =
        Closure::<dyn FnMut()>::new(move || c.borrow_mut().input(Input::NetworkChanged));
    let connection = js_sys::Reflect::get(&window().navigator(), &"connection".into())
        .ok()
        .and_then(|c| c.dyn_into::<web_sys::EventTarget>().ok());
    if let Some(connection) = &connection {
        let _ = connection
            .add_event_listener_with_callback("change", on_change.as_ref().unchecked_ref());
    }

    let teardown = send_wrapper::SendWrapper::new((controller, on_change, connection));
    on_cleanup(move || {
        let (controller, on_change, connection) = teardown.take();
        if let Some(ticker) = ticker {
            ticker.clear();
        }
        online.remove();
        if let Some(connection) = connection {
            let _ = connection
                .remove_event_listener_with_callback("change", on_change.as_ref().unchecked_ref());
        }
        controller.borrow_mut().stop();
    });
}

impl Controller {
    fn now() -> Duration {
        let ms = window().performance().map_or(0.0, |p| p.now());
        Duration::from_secs_f64(ms / 1000.0)
    }

    fn input(&mut self, input: Input) {
        if let Some(mode) = self.watchdog.handle_input(input, Self::now()) {
            self.switch(mode);
        }
    }

    fn tick(&mut self) {
        let video = &self.wiring.video;
        let frames = video.get_video_playback_quality().total_video_frames();
        let position = video.current_time();
        if matches!(self.engine, Engine::WebRtc(_) | Engine::Hls(_))
            && (frames > self.frames || position > self.position)
            && frames > 0
        {
            self.watchdog.handle_input(Input::Progress, Self::now());
        }
        self.frames = frames;
        self.position = position;
        if let Some(mode) = self.watchdog.handle_timeout(Self::now()) {
            self.switch(mode);
        }
        self.sample_latency();
    }

    fn sample_latency(&self) {
        let latency = self.wiring.latency;
        match &self.engine {
            Engine::Hls(session) => latency.set(session.latency()),
            Engine::WebRtc(_) => {
                let me = self.me.clone();
                let generation = self.generation;
                leptos::task::spawn_local(async move {
                    let Some(controller) = me.upgrade() else {
                        return;
                    };
                    let measured = match &controller.borrow().engine {
                        Engine::WebRtc(session) => session.latency(),
                        _ => return,
                    };
                    let value = measured.await;
                    if controller.borrow().generation == generation {
                        latency.set(value);
                    }
                });
            }
            Engine::Idle => latency.set(None),
        }
    }

    fn stop(&mut self) {
        match std::mem::replace(&mut self.engine, Engine::Idle) {
            Engine::Idle => {}
            Engine::WebRtc(session) => {
                session.close();
                self.wiring.video.set_src_object(None);
            }
            Engine::Hls(session) => session.close(),
        }
    }

    fn switch(&mut self, mode: Mode) {
        self.stop();
        self.generation += 1;
        self.frames = 0;
        self.position = 0.0;
        let generation = self.generation;
        let me = self.me.clone();
        // Failures are reported later, never from inside a switch.
        let on_fail: Rc<dyn Fn()> = Rc::new(move || {
            let me = me.clone();
            leptos::task::spawn_local(async move {
                if let Some(controller) = me.upgrade() {
                    let mut c = controller.borrow_mut();
                    if c.generation == generation {
                        c.input(Input::Failed);
                    }
                }
            });
        });
        let stream = &self.wiring.stream;
        let video = &self.wiring.video;
        self.engine = match mode {
            Mode::WebRtc => whep::Session::start(format!("/whep/{stream}"), video, on_fail)
                .map_or(Engine::Idle, Engine::WebRtc),
            Mode::Hls => Engine::Hls(hls::Session::start(
                format!("/hls/{stream}/index.m3u8"),
                video,
                on_fail,
            )),
            Mode::YouTube => Engine::Idle,
        };
        self.wiring.latency.set(None);
        self.wiring.mode.set(Some(mode));
    }
}
