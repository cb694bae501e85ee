//! Latency statistics of a run: per-stage windows of the recent frames
//! with the run's maximum, percentiles for the summary and the periodic
//! report, and the rate-limited warning for frames the device dropped.
//! Everything is reserved before the first frame: a day's run neither
//! grows nor allocates per frame.

use std::time::{Duration, Instant};

use super::RunSummary;
use super::infer_thread::Outcome;

/// When one picture reached the screen.
#[derive(Clone, Copy)]
pub(super) struct Shown {
    /// Took from capture, converted, overlay drawn, shown.
    pub stamps: [Instant; 4],
    pub captured: Instant,
}

/// The stages, in order, as named in logs and summaries: waiting for the
/// display loop, conversion to the screen's picture, then (on the model's
/// thread, for the frames it takes) preprocessing, inference and analysis,
/// then drawing the overlay and showing it.
pub const STAGES: [&str; 7] = [
    "capture",
    "picture",
    "preprocess",
    "infer",
    "analyze",
    "overlay",
    "display",
];

/// Per-stage latency samples in microseconds: the last [`WINDOW`] frames
/// (percentiles) and the maximum over the whole run. Fixed capacity, so a
/// run of a whole day neither grows nor allocates per frame.
#[derive(Clone, Debug, Default)]
pub struct StageTimes {
    samples: [Window; 7],
    total: Window,
    /// Sorting space for the periodic report, reserved once.
    scratch: Vec<u32>,
}

/// How often a running pipeline logs its fps and latency.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Frames kept for percentiles: ten minutes at 30 fps.
pub const WINDOW: usize = 18_000;

#[derive(Clone, Debug, Default)]
struct Window {
    values: Vec<u32>,
    next: usize,
    max: u32,
    last: Option<u32>,
}

impl Window {
    fn push(&mut self, v: u32) {
        if self.values.capacity() == 0 {
            self.values.reserve_exact(WINDOW);
        }
        if self.values.len() < WINDOW {
            self.values.push(v);
        } else {
            self.values[self.next] = v;
            self.next = (self.next + 1) % WINDOW;
        }
        self.max = self.max.max(v);
        self.last = Some(v);
    }

    fn latency(&self) -> Latency {
        let mut l = latency(&self.values);
        l.max_ms = self.max as f64 / 1000.0;
        l
    }
}

/// Device drops come in bursts of one-frame gaps (60 a second from a
/// grabber faster than the board): one warning, then at most one per
/// [`LOST_WARN_EVERY`] with the count since, so a day's log stays readable.
/// Every gap is still a `lost` record in the JSONL log.
#[derive(Default)]
pub(super) struct LostWarning {
    last: Option<Instant>,
    pending: u64,
}

const LOST_WARN_EVERY: Duration = Duration::from_secs(10);

impl LostWarning {
    pub fn add(&mut self, n: u64) {
        self.pending += n;
        match self.last {
            Some(at) if at.elapsed() < LOST_WARN_EVERY => {}
            Some(at) => {
                tracing::warn!(
                    "the device dropped {} frame(s) before bedside saw them in the last {:.0} s",
                    self.pending,
                    at.elapsed().as_secs_f64()
                );
                self.pending = 0;
                self.last = Some(Instant::now());
            }
            None => {
                tracing::warn!(
                    "the device dropped {n} frame(s) before bedside saw them (further drops are summed every {} s)",
                    LOST_WARN_EVERY.as_secs()
                );
                self.pending = 0;
                self.last = Some(Instant::now());
            }
        }
    }
}

/// The periodic report's stage list, written straight into the log line
/// (no string is built: the report allocates nothing).
struct StageLine<'a>(&'a [Latency; 7]);

impl std::fmt::Display for StageLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, l)) in STAGES.iter().zip(self.0).enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(
                f,
                "{sep}{name} {:.2}/{:.2}/{:.2}",
                l.median_ms, l.p99_ms, l.max_ms
            )?;
        }
        Ok(())
    }
}

/// Median, 99th percentile and maximum of one stage, in milliseconds.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Latency {
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn latency(samples: &[u32]) -> Latency {
    let mut s = samples.to_vec();
    sorted_latency(&mut s)
}

/// Percentiles of `s`, sorting it in place.
fn sorted_latency(s: &mut [u32]) -> Latency {
    if s.is_empty() {
        return Latency {
            median_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
        };
    }
    s.sort_unstable();
    // Nearest-rank percentiles.
    let rank =
        |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1] as f64 / 1000.0;
    Latency {
        median_ms: rank(0.5),
        p99_ms: rank(0.99),
        max_ms: *s.last().unwrap_or(&0) as f64 / 1000.0,
    }
}

impl StageTimes {
    pub fn stage(&self, i: usize) -> Latency {
        self.samples[i].latency()
    }
    pub fn total(&self) -> Latency {
        self.total.latency()
    }
    /// As [`stage`](Self::stage) (`None`: the total), sorting in the
    /// reserved scratch space: the periodic report allocates nothing.
    fn recent(&mut self, stage: Option<usize>) -> Latency {
        if self.scratch.capacity() < WINDOW {
            self.scratch.reserve_exact(WINDOW);
        }
        let w = match stage {
            Some(i) => &self.samples[i],
            None => &self.total,
        };
        self.scratch.clear();
        self.scratch.extend_from_slice(&w.values);
        let max = w.max;
        let mut l = sorted_latency(&mut self.scratch);
        l.max_ms = max as f64 / 1000.0;
        l
    }

    /// Reserves every window and the scratch space before the first frame.
    pub(super) fn reserve(&mut self) {
        for w in self.samples.iter_mut().chain([&mut self.total]) {
            if w.values.capacity() == 0 {
                w.values.reserve_exact(WINDOW);
            }
        }
        self.scratch.reserve_exact(WINDOW);
    }

    /// The last frame's capture-to-display time.
    pub fn last_total_us(&self) -> Option<u32> {
        self.total.last
    }
    /// A picture shown: its capture, picture, overlay and display stages
    /// and its capture-to-display total.
    pub(super) fn push_shown(&mut self, s: &Shown) {
        let [taken, converted, drawn, done] = s.stamps;
        self.samples[0].push(micros(taken - s.captured));
        self.samples[1].push(micros(converted - taken));
        self.samples[5].push(micros(drawn - converted));
        self.samples[6].push(micros(done - drawn));
        self.total.push(micros(done - s.captured));
    }
    /// A frame the model judged: preprocess, infer, analyze.
    pub(super) fn push_judged(&mut self, o: &Outcome) {
        for (i, w) in o.stamps.windows(2).enumerate() {
            self.samples[2 + i].push(micros(w[1] - w[0]));
        }
    }
}

/// The periodic fps and latency line of a long run (every
/// [`REPORT_EVERY`] unless the run asks otherwise).
pub(super) struct PeriodicReport {
    every: Duration,
    last: Instant,
}

impl PeriodicReport {
    pub fn new(every: Option<Duration>) -> PeriodicReport {
        PeriodicReport {
            every: every.unwrap_or(REPORT_EVERY),
            last: Instant::now(),
        }
    }

    /// Logs the recent percentiles when one is due (allocates nothing).
    pub fn log_if_due(&mut self, summary: &mut RunSummary, fps: f32) {
        if self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        let t = summary.times.recent(None);
        let stages: [Latency; 7] = std::array::from_fn(|i| summary.times.recent(Some(i)));
        tracing::info!(
            shown = summary.shown,
            inferred = summary.frames,
            dropped = summary.dropped,
            skipped = summary.skipped,
            device_lost = summary.device_lost,
            no_signal = summary.no_signal,
            fps = format_args!("{fps:.1}"),
            "capture to display: median {:.1} ms, p99 {:.1} ms, max {:.1} ms; stages median/p99/max ms: {}",
            t.median_ms,
            t.p99_ms,
            t.max_ms,
            StageLine(&stages),
        );
    }
}

pub(super) fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_window_has_fixed_capacity_and_keeps_the_run_maximum() {
        let mut w = Window::default();
        w.push(5_000_000);
        for v in 0..(WINDOW as u32 + 10) {
            w.push(v % 100 * 1000);
        }
        assert_eq!(w.values.len(), WINDOW);
        assert_eq!(w.values.capacity(), WINDOW, "reserved once, never grown");
        let l = w.latency();
        assert_eq!(l.max_ms, 5000.0, "the maximum of the whole run");
        assert!(l.p99_ms <= 99.0, "percentiles of the recent window: {l:?}");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<u32> = (1..=100).map(|v| v * 1000).collect();
        let l = latency(&s);
        assert_eq!((l.median_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
    }
}
