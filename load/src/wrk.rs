//! The figures in a report of the `wrk` HTTP benchmark (4.x, run with
//! `--latency`). Pure: the text comes in, numbers in base units come out.
//!
//! wrk writes times with the units `us`, `ms`, `s`, `m` and `h`, byte counts
//! with binary prefixes (`KB` is 1024 bytes), and leaves the error lines out
//! when there were none.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrkError {
    #[error("wrk's report has no {0:?} line")]
    Missing(&'static str),
    #[error("wrk's {field} is not a number: {text:?}")]
    BadNumber { field: &'static str, text: String },
}

/// What one wrk run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WrkReport {
    /// Responses completed, any status.
    pub requests: u64,
    pub requests_per_s: f64,
    /// Bytes read per second, headers included.
    pub bytes_per_s: f64,
    pub latency_p50_ms: f64,
    pub latency_p75_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_p99_ms: f64,
    /// Responses outside 2xx and 3xx; they count in `requests` too, so a
    /// run with any is not a measure of the intended file.
    pub non_2xx_3xx: u64,
    pub socket_errors: SocketErrors,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SocketErrors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
}

impl SocketErrors {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

/// Reads wrk's report.
///
/// ```text
///   Latency Distribution
///      50%  250.00us
///      99%    5.00ms
///   1116800 requests in 10.01s, 1.21GB read
///   Socket errors: connect 0, read 0, write 0, timeout 12
///   Non-2xx or 3xx responses: 12
/// Requests/sec: 111568.45
/// Transfer/sec:    123.45MB
/// ```
///
/// # Errors
///
/// When a line that every `--latency` report has is missing or malformed.
pub fn parse_report(text: &str) -> Result<WrkReport, WrkError> {
    let after = |prefix: &'static str| {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
            .ok_or(WrkError::Missing(prefix))
    };
    let number = |field: &'static str, text: &str| {
        text.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| WrkError::BadNumber {
                field,
                text: text.to_string(),
            })
    };
    let count = |field: &'static str, text: &str| {
        text.parse::<u64>().map_err(|_| WrkError::BadNumber {
            field,
            text: text.to_string(),
        })
    };
    let latency = |percent: &'static str| -> Result<f64, WrkError> {
        let value = after(percent)?;
        parse_duration_ms(value).ok_or_else(|| WrkError::BadNumber {
            field: percent,
            text: value.to_string(),
        })
    };

    let requests_line = text
        .lines()
        .map(str::trim)
        .find(|line| line.contains(" requests in "))
        .ok_or(WrkError::Missing("requests in"))?;
    let requests = count(
        "request count",
        requests_line.split_whitespace().next().unwrap_or_default(),
    )?;
    let transfer = after("Transfer/sec:")?;
    let socket_errors = match after("Socket errors:") {
        Ok(rest) => parse_socket_errors(rest).ok_or_else(|| WrkError::BadNumber {
            field: "socket errors",
            text: rest.to_string(),
        })?,
        Err(_) => SocketErrors::default(),
    };
    let non_2xx_3xx = match after("Non-2xx or 3xx responses:") {
        Ok(rest) => count("non-2xx count", rest)?,
        Err(_) => 0,
    };
    Ok(WrkReport {
        requests,
        requests_per_s: number("Requests/sec", after("Requests/sec:")?)?,
        bytes_per_s: parse_bytes(transfer).ok_or_else(|| WrkError::BadNumber {
            field: "Transfer/sec",
            text: transfer.to_string(),
        })?,
        latency_p50_ms: latency("50%")?,
        latency_p75_ms: latency("75%")?,
        latency_p90_ms: latency("90%")?,
        latency_p99_ms: latency("99%")?,
        non_2xx_3xx,
        socket_errors,
    })
}

/// `250.00us`, `1.20ms`, `2.00s`, `1.50m` to milliseconds.
fn parse_duration_ms(text: &str) -> Option<f64> {
    // "ms" and "us" before "s", which both end with.
    const UNITS: [(&str, f64); 5] = [
        ("us", 0.001),
        ("ms", 1.0),
        ("s", 1000.0),
        ("m", 60_000.0),
        ("h", 3_600_000.0),
    ];
    let (value, scale) = UNITS
        .iter()
        .find_map(|&(unit, scale)| Some((text.strip_suffix(unit)?, scale)))?;
    let value: f64 = value.parse().ok()?;
    value.is_finite().then_some(value * scale)
}

/// `512.00B`, `123.45MB` (binary prefixes) to bytes.
fn parse_bytes(text: &str) -> Option<f64> {
    let number = text.strip_suffix('B')?;
    let (value, scale) = match number.chars().last()? {
        'K' => (&number[..number.len() - 1], 1u64 << 10),
        'M' => (&number[..number.len() - 1], 1 << 20),
        'G' => (&number[..number.len() - 1], 1 << 30),
        'T' => (&number[..number.len() - 1], 1 << 40),
        'P' => (&number[..number.len() - 1], 1 << 50),
        _ => (number, 1),
    };
    let value: f64 = value.parse().ok()?;
    value.is_finite().then_some(value * scale as f64)
}

/// `connect 0, read 3, write 0, timeout 12`.
fn parse_socket_errors(text: &str) -> Option<SocketErrors> {
    let mut errors = SocketErrors::default();
    for item in text.split(',') {
        let (name, value) = item.trim().split_once(' ')?;
        let value: u64 = value.trim().parse().ok()?;
        match name {
            "connect" => errors.connect = value,
            "read" => errors.read = value,
            "write" => errors.write = value,
            "timeout" => errors.timeout = value,
            _ => return None,
        }
    }
    Some(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as wrk 4.1 prints it, errors included.
    const WITH_ERRORS: &str = "\
Running 10s test @ http://127.0.0.1:8080/hls/tree/seg5.m4s
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.33ms   10.81ms 209.50ms   93.02%
    Req/Sec     2.18k   271.06     2.84k    71.50%
  Latency Distribution
     50%   10.37ms
     75%   13.83ms
     90%   18.26ms
     99%    1.02s 
  43467 requests in 10.01s, 27.06GB read
  Socket errors: connect 0, read 2, write 0, timeout 12
  Non-2xx or 3xx responses: 7
Requests/sec:   4342.44
Transfer/sec:      2.70GB
";

    const CLEAN: &str = "\
Running 10s test @ http://127.0.0.1:8081/index.m3u8
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   635.91us    0.89ms  12.92ms   93.69%
    Req/Sec    56.20k     8.07k   62.00k    86.54%
  Latency Distribution
     50%  250.00us
     75%  491.00us
     90%    1.20ms
     99%    5.00ms
  1116800 requests in 10.01s, 2.04GB read
Requests/sec: 111568.45
Transfer/sec:    208.50MB
";

    #[test]
    fn a_clean_run() {
        let report = parse_report(CLEAN).unwrap();
        assert_eq!(report.requests, 1_116_800);
        assert_eq!(report.requests_per_s, 111_568.45);
        assert_eq!(report.bytes_per_s, 208.5 * 1024.0 * 1024.0);
        assert!((report.latency_p50_ms - 0.25).abs() < 1e-9, "{report:?}");
        assert!((report.latency_p75_ms - 0.491).abs() < 1e-9, "{report:?}");
        assert_eq!(report.latency_p90_ms, 1.2);
        assert_eq!(report.latency_p99_ms, 5.0);
        assert_eq!(report.non_2xx_3xx, 0);
        assert_eq!(report.socket_errors, SocketErrors::default());
    }

    #[test]
    fn errors_and_seconds() {
        let report = parse_report(WITH_ERRORS).unwrap();
        assert_eq!(report.requests, 43_467);
        assert_eq!(report.requests_per_s, 4342.44);
        assert_eq!(report.bytes_per_s, 2.7 * f64::from(1u32 << 30));
        assert_eq!(report.latency_p99_ms, 1020.0);
        assert_eq!(report.non_2xx_3xx, 7);
        assert_eq!(
            report.socket_errors,
            SocketErrors {
                connect: 0,
                read: 2,
                write: 0,
                timeout: 12
            }
        );
        assert_eq!(report.socket_errors.total(), 14);
    }

    #[test]
    fn the_thread_stats_latency_is_not_a_percentile() {
        // Only "Latency Distribution" lines start with a percentage.
        let report = parse_report(CLEAN).unwrap();
        assert_ne!(report.latency_p50_ms, 0.63591);
    }

    #[test]
    fn without_latency_distribution_it_says_what_is_missing() {
        let text = CLEAN.replace("     50%  250.00us\n", "");
        assert_eq!(parse_report(&text), Err(WrkError::Missing("50%")));
        assert_eq!(
            parse_report("unable to connect to 127.0.0.1:1 Connection refused\n"),
            Err(WrkError::Missing("requests in"))
        );
    }

    #[test]
    fn a_garbled_number_is_named() {
        let text = CLEAN.replace("111568.45", "lots");
        assert_eq!(
            parse_report(&text),
            Err(WrkError::BadNumber {
                field: "Requests/sec",
                text: "lots".into()
            })
        );
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration_ms("2.00s"), Some(2000.0));
        assert_eq!(parse_duration_ms("1.50m"), Some(90_000.0));
        assert_eq!(parse_duration_ms("12"), None);
        assert_eq!(parse_bytes("512.00B"), Some(512.0));
        assert_eq!(parse_bytes("1.50KB"), Some(1536.0));
        assert_eq!(parse_bytes("1.5"), None);
        assert_eq!(
            parse_socket_errors("connect 1, read 2, write 3, timeout 4").map(|e| e.total()),
            Some(10)
        );
        assert_eq!(parse_socket_errors("connect x"), None);
    }
}
