//! The `tinsel` command: parses the command line, sets up logging and signals,
//! binds the ports and runs the server.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tinsel::config::{Cli, Command, Config, NewKey, RTMP_APP, UserAddArgs, UserCommand};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::info;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::User(UserCommand::Add(args)) => user_add(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tinsel: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &tinsel::config::ServeArgs) -> anyhow::Result<()> {
    let (config, new_keys) = Config::load(args)?;
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
        print_new_keys(&config, &new_keys, listeners.rtmp.local_addr()?);
        let token = CancellationToken::new();
        // Handlers are in place before anyone can learn that the server is up.
        let signals = Signals::install()?;
        tokio::spawn(signals.cancel_on_first(token.clone()));
        tinsel::run(config, listeners, token)
            .await
            .context("the server stopped with an error")
    })?;
    info!("stopped");
    Ok(())
}

/// Creates or resets an admin account, reading the password from stdin.
fn user_add(args: &UserAddArgs) -> anyhow::Result<()> {
    use tinsel::auth::accounts::{self, Saved};
    let data_dir = Config::data_dir_for(args.config.as_deref(), args.data_dir.clone())?;
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
        "admin account {:?} {done} (database in {})",
        args.name,
        data_dir.display()
    );
    Ok(())
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

/// The first start made a key: show it once, with what to paste into OBS.
fn print_new_keys(config: &Config, new_keys: &[NewKey], rtmp: SocketAddr) {
    for new in new_keys {
        let Some(stream) = config.streams.iter().find(|s| s.name == new.stream) else {
            continue;
        };
        let port = rtmp.port();
        println!(
            "\nNew stream key for stream {name:?} (kept in {path}; shown only this once).\n\
             In OBS, Settings > Stream, choose Service: Custom, then paste:\n  \
             Server:     rtmp://THIS-HOST:{port}/{RTMP_APP}\n  \
             Stream Key: {key}\n\
             Viewers play rtmp://THIS-HOST:{port}/{RTMP_APP}/{name} or open the web page.\n",
            name = stream.name,
            path = new.path.display(),
            key = stream.key.expose(),
        );
    }
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

    async fn cancel_on_first(mut self, token: CancellationToken) {
        tokio::select! {
            _ = self.interrupt.recv() => info!("SIGINT: shutting down"),
            _ = self.terminate.recv() => info!("SIGTERM: shutting down"),
        }
        token.cancel();
    }
}
