//! `tinsel-load`: point a crowd of RTMP or WebRTC (WHEP) viewers at a
//! stream and say whether they all kept up.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tinsel_load::procfs::process_cpu_seconds;
use tinsel_load::{Source, WhepOptions, error_counts, run_crowd, summarize};

/// Plays a stream with many concurrent viewers, over RTMP or WebRTC (WHEP),
/// and reports what they received. Exits 0 when every viewer kept up, 1
/// otherwise.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Stream to play: rtmp://HOST[:PORT]/APP/STREAM for RTMP, or a WHEP
    /// endpoint, http(s)://HOST[:PORT]/whep/STREAM, for WebRTC.
    #[arg(long)]
    url: String,
    /// Concurrent viewers.
    #[arg(long, default_value_t = 50)]
    viewers: usize,
    /// Seconds over which the viewers join, evenly spread.
    #[arg(long, default_value_t = 2.0)]
    ramp_s: f64,
    /// Seconds every viewer keeps watching after the ramp.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// The stream's frame rate; a viewer keeps up at 90% of it.
    #[arg(long, default_value_t = 30.0)]
    expected_fps: f64,
    /// WHEP only: every viewer asks for a keyframe (RTCP PLI) this often,
    /// from its first frame on.
    #[arg(long)]
    pli_every_s: Option<f64>,
    /// Print the summary and every viewer's report as JSON.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let ramp = seconds("--ramp-s", args.ramp_s)?;
    let duration = seconds("--duration-s", args.duration_s)?;
    let pli_every = match args.pli_every_s {
        Some(s) if s > 0.0 => Some(seconds("--pli-every-s", s)?),
        Some(_) => anyhow::bail!("--pli-every-s must be a positive number of seconds"),
        None => None,
    };
    let source = Source::from_url(&args.url, WhepOptions { pli_every })?;
    if pli_every.is_some() && !source.is_whep() {
        anyhow::bail!("--pli-every-s needs a WHEP (http:// or https://) URL");
    }
    let own_pid = std::process::id() as i32;
    let cpu_before = process_cpu_seconds(own_pid)?;
    let reports = run_crowd(&source, args.viewers, ramp, duration).await;
    let own_cpu_s = process_cpu_seconds(own_pid)? - cpu_before;
    let own_cpu_ms_per_viewer =
        (args.viewers > 0).then(|| 1000.0 * own_cpu_s / args.viewers as f64);
    let summary = summarize(&reports, args.expected_fps);
    if args.json {
        let out = serde_json::json!({
            "url": args.url,
            "summary": summary,
            "load_generator_cpu_s": own_cpu_s,
            "load_generator_cpu_ms_per_viewer": own_cpu_ms_per_viewer,
            "viewers": reports,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{summary}");
        println!(
            "load generator: {own_cpu_s:.2} CPU s, {} per viewer",
            own_cpu_ms_per_viewer.map_or_else(|| "-".to_string(), |ms| format!("{ms:.1} ms"))
        );
        for count in error_counts(reports.iter().filter_map(|r| r.error.as_deref())) {
            eprintln!("{} viewer(s): {}", count.viewers, count.error);
        }
    }
    let all_kept_up = summary.viewers > 0 && summary.keeping_up == summary.viewers;
    Ok(if all_kept_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{flag} must be a non-negative number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_rejects_negative() {
        assert!(seconds("--ramp-s", -1.0).is_err());
        assert_eq!(
            seconds("--ramp-s", 1.5).unwrap(),
            Duration::from_millis(1500)
        );
    }
}
