//! The process's own figures, under the names every Prometheus client
//! library uses (`process_*`), so stock dashboards and alerts work.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::scrape::gauge;

#[derive(Debug)]
pub struct Process {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: Option<u64>,
    start_time_seconds: Option<f64>,
    threads: i64,
}

impl Process {
    /// `None` where /proc cannot be read (not Linux, or hidden).
    pub fn now() -> Option<Self> {
        let me = procfs::process::Process::myself().ok()?;
        let stat = me.stat().ok()?;
        let ticks = procfs::ticks_per_second() as f64;
        let page = procfs::page_size();
        let start_time_seconds = procfs::boot_time_secs()
            .ok()
            .map(|boot| boot as f64 + stat.starttime as f64 / ticks);
        Some(Self {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            resident_bytes: stat.rss * page,
            virtual_bytes: stat.vsize,
            open_fds: me.fd_count().ok().map(|n| n as u64),
            start_time_seconds,
            threads: stat.num_threads,
        })
    }

    pub fn encode(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metric = e.encode_descriptor(
            "process_cpu_seconds",
            "CPU time used by the process, user and system",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.cpu_seconds).encode(metric)?;
        let bytes = |e: &mut DescriptorEncoder, name, help, value: u64| {
            gauge(e, name, help, &[(&[], value as i64)])
        };
        bytes(
            e,
            "process_resident_memory_bytes",
            "Resident memory of the process",
            self.resident_bytes,
        )?;
        bytes(
            e,
            "process_virtual_memory_bytes",
            "Virtual memory of the process",
            self.virtual_bytes,
        )?;
        if let Some(fds) = self.open_fds {
            gauge(
                e,
                "process_open_fds",
                "Open file descriptors",
                &[(&[], fds as i64)],
            )?;
        }
        if let Some(start) = self.start_time_seconds {
            let metric = e.encode_descriptor(
                "process_start_time_seconds",
                "When the process started, in seconds since the Unix epoch",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(start).encode(metric)?;
        }
        gauge(
            e,
            "process_threads",
            "OS threads of the process",
            &[(&[], self.threads)],
        )
    }
}
