//! The HTML shell and the routes of the app.

use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use crate::admin::AdminPage;
use crate::watch::WatchPage;

/// The whole document, rendered on the server around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                // Both name the files by the hashes in the site's hash.txt.
                <HashedStylesheet options=options.clone() id="tinsel"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Tinsel: the tree, live"/>
        <Router>
            <header class="masthead">
                <a href="/" class="brand">"Tinsel"</a>
            </header>
            <main>
                <Routes fallback=|| view! { <p class="notice">"No such page."</p> }>
                    <Route path=path!("/") view=WatchPage/>
                    <Route path=path!("/watch/:name") view=WatchPage/>
                    <Route path=path!("/admin") view=AdminPage/>
                </Routes>
            </main>
        </Router>
    }
}
