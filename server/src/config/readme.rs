//! The README's Configuration section against the code: every config key and
//! every command-line flag the binary takes is listed there, and nothing is
//! listed that the binary does not take. A key or flag added without its line
//! in the README (or a line left behind when one goes) fails the tests.
//!
//! The README's conventions, which these tests read: in "## Configuration",
//! a key is the backticked first cell of a table row; a table whose header's
//! first cell names a TOML table (`` `[twitter]` key ``) lists that table's
//! keys; flags are written `--flag` in "### The command line".

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::CommandFactory;

    use crate::config::{Cli, keys};

    const README: &str = include_str!("../../../README.md");

    /// The lines from the heading `start` to the next heading of its level
    /// or above.
    fn section(start: &str) -> Vec<&'static str> {
        let level = start.chars().take_while(|c| *c == '#').count();
        let mut lines = README.lines().skip_while(|line| *line != start);
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("README has {start:?}"));
        std::iter::once(first)
            .chain(lines.take_while(|line| {
                let hashes = line.chars().take_while(|c| *c == '#').count();
                !(1..=level).contains(&hashes) || !line[hashes..].starts_with(' ')
            }))
            .collect()
    }

    /// What is between the first pair of backticks in `cell`.
    fn backticked(cell: &str) -> Option<&str> {
        let (_, rest) = cell.split_once('`')?;
        Some(rest.split_once('`')?.0)
    }

    fn readme_keys() -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        // The TOML table of the rows that follow, "" for the top level; None
        // outside a key table.
        let mut table: Option<String> = None;
        for line in section("## Configuration") {
            let Some(row) = line.strip_prefix('|') else {
                table = None;
                continue;
            };
            let first = row.split('|').next().unwrap_or("").trim();
            if first.ends_with("key") {
                let name = backticked(first).map(|t| t.trim_matches(['[', ']']).to_string());
                table = Some(name.unwrap_or_default());
                continue;
            }
            let (Some(table), Some(key)) = (&table, backticked(first)) else {
                continue;
            };
            found.insert(if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            });
        }
        found
    }

    /// The code's keys that hold a value: a table's own name is not one.
    fn code_keys() -> BTreeSet<String> {
        let all = keys();
        all.iter()
            .filter(|key| !all.iter().any(|k| k.starts_with(&format!("{key}."))))
            .cloned()
            .collect()
    }

    #[test]
    fn every_config_key_is_in_the_readme_and_every_listed_key_exists() {
        let (readme, code) = (readme_keys(), code_keys());
        let missing: Vec<_> = code.difference(&readme).collect();
        let unknown: Vec<_> = readme.difference(&code).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "keys the README's Configuration tables do not list: {missing:?}; \
             keys they list that the config file does not take: {unknown:?}"
        );
    }

    fn code_flags() -> BTreeSet<String> {
        fn walk(command: &clap::Command, into: &mut BTreeSet<String>) {
            for arg in command.get_arguments() {
                if let Some(long) = arg.get_long()
                    && !matches!(long, "help" | "version")
                {
                    into.insert(format!("--{long}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, into);
            }
        }
        let mut flags = BTreeSet::new();
        walk(&Cli::command(), &mut flags);
        flags
    }

    fn readme_flags() -> BTreeSet<String> {
        let mut flags = BTreeSet::new();
        for line in section("### The command line") {
            let mut rest = line;
            while let Some(at) = rest.find("--") {
                let flag: String = rest[at + 2..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                    .collect();
                // A table's `| --- |` rule is no flag.
                if flag.starts_with(|c: char| c.is_ascii_lowercase()) {
                    flags.insert(format!("--{flag}"));
                }
                rest = &rest[at + 2..];
            }
        }
        flags.remove("--help");
        flags.remove("--version");
        flags
    }

    #[test]
    fn every_flag_is_in_the_readme_and_every_listed_flag_exists() {
        let (readme, code) = (readme_flags(), code_flags());
        let missing: Vec<_> = code.difference(&readme).collect();
        let unknown: Vec<_> = readme.difference(&code).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "flags \"The command line\" does not list: {missing:?}; \
             flags it lists that no command takes: {unknown:?}"
        );
    }

    #[test]
    fn the_readers_find_what_the_readme_holds() {
        let keys = readme_keys();
        for key in [
            "http_listen",
            "stream.key",
            "twitter.blinks",
            "outlet.protected",
        ] {
            assert!(keys.contains(key), "{key} in {keys:?}");
        }
        let flags = readme_flags();
        for flag in ["--http-listen", "--password-stdin", "--config"] {
            assert!(flags.contains(flag), "{flag} in {flags:?}");
        }
    }
}
