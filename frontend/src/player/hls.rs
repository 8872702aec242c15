//! LL-HLS playback: hls.js (shipped with the app under `/vendor/`, loaded the
//! first time it is needed) where the browser has Media Source Extensions, the
//! browser's own HLS on Safari and iOS.

use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::HtmlVideoElement;

/// hls.js, light build (no subtitles, alternate audio or DRM: not needed here).
/// The version is in the name, so it may be cached for good.
const HLS_JS: &str = "/vendor/hls.light-1.7.4.min.js";
const NATIVE_TYPE: &str = "application/vnd.apple.mpegurl";

#[wasm_bindgen]
extern "C" {
    /// hls.js's player, the global `Hls` its script defines.
    type Hls;
    #[wasm_bindgen(constructor)]
    fn new(config: &JsValue) -> Hls;
    #[wasm_bindgen(static_method_of = Hls, js_name = isSupported)]
    fn is_supported() -> bool;
    #[wasm_bindgen(method, js_name = loadSource)]
    fn load_source(this: &Hls, url: &str);
    #[wasm_bindgen(method, js_name = attachMedia)]
    fn attach_media(this: &Hls, media: &HtmlVideoElement);
    #[wasm_bindgen(method)]
    fn on(this: &Hls, event: &str, callback: &js_sys::Function);
    #[wasm_bindgen(method)]
    fn destroy(this: &Hls);
    /// Seconds behind the live edge, hls.js's own estimate.
    #[wasm_bindgen(method, getter)]
    fn latency(this: &Hls) -> f64;
}

enum Engine {
    Starting,
    /// The callbacks live as long as the player that calls them.
    HlsJs {
        hls: Hls,
        _on_error: Closure<dyn FnMut(JsValue, JsValue)>,
    },
    Native {
        _on_error: Closure<dyn FnMut()>,
    },
}

pub struct Session {
    video: HtmlVideoElement,
    engine: Rc<std::cell::RefCell<Option<Engine>>>,
}

impl Session {
    /// Starts playing `url` (`/hls/NAME/index.m3u8`) into `video`; `on_fail`
    /// is called when it cannot.
    pub fn start(url: String, video: &HtmlVideoElement, on_fail: Rc<dyn Fn()>) -> Self {
        let engine = Rc::new(std::cell::RefCell::new(Some(Engine::Starting)));
        let session = Self {
            video: video.clone(),
            engine: Rc::clone(&engine),
        };
        let video = video.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let native = !video.can_play_type(NATIVE_TYPE).is_empty();
            // Safari plays LL-HLS best itself; elsewhere hls.js is the surer way.
            let started = if native && is_apple() {
                Ok(play_native(&url, &video, &on_fail))
            } else {
                match load_hls_js().await {
                    Ok(()) if Hls::is_supported() => Ok(play_hls_js(&url, &video, &on_fail)),
                    _ if native => Ok(play_native(&url, &video, &on_fail)),
                    Ok(()) => Err("this browser cannot play HLS".to_string()),
                    Err(err) => Err(err),
                }
            };
            let mut slot = engine.borrow_mut();
            match started {
                // Closed while hls.js was loading: undo at once.
                Ok(started) if slot.is_none() => stop(&video, &started),
                Ok(started) => *slot = Some(started),
                Err(err) => {
                    leptos::logging::warn!("HLS: {err}");
                    drop(slot);
                    on_fail();
                }
            }
        });
        session
    }

    pub fn close(&self) {
        if let Some(engine) = self.engine.borrow_mut().take() {
            stop(&self.video, &engine);
        }
    }

    /// Seconds behind live, when hls.js plays (the browser's own player does not say).
    pub fn latency(&self) -> Option<f64> {
        match self.engine.borrow().as_ref()? {
            Engine::HlsJs { hls, .. } => Some(hls.latency()).filter(|l| l.is_finite() && *l > 0.0),
            _ => None,
        }
    }
}

fn play_hls_js(url: &str, video: &HtmlVideoElement, on_fail: &Rc<dyn Fn()>) -> Engine {
    let config = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&config, &"lowLatencyMode".into(), &true.into());
    let _ = js_sys::Reflect::set(&config, &"backBufferLength".into(), &30.into());
    let hls = Hls::new(&config);
    let on_fail = Rc::clone(on_fail);
    let on_error = Closure::<dyn FnMut(JsValue, JsValue)>::new(move |_, data: JsValue| {
        let fatal = js_sys::Reflect::get(&data, &"fatal".into())
            .ok()
            .and_then(|f| f.as_bool())
            .unwrap_or(false);
        if fatal {
            on_fail();
        }
    });
    hls.on("hlsError", on_error.as_ref().unchecked_ref());
    hls.load_source(url);
    hls.attach_media(video);
    let _ = video.play();
    Engine::HlsJs {
        hls,
        _on_error: on_error,
    }
}

fn play_native(url: &str, video: &HtmlVideoElement, on_fail: &Rc<dyn Fn()>) -> Engine {
    let on_fail = Rc::clone(on_fail);
    let on_error = Closure::<dyn FnMut()>::new(move || on_fail());
    video.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    video.set_src(url);
    let _ = video.play();
    Engine::Native {
        _on_error: on_error,
    }
}

fn stop(video: &HtmlVideoElement, engine: &Engine) {
    match engine {
        Engine::Starting => {}
        Engine::HlsJs { hls, .. } => hls.destroy(),
        Engine::Native { .. } => {
            video.set_onerror(None);
            let _ = video.remove_attribute("src");
            video.load();
        }
    }
}

fn is_apple() -> bool {
    web_sys::window()
        .and_then(|w| js_sys::Reflect::get(&w.navigator(), &"vendor".into()).ok())
        .and_then(|v| v.as_string())
        .is_some_and(|v| v.starts_with("Apple"))
}

/// Adds hls.js's script to the page once; resolves when `Hls` exists.
async fn load_hls_js() -> Result<(), String> {
    let window = web_sys::window().ok_or("no window")?;
    if js_sys::Reflect::has(&window, &"Hls".into()).unwrap_or(false) {
        return Ok(());
    }
    let document = window.document().ok_or("no document")?;
    let script: web_sys::HtmlScriptElement = document
        .create_element("script")
        .map_err(|e| format!("{e:?}"))?
        .unchecked_into();
    script.set_src(HLS_JS);
    let loaded = js_sys::Promise::new(&mut |resolve, reject| {
        script.set_onload(Some(&resolve));
        script.set_onerror(Some(&reject));
    });
    document
        .head()
        .ok_or("no head")?
        .append_child(&script)
        .map_err(|e| format!("{e:?}"))?;
    JsFuture::from(loaded)
        .await
        .map_err(|_| format!("cannot load {HLS_JS}"))?;
    Ok(())
}
