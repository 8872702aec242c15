//! An edge's settings: its origins, when it pulls, and the cluster secret
//! it presents.

use std::time::Duration;

use thiserror::Error;

use crate::config::Secret;
use crate::rtmp::client::{DEFAULT_PORT, Endpoint, split_authority};

/// The RTMP application an edge plays from on its origin (Tinsel's own).
const ORIGIN_APP: &str = "live";
const MAX_ORIGINS: usize = 16;
/// An origin's `http_listen` port when `origin_http` does not say.
const DEFAULT_HTTP_PORT: u16 = 8080;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EdgeConfigError {
    #[error("origin {url:?} is not usable: {reason}; write it as rtmp://HOST[:PORT]")]
    Origin { url: String, reason: &'static str },
    #[error(
        "origin is set (this node is an edge) but cluster_secret is not; give the edge the origin's cluster_secret"
    )]
    NoSecret,
    #[error(
        "cluster_secret is shorter than 16 characters; use a long random one (openssl rand -hex 32)"
    )]
    ShortSecret,
    #[error("edge_pull = {0:?} is not a choice; use on_demand or always")]
    Pull(String),
    #[error("edge_idle_s = {0} is out of range: use 1 to 3600")]
    Idle(u64),
    #[error("origin is given {0} times; at most {MAX_ORIGINS} are allowed")]
    TooMany(usize),
    #[error(
        "origin_http has {given} URLs for {origins} origins; give one http:// URL for each, in the same order"
    )]
    HttpCount { given: usize, origins: usize },
    #[error(
        "origin_http {0:?} is not usable; write it as http://HOST:PORT (the origin's http_listen)"
    )]
    Http(String),
}

/// When an edge pulls a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    /// While it has viewers (and `idle` after the last one left).
    OnDemand,
    Always,
}

#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Tried in order.
    pub origins: Vec<Endpoint>,
    pub pull: Pull,
    pub idle: Duration,
    pub secret: Secret,
    /// Each origin's web address, for the lights and actions its watch
    /// pages show.
    pub origin_http: Vec<String>,
}

/// The keys as given.
pub struct RawEdge<'a> {
    pub origins: Vec<String>,
    pub pull: Option<String>,
    pub idle_s: Option<u64>,
    pub secret: Option<&'a Secret>,
    pub origin_http: Vec<String>,
}

impl EdgeSettings {
    /// `None` for an origin (no `origin` given).
    ///
    /// # Errors
    /// An origin URL that is not `rtmp://HOST[:PORT]`, no or a short
    /// cluster secret, a bad `edge_pull` or `edge_idle_s`.
    pub fn check(raw: RawEdge<'_>) -> Result<Option<Self>, EdgeConfigError> {
        if let Some(secret) = raw.secret
            && secret.expose().len() < 16
        {
            return Err(EdgeConfigError::ShortSecret);
        }
        if raw.origins.is_empty() {
            return Ok(None);
        }
        if raw.origins.len() > MAX_ORIGINS {
            return Err(EdgeConfigError::TooMany(raw.origins.len()));
        }
        let origins: Vec<Endpoint> = raw
            .origins
            .iter()
            .map(|url| parse_origin(url))
            .collect::<Result<_, _>>()?;
        let origin_http = if raw.origin_http.is_empty() {
            origins
                .iter()
                .map(|o| match o.host.contains(':') {
                    true => format!("http://[{}]:{DEFAULT_HTTP_PORT}", o.host),
                    false => format!("http://{}:{DEFAULT_HTTP_PORT}", o.host),
                })
                .collect()
        } else if raw.origin_http.len() != origins.len() {
            return Err(EdgeConfigError::HttpCount {
                given: raw.origin_http.len(),
                origins: origins.len(),
            });
        } else {
            for url in &raw.origin_http {
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"));
                if rest.is_none_or(|r| r.is_empty() || r.contains('/') && !r.ends_with('/')) {
                    return Err(EdgeConfigError::Http(url.clone()));
                }
            }
            raw.origin_http
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect()
        };
        let secret = raw.secret.cloned().ok_or(EdgeConfigError::NoSecret)?;
        let pull = match raw.pull.as_deref() {
            None | Some("on_demand") => Pull::OnDemand,
            Some("always") => Pull::Always,
            Some(other) => return Err(EdgeConfigError::Pull(other.to_string())),
        };
        let idle_s = raw.idle_s.unwrap_or(30);
        if !(1..=3600).contains(&idle_s) {
            return Err(EdgeConfigError::Idle(idle_s));
        }
        Ok(Some(Self {
            origins,
            pull,
            idle: Duration::from_secs(idle_s),
            secret,
            origin_http,
        }))
    }
}

/// `rtmp://HOST[:PORT]`, with or without a trailing `/` or `/live`.
fn parse_origin(url: &str) -> Result<Endpoint, EdgeConfigError> {
    let bad = |reason| EdgeConfigError::Origin {
        url: url.to_string(),
        reason,
    };
    let rest = url
        .strip_prefix("rtmp://")
        .ok_or_else(|| bad("it does not start with rtmp://"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !matches!(path, "" | ORIGIN_APP | "live/") {
        return Err(bad(
            "an origin URL has no path (Tinsel's application is live)",
        ));
    }
    let (host, port) = split_authority(authority, DEFAULT_PORT).map_err(bad)?;
    Ok(Endpoint {
        host: host.to_string(),
        port,
        app: ORIGIN_APP.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(origins: &[&str], secret: Option<&Secret>) -> RawEdge<'static> {
        RawEdge {
            origins: origins.iter().map(|s| s.to_string()).collect(),
            pull: None,
            idle_s: None,
            secret: secret.map(|s| Box::leak(Box::new(s.clone())) as &Secret),
            origin_http: Vec::new(),
        }
    }

    #[test]
    fn origins_parse_with_ports_and_ipv6() {
        let secret = Secret::new("0123456789abcdef");
        let edge = EdgeSettings::check(raw(
            &[
                "rtmp://origin-a",
                "rtmp://[2001:db8::1]:1936/",
                "rtmp://192.0.2.1:19350/live",
            ],
            Some(&secret),
        ))
        .unwrap()
        .unwrap();
        let hosts: Vec<_> = edge
            .origins
            .iter()
            .map(|o| (o.host.as_str(), o.port))
            .collect();
        assert_eq!(
            hosts,
            [
                ("origin-a", 1935),
                ("2001:db8::1", 1936),
                ("192.0.2.1", 19350)
            ]
        );
        assert_eq!(
            edge.origin_http,
            [
                "http://origin-a:8080",
                "http://[2001:db8::1]:8080",
                "http://192.0.2.1:8080"
            ]
        );
        assert_eq!(edge.pull, Pull::OnDemand);
        assert_eq!(edge.idle, Duration::from_secs(30));
    }

    #[test]
    fn an_edge_needs_a_long_secret_and_plain_origin_urls() {
        let secret = Secret::new("0123456789abcdef");
        assert_eq!(
            EdgeSettings::check(raw(&["rtmp://a"], None)).unwrap_err(),
            EdgeConfigError::NoSecret
        );
        assert_eq!(
            EdgeSettings::check(raw(&[], Some(&Secret::new("short")))).unwrap_err(),
            EdgeConfigError::ShortSecret
        );
        let err = EdgeSettings::check(raw(&["http://a"], Some(&secret))).unwrap_err();
        assert!(err.to_string().contains("rtmp://HOST[:PORT]"), "{err}");
        let err = EdgeSettings::check(raw(&["rtmp://a/live/KEY"], Some(&secret))).unwrap_err();
        assert!(err.to_string().contains("no path"), "{err}");
        // An origin with a secret for its edges is no edge.
        assert!(
            EdgeSettings::check(raw(&[], Some(&secret)))
                .unwrap()
                .is_none()
        );
    }
}
