//! The built web app (`cargo run --release -p sitebuild`): where the server
//! finds it, and the check at start that it is there, so that a missing one
//! stops the server with a message instead of serving a page that never loads.
//!
//! The folder holds `pkg/` (the JS, WebAssembly and CSS, with content hashes in
//! their names), the assets (`vendor/`), and `hash.txt`, which lists the
//! hashes; leptos reads it to name the files in every page.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The name leptos gives the bundle's files: `pkg/tinsel.<hash>.js` and so on.
pub const OUTPUT_NAME: &str = "tinsel";
pub const PKG_DIR: &str = "pkg";
pub const HASH_FILE: &str = "hash.txt";
/// The command that builds the web app, for the messages.
pub const BUILD_COMMAND: &str = "cargo run --release -p sitebuild";

#[derive(Debug, Error)]
#[error(
    "no web app in {dir}: {missing} is missing. Build it with `{BUILD_COMMAND}` \
     (it writes target/site), or point --site-dir at a built one"
)]
pub struct MissingWebApp {
    pub dir: PathBuf,
    pub missing: String,
}

/// Where the web app is when no flag or file says: the `site` folder beside
/// the binary (an installed copy), else `../site`, which is `target/site` for
/// `target/release/tinsel`, as the build lays them out.
pub fn default_dir() -> PathBuf {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_default();
    let beside = exe.parent().unwrap_or(Path::new("")).to_path_buf();
    let installed = beside.join("site");
    if installed.is_dir() {
        installed
    } else {
        beside.parent().unwrap_or(&beside).join("site")
    }
}

/// The hashed names of the files a page loads, from `hash.txt`.
#[derive(Debug, PartialEq, Eq)]
pub struct Bundle {
    pub js: String,
    pub wasm: String,
    pub css: String,
}

impl Bundle {
    /// # Errors
    /// `hash.txt` or one of the files it names is missing.
    pub fn find(dir: &Path) -> Result<Self, MissingWebApp> {
        let missing = |what: String| MissingWebApp {
            dir: dir.to_path_buf(),
            missing: what,
        };
        let hashes = std::fs::read_to_string(dir.join(HASH_FILE))
            .map_err(|_| missing(HASH_FILE.to_string()))?;
        let name = |kind: &str| {
            hashes
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(key, _)| key.trim() == kind)
                .map(|(_, hash)| format!("{OUTPUT_NAME}.{}.{kind}", hash.trim()))
                .ok_or_else(|| missing(format!("the {kind} line of {HASH_FILE}")))
        };
        let bundle = Bundle {
            js: name("js")?,
            wasm: name("wasm")?,
            css: name("css")?,
        };
        for file in [&bundle.js, &bundle.wasm, &bundle.css] {
            if !dir.join(PKG_DIR).join(file).is_file() {
                return Err(missing(format!("{PKG_DIR}/{file}")));
            }
        }
        Ok(bundle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_site_names_its_files_and_an_empty_one_says_what_to_run() {
        let dir = std::env::temp_dir().join(format!("tinsel-web-app-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(PKG_DIR)).unwrap();
        let err = Bundle::find(&dir).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains(BUILD_COMMAND), "{err}");

        std::fs::write(dir.join(HASH_FILE), "js: J\nwasm: W\ncss: C\n").unwrap();
        let err = Bundle::find(&dir).unwrap_err().to_string();
        assert!(err.contains("pkg/tinsel.J.js is missing"), "{err}");

        for file in ["tinsel.J.js", "tinsel.W.wasm", "tinsel.C.css"] {
            std::fs::write(dir.join(PKG_DIR).join(file), "").unwrap();
        }
        assert_eq!(
            Bundle::find(&dir).unwrap(),
            Bundle {
                js: "tinsel.J.js".into(),
                wasm: "tinsel.W.wasm".into(),
                css: "tinsel.C.css".into()
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
