//! The LL-HLS delivery directives in a playlist URL's query, parsed strictly
//! (RFC 8216bis 6.2.5): `_HLS_msn=<M>`, `_HLS_part=<N>` and `_HLS_skip=YES|v2`.
//!
//! "The value of each Delivery Directive is a decimal-integer" (6.2.5), and a
//! decimal-integer is 1 to 20 characters of `[0-9]` up to 2^64-1 (4.2): no
//! sign, no spaces, no percent-encoding. A directive given twice is refused
//! rather than guessed at. Other query parameters (cache busters, tokens a CDN
//! adds) are ignored, as the spec asks of unknown ones.
//!
//! How far ahead a valid `_HLS_msn` or `_HLS_part` may point is the playlist's
//! business: [`crate::hls::HlsStream::readiness`] answers "too far" for a
//! segment more than two ahead or a part past the Advance Part Limit.
//!
//! `_HLS_skip` is checked and then ignored: the playlist offers no delta
//! updates (no `CAN-SKIP-UNTIL`), and a full playlist is a correct answer to a
//! request for one.

use thiserror::Error;

/// The most characters of a decimal-integer (RFC 8216bis 4.2).
const MAX_DIGITS: usize = 20;

/// What a playlist request asks for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Directives {
    /// Block until segment `msn` exists (6.2.5.2).
    pub msn: Option<u64>,
    /// ... and part `part` of it.
    pub part: Option<u64>,
    /// A delta update was asked for.
    pub skip: Option<Skip>,
}

/// `_HLS_skip`'s two values (6.2.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Skip older segments.
    Yes,
    /// Skip older segments and date ranges.
    V2,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum QueryError {
    #[error(
        "{name} must be a decimal number of 1 to 20 digits, at most 18446744073709551615 \
         (RFC 8216bis 4.2); it was {value:?}"
    )]
    NotADecimalInteger { name: &'static str, value: String },
    #[error("{0} is given more than once; give it once")]
    Repeated(&'static str),
    #[error("_HLS_part needs _HLS_msn (RFC 8216bis 6.2.5.2)")]
    PartWithoutMsn,
    #[error("_HLS_skip must be YES or v2 (RFC 8216bis 6.2.5.1); it was {0:?}")]
    Skip(String),
}

/// Reads the delivery directives from a query string (without the `?`).
///
/// # Errors
/// A directive that is not a decimal-integer, is given twice, or `_HLS_part`
/// without `_HLS_msn`. The error quotes at most the first 20 characters of a
/// bad value, so it never echoes a long query back.
pub fn parse_directives(query: &str) -> Result<Directives, QueryError> {
    let mut directives = Directives::default();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "_HLS_msn" => set(&mut directives.msn, "_HLS_msn", decimal("_HLS_msn", value)?)?,
            "_HLS_part" => set(
                &mut directives.part,
                "_HLS_part",
                decimal("_HLS_part", value)?,
            )?,
            "_HLS_skip" => {
                let skip = match value {
                    "YES" => Skip::Yes,
                    "v2" => Skip::V2,
                    other => return Err(QueryError::Skip(quote(other))),
                };
                set(&mut directives.skip, "_HLS_skip", skip)?;
            }
            _ => {}
        }
    }
    if directives.part.is_some() && directives.msn.is_none() {
        return Err(QueryError::PartWithoutMsn);
    }
    Ok(directives)
}

fn set<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), QueryError> {
    if slot.is_some() {
        return Err(QueryError::Repeated(name));
    }
    *slot = Some(value);
    Ok(())
}

fn decimal(name: &'static str, value: &str) -> Result<u64, QueryError> {
    let wrong = || QueryError::NotADecimalInteger {
        name,
        value: quote(value),
    };
    if value.is_empty() || value.len() > MAX_DIGITS || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(wrong());
    }
    value.parse().map_err(|_| wrong())
}

/// The start of a value, for an error message.
fn quote(value: &str) -> String {
    value.chars().take(MAX_DIGITS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<Directives, QueryError> {
        parse_directives(query)
    }

    #[test]
    fn directives_as_players_send_them() {
        assert_eq!(parse(""), Ok(Directives::default()));
        assert_eq!(
            parse("_HLS_msn=1733090000&_HLS_part=3"),
            Ok(Directives {
                msn: Some(1_733_090_000),
                part: Some(3),
                skip: None
            })
        );
        assert_eq!(
            parse("_HLS_msn=7&_HLS_skip=YES").unwrap().skip,
            Some(Skip::Yes)
        );
        assert_eq!(parse("_HLS_skip=v2").unwrap().skip, Some(Skip::V2));
        assert_eq!(
            parse("_HLS_msn=18446744073709551615").unwrap().msn,
            Some(u64::MAX)
        );
        // Unknown parameters, empty pairs and leading zeros are fine.
        assert_eq!(parse("t=123&&token=abc&_HLS_msn=007").unwrap().msn, Some(7));
    }

    #[test]
    fn anything_but_a_decimal_integer_is_refused() {
        for value in [
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "0x10",
            "1e9",
            "%31",
            "1.5",
            "18446744073709551616",
            "000000000000000000001",
            "१२३",
        ] {
            assert!(
                matches!(
                    parse(&format!("_HLS_msn={value}")),
                    Err(QueryError::NotADecimalInteger { .. })
                ),
                "{value:?} was taken"
            );
        }
        assert!(matches!(
            parse("_HLS_msn=1&_HLS_part=99999999999999999999999"),
            Err(QueryError::NotADecimalInteger {
                name: "_HLS_part",
                ..
            })
        ));
        assert!(matches!(
            parse("_HLS_msn"),
            Err(QueryError::NotADecimalInteger { .. })
        ));
    }

    #[test]
    fn repeats_a_lone_part_and_odd_skips_are_refused() {
        assert_eq!(
            parse("_HLS_msn=1&_HLS_msn=2"),
            Err(QueryError::Repeated("_HLS_msn"))
        );
        assert_eq!(parse("_HLS_part=1"), Err(QueryError::PartWithoutMsn));
        assert_eq!(parse("_HLS_skip=yes"), Err(QueryError::Skip("yes".into())));
    }

    #[test]
    fn errors_never_echo_a_long_value() {
        let long = "9".repeat(100_000);
        let message = parse(&format!("_HLS_msn={long}")).unwrap_err().to_string();
        assert!(message.len() < 300, "{} bytes", message.len());
        let message = parse(&format!("_HLS_skip={long}")).unwrap_err().to_string();
        assert!(message.len() < 300, "{} bytes", message.len());
    }
}
