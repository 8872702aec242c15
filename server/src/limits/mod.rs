//! What a stranger may cost the server: the shape of every limit's setting,
//! and the one log line a refusal writes.
//!
//! Each module owns its limits (`rtmp::limits`, `http::limits`, ...) and
//! declares them with [`limits!`]: one line per limit gives the flag, the
//! environment variable, the config-file key (all the same name), the
//! default, the bounds a value must keep, and the help text (which shows the
//! default and the bounds). `config.rs`
//! flattens each module's raw struct into the command line and the file, and
//! calls `check` once.
//!
//! [`slots`] counts what clients hold open (connections, event feeds, WHEP
//! sessions) in total and per address, every port by the same rule of what
//! one address is.
//!
//! A refusal of a stranger's input logs through [`refused`], at most one line a
//! second per limit, so a flood cannot fill the disk; the next line says how
//! many were left out.

pub mod slots;

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing::warn;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("{key} = {value} is below its minimum {min}")]
    TooSmall {
        key: &'static str,
        value: u64,
        min: u64,
    },
    #[error("{key} = {value} is above its maximum {max}")]
    TooLarge {
        key: &'static str,
        value: u64,
        max: u64,
    },
}

/// Checks one value against its bounds.
///
/// # Errors
/// The value is outside `min..=max`; the error names the key.
pub fn check(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), LimitError> {
    if value < min {
        Err(LimitError::TooSmall { key, value, min })
    } else if value > max {
        Err(LimitError::TooLarge { key, value, max })
    } else {
        Ok(())
    }
}

/// Declares a module's limits.
///
/// ```ignore
/// tinsel::limits! {
///     /// RTMP limits.
///     pub struct RtmpLimits, RawRtmpLimits, "RTMP limits" {
///         /// A connection that has not published or played by then is closed (seconds)
///         rtmp_start_timeout_s: u64 = 10, 1..=3600, "TINSEL_RTMP_START_TIMEOUT_S";
///     }
/// }
/// ```
///
/// Makes `RawRtmpLimits` (every field an `Option`, a `clap::Args` with the
/// flag `--rtmp-start-timeout-s` and its environment variable, and a serde
/// struct for the file) and `RtmpLimits` (the checked values, `Default`
/// giving the defaults). `RawRtmpLimits::check(&flags, &file)` takes the
/// flag (or environment) over the file over the default and checks bounds.
#[macro_export]
macro_rules! limits {
    (
        $(#[$meta:meta])*
        pub struct $name:ident, $raw:ident, $heading:literal {
            $(
                #[doc = $doc:literal]
                $field:ident : $ty:ty = $default:literal, $min:literal ..= $max:literal, $env:literal;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            $(
                #[doc = $doc]
                pub $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        /// As written on the command line, in the environment or in the file.
        #[derive(Debug, Clone, Default, clap::Args, serde::Deserialize, schemars::JsonSchema)]
        #[command(next_help_heading = $heading)]
        pub struct $raw {
            $(
                #[arg(
                    long,
                    env = $env,
                    value_name = "N",
                    help = concat!(
                        $doc, " [default: ", stringify!($default), "; ",
                        stringify!($min), " to ", stringify!($max), "]"
                    )
                )]
                pub $field: Option<$ty>,
            )*
        }

        impl $raw {
            /// The flag (or environment) over the file over the default, checked.
            ///
            /// # Errors
            /// A value outside its bounds.
            pub fn check(flags: &Self, file: &Self) -> Result<$name, $crate::limits::LimitError> {
                $(
                    let $field: $ty = flags.$field.or(file.$field).unwrap_or($default);
                    $crate::limits::check(stringify!($field), $field as u64, $min, $max)?;
                )*
                Ok($name { $( $field, )* })
            }
        }
    };
}

/// How often one limit may write a line.
const LOG_EVERY: Duration = Duration::from_secs(1);

struct LogState {
    last: Instant,
    suppressed: u64,
}

static REFUSALS: Mutex<Option<HashMap<&'static str, LogState>>> = Mutex::new(None);

/// Logs that `peer` was refused by `limit` (the config key, or the name of a
/// fixed bound), at most once a second per limit.
pub fn refused(peer: impl Display, limit: &'static str, what: impl Display) {
    if let Some(suppressed) = admit(limit, Instant::now()) {
        if suppressed > 0 {
            warn!(%peer, limit, suppressed, "refused: {what} ({suppressed} more like it not logged)");
        } else {
            warn!(%peer, limit, "refused: {what}");
        }
    }
}

/// Logs a warning about something that can repeat with every frame or
/// datagram (a broken publisher, a congested viewer), at most once a second
/// per `key`, saying how many like it were left out.
pub fn warn_every(key: &'static str, what: impl Display) {
    if let Some(suppressed) = admit(key, Instant::now()) {
        if suppressed > 0 {
            warn!("{what} ({suppressed} more like it not logged)");
        } else {
            warn!("{what}");
        }
    }
}

/// Whether a line for `limit` may be written at `now`, and how many were left
/// out since the last one.
fn admit(limit: &'static str, now: Instant) -> Option<u64> {
    // A poisoned lock only means another thread panicked while logging; the
    // counters are still usable.
    let mut guard = REFUSALS.lock().unwrap_or_else(|poison| poison.into_inner());
    let states = guard.get_or_insert_with(HashMap::new);
    match states.get_mut(limit) {
        Some(state) if now.duration_since(state.last) < LOG_EVERY => {
            state.suppressed += 1;
            None
        }
        Some(state) => {
            let suppressed = state.suppressed;
            *state = LogState {
                last: now,
                suppressed: 0,
            };
            Some(suppressed)
        }
        None => {
            states.insert(
                limit,
                LogState {
                    last: now,
                    suppressed: 0,
                },
            );
            Some(0)
        }
    }
}

/// Raises the process's open-file limit to its hard limit: every connection
/// is a descriptor, and the usual soft limit of 1,024 is below the default
/// connection caps. Returns the limit now in force.
pub fn raise_open_files() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Some(raised.rlim_cur);
            }
        }
    }
    Some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::limits! {
        /// For the tests.
        pub struct Demo, RawDemo, "Demo limits" {
            /// Most widgets
            demo_widgets: usize = 8, 1..=100, "TINSEL_DEMO_WIDGETS";
            /// Widget timeout (seconds)
            demo_timeout_s: u64 = 5, 1..=60, "TINSEL_DEMO_TIMEOUT_S";
        }
    }

    #[test]
    fn defaults_flags_over_file_and_bounds() {
        let none = RawDemo::default();
        assert_eq!(RawDemo::check(&none, &none).unwrap(), Demo::default());
        let file = RawDemo {
            demo_widgets: Some(3),
            demo_timeout_s: Some(9),
        };
        let flags = RawDemo {
            demo_widgets: Some(4),
            ..RawDemo::default()
        };
        let checked = RawDemo::check(&flags, &file).unwrap();
        assert_eq!((checked.demo_widgets, checked.demo_timeout_s), (4, 9));
        let bad = RawDemo {
            demo_timeout_s: Some(0),
            ..RawDemo::default()
        };
        assert_eq!(
            RawDemo::check(&bad, &none).unwrap_err().to_string(),
            "demo_timeout_s = 0 is below its minimum 1"
        );
    }

    #[test]
    fn refusals_are_logged_once_a_second_per_limit() {
        let start = Instant::now();
        assert_eq!(admit("test_a", start), Some(0));
        assert_eq!(admit("test_a", start + Duration::from_millis(10)), None);
        assert_eq!(admit("test_a", start + Duration::from_millis(20)), None);
        assert_eq!(
            admit("test_b", start),
            Some(0),
            "each limit has its own budget"
        );
        assert_eq!(admit("test_a", start + Duration::from_secs(2)), Some(2));
    }
}
