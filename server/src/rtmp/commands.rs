//! The NetConnection and NetStream commands a peer sends, read from their
//! AMF0 values, and the answers Tinsel gives (pure).
//!
//! A command is its name, a transaction id, a command object and arguments
//! (RTMP spec 1.0, 7.2). A stranger may send any of these missing or of the
//! wrong type; [`Command::parse`] turns what is there into a typed command and
//! leaves the rest `None`, and the session answers a missing required value
//! with an error, never a panic.
//!
//! The answers follow what OBS, FFmpeg (and so VLC and ffplay) and the
//! Flash-era clients expect, as nginx-rtmp and SRS give them: `_result` with
//! `fmsVer`/`capabilities` and a `NetConnection.Connect.Success` status for
//! `connect`, `_result` with the new stream id for `createStream`, and
//! `onStatus` for publish and play. A refusal is an `_error` carrying a
//! status object whose description says what to do.

use super::amf0::Amf0Value;

/// A command, as far as the peer sent it right.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Connect {
        transaction: f64,
        /// `None`: no command object, or no `app` string in it.
        app: Option<String>,
        object_encoding: f64,
    },
    CreateStream {
        transaction: f64,
    },
    /// `deleteStream(id)`: the stream id is the first argument.
    DeleteStream {
        stream_id: Option<u32>,
    },
    /// `closeStream` comes on the stream it closes.
    CloseStream,
    Publish {
        transaction: f64,
        name: Option<String>,
        /// `live`, `record` or `append`; FFmpeg and OBS send `live`.
        kind: Option<String>,
    },
    Play {
        transaction: f64,
        name: Option<String>,
    },
    /// Sent around publishing by OBS and FFmpeg (`releaseStream`,
    /// `FCPublish`, `FCUnpublish`) and before playing by FFmpeg
    /// (`getStreamLength`, `FCSubscribe`), or anything else: nothing depends
    /// on an answer, so none is given (FFmpeg sends them and carries on).
    Other {
        name: String,
    },
}

impl Command {
    /// The command in a command message's values; `None` when the first
    /// value is not a name.
    pub fn parse(values: &[Amf0Value]) -> Option<Command> {
        let name = values.first()?.as_str()?;
        let transaction = values.get(1).and_then(Amf0Value::as_number).unwrap_or(0.0);
        let object = values.get(2);
        let argument = |index: usize| values.get(3 + index);
        let text = |index: usize| {
            argument(index)
                .and_then(Amf0Value::as_str)
                .map(str::to_string)
        };
        Some(match name {
            "connect" => Command::Connect {
                transaction,
                app: object
                    .and_then(|o| o.get("app"))
                    .and_then(Amf0Value::as_str)
                    .map(|app| app.strip_suffix('/').unwrap_or(app).to_string()),
                object_encoding: object
                    .and_then(|o| o.get("objectEncoding"))
                    .and_then(Amf0Value::as_number)
                    .unwrap_or(0.0),
            },
            "createStream" => Command::CreateStream { transaction },
            "deleteStream" => Command::DeleteStream {
                stream_id: argument(0)
                    .and_then(Amf0Value::as_number)
                    .and_then(stream_id_from),
            },
            "closeStream" => Command::CloseStream,
            "publish" => Command::Publish {
                transaction,
                name: text(0),
                kind: text(1),
            },
            "play" => Command::Play {
                transaction,
                name: text(0),
            },
            other => Command::Other {
                name: other.chars().take(32).collect(),
            },
        })
    }
}

/// A stream id sent as an AMF0 number: a whole number that fits in 32 bits.
fn stream_id_from(number: f64) -> Option<u32> {
    (number.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&number))
        .then_some(number as u32)
}

/// Why a publish or play name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadName {
    Empty,
    TooLong { max: usize },
    ControlCharacter,
}

impl BadName {
    pub fn describe(self) -> String {
        match self {
            Self::Empty => "the stream name (or key) is empty".to_string(),
            Self::TooLong { max } => {
                format!("the stream name (or key) is longer than {max} bytes (rtmp_max_name_bytes)")
            }
            Self::ControlCharacter => {
                "the stream name (or key) contains control characters".to_string()
            }
        }
    }
}

/// Checks a publish or play name before it goes anywhere: into a lookup,
/// a log line or an answer.
///
/// # Errors
/// Empty, longer than `max` bytes, or holding control characters.
pub fn check_name(name: &str, max: usize) -> Result<(), BadName> {
    if name.is_empty() {
        Err(BadName::Empty)
    } else if name.len() > max {
        Err(BadName::TooLong { max })
    } else if name.chars().any(char::is_control) {
        Err(BadName::ControlCharacter)
    } else {
        Ok(())
    }
}

/// A NetStatus object (spec 7.2.2: level, code, description).
pub fn status(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::Object(vec![
        ("level".into(), Amf0Value::String(level.into())),
        ("code".into(), Amf0Value::String(code.into())),
        ("description".into(), Amf0Value::String(description.into())),
    ])
}

/// The `_result` of an accepted `connect`.
pub fn connect_result(transaction: f64, object_encoding: f64) -> Vec<Amf0Value> {
    let Amf0Value::Object(mut info) = status(
        "status",
        "NetConnection.Connect.Success",
        "Connection succeeded.",
    ) else {
        unreachable!("status() makes an object")
    };
    info.push(("objectEncoding".into(), Amf0Value::Number(object_encoding)));
    vec![
        Amf0Value::String("_result".into()),
        Amf0Value::Number(transaction),
        Amf0Value::Object(vec![
            ("fmsVer".into(), Amf0Value::String("FMS/3,0,1,123".into())),
            ("capabilities".into(), Amf0Value::Number(31.0)),
        ]),
        Amf0Value::Object(info),
    ]
}

/// The `_result` of `createStream`.
pub fn create_stream_result(transaction: f64, stream_id: u32) -> Vec<Amf0Value> {
    vec![
        Amf0Value::String("_result".into()),
        Amf0Value::Number(transaction),
        Amf0Value::Null,
        Amf0Value::Number(f64::from(stream_id)),
    ]
}

/// An `_error` answer. FFmpeg prints the description ("Server error: ...")
/// and gives up; rml_rtmp's client (the load tool) reads the status object.
pub fn error(transaction: f64, code: &str, description: &str) -> Vec<Amf0Value> {
    vec![
        Amf0Value::String("_error".into()),
        Amf0Value::Number(transaction),
        Amf0Value::Null,
        status("_error", code, description),
    ]
}

/// An `onStatus` notice.
pub fn on_status(code: &str, description: &str) -> Vec<Amf0Value> {
    notice("status", code, description)
}

/// An `onStatus` error on a stream that has started: FFmpeg prints its
/// description ("Server error: ...") and stops.
pub fn error_status(code: &str, description: &str) -> Vec<Amf0Value> {
    notice("error", code, description)
}

fn notice(level: &str, code: &str, description: &str) -> Vec<Amf0Value> {
    vec![
        Amf0Value::String("onStatus".into()),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        status(level, code, description),
    ]
}

/// At most `max` characters of a stranger's text, for an answer or a log
/// line.
pub fn excerpt(text: &str, max: usize) -> String {
    let mut cut: String = text.chars().take(max).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(text: &str) -> Amf0Value {
        Amf0Value::String(text.into())
    }

    #[test]
    fn connect_as_ffmpeg_sends_it() {
        let values = [
            string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::Object(vec![
                ("app".into(), string("live/")),
                ("type".into(), string("nonprivate")),
                ("tcUrl".into(), string("rtmp://127.0.0.1:1935/live")),
            ]),
        ];
        assert_eq!(
            Command::parse(&values),
            Some(Command::Connect {
                transaction: 1.0,
                app: Some("live".into()),
                object_encoding: 0.0
            })
        );
    }

    #[test]
    fn connect_with_no_values_is_a_connect_without_an_app() {
        assert_eq!(
            Command::parse(&[string("connect")]),
            Some(Command::Connect {
                transaction: 0.0,
                app: None,
                object_encoding: 0.0
            })
        );
        let wrong_types = [
            string("connect"),
            string("one"),
            Amf0Value::Object(vec![("app".into(), Amf0Value::Number(3.0))]),
        ];
        assert!(matches!(
            Command::parse(&wrong_types),
            Some(Command::Connect { app: None, .. })
        ));
    }

    #[test]
    fn commands_missing_values_parse_to_nones() {
        assert_eq!(
            Command::parse(&[string("publish")]),
            Some(Command::Publish {
                transaction: 0.0,
                name: None,
                kind: None
            })
        );
        assert_eq!(
            Command::parse(&[
                string("play"),
                Amf0Value::Number(4.0),
                Amf0Value::Null,
                Amf0Value::Number(1.0)
            ]),
            Some(Command::Play {
                transaction: 4.0,
                name: None
            })
        );
        assert_eq!(
            Command::parse(&[
                string("deleteStream"),
                Amf0Value::Number(1.0),
                Amf0Value::Null,
                Amf0Value::Number(-3.0)
            ]),
            Some(Command::DeleteStream { stream_id: None })
        );
        assert_eq!(Command::parse(&[]), None);
        assert_eq!(Command::parse(&[Amf0Value::Number(1.0)]), None);
    }

    #[test]
    fn stream_ids_must_be_whole_32_bit_numbers() {
        assert_eq!(stream_id_from(1.0), Some(1));
        assert_eq!(stream_id_from(1.5), None);
        assert_eq!(stream_id_from(f64::NAN), None);
        assert_eq!(stream_id_from(1e20), None);
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert_eq!(check_name("tree", 16), Ok(()));
        assert_eq!(check_name("", 16), Err(BadName::Empty));
        assert_eq!(
            check_name(&"k".repeat(1 << 20), 1024),
            Err(BadName::TooLong { max: 1024 })
        );
        assert_eq!(check_name("a\nb", 16), Err(BadName::ControlCharacter));
        assert_eq!(
            check_name("a\u{1b}[31m", 16),
            Err(BadName::ControlCharacter)
        );
    }

    #[test]
    fn excerpts_are_cut_on_characters() {
        assert_eq!(excerpt("ééé", 2), "éé…");
        assert_eq!(excerpt("abc", 5), "abc");
    }
}
