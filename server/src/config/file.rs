//! Reading the TOML config file: every failure as one line that names the
//! file, where in it, and what to do.
//!
//! The file is parsed twice, cheaply: once into spanned tables to find keys
//! no struct reads (see [`super::keys`]), once into [`RawConfig`]. Relative
//! paths in the file are taken from the file's folder, so the file means the
//! same whatever folder a command runs in.

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::keys::KeyTree;
use super::{ConfigError, RawConfig};

/// Reads and parses `path`.
///
/// # Errors
/// The file cannot be read, is not TOML, has a key no struct reads, or has a
/// value of the wrong type.
pub fn read(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
        path: path.to_path_buf(),
        reason: read_reason(&err),
    })?;
    let mut raw = parse(path, &text)?;
    let folder = path.parent().unwrap_or(Path::new(""));
    raw.data_dir = raw.data_dir.map(|dir| folder.join(dir));
    raw.site_dir = raw.site_dir.map(|dir| folder.join(dir));
    Ok(raw)
}

/// Parses the text of the file at `path` (which only names it in errors).
///
/// # Errors
/// As [`read`], but for reading.
pub fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    let table = DeTable::parse(text).map_err(|err| parse_error(path, text, &err))?;
    if let Some(unknown) = KeyTree::of_config().first_unknown(table.get_ref()) {
        let (line, _) = line_column(text, unknown.span.start);
        return Err(ConfigError::UnknownKey {
            path: path.to_path_buf(),
            line,
            key: unknown.key,
            suggestion: unknown
                .suggestion
                .map(|s| format!("; did you mean {s}?"))
                .unwrap_or_default(),
        });
    }
    toml::from_str(text).map_err(|err| parse_error(path, text, &err))
}

/// What went wrong reading, in words, with what to do about it.
fn read_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => {
            "no such file; create it (see README, \"Configuration\") or leave out --config".into()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied; let the user tinsel runs as read it".into()
        }
        std::io::ErrorKind::IsADirectory => "it is a folder; name the TOML file in it".into(),
        _ => format!("{err}; check that it is a readable text file"),
    }
}

fn parse_error(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
    // The message alone: the error's Display adds a snippet of the file over
    // several lines, which a one-line error has no room for.
    let mut message = err.message().trim().replace('\n', "; ");
    let table = DeTable::parse(text).ok();
    // A key of a flattened struct: serde has lost where it was, and toml
    // names the whole file.
    let whole_file = table.as_ref().map(|t| t.span());
    let at = match err.span().filter(|span| Some(span) != whole_file.as_ref()) {
        Some(span) => {
            if let Some(key) = table
                .as_ref()
                .and_then(|t| key_at(t.get_ref(), span.start, ""))
            {
                message = format!("{key}: {message}");
            }
            let (line, column) = line_column(text, span.start);
            format!(", line {line}, column {column}")
        }
        None => match table.as_ref().and_then(|t| failing_key(t.get_ref(), text)) {
            Some((key, offset)) => {
                message = format!("{key}: {message}");
                format!(", line {}", line_column(text, offset).0)
            }
            None => String::new(),
        },
    };
    ConfigError::Parse {
        path: path.to_path_buf(),
        at,
        message,
    }
}

/// The dotted path of the innermost key whose `key = value` holds `offset`.
fn key_at(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    table.iter().find_map(|(key, value)| {
        let path = format!("{prefix}{}", key.get_ref());
        let inner = format!("{path}.");
        let deeper = match value.get_ref() {
            DeValue::Table(t) => key_at(t, offset, &inner),
            DeValue::Array(items) => items.iter().find_map(|item| match item.get_ref() {
                DeValue::Table(t) => key_at(t, offset, &inner),
                _ => None,
            }),
            _ => None,
        };
        deeper.or_else(|| {
            (key.span().start <= offset && offset < value.span().end.max(key.span().end))
                .then_some(path)
        })
    })
}

/// The first top-level `key = value` that alone fails to deserialize, and
/// where it starts.
fn failing_key(table: &DeTable<'_>, text: &str) -> Option<(String, usize)> {
    let mut entries: Vec<_> = table
        .iter()
        .filter(|(_, value)| !matches!(value.get_ref(), DeValue::Table(_)))
        .collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries.into_iter().find_map(|(key, value)| {
        let entry = text.get(key.span().start..value.span().end)?;
        toml::from_str::<RawConfig>(entry)
            .is_err()
            .then(|| (key.get_ref().to_string(), key.span().start))
    })
}

/// The 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |start| start.chars().count())
        + 1;
    (line, column)
}

/// `path` made absolute against the working directory, for messages that
/// must work when copied into another folder's shell.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(Path::new("tinsel.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_keys_name_the_file_the_line_and_the_nearest_key() {
        assert_eq!(
            error("data_dir = \"d\"\nhttp_lisen = \"[::]:8080\"\n"),
            "config file tinsel.toml, line 2: unknown key http_lisen; did you mean http_listen?"
        );
        assert_eq!(
            error("[twitter]\nquery = \"q\"\nblink = 3\n"),
            "config file tinsel.toml, line 3: unknown key twitter.blink; did you mean twitter.blinks?"
        );
    }

    #[test]
    fn toml_errors_are_one_line_with_line_and_column() {
        let err = error("rtmp_listen = \"[::]:1935\"\nhttp_listen = 8080\n");
        assert!(
            err.starts_with(
                "config file tinsel.toml, line 2, column 15: http_listen: invalid type"
            ),
            "{err}"
        );
        let err = error("[[pdu]]\nname = \"p\"\nretries = \"many\"\n");
        assert!(
            err.contains("line 3, column 11: pdu.retries: invalid type"),
            "{err}"
        );
        // A key of a flattened limits struct: serde gives no place.
        let err = error("rtmp_listen = \"[::]:1935\"\nrtmp_max_streams = \"x\"\n");
        assert!(
            err.starts_with("config file tinsel.toml, line 2: rtmp_max_streams: invalid type"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        let err = error("[twitter\n");
        assert!(
            err.starts_with("config file tinsel.toml, line 1, column"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_missing_file_says_what_to_do() {
        let err = read(Path::new("/nonexistent/tinsel.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cannot read config file /nonexistent/tinsel.toml: no such file; create it \
             (see README, \"Configuration\") or leave out --config"
        );
    }

    #[test]
    fn data_dir_in_a_file_is_taken_from_the_file_folder() {
        let dir = std::env::temp_dir().join(format!("tinsel-file-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tinsel.toml");
        std::fs::write(&path, "data_dir = \"data\"\n").unwrap();
        assert_eq!(read(&path).unwrap().data_dir, Some(dir.join("data")));
        std::fs::write(&path, "data_dir = \"/srv/tinsel\"\n").unwrap();
        assert_eq!(
            read(&path).unwrap().data_dir,
            Some(PathBuf::from("/srv/tinsel"))
        );
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_column("ab\ncé = 1", 0), (1, 1));
        assert_eq!(line_column("ab\ncé = 1", 3), (2, 1));
        assert_eq!(line_column("ab\ncé = 1", 6), (2, 3));
    }
}
