//! The frontend compiled for the browser, and wasm-bindgen's JS glue for it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use wasm_bindgen_cli_support::Bindgen;

use crate::{OUTPUT_NAME, say};

const TARGET: &str = "wasm32-unknown-unknown";
/// Small beats fast: see `[profile.wasm-release]` in the root `Cargo.toml`.
const PROFILE: &str = "wasm-release";
/// The cargo alias (`.cargo/config.toml`) that compiles the frontend for
/// [`TARGET`] with [`PROFILE`]: one definition for sitebuild and the scripts
/// that start the same build early.
const ALIAS: &str = "wasm-frontend";

/// What [`build`] wrote into the pkg folder.
pub struct Bundle {
    pub js: PathBuf,
    pub wasm: PathBuf,
}

/// Compiles `tinsel-frontend` with the `hydrate` feature and writes the
/// WebAssembly and its JS glue (wasm-bindgen's `web` target) into `pkg`.
pub fn build(root: &Path, target: &Path, pkg: &Path) -> anyhow::Result<Bundle> {
    check_target_installed()?;
    say(format_args!(
        "compiling the frontend for {TARGET} (profile {PROFILE})"
    ));
    // `cargo run` tells the program which cargo started it.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .arg(ALIAS)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("compiling the frontend failed (cargo's errors are above)");
    }
    let input = target
        .join(TARGET)
        .join(PROFILE)
        .join("tinsel_frontend.wasm");

    say("generating the JS glue (wasm-bindgen, web target)");
    let mut output = Bindgen::new()
        .input_path(&input)
        .out_name(OUTPUT_NAME)
        .web(true)?
        .typescript(false)
        .generate_output()
        .with_context(|| format!("wasm-bindgen cannot process {}", input.display()))?;
    output
        .emit(pkg)
        .with_context(|| format!("cannot write the bundle to {}", pkg.display()))?;
    Ok(Bundle {
        js: pkg.join(format!("{OUTPUT_NAME}.js")),
        wasm: pkg.join(format!("{OUTPUT_NAME}_bg.wasm")),
    })
}

/// Cargo's own message for a missing target is long and buried; this one says
/// what to run.
fn check_target_installed() -> anyhow::Result<()> {
    let out = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .context("cannot run rustc")?;
    let libdir = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !Path::new(libdir.trim()).is_dir() {
        bail!(
            "the Rust target {TARGET} is not installed: run `rustup target add {TARGET}` (or scripts/setup)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alias_builds_the_target_and_profile_sitebuild_reads() {
        let config = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../.cargo/config.toml"
        ))
        .unwrap();
        let line = config
            .lines()
            .find(|l| l.starts_with(&format!("{ALIAS} = ")))
            .expect("the alias is in .cargo/config.toml");
        for arg in [TARGET, PROFILE, "tinsel-frontend", "hydrate"] {
            assert!(line.contains(&format!("\"{arg}\"")), "{line} lacks {arg}");
        }
    }
}
