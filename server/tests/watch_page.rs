//! The watch page as the server renders it, again and again: each render
//! must give back all it took, or a season of page views fills the memory.

mod common;

use std::time::Instant;

use common::Server;

#[test]
fn rendering_the_watch_page_thousands_of_times_costs_no_memory() {
    const WARM_UP: usize = 500;
    const RENDERS: usize = 4000;
    let server = Server::start(&[]);
    let render = |n: usize| {
        for _ in 0..n {
            let (status, page) = server.get("/");
            assert_eq!(status, 200);
            assert!(page.contains("class=\"watch\""), "the watch page: {page}");
        }
    };
    render(WARM_UP);
    let before = server.rss_kib();
    let started = Instant::now();
    render(RENDERS);
    let took = started.elapsed();
    let after = server.rss_kib();
    let per_render = (after.saturating_sub(before) * 1024) as f64 / RENDERS as f64;
    println!(
        "{RENDERS} renders of / in {took:?}: RSS {before} KiB before, {after} KiB after \
         ({per_render:.0} bytes a render)"
    );
    // A leak of a kilobyte a render would be 4 MB here.
    assert!(
        after < before + 1024,
        "RSS grew from {before} to {after} KiB over {RENDERS} renders"
    );
}
