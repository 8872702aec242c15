//! The server finds its web app wherever it is started, and will not start
//! without one. Needs the built site (`cargo run --release -p sitebuild`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{LOOPBACK, Server, run, temp_dir};

/// The `/pkg/` files the page loads: the script, the WebAssembly, the CSS.
fn bundle_in(page: &str) -> Vec<String> {
    ["js", "wasm", "css"]
        .iter()
        .map(|kind| {
            let suffix = format!(".{kind}\"");
            page.split("\"/pkg/")
                .skip(1)
                .find_map(|rest| {
                    rest.find(&suffix)
                        .map(|end| format!("/pkg/{}.{kind}", &rest[..end]))
                })
                .unwrap_or_else(|| panic!("the page names no {kind} file:\n{page}"))
        })
        .collect()
}

fn assert_serves_the_watch_page(server: &Server) {
    let (status, page) = server.get("/");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Tinsel"), "{page}");
    for file in bundle_in(&page) {
        let (status, body) = server.get(&file);
        assert_eq!(status, 200, "{file}");
        assert!(!body.is_empty(), "{file} is empty");
    }
}

#[test]
fn started_from_the_root_folder_it_serves_the_watch_page_and_its_bundle() {
    let server = Server::start_from(Path::new("/"), &[]);
    assert_serves_the_watch_page(&server);
}

#[test]
fn a_relative_site_dir_in_a_config_file_is_the_files_neighbour() {
    let built = Path::new(env!("CARGO_BIN_EXE_tinsel"))
        .parent()
        .and_then(Path::parent)
        .expect("the binary is in target/<profile>/")
        .join("site");
    let folder = temp_dir("config-site");
    std::os::unix::fs::symlink(&built, folder.join("web")).unwrap();
    std::fs::write(folder.join("tinsel.toml"), "site_dir = \"web\"\n").unwrap();
    let config = folder.join("tinsel.toml");
    let server = Server::start_from(Path::new("/"), &["--config", config.to_str().unwrap()]);
    assert_serves_the_watch_page(&server);
}

#[test]
fn a_missing_web_app_stops_the_start_with_what_to_run() {
    let empty = temp_dir("no-site");
    let (ok, _, err) = run(
        Command::new(env!("CARGO_BIN_EXE_tinsel"))
            .arg("serve")
            .args(LOOPBACK)
            .args(["--stream", "tree=test-key-0123456789"])
            .arg("--data-dir")
            .arg(temp_dir("data"))
            .arg("--site-dir")
            .arg(&empty),
        Duration::from_secs(10),
    );
    assert!(!ok, "started without a web app: {err}");
    let line = err
        .lines()
        .find(|line| line.starts_with("tinsel: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(
        line.contains(&empty.display().to_string()),
        "names the folder: {line}"
    );
    assert!(
        line.contains("cargo run --release -p sitebuild"),
        "says what to run: {line}"
    );
    assert!(!err.contains("listening"), "bound its ports first: {err}");
}
