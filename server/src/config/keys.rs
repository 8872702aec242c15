//! The config file's valid keys, read from the structs the file is parsed
//! into, and the check that refuses any other key with the nearest valid one.
//!
//! serde's `deny_unknown_fields` cannot guard [`RawConfig`]: it flattens each
//! module's limits struct (shared with clap), and serde gives unknown keys of a
//! struct with flattened parts to nobody and to no error. So the valid names
//! come from the structs' JSON schemas (`schemars`, which follows `flatten`,
//! `rename` and `transparent` as serde does), and the parsed file is walked
//! against them before it is deserialized. A field added to any raw struct is
//! a valid key at once; nothing here lists names by hand.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::Value;
use toml::de::{DeTable, DeValue};

use super::RawConfig;

/// The keys one table may hold, each with the keys of the table (or array of
/// tables) it opens, if any.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyTree {
    keys: BTreeMap<String, KeyTree>,
}

impl KeyTree {
    /// The tree of [`RawConfig`], the whole file.
    pub fn of_config() -> Self {
        let schema = schemars::schema_for!(RawConfig);
        let root = schema.as_value();
        let mut tree = KeyTree::default();
        tree.add(root, root, 0);
        tree
    }

    /// Adds the properties of `schema`, following `$ref`, `anyOf` (what an
    /// `Option` becomes), `allOf` and array items. `depth` stops a
    /// self-referencing schema, which the raw structs never are.
    fn add(&mut self, schema: &Value, root: &Value, depth: usize) {
        if depth > 16 {
            return;
        }
        if let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            && let Some(def) = root.get("$defs").and_then(|defs| defs.get(name))
        {
            self.add(def, root, depth + 1);
        }
        for combinator in ["anyOf", "oneOf", "allOf"] {
            for part in schema
                .get(combinator)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.add(part, root, depth + 1);
            }
        }
        if let Some(items) = schema.get("items") {
            self.add(items, root, depth + 1);
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                self.keys
                    .entry(name.clone())
                    .or_default()
                    .add(property, root, depth + 1);
            }
        }
    }

    /// Every key path, tables first and then their keys (`twitter`,
    /// `twitter.blinks`), in name order.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect("", &mut out);
        out
    }

    fn collect(&self, prefix: &str, out: &mut Vec<String>) {
        for (name, child) in &self.keys {
            let path = format!("{prefix}{name}");
            out.push(path.clone());
            child.collect(&format!("{path}."), out);
        }
    }

    /// The first key of `table` (in file order) that is not in this tree.
    pub fn first_unknown(&self, table: &DeTable<'_>) -> Option<UnknownKey> {
        let mut found = Vec::new();
        self.unknown_in(table, "", &mut found);
        found.into_iter().min_by_key(|k| k.span.start)
    }

    fn unknown_in(&self, table: &DeTable<'_>, prefix: &str, found: &mut Vec<UnknownKey>) {
        for (key, value) in table {
            let name: &str = key.get_ref();
            let path = format!("{prefix}{name}");
            let Some(child) = self.keys.get(name) else {
                found.push(UnknownKey {
                    suggestion: self.nearest(name).map(|n| format!("{prefix}{n}")),
                    key: path,
                    span: key.span(),
                });
                continue;
            };
            let prefix = format!("{path}.");
            match value.get_ref() {
                DeValue::Table(inner) => child.unknown_in(inner, &prefix, found),
                DeValue::Array(items) => {
                    for item in items.iter() {
                        if let DeValue::Table(inner) = item.get_ref() {
                            child.unknown_in(inner, &prefix, found);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The valid name closest to `name`: fewest edits (a swap counts as one),
    /// then the longest common start.
    fn nearest(&self, name: &str) -> Option<&str> {
        self.keys
            .keys()
            .min_by(|a, b| {
                let distance = |c: &str| strsim::damerau_levenshtein(name, c);
                distance(a).cmp(&distance(b)).then_with(|| {
                    strsim::jaro_winkler(name, b)
                        .partial_cmp(&strsim::jaro_winkler(name, a))
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
            })
            .map(String::as_str)
    }
}

/// A key the file has and no struct reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// The full path, `pdu.adress`.
    pub key: String,
    /// The nearest valid key at the same place, full path.
    pub suggestion: Option<String>,
    /// Where the key is written, in bytes of the file.
    pub span: Range<usize>,
}

/// Every key the config file accepts, as a dotted path (`http_listen`,
/// `twitter.blinks`, `pdu.address`, `outlet.protected`); a table or array of
/// tables is listed too (`twitter`, `pdu`). Read from the code's own structs.
pub fn keys() -> Vec<String> {
    KeyTree::of_config().paths()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(text: &str) -> Option<UnknownKey> {
        let table = DeTable::parse(text).unwrap();
        KeyTree::of_config().first_unknown(table.get_ref())
    }

    #[test]
    fn keys_come_from_every_raw_struct_and_its_flattened_parts() {
        let keys = keys();
        for key in [
            "http_listen",
            "data_dir",
            "youtube_fallback",
            "stream",
            "stream.key",
            "twitter",
            "twitter.blinks",
            "pdu.address",
            "pdu.retries",
            "outlet.protected",
            "push.url",
            // Flattened limits structs:
            "rtmp_start_timeout_s",
            "http_max_body_bytes",
            "whep_max_sessions",
            "login_max_concurrent_hashes",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
        for not_a_key in ["streams", "pdus", "rtmp_limits", "http_limits", "pushes"] {
            assert!(!keys.iter().any(|k| k == not_a_key), "{not_a_key} listed");
        }
    }

    #[test]
    fn a_misspelled_key_gets_the_nearest_valid_one() {
        let found = unknown("http_lisen = \"[::]:8080\"\n").unwrap();
        assert_eq!(found.key, "http_lisen");
        assert_eq!(found.suggestion.as_deref(), Some("http_listen"));
        assert_eq!(found.span, 0..10);

        let found = unknown("data_dir = \"d\"\nyoutube_falback = \"x\"\n").unwrap();
        assert_eq!(found.suggestion.as_deref(), Some("youtube_fallback"));
        assert_eq!(found.span.start, 15);
    }

    #[test]
    fn tables_and_arrays_of_tables_are_checked_inside() {
        let cases = [
            ("[twitter]\nblink = 2\n", "twitter.blink", "twitter.blinks"),
            (
                "[[pdu]]\nname = \"p\"\nadress = \"x\"\n",
                "pdu.adress",
                "pdu.address",
            ),
            (
                "[[outlet]]\nname = \"o\"\nprotect = true\n",
                "outlet.protect",
                "outlet.protected",
            ),
            (
                "[[stream]]\nname = \"t\"\nkye = \"k\"\n",
                "stream.kye",
                "stream.key",
            ),
            ("[[push]]\nurls = \"x\"\n", "push.urls", "push.url"),
            (
                "push = [{ url = \"x\", steam = \"t\" }]\n",
                "push.steam",
                "push.stream",
            ),
        ];
        for (text, key, suggestion) in cases {
            let found = unknown(text).unwrap_or_else(|| panic!("nothing found in {text}"));
            assert_eq!(found.key, key, "{text}");
            assert_eq!(found.suggestion.as_deref(), Some(suggestion), "{text}");
        }
    }

    #[test]
    fn the_first_unknown_key_in_the_file_is_reported() {
        let found = unknown("zzz_b = 1\naaa_a = 2\n").unwrap();
        assert_eq!(found.key, "zzz_b");
    }

    #[test]
    fn a_valid_file_has_no_unknown_key() {
        let text = "rtmp_listen = \"[::]:1935\"\nrtmp_max_streams = 4\n\
                    [[stream]]\nname = \"tree\"\nkey = \"k\"\n\
                    [twitter]\nquery = \"q\"\noutlets = [\"a\"]\n\
                    [[pdu]]\nname = \"p\"\ncommunity = \"c\"\n\
                    [[outlet]]\nname = \"a\"\npdu = \"p\"\nindex = 1\n";
        assert_eq!(unknown(text), None);
    }
}
