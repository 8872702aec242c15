//! The stylesheet, minified and with vendor prefixes for the browsers
//! browserslist's "defaults" query names, as cargo-leptos made it before.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use lightningcss::stylesheet::{MinifyOptions, ParserOptions, PrinterOptions, StyleSheet};
use lightningcss::targets::{Browsers, Targets};

use crate::{OUTPUT_NAME, say};

const BROWSERS: &str = "defaults";

/// Writes `source`, processed, as `pkg/tinsel.css`.
pub fn build(source: &Path, pkg: &Path) -> anyhow::Result<PathBuf> {
    say(format_args!(
        "processing {} (lightningcss, browsers: {BROWSERS})",
        source.display()
    ));
    let css = std::fs::read_to_string(source)
        .with_context(|| format!("cannot read the stylesheet {}", source.display()))?;
    let browsers = Browsers::from_browserslist([BROWSERS])
        .map_err(|err| anyhow!("browserslist query {BROWSERS:?}: {err}"))?;
    let targets = Targets::from(browsers);
    let options = ParserOptions {
        filename: source.display().to_string(),
        ..ParserOptions::default()
    };
    let mut sheet = StyleSheet::parse(&css, options)
        .map_err(|err| anyhow!("{}: {err}: fix the CSS there", source.display()))?;
    sheet
        .minify(MinifyOptions {
            targets,
            ..MinifyOptions::default()
        })
        .map_err(|err| anyhow!("{}: {err}", source.display()))?;
    let printed = sheet
        .to_css(PrinterOptions {
            minify: true,
            targets,
            ..PrinterOptions::default()
        })
        .map_err(|err| anyhow!("{}: {err}", source.display()))?;
    let dest = pkg.join(format!("{OUTPUT_NAME}.css"));
    std::fs::write(&dest, printed.code)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(dest)
}
