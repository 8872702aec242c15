//! A real Prometheus (Debian's) scraping test nodes every second, and its
//! HTTP API: instant queries, waits on a value, the targets' health.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{temp_dir, wait_for};

/// A Prometheus process with one job, `tinsel`, over static targets.
pub struct Prometheus {
    child: Child,
    pub address: String,
}

/// A series of an instant query: its labels and its value.
pub type Sample = (serde_json::Value, f64);

impl Prometheus {
    /// Prometheus scraping `target` (`HOST:PORT`) every second.
    pub fn start(target: &str) -> Prometheus {
        Self::start_labelled(&[(target, &[])])
    }

    /// Prometheus scraping each target every second, each with its own
    /// labels (a target's `role`, say) added to every series it gives.
    pub fn start_labelled(targets: &[(&str, &[(&str, &str)])]) -> Prometheus {
        let dir = temp_dir("prometheus");
        let config = dir.join("prometheus.yml");
        let mut yaml = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: tinsel\n    static_configs:\n",
        );
        for (target, labels) in targets {
            yaml.push_str(&format!("      - targets: ['{target}']\n"));
            if !labels.is_empty() {
                yaml.push_str("        labels:\n");
                for (name, value) in labels.iter() {
                    yaml.push_str(&format!("          {name}: '{value}'\n"));
                }
            }
        }
        std::fs::write(&config, yaml).unwrap();
        // A free port, taken back just before Prometheus binds it.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs (scripts/setup --test installs it)");
        Prometheus { child, address }
    }

    /// The series of an instant query; `None` while Prometheus does not
    /// answer or refuses the query.
    pub fn query(&self, promql: &str) -> Option<Vec<Sample>> {
        self.try_query(promql).ok().flatten()
    }

    /// An instant query as Prometheus judges it: `Ok(None)` while it does
    /// not answer yet, `Err` with its error when it refuses the query.
    pub fn try_query(&self, promql: &str) -> Result<Option<Vec<Sample>>, String> {
        let response = ureq::get(&format!("http://{}/api/v1/query", self.address))
            .query("query", promql)
            .timeout(Duration::from_secs(5))
            .call();
        let text = match response {
            Ok(response) => response.into_string().map_err(|err| err.to_string())?,
            // A refused query is a 400 or 422 with the error in the body.
            Err(ureq::Error::Status(code, response)) => {
                let text = response.into_string().unwrap_or_default();
                let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                return Err(format!(
                    "{code} {}: {}",
                    body["errorType"].as_str().unwrap_or("?"),
                    body["error"].as_str().unwrap_or(&text)
                ));
            }
            Err(ureq::Error::Transport(_)) => return Ok(None),
        };
        let body: serde_json::Value =
            serde_json::from_str(&text).map_err(|err| format!("{err}: {text}"))?;
        if body["status"] != "success" {
            return Err(format!("status {}: {text}", body["status"]));
        }
        let Some(result) = body["data"]["result"].as_array() else {
            return Err(format!("not a vector: {text}"));
        };
        Ok(Some(
            result
                .iter()
                .map(|r| {
                    let value = r["value"][1]
                        .as_str()
                        .unwrap_or("NaN")
                        .parse()
                        .unwrap_or(f64::NAN);
                    (r["metric"].clone(), value)
                })
                .collect(),
        ))
    }

    /// The one value of `promql`, if it has exactly one series.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let values = self.query(promql)?;
        let [(_, value)] = values.as_slice() else {
            return None;
        };
        Some(*value)
    }

    /// The one value of `promql` once `accept` takes it.
    pub fn wait_value(&self, promql: &str, what: &str, accept: impl Fn(f64) -> bool) -> f64 {
        wait_for(Duration::from_secs(30), what, || {
            self.value(promql).filter(|value| accept(*value))
        })
    }

    /// The first scrape target's health and last error, as Prometheus
    /// reports them.
    pub fn target_health(&self) -> Option<(String, String)> {
        self.targets_health()?.into_iter().next()
    }

    /// Every scrape target's health and last error.
    pub fn targets_health(&self) -> Option<Vec<(String, String)>> {
        let text = ureq::get(&format!("http://{}/api/v1/targets", self.address))
            .call()
            .ok()?
            .into_string()
            .ok()?;
        let body: serde_json::Value = serde_json::from_str(&text).ok()?;
        body["data"]["activeTargets"]
            .as_array()?
            .iter()
            .map(|target| {
                Some((
                    target["health"].as_str()?.to_string(),
                    target["lastError"].as_str().unwrap_or("").to_string(),
                ))
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
