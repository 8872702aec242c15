//! The assets folder, copied as it is into the site root. Its files carry
//! their version in their names (`vendor/hls.light-1.7.4.min.js`).

use std::path::Path;

use anyhow::Context;
use walkdir::WalkDir;

use crate::say;

pub fn copy(assets: &Path, site: &Path) -> anyhow::Result<()> {
    say(format_args!("copying {}", assets.display()));
    for entry in WalkDir::new(assets) {
        let entry = entry.with_context(|| format!("cannot read {}", assets.display()))?;
        let relative = entry
            .path()
            .strip_prefix(assets)
            .expect("walkdir stays below its root");
        let dest = site.join(relative);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest)
                .with_context(|| format!("cannot create {}", dest.display()))?;
        } else {
            std::fs::copy(entry.path(), &dest).with_context(|| {
                format!(
                    "cannot copy {} to {}",
                    entry.path().display(),
                    dest.display()
                )
            })?;
        }
    }
    Ok(())
}
