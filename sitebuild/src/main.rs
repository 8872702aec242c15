//! Builds Tinsel's web app for the browser into `target/site`, where the
//! server finds it: the frontend compiled to WebAssembly with its JS glue, the
//! CSS, and the assets. The JS, WebAssembly and CSS get content-hashed names
//! that `hash.txt` lists, the file leptos reads to name them in the page.
//!
//! `cargo run --release -p sitebuild`; no arguments.

mod assets;
mod hashed;
mod style;
mod wasm;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

/// The name leptos gives the bundle's files (`LEPTOS_OUTPUT_NAME` in
/// `.cargo/config.toml`, `output_name` in the server's options).
pub const OUTPUT_NAME: &str = "tinsel";
/// The folder under the site the JS, WebAssembly and CSS go to (`/pkg/`).
pub const PKG_DIR: &str = "pkg";
/// The file leptos reads the hashes from (`hash_file` in the server's options).
pub const HASH_FILE: &str = "hash.txt";

/// Prints one progress line.
pub fn say(line: impl std::fmt::Display) {
    println!("sitebuild: {line}");
}

fn main() {
    if let Err(err) = run() {
        eprintln!("sitebuild: error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    if let Some(arg) = std::env::args().nth(1) {
        bail!(
            "unexpected argument {arg:?}: sitebuild takes none (run `cargo run --release -p sitebuild`)"
        );
    }
    let started = Instant::now();
    let root = workspace_root();
    let target = target_dir(&root);
    let site = target.join("site");
    // Everything is written beside the site and swapped in at the end, so a
    // failed build leaves the last good site (and no stale hashed files).
    let staging = target.join("site.partial");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    let pkg = staging.join(PKG_DIR);
    std::fs::create_dir_all(&pkg).with_context(|| format!("cannot create {}", pkg.display()))?;

    let bundle = wasm::build(&root, &target, &pkg)?;
    let css = style::build(&root.join("style/main.css"), &pkg)?;
    assets::copy(&root.join("frontend/assets"), &staging)?;
    let hashes = hashed::rename(&pkg, &bundle, &css)?;
    std::fs::write(staging.join(HASH_FILE), hashes.to_string())
        .with_context(|| format!("cannot write {}", staging.join(HASH_FILE).display()))?;

    if site.exists() {
        std::fs::remove_dir_all(&site)
            .with_context(|| format!("cannot remove the old {}", site.display()))?;
    }
    std::fs::rename(&staging, &site)
        .with_context(|| format!("cannot move {} to {}", staging.display(), site.display()))?;
    say(format_args!(
        "done in {:.0?}: {} (js {}, wasm {}, css {})",
        started.elapsed(),
        site.display(),
        hashes.js,
        hashes.wasm,
        hashes.css
    ));
    Ok(())
}

/// The workspace this tool belongs to: it builds no other.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sitebuild lives one folder below the workspace root")
        .to_path_buf()
}

/// Cargo's target folder: `CARGO_TARGET_DIR` when set, else `target/`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}
