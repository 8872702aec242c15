//! Configuration: the command line, `TINSEL_*` environment variables and the TOML
//! file, merged in that order of precedence into one checked [`Config`].
//!
//! [`Cli`] and [`RawConfig`] are what users write; [`Config`] is what the server
//! runs on. Nothing else in the server reads the environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use schemars::JsonSchema;
use serde::Deserialize;
use thiserror::Error;

use crate::auth::limits::{AuthLimits, RawAuthLimits};
use crate::control::settings::{LightsConfig, LightsConfigError, RawLights, RawOutlet, RawPdu};
use crate::edge::{EdgeConfigError, EdgeSettings, RawEdge};
use crate::hls::segmenter::SegmenterSettings;
use crate::http::limits::{HttpLimits, RawHttpLimits};
use crate::limits::LimitError;
use crate::push::{PushConfig, PushTarget};
use crate::rtmp::limits::{RawRtmpLimits, RtmpLimits};
use crate::tweets::{RawTwitter, TwitterConfig, TwitterConfigError};
use crate::webrtc::limits::{RawWhepLimits, WhepLimits};
use crate::webrtc::whep::WhepSettings;

mod file;
pub mod keys;
#[cfg(test)]
mod readme;

pub use file::absolute;
pub use keys::keys;

pub const DEFAULT_RTMP_LISTEN: &str = "[::]:1935";
pub const DEFAULT_HTTP_LISTEN: &str = "[::]:8080";
pub const DEFAULT_DATA_DIR: &str = "data";
pub const DEFAULT_STREAM: &str = "tree";
/// WebRTC's shared UDP port, as other WebRTC servers (MediaMTX) use it.
pub const DEFAULT_WEBRTC_UDP_PORT: u16 = 8189;
/// The RTMP application that publish and play URLs use: `rtmp://HOST/live/...`.
pub const RTMP_APP: &str = "live";
/// Upper bounds of the values below that become a buffer, a deadline or a
/// count of tasks: within them every sane setting fits, and nothing built
/// from them can overflow.
pub const MAX_VIEWER_QUEUE_FRAMES: u64 = 65_536;
pub const MAX_VIEWER_STALL_TIMEOUT_S: u64 = 3600;
pub const MAX_RTMP_BATCH_MS: u64 = 1000;
pub const MAX_RTMP_MAX_CONNECTIONS: u64 = 1_000_000;
/// Segments are kept in memory: 30 of the longest (60 s) at 6 Mbit/s is
/// about 1.4 GB a stream, the most a window should ever cost.
pub const MAX_HLS_WINDOW_SEGMENTS: u64 = 30;
/// Each stream has its own tasks (HLS, WebRTC feed) and key file.
pub const MAX_STREAMS: usize = 256;
/// Each push is a task and an outgoing connection.
pub const MAX_PUSHES: usize = 64;
/// Every ICE server goes into every WHEP answer.
pub const MAX_ICE_SERVERS: usize = 32;

#[derive(Debug, Error)]
pub enum ConfigError {
    // No variant keeps its cause as an error `source`: main prints the
    // chain, and a cause already in the message would show twice.
    #[error("cannot read config file {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    /// `at` is `, line L, column C`, or empty when the parser knows no place.
    #[error("config file {}{at}: {message}", path.display())]
    Parse {
        path: PathBuf,
        at: String,
        message: String,
    },
    /// `suggestion` is `; did you mean KEY?`, or empty.
    #[error("config file {}, line {line}: unknown key {key}{suggestion}", path.display())]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
        suggestion: String,
    },
    #[error("youtube_fallback = {0:?} is not a YouTube video or channel; use {EXPECTED}", EXPECTED = crate::http::youtube::EXPECTED)]
    YoutubeFallback(String),
    #[error("{kind} is configured {count} times; at most {max} are allowed")]
    TooMany {
        kind: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{key} = {value:?} is not an address like 0.0.0.0:1935 or [::]:1935")]
    Address { key: &'static str, value: String },
    #[error("{0:?} is not an IP address like 192.0.2.7 (webrtc_ip, webrtc_public_ip)")]
    WebrtcIp(String),
    #[error("--stream {0:?} is not NAME=KEY")]
    StreamFlag(String),
    #[error("stream name {0:?} is not allowed: use 1 to 64 lowercase letters, digits, '-' or '_'")]
    StreamName(String),
    #[error("stream {0:?} is configured twice")]
    DuplicateStream(String),
    #[error("stream {0:?} has a key shorter than 8 characters; use a long random key")]
    ShortKey(String),
    #[error("streams {0:?} and {1:?} have the same key; every stream needs its own")]
    SharedKey(String, String),
    #[error(transparent)]
    Push(#[from] crate::push::TargetError),
    #[error("[[push]] names stream {0:?}, which is not configured")]
    PushStream(String),
    #[error("{key} = {value} is too small: it must be at least {min}")]
    TooSmall {
        key: &'static str,
        value: u64,
        min: u64,
    },
    #[error("{key} = {value} is too large: it must be at most {max}")]
    TooLarge {
        key: &'static str,
        value: u64,
        max: u64,
    },
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error(transparent)]
    Lights(#[from] LightsConfigError),
    #[error(transparent)]
    Edge(#[from] EdgeConfigError),
    #[error(
        "{0} is set on an edge (origin is set); the origin runs those: remove it from the edge's config"
    )]
    OnEdge(&'static str),
    #[error(transparent)]
    Twitter(#[from] TwitterConfigError),
    #[error("cannot keep the stream key in {}: {cause}; check that the data dir is writable", path.display())]
    KeyFile {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "no database in {dir} (looked for {file}); give the folder tinsel serve prints at \
         start as --data-dir, or the server's config file as --config",
        dir = dir.display(),
        file = dir.join(crate::db::DB_FILE).display()
    )]
    NoDatabase { dir: PathBuf },
}

/// `tinsel`: one binary for the whole service.
#[derive(Debug, Parser)]
#[command(
    name = "tinsel",
    version,
    about = "Live streaming for the office tree: RTMP in; RTMP, LL-HLS and WebRTC out; the lights on the side."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Manage admin accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Show the stream keys and what to paste into OBS.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print each stream's OBS settings (server and key) and player URLs, as
    /// the server prints them at start until the first publish.
    Show(KeyShowArgs),
}

/// Where a command that is not the server finds the server's config and data.
#[derive(Debug, Args, Default, Clone)]
pub struct DataDirArgs {
    /// The server's TOML config file, to find the data dir in (a relative
    /// data_dir in it is taken from the file's folder).
    #[arg(long, env = "TINSEL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The server's data dir, as tinsel serve prints it at start
    /// [default: ./data, if it holds the database]
    #[arg(long, env = "TINSEL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeyShowArgs {
    #[command(flatten)]
    pub place: DataDirArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an admin account, or give an existing one a new password. Works
    /// while the server runs.
    Add(UserAddArgs),
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The account's name: letters, digits, '.', '-', '_' or '@'.
    pub name: String,
    /// Read the password from standard input (one line), so it never shows in
    /// the process list or the shell history.
    #[arg(long, required = true)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub place: DataDirArgs,
}

/// Every option can also be set in the config file (same name, with `_`) or as
/// `TINSEL_<OPTION>`. Flags beat the environment, which beats the file.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "TINSEL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address for RTMP publishers and players [default: [::]:1935, all IPv4 and IPv6 addresses]
    #[arg(long, env = "TINSEL_RTMP_LISTEN", value_name = "ADDR")]
    pub rtmp_listen: Option<String>,
    /// Address for the web app, the API, HLS and WHEP [default: [::]:8080]
    #[arg(long, env = "TINSEL_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<String>,
    /// Where keys, accounts and the database live [default: ./data]
    #[arg(long, env = "TINSEL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A stream and its publish key; repeat for more (at most 256). With none,
    /// one stream `tree` exists with a key generated on first start
    /// [env: TINSEL_STREAM, comma-separated]
    #[arg(
        long = "stream",
        env = "TINSEL_STREAM",
        value_name = "NAME=KEY",
        value_delimiter = ',',
        hide_env = true
    )]
    pub streams: Vec<String>,
    /// The built web app (the output of `cargo run --release -p sitebuild`)
    /// [default: `site` beside the binary, else `../site`: target/site]
    #[arg(long, env = "TINSEL_SITE_DIR", value_name = "DIR")]
    pub site_dir: Option<PathBuf>,
    /// Frames a viewer may fall behind before it skips to the next keyframe
    /// [default: 512; 16 to 65536]
    #[arg(long, env = "TINSEL_VIEWER_QUEUE_FRAMES", value_name = "N")]
    pub viewer_queue_frames: Option<usize>,
    /// A viewer whose connection takes no data for this long is dropped
    /// [default: 10; 1 to 3600]
    #[arg(long, env = "TINSEL_VIEWER_STALL_TIMEOUT_S", value_name = "SECONDS")]
    pub viewer_stall_timeout_s: Option<u64>,
    /// RTMP players get media in writes this far apart, fewer and larger
    /// (players buffer far more than this); 0 writes each frame at once
    /// [default: 100; 0 to 1000]
    #[arg(long, env = "TINSEL_RTMP_BATCH_MS", value_name = "MS")]
    pub rtmp_batch_ms: Option<u64>,
    /// Most RTMP players at once (publishers always get in; connections not
    /// yet publishing or playing count against rtmp_max_pending)
    /// [default: 4096; 1 to 1000000]
    #[arg(long, env = "TINSEL_RTMP_MAX_CONNECTIONS", value_name = "N")]
    pub rtmp_max_connections: Option<usize>,
    /// LL-HLS part duration target [default: 334; 100 to 1000]
    #[arg(long, env = "TINSEL_HLS_PART_TARGET_MS", value_name = "MS")]
    pub hls_part_target_ms: Option<u64>,
    /// LL-HLS segments kept in memory and listed, per stream [default: 6; 3 to 30]
    #[arg(long, env = "TINSEL_HLS_WINDOW_SEGMENTS", value_name = "N")]
    pub hls_window_segments: Option<usize>,
    /// Longest LL-HLS segment: a publisher that sends no keyframe for this
    /// long has its segment closed until the next one [default: 12; 2 to 60]
    #[arg(long, env = "TINSEL_HLS_MAX_SEGMENT_S", value_name = "S")]
    pub hls_max_segment_s: Option<u64>,
    /// The address WebRTC media goes out from, offered to viewers as the host
    /// candidate; 0.0.0.0 means every interface but loopback [default: 0.0.0.0]
    #[arg(long, env = "TINSEL_WEBRTC_IP", value_name = "IP")]
    pub webrtc_ip: Option<String>,
    /// The one UDP port every WebRTC session uses; 0 picks a free port
    /// [default: 8189]
    #[arg(long, env = "TINSEL_WEBRTC_UDP_PORT", value_name = "PORT")]
    pub webrtc_udp_port: Option<u16>,
    /// The public address WebRTC viewers are told to use, for a server behind
    /// 1:1 NAT (a cloud VM with a floating IP) [default: none]
    #[arg(long, env = "TINSEL_WEBRTC_PUBLIC_IP", value_name = "IP")]
    pub webrtc_public_ip: Option<String>,
    /// A STUN or TURN server announced to WebRTC viewers; repeat for more (at
    /// most 32) [env: TINSEL_ICE_SERVERS, comma-separated]
    #[arg(
        long = "ice-server",
        env = "TINSEL_ICE_SERVERS",
        value_name = "URL",
        value_delimiter = ',',
        hide_env = true
    )]
    pub ice_servers: Vec<String>,
    /// An admin session unused for this long ends [default: 30; 1 to 43200]
    #[arg(long, env = "TINSEL_ADMIN_IDLE_TIMEOUT_MIN", value_name = "MINUTES")]
    pub admin_idle_timeout_min: Option<u64>,
    /// Mark the admin session cookie Secure, so browsers send it over HTTPS
    /// only; set it when users reach the server through HTTPS (a TLS-terminating
    /// proxy or load balancer) [default: false]
    #[arg(long, env = "TINSEL_SECURE_COOKIES", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub secure_cookies: Option<bool>,
    /// The IANA time zone light schedules run in, e.g. Europe/Amsterdam [default: UTC]
    #[arg(long, env = "TINSEL_TIMEZONE", value_name = "ZONE")]
    pub timezone: Option<String>,
    /// An origin this node pulls its streams from, rtmp://HOST[:PORT]; repeat
    /// for more, tried in order. Set: this node is an edge [default: none, an
    /// origin] [env: TINSEL_ORIGIN, comma-separated]
    #[arg(
        long = "origin",
        env = "TINSEL_ORIGIN",
        value_name = "URL",
        value_delimiter = ',',
        hide_env = true
    )]
    pub origin: Vec<String>,
    /// What edges present to origins to pull streams (never the publish
    /// key); the same on every node of a cluster [default: none]
    #[arg(
        long,
        env = "TINSEL_CLUSTER_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub cluster_secret: Option<String>,
    /// An edge pulls a stream when its first viewer comes (on_demand) or all
    /// the time (always) [default: on_demand]
    #[arg(long, env = "TINSEL_EDGE_PULL", value_name = "WHEN")]
    pub edge_pull: Option<String>,
    /// Each origin's web address (its http_listen), in `origin` order, for
    /// the lights and actions an edge's watch pages show; repeat
    /// [default: http://HOST:8080 for each origin] [env: TINSEL_ORIGIN_HTTP,
    /// comma-separated]
    #[arg(
        long = "origin-http",
        env = "TINSEL_ORIGIN_HTTP",
        value_name = "URL",
        value_delimiter = ',',
        hide_env = true
    )]
    pub origin_http: Vec<String>,
    /// An edge stops pulling a stream this long after its last viewer left
    /// [default: 30; 1 to 3600]
    #[arg(long, env = "TINSEL_EDGE_IDLE_S", value_name = "SECONDS")]
    pub edge_idle_s: Option<u64>,
    /// On SIGTERM, the node stops taking new viewers at once (/readyz 503) and
    /// keeps serving current ones this long before it exits; a second signal
    /// ends it at once [default: 30 on an edge, 0 on an origin; 0 to 3600]
    #[arg(long, env = "TINSEL_DRAIN_S", value_name = "SECONDS")]
    pub drain_s: Option<u64>,
    /// Seconds between reads of every PDU outlet's state [default: 30; 1 to 86400]
    #[arg(long, env = "TINSEL_LIGHTS_POLL_S", value_name = "SECONDS")]
    pub lights_poll_s: Option<u64>,
    /// Most switches of one outlet within the relay guard's window; relays
    /// wear out, and a flash takes two [default: 10; 2 to 100000]
    #[arg(long, env = "TINSEL_RELAY_GUARD_SWITCHES", value_name = "N")]
    pub relay_guard_switches: Option<u32>,
    /// The relay guard's window [default: 60; 1 to 86400]
    #[arg(long, env = "TINSEL_RELAY_GUARD_WINDOW_S", value_name = "SECONDS")]
    pub relay_guard_window_s: Option<u64>,
    /// Lights audit entries kept; older ones are deleted as new ones come
    /// [default: 10000; 100 to 1000000]
    #[arg(long, env = "TINSEL_AUDIT_KEEP", value_name = "ENTRIES")]
    pub audit_keep: Option<u32>,
    /// The X API bearer token for the tweet poller; only from the environment
    /// or the file, never a flag, so it stays out of process listings
    #[arg(skip = std::env::var("TINSEL_TWITTER_BEARER_TOKEN").ok().map(Secret::new))]
    pub twitter_bearer_token: Option<Secret>,
    /// Push the default stream to this RTMP URL too (YouTube:
    /// rtmp://a.rtmp.youtube.com/live2/KEY); repeat for more. In the config
    /// file, [[push]] tables can also name the stream; at most 64
    /// [env: TINSEL_PUSH, comma-separated]
    #[arg(
        long = "push",
        env = "TINSEL_PUSH",
        value_name = "URL",
        value_delimiter = ',',
        hide_env = true,
        hide_env_values = true
    )]
    pub push: Vec<String>,
    #[command(flatten)]
    pub rtmp_limits: RawRtmpLimits,
    #[command(flatten)]
    pub http_limits: RawHttpLimits,
    #[command(flatten)]
    pub whep_limits: RawWhepLimits,
    #[command(flatten)]
    pub auth_limits: RawAuthLimits,
}

/// A `[[push]]` table: where to push, and which stream (the first by default).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPush {
    pub url: String,
    pub stream: Option<String>,
}

/// The config file as written. Its fields (and those of the structs it
/// holds or flattens) are the file's valid keys: see [`keys`].
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawConfig {
    pub rtmp_listen: Option<String>,
    pub http_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub site_dir: Option<PathBuf>,
    pub youtube_fallback: Option<String>,
    pub viewer_queue_frames: Option<usize>,
    pub viewer_stall_timeout_s: Option<u64>,
    pub rtmp_batch_ms: Option<u64>,
    pub rtmp_max_connections: Option<usize>,
    pub hls_part_target_ms: Option<u64>,
    pub hls_window_segments: Option<usize>,
    pub hls_max_segment_s: Option<u64>,
    pub webrtc_ip: Option<String>,
    pub webrtc_udp_port: Option<u16>,
    pub webrtc_public_ip: Option<String>,
    #[serde(default)]
    pub ice_servers: Vec<String>,
    pub admin_idle_timeout_min: Option<u64>,
    pub secure_cookies: Option<bool>,
    #[serde(default)]
    pub origin: Vec<String>,
    #[serde(default)]
    pub origin_http: Vec<String>,
    pub cluster_secret: Option<String>,
    pub edge_pull: Option<String>,
    pub edge_idle_s: Option<u64>,
    pub drain_s: Option<u64>,
    #[serde(default, rename = "stream")]
    pub streams: Vec<RawStream>,
    pub timezone: Option<String>,
    pub lights_poll_s: Option<u64>,
    pub relay_guard_switches: Option<u32>,
    pub relay_guard_window_s: Option<u64>,
    pub audit_keep: Option<u32>,
    #[serde(default, rename = "pdu")]
    pub pdus: Vec<RawPdu>,
    #[serde(default, rename = "outlet")]
    pub outlets: Vec<RawOutlet>,
    #[serde(default)]
    pub twitter: RawTwitter,
    #[serde(default, rename = "push")]
    pub pushes: Vec<RawPush>,
    #[serde(flatten)]
    pub rtmp_limits: RawRtmpLimits,
    #[serde(flatten)]
    pub http_limits: RawHttpLimits,
    #[serde(flatten)]
    pub whep_limits: RawWhepLimits,
    #[serde(flatten)]
    pub auth_limits: RawAuthLimits,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawStream {
    pub name: String,
    pub key: Option<Secret>,
}

/// A value that must never reach a log line or a debug print.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares without an early exit, so response timing says nothing about
    /// how much of a guessed key was right.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A stream and the key that may publish it.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub name: String,
    pub key: Secret,
}

/// Where the web app is, as an absolute path (leptos finds `hash.txt` by it):
/// the flag or environment, relative to the working directory; else the
/// file's, relative to the file's folder; else beside the binary.
fn site_dir(flag: Option<PathBuf>, from_file: Option<PathBuf>) -> PathBuf {
    absolute(
        &flag
            .or(from_file)
            .unwrap_or_else(crate::web_app::default_dir),
    )
}

/// The checked configuration the server runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub rtmp_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub site_dir: PathBuf,
    pub youtube_fallback: Option<String>,
    pub streams: Vec<StreamConfig>,
    pub viewer_queue_frames: usize,
    pub viewer_stall_timeout: Duration,
    pub rtmp_batch: Duration,
    pub rtmp_max_connections: usize,
    pub hls: SegmenterSettings,
    pub webrtc: WhepSettings,
    /// An admin session unused for this long ends.
    pub admin_idle_timeout: Duration,
    /// Whether the session cookie is `Secure` (HTTPS only).
    pub secure_cookies: bool,
    pub lights: LightsConfig,
    /// `None`: the tweet poller is off.
    pub twitter: Option<TwitterConfig>,
    /// Other RTMP servers the streams are pushed to.
    pub pushes: Vec<PushConfig>,
    pub rtmp_limits: RtmpLimits,
    pub http_limits: HttpLimits,
    pub whep_limits: WhepLimits,
    pub auth_limits: AuthLimits,
    /// What edges present to pull from this node, and an edge to its origins.
    pub cluster_secret: Option<Secret>,
    /// `Some`: this node is an edge of these origins.
    pub edge: Option<EdgeSettings>,
    /// How long a SIGTERM lets current viewers stay.
    pub drain: Duration,
}

/// A stream whose key is kept in the data dir (not written in the config):
/// its OBS settings are shown at start until its first publish.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub stream: String,
    pub path: PathBuf,
    /// Made on this start.
    pub new: bool,
}

/// The data dir a command that is not the server works on.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// Absolute, so messages that show it work from any folder.
    pub path: PathBuf,
    /// Given by --data-dir, `TINSEL_DATA_DIR` or the config file, not the
    /// default `./data`.
    pub named: bool,
}

impl DataDir {
    /// Refuses a default data dir with no database yet: that is a command
    /// run in another folder than the server's, which would make a second,
    /// empty database nobody serves. A named one may be new (an account can
    /// be made before the first start).
    ///
    /// # Errors
    /// The default data dir has no database.
    pub fn require_database(&self) -> Result<(), ConfigError> {
        if self.named || self.path.join(crate::db::DB_FILE).exists() {
            Ok(())
        } else {
            Err(ConfigError::NoDatabase {
                dir: self.path.clone(),
            })
        }
    }
}

impl Config {
    /// Merges flags and environment (`args`) over the file.
    ///
    /// # Errors
    /// An unreadable or invalid file, or a value that does not check out.
    pub fn load(args: &ServeArgs) -> Result<(Self, Vec<StoredKey>), ConfigError> {
        let raw = match &args.config {
            Some(path) => file::read(path)?,
            None => RawConfig::default(),
        };
        Self::merge(args, raw)
    }

    /// The data dir as `tinsel serve` would find it: the flag or environment
    /// (`data_dir`, from the working directory), else the config file (from
    /// the file's folder), else the default `./data`.
    ///
    /// # Errors
    /// An unreadable or invalid config file.
    pub fn data_dir_for(place: &DataDirArgs) -> Result<DataDir, ConfigError> {
        let from_file = match &place.config {
            Some(path) if place.data_dir.is_none() => file::read(path)?.data_dir,
            _ => None,
        };
        let named = place.data_dir.clone().or(from_file);
        Ok(DataDir {
            named: named.is_some(),
            path: absolute(&named.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))),
        })
    }

    /// The config `tinsel serve` would run on with this config file and data
    /// dir (and the same environment), for commands that show what it uses.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_for(place: &DataDirArgs) -> Result<(Self, Vec<StoredKey>), ConfigError> {
        /// The server's options as the environment alone sets them.
        #[derive(Parser)]
        struct FromEnv {
            #[command(flatten)]
            serve: ServeArgs,
        }
        // An environment the server would refuse is reported by the server;
        // here it only costs the settings it would have changed.
        let mut args = FromEnv::try_parse_from(["tinsel"])
            .map(|from_env| from_env.serve)
            .unwrap_or_default();
        args.config = place.config.clone();
        args.data_dir = place.data_dir.clone();
        Self::load(&args)
    }

    /// # Errors
    /// A value that does not check out, or a key file that cannot be written.
    pub fn merge(args: &ServeArgs, raw: RawConfig) -> Result<(Self, Vec<StoredKey>), ConfigError> {
        let rtmp_listen = address(
            "rtmp_listen",
            args.rtmp_listen
                .as_deref()
                .or(raw.rtmp_listen.as_deref())
                .unwrap_or(DEFAULT_RTMP_LISTEN),
        )?;
        let http_listen = address(
            "http_listen",
            args.http_listen
                .as_deref()
                .or(raw.http_listen.as_deref())
                .unwrap_or(DEFAULT_HTTP_LISTEN),
        )?;
        let data_dir = absolute(
            &args
                .data_dir
                .clone()
                .or(raw.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        );
        let site_dir = site_dir(args.site_dir.clone(), raw.site_dir);

        let mut declared: Vec<(String, Option<Secret>)> = if args.streams.is_empty() {
            raw.streams.into_iter().map(|s| (s.name, s.key)).collect()
        } else {
            args.streams
                .iter()
                .map(|flag| stream_flag(flag))
                .collect::<Result<_, _>>()?
        };
        if declared.is_empty() {
            declared.push((DEFAULT_STREAM.to_string(), None));
        }
        at_most_count("[[stream]] (or --stream)", declared.len(), MAX_STREAMS)?;
        for (i, (name, _)) in declared.iter().enumerate() {
            check_name(name)?;
            if declared[..i].iter().any(|(other, _)| other == name) {
                return Err(ConfigError::DuplicateStream(name.clone()));
            }
        }

        let viewer_queue_frames = args
            .viewer_queue_frames
            .or(raw.viewer_queue_frames)
            .unwrap_or(512);
        at_least("viewer_queue_frames", viewer_queue_frames as u64, 16)?;
        at_most(
            "viewer_queue_frames",
            viewer_queue_frames as u64,
            MAX_VIEWER_QUEUE_FRAMES,
        )?;
        let stall = args
            .viewer_stall_timeout_s
            .or(raw.viewer_stall_timeout_s)
            .unwrap_or(10);
        at_least("viewer_stall_timeout_s", stall, 1)?;
        at_most("viewer_stall_timeout_s", stall, MAX_VIEWER_STALL_TIMEOUT_S)?;
        let rtmp_max_connections = args
            .rtmp_max_connections
            .or(raw.rtmp_max_connections)
            .unwrap_or(4096);
        at_least("rtmp_max_connections", rtmp_max_connections as u64, 1)?;
        at_most(
            "rtmp_max_connections",
            rtmp_max_connections as u64,
            MAX_RTMP_MAX_CONNECTIONS,
        )?;
        let rtmp_batch_ms = args.rtmp_batch_ms.or(raw.rtmp_batch_ms).unwrap_or(100);
        at_most("rtmp_batch_ms", rtmp_batch_ms, MAX_RTMP_BATCH_MS)?;
        let part_ms = args
            .hls_part_target_ms
            .or(raw.hls_part_target_ms)
            .unwrap_or(334);
        at_least("hls_part_target_ms", part_ms, 100)?;
        at_most("hls_part_target_ms", part_ms, 1000)?;
        let window = args
            .hls_window_segments
            .or(raw.hls_window_segments)
            .unwrap_or(6);
        at_least("hls_window_segments", window as u64, 3)?;
        at_most(
            "hls_window_segments",
            window as u64,
            MAX_HLS_WINDOW_SEGMENTS,
        )?;
        let max_segment_s = args
            .hls_max_segment_s
            .or(raw.hls_max_segment_s)
            .unwrap_or(12);
        at_least("hls_max_segment_s", max_segment_s, 2)?;
        at_most("hls_max_segment_s", max_segment_s, 60)?;
        let webrtc_ip = args
            .webrtc_ip
            .clone()
            .or(raw.webrtc_ip)
            .unwrap_or_else(|| "0.0.0.0".into());
        let udp_ip = webrtc_ip
            .parse()
            .map_err(|_| ConfigError::WebrtcIp(webrtc_ip.clone()))?;
        let public_ip = match args.webrtc_public_ip.clone().or(raw.webrtc_public_ip) {
            Some(ip) => Some(ip.parse().map_err(|_| ConfigError::WebrtcIp(ip.clone()))?),
            None => None,
        };
        let ice_servers = if args.ice_servers.is_empty() {
            raw.ice_servers
        } else {
            args.ice_servers.clone()
        };
        at_most_count(
            "ice_servers (or --ice-server)",
            ice_servers.len(),
            MAX_ICE_SERVERS,
        )?;
        let idle_min = args
            .admin_idle_timeout_min
            .or(raw.admin_idle_timeout_min)
            .unwrap_or(30);
        at_least("admin_idle_timeout_min", idle_min, 1)?;
        // Minutes become seconds and then a session expiry date: a month keeps
        // both far from overflow.
        at_most("admin_idle_timeout_min", idle_min, 43_200)?;
        let secure_cookies = args.secure_cookies.or(raw.secure_cookies).unwrap_or(false);

        // An edge acts on nothing outside: the origin owns the PDU, the
        // tweet poller and the pushes, and doing them twice would switch the
        // lights or flash the tree twice.
        if !raw.origin.is_empty() || !args.origin.is_empty() {
            for (given, what) in [
                (
                    !raw.pdus.is_empty() || !raw.outlets.is_empty(),
                    "[[pdu]] and [[outlet]]",
                ),
                (
                    raw.twitter.bearer_token.is_some() || args.twitter_bearer_token.is_some(),
                    "[twitter] bearer_token",
                ),
                (!raw.pushes.is_empty() || !args.push.is_empty(), "[[push]]"),
            ] {
                if given {
                    return Err(ConfigError::OnEdge(what));
                }
            }
        }
        let lights = LightsConfig::check(RawLights {
            timezone: args.timezone.clone().or(raw.timezone),
            poll_s: args.lights_poll_s.or(raw.lights_poll_s),
            guard_switches: args.relay_guard_switches.or(raw.relay_guard_switches),
            guard_window_s: args.relay_guard_window_s.or(raw.relay_guard_window_s),
            audit_keep: args.audit_keep.or(raw.audit_keep),
            pdus: raw.pdus,
            outlets: raw.outlets,
        })?;
        let twitter =
            TwitterConfig::check(raw.twitter, args.twitter_bearer_token.clone(), &lights)?;
        let pushes = if args.push.is_empty() {
            raw.pushes
        } else {
            args.push
                .iter()
                .map(|url| RawPush {
                    url: url.clone(),
                    stream: None,
                })
                .collect()
        };
        at_most_count("[[push]] (or --push)", pushes.len(), MAX_PUSHES)?;
        let pushes = pushes
            .into_iter()
            .map(|raw| {
                let target = PushTarget::parse(&raw.url)?;
                let stream = raw.stream.unwrap_or_else(|| declared[0].0.clone());
                if !declared.iter().any(|(name, _)| *name == stream) {
                    return Err(ConfigError::PushStream(stream));
                }
                Ok(PushConfig { target, stream })
            })
            .collect::<Result<_, ConfigError>>()?;

        let youtube_fallback = match raw.youtube_fallback {
            Some(value) => Some(
                crate::http::youtube::fallback(&value)
                    .ok_or(ConfigError::YoutubeFallback(value))?,
            ),
            None => None,
        };
        let cluster_secret = args
            .cluster_secret
            .clone()
            .or(raw.cluster_secret)
            .map(Secret::new);
        let origins = if args.origin.is_empty() {
            raw.origin
        } else {
            args.origin.clone()
        };
        let edge = EdgeSettings::check(RawEdge {
            origins,
            pull: args.edge_pull.clone().or(raw.edge_pull),
            idle_s: args.edge_idle_s.or(raw.edge_idle_s),
            secret: cluster_secret.as_ref(),
            origin_http: if args.origin_http.is_empty() {
                raw.origin_http
            } else {
                args.origin_http.clone()
            },
        })?;
        let drain_s = args
            .drain_s
            .or(raw.drain_s)
            .unwrap_or(if edge.is_some() { 30 } else { 0 });
        at_most("drain_s", drain_s, 3600)?;
        let rtmp_limits = RawRtmpLimits::check(&args.rtmp_limits, &raw.rtmp_limits)?;
        let http_limits = RawHttpLimits::check(&args.http_limits, &raw.http_limits)?;
        let whep_limits = RawWhepLimits::check(&args.whep_limits, &raw.whep_limits)?;
        let auth_limits = RawAuthLimits::check(&args.auth_limits, &raw.auth_limits)?;

        // Last, once everything else checked out: a refused start writes no
        // key file.
        let mut streams = Vec::with_capacity(declared.len());
        let mut stored_keys = Vec::new();
        for (name, key) in declared {
            let key = match key {
                Some(key) => key,
                None => {
                    let (key, path, new) = stored_key(&data_dir, &name)?;
                    stored_keys.push(StoredKey {
                        stream: name.clone(),
                        path,
                        new,
                    });
                    key
                }
            };
            if key.expose().len() < 8 {
                return Err(ConfigError::ShortKey(name));
            }
            if let Some(other) = streams.iter().find(|s: &&StreamConfig| s.key == key) {
                return Err(ConfigError::SharedKey(other.name.clone(), name));
            }
            streams.push(StreamConfig { name, key });
        }
        let config = Config {
            rtmp_listen,
            http_listen,
            data_dir,
            site_dir,
            youtube_fallback,
            streams,
            viewer_queue_frames,
            viewer_stall_timeout: Duration::from_secs(stall),
            rtmp_batch: Duration::from_millis(rtmp_batch_ms),
            rtmp_max_connections,
            hls: SegmenterSettings {
                part_target: Duration::from_millis(part_ms),
                window_segments: window,
                max_segment: Duration::from_secs(max_segment_s),
                ..SegmenterSettings::default()
            },
            pushes,
            webrtc: WhepSettings {
                udp_ip,
                udp_port: args
                    .webrtc_udp_port
                    .or(raw.webrtc_udp_port)
                    .unwrap_or(DEFAULT_WEBRTC_UDP_PORT),
                public_ip,
                ice_servers,
            },
            admin_idle_timeout: Duration::from_secs(idle_min * 60),
            secure_cookies,
            lights,
            twitter,
            rtmp_limits,
            http_limits,
            whep_limits,
            auth_limits,
            cluster_secret,
            edge,
            drain: Duration::from_secs(drain_s),
        };
        Ok((config, stored_keys))
    }

    /// The stream a publish key belongs to.
    pub fn stream_for_key(&self, key: &str) -> Option<&StreamConfig> {
        // Every key is compared, so the time taken does not tell which one matched.
        self.streams.iter().fold(None, |found, stream| {
            if stream.key.matches(key) {
                Some(stream)
            } else {
                found
            }
        })
    }
}

fn address(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::Address {
        key,
        value: value.to_string(),
    })
}

fn at_least(key: &'static str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min {
        Err(ConfigError::TooSmall { key, value, min })
    } else {
        Ok(())
    }
}

fn at_most(key: &'static str, value: u64, max: u64) -> Result<(), ConfigError> {
    if value > max {
        Err(ConfigError::TooLarge { key, value, max })
    } else {
        Ok(())
    }
}

fn at_most_count(kind: &'static str, count: usize, max: usize) -> Result<(), ConfigError> {
    if count > max {
        Err(ConfigError::TooMany { kind, count, max })
    } else {
        Ok(())
    }
}

fn stream_flag(flag: &str) -> Result<(String, Option<Secret>), ConfigError> {
    match flag.split_once('=') {
        Some((name, key)) if !name.is_empty() && !key.is_empty() => {
            Ok((name.to_string(), Some(Secret::new(key))))
        }
        _ => Err(ConfigError::StreamFlag(flag.to_string())),
    }
}

/// The rule for every name users give in the config (streams, PDUs,
/// outlets): 1 to 64 lowercase letters, digits, '-' or '_', safe in URLs and
/// file names.
pub(crate) fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_name(name: &str) -> Result<(), ConfigError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(ConfigError::StreamName(name.to_string()))
    }
}

/// The key kept in `DATA_DIR/NAME.key`, made (readable by the owner only) when
/// it is not there yet, with its path and whether it is new. A new key has
/// never been published, whatever an older key's marker said.
fn stored_key(data_dir: &Path, name: &str) -> Result<(Secret, PathBuf, bool), ConfigError> {
    use rand::Rng;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let path = data_dir.join(format!("{name}.key"));
    let fail = |cause| ConfigError::KeyFile {
        path: path.clone(),
        cause,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok((Secret::new(text.trim()), path, false)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(fail(err)),
    }
    std::fs::create_dir_all(data_dir).map_err(fail)?;
    let key: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    // Written under a temporary name and renamed, so a crash never leaves half a key.
    let temp = data_dir.join(format!(".{name}.key.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(fail)?;
    file.write_all(format!("{key}\n").as_bytes())
        .map_err(fail)?;
    file.sync_all().map_err(fail)?;
    crate::onboarding::marker::forget(data_dir, name).map_err(fail)?;
    std::fs::rename(&temp, &path).map_err(fail)?;
    Ok((Secret::new(key), path, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tinsel-config-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn args(dir: &Path) -> ServeArgs {
        ServeArgs {
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_make_one_tree_stream_with_a_stored_private_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir();
        let (config, new_keys) = Config::merge(&args(&dir), RawConfig::default()).unwrap();
        assert_eq!(config.rtmp_listen.to_string(), "[::]:1935");
        assert_eq!(config.http_listen.port(), 8080);
        assert_eq!(config.streams.len(), 1);
        assert_eq!(config.streams[0].name, "tree");
        assert_eq!(new_keys.len(), 1);
        let mode = std::fs::metadata(&new_keys[0].path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        assert!(new_keys[0].new);
        let (again, stored) = Config::merge(&args(&dir), RawConfig::default()).unwrap();
        assert!(!stored[0].new, "the key is made once");
        assert_eq!(again.streams[0].key, config.streams[0].key);
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = temp_dir();
        let raw: RawConfig = toml::from_str(
            r#"
            rtmp_listen = "127.0.0.1:1999"
            http_listen = "127.0.0.1:8999"
            [[stream]]
            name = "tree"
            key = "file-key-123"
            "#,
        )
        .unwrap();
        let mut args = args(&dir);
        args.http_listen = Some("127.0.0.1:0".into());
        let (config, _) = Config::merge(&args, raw).unwrap();
        assert_eq!(config.rtmp_listen.to_string(), "127.0.0.1:1999");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.stream_for_key("file-key-123").unwrap().name, "tree");
        assert!(config.stream_for_key("file-key-12").is_none());
    }

    #[test]
    fn bad_values_say_what_to_do() {
        let dir = temp_dir();
        let mut bad = args(&dir);
        bad.rtmp_listen = Some("localhost".into());
        let err = Config::merge(&bad, RawConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rtmp_listen") && err.contains("[::]:1935"),
            "{err}"
        );

        let mut bad = args(&dir);
        bad.streams = vec!["Tree=abcdefghij".into()];
        let err = Config::merge(&bad, RawConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lowercase"), "{err}");

        let mut bad = args(&dir);
        bad.streams = vec!["a=samekey123".into(), "b=samekey123".into()];
        assert!(matches!(
            Config::merge(&bad, RawConfig::default()),
            Err(ConfigError::SharedKey(_, _))
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let dir = temp_dir();
        let mut with_key = args(&dir);
        with_key.streams = vec!["tree=supersecretkey".into()];
        let (config, _) = Config::merge(&with_key, RawConfig::default()).unwrap();
        assert!(!format!("{config:?}").contains("supersecretkey"));
    }

    fn refused(text: &str) -> String {
        let dir = temp_dir();
        let raw = file::parse(Path::new("tinsel.toml"), text).unwrap();
        Config::merge(&args(&dir), raw).unwrap_err().to_string()
    }

    #[test]
    fn an_edge_refuses_what_only_the_origin_may_run_and_needs_the_secret() {
        let edge = "origin = [\"rtmp://origin-a\"]\ncluster_secret = \"0123456789abcdef\"\n";
        let err = refused(&format!("{edge}[[push]]\nurl = \"rtmp://a/live2/KEY\"\n"));
        assert!(err.starts_with("[[push]] is set on an edge"), "{err}");
        let err = refused(&format!(
            "{edge}[[pdu]]\nname = \"p\"\nmodel = \"simulated\"\n"
        ));
        assert!(
            err.starts_with("[[pdu]] and [[outlet]] is set on an edge"),
            "{err}"
        );
        let err = refused("origin = [\"rtmp://origin-a\"]\n");
        assert!(err.contains("cluster_secret is not"), "{err}");
        let dir = temp_dir();
        let raw = file::parse(Path::new("tinsel.toml"), edge).unwrap();
        let (config, _) = Config::merge(&args(&dir), raw).unwrap();
        assert_eq!(
            config.drain,
            Duration::from_secs(30),
            "an edge drains by default"
        );
        let origin = file::parse(Path::new("tinsel.toml"), "").unwrap();
        let (config, _) = Config::merge(&args(&dir), origin).unwrap();
        assert_eq!(
            config.drain,
            Duration::ZERO,
            "an origin stops at once by default"
        );
    }

    #[test]
    fn values_that_feed_buffers_deadlines_and_counts_have_an_upper_bound() {
        let cases = [
            (
                "viewer_queue_frames = 65537",
                "viewer_queue_frames = 65537 is too large: it must be at most 65536",
            ),
            (
                "viewer_stall_timeout_s = 18446744073709551615",
                "viewer_stall_timeout_s = 18446744073709551615 is too large: it must be at most 3600",
            ),
            (
                "rtmp_batch_ms = 1001",
                "rtmp_batch_ms = 1001 is too large: it must be at most 1000",
            ),
            (
                "rtmp_max_connections = 1000001",
                "rtmp_max_connections = 1000001 is too large: it must be at most 1000000",
            ),
            (
                "hls_window_segments = 31",
                "hls_window_segments = 31 is too large: it must be at most 30",
            ),
            (
                "viewer_queue_frames = 15",
                "viewer_queue_frames = 15 is too small: it must be at least 16",
            ),
            (
                "rtmp_start_timeout_s = 3601",
                "rtmp_start_timeout_s = 3601 is above its maximum 3600",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(refused(text), want, "{text}");
        }
        let many = format!("ice_servers = [{}]", vec!["\"stun:a\""; 33].join(","));
        assert_eq!(
            refused(&many),
            "ice_servers (or --ice-server) is configured 33 times; at most 32 are allowed"
        );
        let dir = temp_dir();
        let raw = file::parse(
            Path::new("tinsel.toml"),
            "viewer_queue_frames = 65536
viewer_stall_timeout_s = 3600
rtmp_batch_ms = 0
\
             rtmp_max_connections = 1000000
hls_window_segments = 30
",
        )
        .unwrap();
        assert!(
            Config::merge(&args(&dir), raw).is_ok(),
            "the bounds themselves are allowed"
        );
    }

    #[test]
    fn youtube_fallback_is_checked_and_a_url_becomes_the_id() {
        let dir = temp_dir();
        let raw = file::parse(
            Path::new("tinsel.toml"),
            "youtube_fallback = \"https://youtu.be/dQw4w9WgXcQ\"",
        )
        .unwrap();
        let (config, _) = Config::merge(&args(&dir), raw).unwrap();
        assert_eq!(config.youtube_fallback.as_deref(), Some("dQw4w9WgXcQ"));
        let err = refused("youtube_fallback = \"VIDEO_ID\"");
        assert!(
            err.starts_with("youtube_fallback = \"VIDEO_ID\" is not a YouTube video or channel; use an 11-character"),
            "{err}"
        );
    }

    #[test]
    fn errors_are_one_line_and_do_not_repeat_their_cause() {
        let err = ConfigError::Read {
            path: "tinsel.toml".into(),
            reason: "no such file".into(),
        };
        assert!(std::error::Error::source(&err).is_none());
        let err = refused("[[stream]]\nname = \"tree\"\nkey = \"short\"");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_default_data_dir_without_a_database_is_refused_and_a_named_one_is_not() {
        let dir = temp_dir();
        let default = DataDir {
            path: dir.join("data"),
            named: false,
        };
        let err = default.require_database().unwrap_err().to_string();
        assert!(
            err.contains("--data-dir") && err.contains("--config"),
            "{err}"
        );
        assert!(
            err.contains(&dir.join("data").join("tinsel.db").display().to_string()),
            "{err}"
        );
        let named = DataDir {
            named: true,
            ..default.clone()
        };
        assert!(named.require_database().is_ok());
        std::fs::create_dir_all(&default.path).unwrap();
        std::fs::write(default.path.join("tinsel.db"), "").unwrap();
        assert!(default.require_database().is_ok());
    }

    #[test]
    fn a_new_key_forgets_an_old_first_publish() {
        let dir = temp_dir();
        crate::onboarding::marker::mark(&dir, "tree").unwrap();
        let (_, stored) = Config::merge(&args(&dir), RawConfig::default()).unwrap();
        assert!(stored[0].new);
        assert!(!crate::onboarding::marker::is_published(&dir, "tree"));
    }

    #[test]
    fn secret_comparison() {
        let key = Secret::new("abcdefgh");
        assert!(key.matches("abcdefgh"));
        assert!(!key.matches("abcdefg"));
        assert!(!key.matches("abcdefghi"));
        assert!(!key.matches(""));
    }
}
