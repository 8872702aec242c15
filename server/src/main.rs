//! The `tinsel` command: parses the command line, sets up logging and signals,
//! binds the ports and runs the server.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tinsel::config::{
    Cli, Command, Config, KeyCommand, KeyShowArgs, StoredKey, UserAddArgs, UserCommand,
};
use tinsel::onboarding::{marker, message};
use tinsel::readiness::Readiness;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::info;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The rtc crate warns at every WebRTC session's start of what is
    // expected there: a DTLS client without a server name (WebRTC checks the
    // certificate's fingerprint, not a name) and ICE checks before the
    // viewer's first one arrived. Those two stay quiet whatever RUST_LOG says.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn".into())
        .add_directive("rtc_dtls::config=error".parse().expect("a valid directive"))
        .add_directive("rtc_ice::agent=error".parse().expect("a valid directive"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::User(UserCommand::Add(args)) => user_add(&args),
        Command::Key(KeyCommand::Show(args)) => key_show(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tinsel: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &tinsel::config::ServeArgs) -> anyhow::Result<()> {
    let (config, stored_keys) = Config::load(args)?;
    // Without it every page would wait for a script that is not there.
    tinsel::web_app::Bundle::find(&config.site_dir)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listeners = tinsel::Listeners {
            rtmp: bind(config.rtmp_listen, "RTMP", "--rtmp-listen").await?,
            http: bind(config.http_listen, "HTTP", "--http-listen").await?,
            webrtc_udp: bind_udp(SocketAddr::new(
                config.webrtc.udp_ip,
                config.webrtc.udp_port,
            ))?,
        };
        let at = message::Addresses {
            http: listeners.http.local_addr()?,
            rtmp: listeners.rtmp.local_addr()?,
            webrtc_udp_port: listeners.webrtc_udp.local_addr()?.port(),
        };
        let admin_missing = {
            let db = tinsel::db::Db::open(&config.data_dir).await?;
            !tinsel::auth::accounts::any_exists(&db).await?
        };
        print_start(
            &config,
            args.config.as_deref(),
            &stored_keys,
            &at,
            admin_missing,
        );
        let token = CancellationToken::new();
        // Handlers are in place before anyone can learn that the server is up.
        let signals = Signals::install()?;
        let readiness = Arc::new(Readiness::default());
        tokio::spawn(signals.stop(token.clone(), Arc::clone(&readiness), config.drain));
        tinsel::run_with(config, listeners, token, readiness)
            .await
            .context("the server stopped with an error")
    })?;
    info!("stopped");
    Ok(())
}

/// Creates or resets an admin account, reading the password from stdin.
fn user_add(args: &UserAddArgs) -> anyhow::Result<()> {
    use tinsel::auth::accounts::{self, Saved};
    let data_dir = Config::data_dir_for(&args.place)?;
    data_dir.require_database()?;
    let data_dir = data_dir.path;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let saved = runtime.block_on(async {
        let db = tinsel::db::Db::open(&data_dir).await?;
        anyhow::Ok(accounts::set_password(&db, &args.name, password).await?)
    })?;
    let done = match saved {
        Saved::Created => "created",
        Saved::Reset => "has a new password",
    };
    println!(
        "admin account {:?} {done} (database {})",
        args.name,
        data_dir.join(tinsel::db::DB_FILE).display()
    );
    Ok(())
}

/// Prints every stream's OBS settings and player URLs, from the config the
/// server would run on.
fn key_show(args: &KeyShowArgs) -> anyhow::Result<()> {
    // A key is made at the first start; a default data dir without the
    // database is another folder than the server's, not a place for a key.
    Config::data_dir_for(&args.place)?.require_database()?;
    let (config, stored_keys) = Config::load_for(&args.place)?;
    let at = message::Addresses {
        http: config.http_listen,
        rtmp: config.rtmp_listen,
        webrtc_udp_port: config.webrtc.udp_port,
    };
    let names: Vec<&str> = config.streams.iter().map(|s| s.name.as_str()).collect();
    let mut text = String::new();
    for stream in &config.streams {
        let kept_in = stored_keys
            .iter()
            .find(|stored| stored.stream == stream.name)
            .map(|stored| stored.path.as_path());
        let key = message::ShownKey {
            stream: &stream.name,
            key: stream.key.expose(),
            kept_in,
        };
        text.push_str(&message::obs(at.rtmp, &key, ""));
    }
    text.push_str(&message::addresses(&at, &names, &config.data_dir));
    print!("{text}");
    Ok(())
}

/// The error and its causes on one line, each cause once: a message that
/// already quotes its cause (as many library errors do) does not get it again.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', "; ")
}

/// Binds `addr`; `[::]` also takes IPv4 (dual stack), as users expect of "all addresses".
async fn bind(addr: SocketAddr, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        tokio::net::TcpSocket::new_v6()
    } else {
        tokio::net::TcpSocket::new_v4()
    }
    .with_context(|| format!("cannot open a {what} socket"))?;
    socket.set_reuseaddr(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket2::SockRef::from(&socket).set_only_v6(false)?;
    }
    socket.bind(addr).map_err(|err| {
        let hint = if err.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "the port is already taken; stop the other program or choose another with {flag}"
            )
        } else {
            err.to_string()
        };
        anyhow::anyhow!("cannot listen for {what} on {addr}: {hint}")
    })?;
    Ok(socket.listen(1024)?)
}

/// Binds WebRTC's shared UDP port.
fn bind_udp(addr: SocketAddr) -> anyhow::Result<std::net::UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
        .context("cannot open the WebRTC UDP socket")?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into()).map_err(|err| {
        let hint = if err.kind() == std::io::ErrorKind::AddrInUse {
            "the port is already taken; stop the other program or choose another with --webrtc-udp-port".to_string()
        } else {
            err.to_string()
        };
        anyhow::anyhow!("cannot listen for WebRTC on UDP {addr}: {hint}")
    })?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// What a newcomer needs, at every start: where to watch and play, the UDP
/// port to open; each generated key not yet published with what to paste
/// into OBS; and, while there is no admin, how to make the first.
fn print_start(
    config: &Config,
    config_file: Option<&std::path::Path>,
    stored_keys: &[StoredKey],
    at: &message::Addresses,
    admin_missing: bool,
) {
    use std::io::Write;
    let names: Vec<&str> = config.streams.iter().map(|s| s.name.as_str()).collect();
    let mut text = message::addresses(at, &names, &config.data_dir);
    // An edge takes no publisher and has no admin: say what it is instead.
    if let Some(edge) = &config.edge {
        let origins: Vec<String> = edge
            .origins
            .iter()
            .map(|o| format!("rtmp://{}:{}", o.host, o.port))
            .collect();
        text.push_str(&format!(
            "\nThis node is an edge of {}: OBS publishes to the origin, and the admin panel is there.\n",
            origins.join(", ")
        ));
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
        return;
    }
    let config_file = config_file.map(tinsel::config::absolute);
    let hint = message::until_first_publish(&message::key_show_command(
        config_file.as_deref(),
        &config.data_dir,
    ));
    for stored in stored_keys {
        let Some(stream) = config.streams.iter().find(|s| s.name == stored.stream) else {
            continue;
        };
        if marker::is_published(&config.data_dir, &stream.name) {
            continue;
        }
        let key = message::ShownKey {
            stream: &stream.name,
            key: stream.key.expose(),
            kept_in: Some(&stored.path),
        };
        text.push_str(&message::obs(at.rtmp, &key, &hint));
    }
    if admin_missing {
        text.push_str(&message::first_admin(&config.data_dir));
    }
    let mut out = std::io::stdout().lock();
    // Nobody may be reading (stdout closed): the server runs all the same.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// SIGINT (Ctrl-C) and SIGTERM, caught from startup on.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        })
    }

    /// SIGINT (a person at the terminal) stops at once. SIGTERM (systemd,
    /// Kubernetes) first drains for `drain`: the node says it is not ready,
    /// so load balancers send new viewers elsewhere, while the current ones
    /// keep playing; a second signal ends the drain.
    async fn stop(mut self, token: CancellationToken, readiness: Arc<Readiness>, drain: Duration) {
        tokio::select! {
            _ = self.interrupt.recv() => {
                info!("SIGINT: shutting down");
                return token.cancel();
            }
            _ = self.terminate.recv() => {}
        }
        if drain.is_zero() {
            info!("SIGTERM: shutting down");
            return token.cancel();
        }
        info!(
            drain_s = drain.as_secs(),
            "SIGTERM: draining (not ready for new viewers; current ones keep playing)"
        );
        readiness.set(
            "draining",
            format!("draining: this node stops within {} s", drain.as_secs()),
        );
        tokio::select! {
            () = tokio::time::sleep(drain) => info!("drain time over: shutting down"),
            _ = self.interrupt.recv() => info!("SIGINT: shutting down now"),
            _ = self.terminate.recv() => info!("second SIGTERM: shutting down now"),
        }
        token.cancel();
    }
}
