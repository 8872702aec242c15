//! The words printed at start and by `tinsel key show` (pure): every URL with
//! the ports really in use and a host a browser on this machine reaches.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use crate::config::RTMP_APP;

/// Where the server listens, as bound (port 0 already became a real port).
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    pub webrtc_udp_port: u16,
}

/// A stream key to show, with the file it is kept in (none for a key
/// written in the config).
#[derive(Debug, Clone, Copy)]
pub struct ShownKey<'a> {
    pub stream: &'a str,
    pub key: &'a str,
    pub kept_in: Option<&'a Path>,
}

/// The host to put in a URL for `ip`, and whether it stands in for every
/// address (`0.0.0.0`, `[::]`): then `localhost`, which works on this machine.
pub fn host(ip: IpAddr) -> (String, bool) {
    match ip {
        ip if ip.is_unspecified() => ("localhost".into(), true),
        IpAddr::V4(v4) => (v4.to_string(), false),
        IpAddr::V6(v6) => (format!("[{v6}]"), false),
    }
}

fn url_base(scheme: &str, addr: SocketAddr) -> String {
    format!("{scheme}://{}:{}", host(addr.ip()).0, addr.port())
}

/// Where to watch and play each stream (the first is the default), and the
/// data dir; printed at every start.
pub fn addresses(at: &Addresses, streams: &[&str], data_dir: &Path) -> String {
    let web = url_base("http", at.http);
    let rtmp = url_base("rtmp", at.rtmp);
    let mut out = format!(
        "\nTinsel is running; its data dir is {}\n",
        data_dir.display()
    );
    let _ = write!(out, "  Watch page:  {web}/");
    if host(at.http.ip()).1 {
        out.push_str(
            "  (it listens on every address: from another machine, use this one's name or IP \
             instead of localhost)",
        );
    }
    out.push('\n');
    for name in streams.iter().skip(1) {
        let _ = writeln!(out, "               {web}/watch/{name}");
    }
    for name in streams {
        let _ = writeln!(out, "  Play in VLC: {rtmp}/{RTMP_APP}/{name}");
    }
    let _ = writeln!(
        out,
        "  WebRTC:      viewers send UDP to port {}; open it in the firewall (and forward it \
         through NAT) for the lowest delay",
        at.webrtc_udp_port
    );
    out
}

/// What to paste into OBS for one stream; `hint` ends it (where else to find
/// it, or nothing).
pub fn obs(rtmp: SocketAddr, key: &ShownKey<'_>, hint: &str) -> String {
    let base = url_base("rtmp", rtmp);
    let mut out = format!(
        "\nStream {name:?}: in OBS, Settings > Stream, choose Service: Custom, then paste:\n  \
         Server:     {base}/{RTMP_APP}\n  \
         Stream Key: {key}\n",
        name = key.stream,
        key = key.key,
    );
    if let Some(path) = key.kept_in {
        let _ = writeln!(out, "The key is kept in {}.", path.display());
    }
    if !hint.is_empty() {
        let _ = writeln!(out, "{hint}");
    }
    out
}

/// The hint under a key shown at start.
pub fn until_first_publish(key_show: &str) -> String {
    format!(
        "This is shown at every start until the first publish; `{key_show}` prints it any time."
    )
}

/// The `tinsel key show` command for this server: its config file if it has
/// one, else its data dir.
pub fn key_show_command(config: Option<&Path>, data_dir: &Path) -> String {
    match config {
        Some(file) => format!("tinsel key show --config {}", quoted(file)),
        None => format!("tinsel key show --data-dir {}", quoted(data_dir)),
    }
}

/// How to make the first admin account, for a server that has none.
pub fn first_admin(data_dir: &Path) -> String {
    format!(
        "\nNo admin account yet. Make the first one (type its password, then Enter):\n  {}\n",
        first_admin_command(data_dir)
    )
}

/// The command that makes the first admin of the server whose data is in
/// `data_dir`, to paste on the server (the start and the login page show it).
pub fn first_admin_command(data_dir: &Path) -> String {
    format!(
        "tinsel user add admin --password-stdin --data-dir {}",
        quoted(data_dir)
    )
}

/// `path` as a shell word: as it is when that is safe, else in single quotes.
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@".contains(&b));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(http: &str, rtmp: &str) -> Addresses {
        Addresses {
            http: http.parse().unwrap(),
            rtmp: rtmp.parse().unwrap(),
            webrtc_udp_port: 8189,
        }
    }

    #[test]
    fn a_wildcard_address_becomes_localhost_with_a_note() {
        let text = addresses(
            &at("[::]:8080", "0.0.0.0:1935"),
            &["tree"],
            Path::new("/srv/data"),
        );
        assert!(text.contains("its data dir is /srv/data\n"), "{text}");
        assert!(
            text.contains("Watch page:  http://localhost:8080/  (it listens on every address"),
            "{text}"
        );
        assert!(
            text.contains("Play in VLC: rtmp://localhost:1935/live/tree\n"),
            "{text}"
        );
        assert!(text.contains("UDP to port 8189"), "{text}");
    }

    #[test]
    fn a_given_address_is_used_as_it_is() {
        let text = addresses(
            &at("127.0.0.1:8999", "[::1]:1999"),
            &["tree", "porch"],
            Path::new("/d"),
        );
        assert!(
            text.contains("Watch page:  http://127.0.0.1:8999/\n"),
            "{text}"
        );
        assert!(
            text.contains("http://127.0.0.1:8999/watch/porch\n"),
            "{text}"
        );
        assert!(text.contains("rtmp://[::1]:1999/live/porch\n"), "{text}");
        assert!(!text.contains("every address"), "{text}");
    }

    #[test]
    fn obs_settings_use_the_real_port() {
        let key = ShownKey {
            stream: "tree",
            key: "abc123",
            kept_in: Some(Path::new("/d/tree.key")),
        };
        let text = obs(
            "[::]:1999".parse().unwrap(),
            &key,
            &until_first_publish("tinsel key show --data-dir /d"),
        );
        assert!(
            text.contains("  Server:     rtmp://localhost:1999/live\n"),
            "{text}"
        );
        assert!(text.contains("  Stream Key: abc123\n"), "{text}");
        assert!(text.contains("kept in /d/tree.key."), "{text}");
        assert!(
            text.contains("`tinsel key show --data-dir /d` prints it any time"),
            "{text}"
        );
    }

    #[test]
    fn commands_quote_what_the_shell_would_split() {
        assert!(
            first_admin(Path::new("/srv/data"))
                .contains("tinsel user add admin --password-stdin --data-dir /srv/data\n")
        );
        assert!(
            first_admin(Path::new("/home/a b/it's")).contains(r"--data-dir '/home/a b/it'\''s'")
        );
        assert_eq!(
            key_show_command(Some(Path::new("/etc/tinsel.toml")), Path::new("/d")),
            "tinsel key show --config /etc/tinsel.toml"
        );
    }
}
