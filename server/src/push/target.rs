//! A push target's URL: `rtmp://HOST[:PORT]/APP/KEY`, as YouTube gives it
//! (`rtmp://a.rtmp.youtube.com/live2/KEY`).

use std::fmt;

use thiserror::Error;

use crate::config::Secret;
use crate::rtmp::client::{DEFAULT_PORT, Endpoint, split_authority};

#[derive(Debug, Error, PartialEq, Eq)]
#[error("push url {shown:?} is not usable: {reason}; write it as rtmp://HOST[:PORT]/APP/KEY")]
pub struct TargetError {
    shown: String,
    reason: &'static str,
}

/// Where a stream is pushed. The key is a secret: [`fmt::Display`] hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub host: String,
    pub port: u16,
    /// May hold slashes (`live2`, `app/instance`): everything between the
    /// authority and the last path segment.
    pub app: String,
    pub key: Secret,
}

impl PushTarget {
    /// # Errors
    /// Not an `rtmp://` URL with a host, an application and a key.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let bad = |reason| TargetError {
            shown: redact(url),
            reason,
        };
        let rest = if let Some(rest) = url.strip_prefix("rtmp://") {
            rest
        } else if url.starts_with("rtmps://") {
            return Err(bad(
                "rtmps:// is not supported yet; use the service's rtmp:// address",
            ));
        } else {
            return Err(bad("it does not start with rtmp://"));
        };
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no application"))?;
        let (app, key) = path.rsplit_once('/').ok_or_else(|| bad("no stream key"))?;
        if app.is_empty() {
            return Err(bad("empty application"));
        }
        if key.is_empty() {
            return Err(bad("empty stream key"));
        }
        let (host, port) = split_authority(authority, DEFAULT_PORT).map_err(bad)?;
        Ok(Self {
            host: host.to_string(),
            port,
            app: app.to_string(),
            key: Secret::new(key),
        })
    }

    /// `tcUrl` for `connect`; services check it.
    /// Where the connection goes (the key is sent with `publish`).
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.host.clone(),
            port: self.port,
            app: self.app.clone(),
        }
    }
}

impl fmt::Display for PushTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtmp://{}:{}/{}/***", self.host, self.port, self.app)
    }
}

impl fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The URL with its last path segment (the key) hidden, for messages.
fn redact(url: &str) -> String {
    let path_start = url.find("://").map_or(0, |i| i + 3);
    match url[path_start..].rfind('/') {
        Some(i) => format!("{}/***", &url[..path_start + i]),
        None => "***".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_youtube_url() {
        let target = PushTarget::parse("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl").unwrap();
        assert_eq!(target.host, "a.rtmp.youtube.com");
        assert_eq!(target.port, 1935);
        assert_eq!(target.app, "live2");
        assert!(target.key.matches("abcd-efgh-ijkl"));
        assert_eq!(
            target.endpoint().tc_url(),
            "rtmp://a.rtmp.youtube.com:1935/live2"
        );
        assert_eq!(
            target.to_string(),
            "rtmp://a.rtmp.youtube.com:1935/live2/***"
        );
    }

    #[test]
    fn reads_ports_ipv6_and_nested_apps() {
        let target = PushTarget::parse("rtmp://[::1]:1936/app/inst/key").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("::1", 1936));
        assert_eq!(target.app, "app/inst");
        let target = PushTarget::parse("rtmp://127.0.0.1:19350/live/k").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("127.0.0.1", 19350));
    }

    #[test]
    fn refusals_say_why_and_hide_the_key() {
        let err = PushTarget::parse("http://example.com/live/secretkey").unwrap_err();
        assert!(err.to_string().contains("rtmp://"));
        assert!(!err.to_string().contains("secretkey"));
        let err = PushTarget::parse("rtmp://host/secretkey").unwrap_err();
        assert!(err.to_string().contains("no stream key"), "{err}");
        assert!(!err.to_string().contains("secretkey"));
        assert!(PushTarget::parse("rtmp://host:x/live/key").is_err());
        assert!(
            PushTarget::parse("rtmps://host/live/key")
                .unwrap_err()
                .to_string()
                .contains("rtmps")
        );
    }
}
