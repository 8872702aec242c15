//! The `[twitter]` config table as written ([`RawTwitter`]) and as checked
//! ([`TwitterConfig`]).

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::config::Secret;
use crate::control::settings::LightsConfig;
use crate::control::{Action, MAX_FLASH_S};

pub const DEFAULT_API_BASE: &str = "https://api.x.com";
pub const DEFAULT_POLL_INTERVAL_S: u64 = 15;
pub const DEFAULT_SECONDS: u32 = 5;

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
    #[error("[twitter] api_base = {0:?} is not an http:// or https:// URL")]
    ApiBase(String),
    #[error("[twitter] poll_interval_s must be at least 1")]
    PollInterval,
}

/// `[twitter]` as written.
#[derive(Debug, Default, Deserialize)]
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
        let poll_s = raw.poll_interval_s.unwrap_or(DEFAULT_POLL_INTERVAL_S);
        if poll_s < 1 {
            return Err(TwitterConfigError::PollInterval);
        }
        let seconds = raw.seconds.unwrap_or(DEFAULT_SECONDS);
        let action = match raw.action.as_deref().unwrap_or("flash") {
            "flash" if (1..=MAX_FLASH_S).contains(&seconds) => Action::Flash { seconds },
            "flash" => return Err(TwitterConfigError::Seconds(seconds)),
            "on" => Action::On,
            "off" => Action::Off,
            "toggle" => Action::Toggle,
            other => return Err(TwitterConfigError::Action(other.to_string())),
        };
        let outlets = match raw.outlets {
            Some(names) => {
                for name in &names {
                    if !lights.outlets.iter().any(|o| &o.name == name) {
                        return Err(TwitterConfigError::UnknownOutlet(name.clone()));
                    }
                }
                names
            }
            None => lights.outlets.iter().map(|o| o.name.clone()).collect(),
        };
        Ok(Some(Self {
            bearer_token,
            query,
            api_base,
            poll_interval: Duration::from_secs(poll_s),
            action,
            outlets,
        }))
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
        assert_eq!(config.action, Action::Flash { seconds: 5 });
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
}
