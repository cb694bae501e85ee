//! The live pipeline at the cart's rate: a 640x480 cine replayed at its own
//! 30 fps through the real threads (capture, model, display loop) for a
//! while, as a camera would deliver it. Reports, after a warm-up, the
//! frames dropped and the capture-to-display latency, per mode, and fails
//! when a frame is dropped in the steady state or the p99 reaches one frame
//! period (33.3 ms).
//!
//! `cargo bench --features v4l2 --bench live` (seconds per mode:
//! `BEDSIDE_LIVE_SECONDS`, default 20). The cine is pydicom's real echo
//! `color3d_jpeg_baseline.dcm` (120 frames of 640x480 at 33.3 ms, looped;
//! `scripts/fetch-data`); without it the synthetic 640x480 source stands in
//! and the report says so. The screen is the `none` sink at 640x480: the
//! overlay is drawn, nothing is written anywhere.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bedside::capture::replay::Pace;
use bedside::capture::{SourceOptions, SourceSpec, open_replay};
use bedside::display::NoneSink;
use bedside::pipeline::{Flow, Mode, Pipeline, RunOptions, Trigger};

/// Frames before this time are warm-up (model start, first allocations).
const WARMUP_US: u64 = 2_000_000;
const PERIOD_MS: f64 = 1000.0 / 30.0;

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn cine() -> Option<PathBuf> {
    let data = std::env::var_os("BEDSIDE_DATA")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bedside/data"))
        })?;
    let p = data.join("pydicom-data/data_store/data/color3d_jpeg_baseline.dcm");
    p.exists().then_some(p)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is ignored here.
    let seconds: f64 = std::env::var("BEDSIDE_LIVE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0);
    let (spec, what) = match cine() {
        Some(p) => (
            SourceSpec::Dicom(p),
            "real echo cine color3d_jpeg_baseline.dcm, 640x480, 30 fps, looped",
        ),
        None => (
            SourceSpec::Synthetic,
            "SYNTHETIC 640x480 at 30 fps (the real cine is missing: scripts/fetch-data)",
        ),
    };
    println!("live pipeline, {seconds} s per mode: {what}");
    let mut failed = false;
    for (mode, trigger) in [(Mode::Ultrasound, None), (Mode::Xray, Some(Trigger::Every))] {
        let source = open_replay(&spec, &SourceOptions::default(), Pace::File, true)
            .expect("open the replay");
        let bundle = bedside::demo::embedded_bundle(mode).expect("bundled model");
        let pipeline =
            Pipeline::new(mode, source, bundle, Box::new(NoneSink)).expect("build the pipeline");
        let log = Log::default();
        let summary = pipeline
            .run(RunOptions {
                duration: Some(Duration::from_secs_f64(seconds)),
                jsonl: Some(Box::new(log.clone())),
                flow: Flow::NewestWins,
                trigger,
                ..RunOptions::default()
            })
            .expect("run");
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let steady = |l: &&serde_json::Value| l["timestamp_us"].as_u64().unwrap_or(0) >= WARMUP_US;
        let dropped = lines
            .iter()
            .filter(steady)
            .filter(|l| l["status"] == "dropped")
            .count();
        let mut totals: Vec<f64> = lines
            .iter()
            .filter(steady)
            .filter_map(|l| l["latency_ms"]["total"].as_f64())
            .collect();
        let inferred = lines
            .iter()
            .filter(steady)
            .filter(|l| l["status"] == "processed")
            .count();
        let n = totals.len();
        let (p50, p99, max) = if n == 0 {
            (f64::NAN, f64::NAN, f64::NAN)
        } else {
            (
                percentile(&mut totals, 0.5),
                percentile(&mut totals, 0.99),
                percentile(&mut totals, 1.0),
            )
        };
        let ok = n > 0 && dropped == 0 && p99 < PERIOD_MS;
        failed |= !ok;
        println!(
            "{:<10} steady state: {n} frames shown, {inferred} judged by the model, {dropped} dropped; capture to display p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; whole run: {} shown, {} dropped  [{}]",
            mode.name(),
            summary.shown,
            summary.dropped,
            if ok {
                "ok"
            } else {
                "FAILED: a drop, or p99 >= 33.3 ms"
            }
        );
    }
    if failed {
        std::process::exit(1);
    }
}
