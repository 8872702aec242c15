//! The admin panel at `/admin`: a login form without a session; with one, the
//! outlets and their buttons, schedules, the audit log, stream health, and the
//! outward links (pushes to YouTube, the tweet poller), refreshed every two
//! seconds.

pub mod api;
mod audit;
mod health;
mod links;
mod outlets;
mod schedules;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{AuditEntry, OutletState, StreamStatus};
use api::{Failure, PushView, Schedules, SessionInfo, TweetsView};

/// How often the panel asks for fresh state.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// What the panel shows, shared by its parts. Signals are `Copy`, so this is too.
#[derive(Clone, Copy)]
pub(crate) struct Panel {
    /// `None` when logged out (or the session expired).
    session: RwSignal<Option<SessionInfo>>,
    outlets: RwSignal<Vec<OutletState>>,
    audit: RwSignal<Vec<AuditEntry>>,
    schedules: RwSignal<Option<Schedules>>,
    streams: RwSignal<Vec<StreamStatus>>,
    pushes: RwSignal<Vec<PushView>>,
    tweets: RwSignal<Option<TweetsView>>,
    /// The last refusal or failure of something the admin did, in plain words.
    error: RwSignal<Option<String>>,
    /// Why the last refresh failed, if it did.
    stale: RwSignal<Option<String>>,
}

impl Panel {
    fn csrf(&self) -> String {
        self.session
            .with_untracked(|s| s.as_ref().map(|s| s.csrf_token.clone()))
            .unwrap_or_default()
    }

    /// Shows a failed action; a lost session brings back the login form.
    fn fail(&self, failure: Failure) {
        if failure.is_logged_out() {
            self.session.set(None);
        }
        self.error.set(Some(failure.message));
    }

    /// Fetches everything the panel shows, once.
    fn refresh(self) {
        spawn_local(async move {
            let lights = api::outlets().await;
            let audit = api::audit().await;
            let schedules = api::schedules().await;
            let streams = crate::api::streams().await;
            let pushes = api::pushes().await;
            let tweets = api::tweets().await;
            let mut stale = None;
            match lights {
                Ok(list) => self.outlets.set(list),
                Err(err) => stale = Some(err.message),
            }
            match audit {
                Ok(list) => self.audit.set(list),
                Err(err) if err.is_logged_out() => return self.session.set(None),
                Err(err) => stale = Some(err.message),
            }
            match schedules {
                Ok(list) => self.schedules.set(Some(list)),
                Err(err) => stale = Some(err.message),
            }
            match streams {
                Ok(list) => self.streams.set(list),
                Err(err) => stale = Some(err),
            }
            match pushes {
                Ok(list) => self.pushes.set(list),
                Err(err) => stale = Some(err.message),
            }
            match tweets {
                Ok(status) => self.tweets.set(Some(status)),
                Err(err) => stale = Some(err.message),
            }
            self.stale.set(stale);
        });
    }
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let panel = Panel {
        session: RwSignal::new(None),
        outlets: RwSignal::new(Vec::new()),
        audit: RwSignal::new(Vec::new()),
        schedules: RwSignal::new(None),
        streams: RwSignal::new(Vec::new()),
        pushes: RwSignal::new(Vec::new()),
        tweets: RwSignal::new(None),
        error: RwSignal::new(None),
        stale: RwSignal::new(None),
    };
    // Whether the browser has asked the server for a session yet.
    let checked = RwSignal::new(false);
    Effect::new(move |_| {
        // Runs in the browser only: effects do not run during server rendering.
        spawn_local(async move {
            panel.session.set(api::session().await.ok());
            checked.set(true);
        });
    });
    view! {
        <section class="admin">
            {move || {
                if !checked.get() {
                    view! { <p class="notice">"Checking your session…"</p> }.into_any()
                } else if panel.session.with(Option::is_none) {
                    view! { <LoginForm panel/> }.into_any()
                } else {
                    view! { <Dashboard panel/> }.into_any()
                }
            }}
        </section>
    }
    .into_any()
}

#[component]
fn LoginForm(panel: Panel) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let failure = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    // On a new install there is no account to log in with: say how to make one.
    let create_with = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        spawn_local(async move {
            if let Ok(info) = api::accounts().await {
                create_with.set(info.create_with.filter(|_| !info.exist));
            }
        });
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        pending.set(true);
        spawn_local(async move {
            match api::log_in(username.get_untracked(), password.get_untracked()).await {
                Ok(session) => {
                    panel.error.set(None);
                    panel.session.set(Some(session));
                }
                Err(err) => failure.set(Some(err.message)),
            }
            pending.set(false);
        });
    };
    view! {
        <form class="login" on:submit=submit>
            <h1>"Admin login"</h1>
            {move || create_with.get().map(|command| view! {
                <div class="notice first-admin">
                    <p>"No admin account exists yet. On the server, run this and type a password (8 characters or more):"</p>
                    <pre><code>{command}</code></pre>
                    <p>"Then log in here."</p>
                </div>
            })}
            {move || panel.error.get().map(|e| view! { <p class="notice error">{e}</p> })}
            <label>
                "Username"
                <input type="text" name="username" autocomplete="username" required
                    prop:value=move || username.get()
                    on:input=move |ev| username.set(event_target_value(&ev))/>
            </label>
            <label>
                "Password"
                <input type="password" name="password" autocomplete="current-password" required
                    prop:value=move || password.get()
                    on:input=move |ev| password.set(event_target_value(&ev))/>
            </label>
            <button type="submit" class="big" disabled=move || pending.get()>"Log in"</button>
            {move || failure.get().map(|e| view! { <p class="notice error" role="alert">{e}</p> })}
        </form>
    }
    .into_any()
}

#[component]
fn Dashboard(panel: Panel) -> impl IntoView {
    panel.error.set(None);
    panel.refresh();
    let handle = set_interval_with_handle(move || panel.refresh(), REFRESH).ok();
    on_cleanup(move || {
        if let Some(handle) = handle {
            handle.clear();
        }
    });
    let log_out = move |_| {
        spawn_local(async move {
            match api::log_out(panel.csrf()).await {
                Ok(()) => panel.session.set(None),
                Err(err) => panel.fail(err),
            }
        });
    };
    let who = move || {
        panel
            .session
            .with(|s| s.as_ref().map(|s| s.username.clone()))
    };
    view! {
        <header class="admin-bar">
            <h1>"Lights"</h1>
            <span class="who">"Logged in as "{who}</span>
            <button class="big" on:click=log_out>"Log out"</button>
        </header>
        {move || panel.error.get().map(|e| view! {
            <p class="notice error" role="alert">{e}</p>
        })}
        {move || panel.stale.get().map(|e| view! {
            <p class="notice stale">"Not up to date: "{e}</p>
        })}
        <outlets::Outlets panel/>
        <schedules::Schedules panel/>
        <health::Health panel/>
        <links::Links panel/>
        <audit::Audit panel/>
    }
    .into_any()
}
