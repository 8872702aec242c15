//! Content-hashed names for the JS, WebAssembly and CSS, so browsers may keep
//! them for good: `tinsel.<hash>.js` and so on, listed in `hash.txt` in the
//! format leptos's `HydrationScripts` and `HashedStylesheet` read.

use std::fmt;
use std::path::Path;

use anyhow::Context;
use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};

use crate::wasm::Bundle;
use crate::{OUTPUT_NAME, say};

/// The hash of each file, as it goes into its name.
pub struct Hashes {
    pub js: String,
    pub wasm: String,
    pub css: String,
}

impl fmt::Display for Hashes {
    /// The lines of `hash.txt`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "js: {}", self.js)?;
        writeln!(f, "wasm: {}", self.wasm)?;
        writeln!(f, "css: {}", self.css)
    }
}

/// Renames the bundle and the CSS in `pkg` to their hashed names.
pub fn rename(pkg: &Path, bundle: &Bundle, css: &Path) -> anyhow::Result<Hashes> {
    say("naming the files by their content");
    Ok(Hashes {
        js: rename_one(pkg, &bundle.js, "js")?,
        wasm: rename_one(pkg, &bundle.wasm, "wasm")?,
        css: rename_one(pkg, css, "css")?,
    })
}

fn rename_one(pkg: &Path, file: &Path, extension: &str) -> anyhow::Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let hash = content_hash(&bytes);
    let dest = pkg.join(format!("{OUTPUT_NAME}.{hash}.{extension}"));
    std::fs::rename(file, &dest)
        .with_context(|| format!("cannot rename {} to {}", file.display(), dest.display()))?;
    Ok(hash)
}

/// 128 bits of SHA-256 in URL-safe base64: 22 characters.
fn content_hash(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(&Sha256::digest(bytes)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_changes_with_the_content_and_fits_a_file_name() {
        let a = content_hash(b"body { color: red }");
        assert_eq!(a.len(), 22);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{a}"
        );
        assert_eq!(a, content_hash(b"body { color: red }"));
        assert_ne!(a, content_hash(b"body { color: blue }"));
    }
}
