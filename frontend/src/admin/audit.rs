//! The audit log: who did what to which outlet, newest first.

use leptos::prelude::*;

use super::Panel;

#[component]
pub(super) fn Audit(panel: Panel) -> impl IntoView {
    let rows = move || {
        panel
            .audit
            .get()
            .into_iter()
            .map(|entry| {
                let failed = !entry.result.starts_with("ok");
                view! {
                    <tr class:failed=failed>
                        <td>{entry.at}</td>
                        <td>{entry.source}</td>
                        <td>{entry.outlet}</td>
                        <td>{entry.action}</td>
                        <td>{entry.result}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <section class="audit">
            <h2>"Audit log"</h2>
            <div class="table-scroll">
                <table>
                    <thead>
                        <tr><th>"When (UTC)"</th><th>"Who"</th><th>"Outlet"</th><th>"Action"</th><th>"Result"</th></tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </section>
    }
    .into_any()
}
