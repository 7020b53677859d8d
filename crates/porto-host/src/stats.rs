//! Per-service live figures for `/status` and `porto ps`: requests served,
//! server errors, and latency percentiles over the most recent requests.
//!
//! Prometheus histograms answer "how was it over time"; these answer "how
//! is it now" without a query language, which is what a person at a
//! terminal wants.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latencies kept per service for the percentiles.
const WINDOW: usize = 2048;

#[derive(Default)]
pub(crate) struct ServiceStats {
    served: AtomicU64,
    server_errors: AtomicU64,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    micros: Vec<u32>,
    next: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Snapshot {
    pub served: u64,
    pub server_errors: u64,
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl ServiceStats {
    pub(crate) fn record(&self, status: u16, took: Duration) {
        self.served.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        if let Ok(mut recent) = self.recent.lock() {
            if recent.micros.len() < WINDOW {
                recent.micros.push(micros);
            } else {
                let slot = recent.next;
                recent.micros[slot] = micros;
            }
            recent.next = (recent.next + 1) % WINDOW;
        }
    }

    /// Requests answered so far; cheap, unlike a [`Snapshot`].
    pub(crate) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let served = self.served.load(Ordering::Relaxed);
        let server_errors = self.server_errors.load(Ordering::Relaxed);
        let mut sorted = self
            .recent
            .lock()
            .map(|r| r.micros.clone())
            .unwrap_or_default();
        sorted.sort_unstable();
        let percentile = |p: f64| {
            let last = sorted.len().checked_sub(1)?;
            let index = ((last as f64) * p).round() as usize;
            Some(f64::from(sorted[index.min(last)]) / 1000.0)
        };
        Snapshot {
            served,
            server_errors,
            error_rate: if served == 0 {
                0.0
            } else {
                server_errors as f64 / served as f64
            },
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
        }
    }
}

/// How often, at most, load shedding is reported in the log.
const SHED_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Requests refused at capacity, reported in the log as a count at most
/// once per [`SHED_REPORT_EVERY`] rather than one line per refusal.
#[derive(Default)]
pub(crate) struct Shedding {
    refused: AtomicU64,
    /// Milliseconds since [`epoch`] of the last report, 0 before the first.
    last_report: AtomicU64,
}

impl Shedding {
    /// Counts one refusal; returns the refusals to report when a report
    /// is due (the first refusal is reported at once).
    pub(crate) fn refused_since_last_report(&self) -> Option<u64> {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(epoch().elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let last = self.last_report.load(Ordering::Relaxed);
        let every = SHED_REPORT_EVERY.as_millis() as u64;
        if last != 0 && now.saturating_sub(last) < every {
            return None;
        }
        self.last_report
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(self.refused.swap(0, Ordering::Relaxed))
    }
}

fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_recent_window() {
        let stats = ServiceStats::default();
        assert_eq!(stats.snapshot().p50_ms, None);
        for ms in 1..=100 {
            stats.record(200, Duration::from_millis(ms));
        }
        stats.record(503, Duration::from_millis(1));
        let snap = stats.snapshot();
        assert_eq!((snap.served, snap.server_errors), (101, 1));
        assert_eq!(snap.p50_ms, Some(50.0));
        assert_eq!(snap.p99_ms, Some(99.0));
        // Old samples leave the window.
        for _ in 0..WINDOW {
            stats.record(200, Duration::from_micros(500));
        }
        assert_eq!(stats.snapshot().p99_ms, Some(0.5));
    }

    #[test]
    fn shedding_is_reported_once_then_counted() {
        let shedding = Shedding::default();
        assert_eq!(shedding.refused_since_last_report(), Some(1));
        for _ in 0..99 {
            assert_eq!(shedding.refused_since_last_report(), None);
        }
        assert_eq!(shedding.refused.load(Ordering::Relaxed), 99);
    }
}
