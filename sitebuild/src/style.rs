//! The stylesheet, copied as written.
//!
//! It is not minified: minifying it (lightningcss, as cargo-leptos did) saved
//! 500 bytes of 3.3 KB once gzipped, and compiling the minifier was a minute
//! and a half of every first build. Nothing needs vendor prefixes either: for
//! browserslist's "defaults" the minifier added none.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::{OUTPUT_NAME, say};

/// Writes `source` as `pkg/tinsel.css`.
pub fn build(source: &Path, pkg: &Path) -> anyhow::Result<PathBuf> {
    say(format_args!("copying the stylesheet {}", source.display()));
    let dest = pkg.join(format!("{OUTPUT_NAME}.css"));
    std::fs::copy(source, &dest).with_context(|| {
        format!(
            "cannot copy the stylesheet {} to {}",
            source.display(),
            dest.display()
        )
    })?;
    Ok(dest)
}
