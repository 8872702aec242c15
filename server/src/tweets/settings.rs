//! The `[twitter]` config table as written ([`RawTwitter`]) and as checked
//! ([`TwitterConfig`]).

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::config::Secret;
use crate::control::settings::LightsConfig;
use crate::control::{Action, MAX_BLINKS, MAX_FLASH_S};

pub const DEFAULT_API_BASE: &str = "https://api.x.com";
pub const DEFAULT_POLL_INTERVAL_S: u64 = 15;
pub const DEFAULT_SECONDS: u32 = 5;
pub const DEFAULT_BLINKS: u32 = 1;
/// Polls at most once a day apart; a longer interval is a typo.
pub const MAX_POLL_INTERVAL_S: u64 = 86_400;
/// A page of 100 tweets with their authors is about 60 KB; 1 MiB leaves room
/// for X's larger fields while keeping a broken or hostile API from filling
/// memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1 << 20;
pub const MAX_RESPONSE_BYTES: u64 = 64 << 20;
/// One search call, from connecting until the last byte of the answer.
pub const DEFAULT_TIMEOUT_S: u64 = 10;
pub const MAX_TIMEOUT_S: u64 = 300;
/// X's rate-limit windows are 15 minutes; a reset announced further ahead is
/// not believed.
pub const DEFAULT_MAX_WAIT_S: u64 = 15 * 60;
pub const MAX_WAIT_S: u64 = 86_400;
/// How long a claimed tweet's ID is kept. X's recent search only returns the
/// last 7 days, so a claim older than that can never be needed again; 8 days
/// is the least that stays safe.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;
pub const MIN_RETENTION_DAYS: u64 = 8;
pub const MAX_RETENTION_DAYS: u64 = 3650;

#[derive(Debug, Error)]
pub enum TwitterConfigError {
    #[error(
        "[twitter] query is empty; set the keywords or hashtags to watch, e.g. query = \"#tinseltree\""
    )]
    NoQuery,
    #[error("[twitter] action = {0:?} is not one of \"flash\", \"on\", \"off\", \"toggle\"")]
    Action(String),
    #[error("[twitter] seconds = {0} is out of range: a flash lasts 1 to {MAX_FLASH_S} seconds")]
    Seconds(u32),
    #[error(
        "[twitter] outlets names {0:?}, but no outlet has that name (see [[outlet]], or GET /api/lights)"
    )]
    UnknownOutlet(String),
    #[error(
        "[twitter] outlets names {0:?}, which is protected ([[outlet]] protected = true): tweets never switch it; take it out of outlets"
    )]
    ProtectedOutlet(String),
    #[error(
        "[twitter] blinks = {blinks} needs {needed} switches per tweet, more than relay_guard_switches = {allowed} allows; use fewer blinks or raise relay_guard_switches"
    )]
    Blinks {
        blinks: u32,
        needed: u32,
        allowed: u32,
    },
    #[error("[twitter] api_base = {0:?} is not an http:// or https:// URL")]
    ApiBase(String),
    #[error("[twitter] {key} = {value} is out of range: use {min} to {max}")]
    OutOfRange {
        key: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}

/// `[twitter]` as written. Bounds: poll_interval_s 1 to 86400, seconds 1 to
/// 60 (the longest flash), blinks 1 to 10,
/// max_response_bytes 4096 to 67108864, timeout_s 1 to 300, max_wait_s 1 to
/// 86400, retention_days 8 to 3650.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTwitter {
    pub bearer_token: Option<Secret>,
    pub query: Option<String>,
    pub api_base: Option<String>,
    pub poll_interval_s: Option<u64>,
    pub action: Option<String>,
    /// Outlet names; all outlets when absent.
    pub outlets: Option<Vec<String>>,
    pub seconds: Option<u32>,
    /// A flash blinks this many times, `seconds` each, `seconds` apart.
    pub blinks: Option<u32>,
    /// The largest answer read from the X API, in bytes; a larger one is an
    /// error, not read to its end.
    pub max_response_bytes: Option<u64>,
    /// The longest one search call may take, answer included.
    pub timeout_s: Option<u64>,
    /// The longest wait for a rate-limit reset or after failures.
    pub max_wait_s: Option<u64>,
    /// Days a claimed tweet's ID is kept in the database.
    pub retention_days: Option<u64>,
}

/// The checked tweet poller settings; present only when a bearer token is.
#[derive(Debug, Clone)]
pub struct TwitterConfig {
    pub bearer_token: Secret,
    pub query: String,
    /// Without a trailing slash.
    pub api_base: String,
    pub poll_interval: Duration,
    pub action: Action,
    pub outlets: Vec<String>,
    pub max_response_bytes: usize,
    pub timeout: Duration,
    pub max_wait: Duration,
    pub retention: Duration,
}

impl TwitterConfig {
    /// `None` when no bearer token is configured: the poller is off.
    ///
    /// # Errors
    /// The first value that does not check out, as one line.
    pub fn check(
        raw: RawTwitter,
        token: Option<Secret>,
        lights: &LightsConfig,
    ) -> Result<Option<Self>, TwitterConfigError> {
        let Some(bearer_token) = token
            .or(raw.bearer_token)
            .filter(|t| !t.expose().is_empty())
        else {
            return Ok(None);
        };
        let query = raw.query.unwrap_or_default().trim().to_string();
        if query.is_empty() {
            return Err(TwitterConfigError::NoQuery);
        }
        let api_base = raw
            .api_base
            .unwrap_or_else(|| DEFAULT_API_BASE.into())
            .trim_end_matches('/')
            .to_string();
        if !(api_base.starts_with("http://") || api_base.starts_with("https://")) {
            return Err(TwitterConfigError::ApiBase(api_base));
        }
        let poll_s = in_range(
            "poll_interval_s",
            raw.poll_interval_s.unwrap_or(DEFAULT_POLL_INTERVAL_S),
            1,
            MAX_POLL_INTERVAL_S,
        )?;
        let max_response_bytes = in_range(
            "max_response_bytes",
            raw.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            4096,
            MAX_RESPONSE_BYTES,
        )?;
        let timeout_s = in_range(
            "timeout_s",
            raw.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S),
            1,
            MAX_TIMEOUT_S,
        )?;
        let max_wait_s = in_range(
            "max_wait_s",
            raw.max_wait_s.unwrap_or(DEFAULT_MAX_WAIT_S),
            1,
            MAX_WAIT_S,
        )?;
        let retention_days = in_range(
            "retention_days",
            raw.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS),
            MIN_RETENTION_DAYS,
            MAX_RETENTION_DAYS,
        )?;
        let seconds = raw.seconds.unwrap_or(DEFAULT_SECONDS);
        let blinks = in_range(
            "blinks",
            u64::from(raw.blinks.unwrap_or(DEFAULT_BLINKS)),
            1,
            u64::from(MAX_BLINKS),
        )? as u32;
        let action = match raw.action.as_deref().unwrap_or("flash") {
            "flash" if (1..=MAX_FLASH_S).contains(&seconds) => Action::Flash { seconds, blinks },
            "flash" => return Err(TwitterConfigError::Seconds(seconds)),
            "on" => Action::On,
            "off" => Action::Off,
            "toggle" => Action::Toggle,
            other => return Err(TwitterConfigError::Action(other.to_string())),
        };
        if action.switches() > lights.guard.max_switches {
            return Err(TwitterConfigError::Blinks {
                blinks,
                needed: action.switches(),
                allowed: lights.guard.max_switches,
            });
        }
        let outlets = match raw.outlets {
            Some(names) => {
                for name in &names {
                    match lights.outlets.iter().find(|o| &o.name == name) {
                        None => return Err(TwitterConfigError::UnknownOutlet(name.clone())),
                        Some(o) if o.protected => {
                            return Err(TwitterConfigError::ProtectedOutlet(name.clone()));
                        }
                        Some(_) => {}
                    }
                }
                names
            }
            // Every outlet but the protected ones.
            None => lights
                .outlets
                .iter()
                .filter(|o| !o.protected)
                .map(|o| o.name.clone())
                .collect(),
        };
        Ok(Some(Self {
            bearer_token,
            query,
            api_base,
            poll_interval: Duration::from_secs(poll_s),
            action,
            outlets,
            // At most MAX_RESPONSE_BYTES, which fits any usize.
            max_response_bytes: max_response_bytes as usize,
            timeout: Duration::from_secs(timeout_s),
            max_wait: Duration::from_secs(max_wait_s),
            retention: Duration::from_secs(retention_days * 86_400),
        }))
    }
}

fn in_range(key: &'static str, value: u64, min: u64, max: u64) -> Result<u64, TwitterConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(TwitterConfigError::OutOfRange {
            key,
            value,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::settings::RawLights;

    fn lights() -> LightsConfig {
        LightsConfig::check(RawLights::default()).unwrap()
    }

    fn raw(toml_text: &str) -> RawTwitter {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn no_token_means_off() {
        let checked = TwitterConfig::check(raw("query = \"x\""), None, &lights()).unwrap();
        assert!(checked.is_none());
    }

    #[test]
    fn defaults_flash_every_outlet_for_five_seconds() {
        let config = TwitterConfig::check(
            raw("bearer_token = \"t\"\nquery = \"#tree\""),
            None,
            &lights(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.action, Action::flash(5));
        assert_eq!(config.outlets.len(), 8);
        assert_eq!(config.api_base, "https://api.x.com");
        assert_eq!(config.poll_interval, Duration::from_secs(15));
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let check = |text: &str| {
            TwitterConfig::check(raw(text), Some(Secret::new("t")), &lights())
                .unwrap_err()
                .to_string()
        };
        assert!(check("query = \"x\"\noutlets = [\"porch\"]").contains("\"porch\""));
        assert!(check("query = \"x\"\naction = \"blink\"").contains("\"blink\""));
        assert!(check("query = \"x\"\nseconds = 0").contains("1 to"));
        assert!(check("query = \" \"").contains("query"));
        assert!(check("query = \"x\"\napi_base = \"api.x.com\"").contains("http"));
    }

    #[test]
    fn values_that_feed_arithmetic_have_an_upper_bound() {
        let check = |text: &str| {
            TwitterConfig::check(raw(text), Some(Secret::new("t")), &lights())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            check("query = \"x\"\npoll_interval_s = 9223372036854775807"),
            "[twitter] poll_interval_s = 9223372036854775807 is out of range: use 1 to 86400"
        );
        assert_eq!(
            check("query = \"x\"\npoll_interval_s = 0"),
            "[twitter] poll_interval_s = 0 is out of range: use 1 to 86400"
        );
        assert!(check("query = \"x\"\nmax_response_bytes = 100").contains("4096 to 67108864"));
        assert!(check("query = \"x\"\ntimeout_s = 100000").contains("timeout_s"));
        assert!(check("query = \"x\"\nmax_wait_s = 0").contains("max_wait_s"));
        let config = TwitterConfig::check(
            raw("bearer_token = \"t\"\nquery = \"#tree\""),
            None,
            &lights(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.max_response_bytes, 1 << 20);
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.max_wait, Duration::from_secs(900));
    }
}
