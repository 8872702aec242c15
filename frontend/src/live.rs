//! The page's live feed: `/api/events` (server-sent events) into signals, so
//! the status, the viewer count and the lights change as the server says.
//! The browser's `EventSource` reconnects by itself after a drop.

use leptos::prelude::*;

use crate::api::{AuditEntry, OutletState, StreamStatus};

/// How many of the latest actions on the lights the page shows.
pub const ACTIONS_SHOWN: usize = 3;

#[derive(Clone, Copy)]
pub struct LiveFeed {
    pub status: RwSignal<StreamStatus>,
    /// `None` until the server has said.
    pub lights: RwSignal<Option<Vec<OutletState>>>,
    /// Newest first.
    pub actions: RwSignal<Vec<AuditEntry>>,
}

impl LiveFeed {
    pub fn new(status: StreamStatus) -> Self {
        Self {
            status: RwSignal::new(status),
            lights: RwSignal::new(None),
            actions: RwSignal::new(Vec::new()),
        }
    }

    /// Follows the stream's events until the page goes away.
    #[cfg(feature = "hydrate")]
    pub fn connect(self, stream: &str) {
        use wasm_bindgen::JsCast;
        use wasm_bindgen::prelude::Closure;
        use web_sys::{EventSource, MessageEvent};

        let url = format!("/api/events?stream={stream}");
        let Ok(source) = EventSource::new(&url) else {
            return;
        };
        fn listen<T: serde::de::DeserializeOwned + 'static>(
            source: &EventSource,
            name: &str,
            mut apply: impl FnMut(T) + 'static,
        ) -> Closure<dyn FnMut(MessageEvent)> {
            let callback = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let data = event.data().as_string().unwrap_or_default();
                match serde_json::from_str(&data) {
                    Ok(value) => apply(value),
                    Err(err) => leptos::logging::warn!("bad event from the server: {err}"),
                }
            });
            let _ =
                source.add_event_listener_with_callback(name, callback.as_ref().unchecked_ref());
            callback
        }
        let callbacks = (
            listen(&source, "stream", move |status| self.status.set(status)),
            listen(&source, "lights", move |lights| {
                self.lights.set(Some(lights))
            }),
            listen(&source, "action", move |entry: AuditEntry| {
                self.actions.update(|list| {
                    list.insert(0, entry);
                    list.truncate(ACTIONS_SHOWN);
                })
            }),
        );
        let source = send_wrapper::SendWrapper::new((source, callbacks));
        on_cleanup(move || source.0.close());
    }
}
