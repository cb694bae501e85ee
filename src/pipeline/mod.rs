//! The frame loop: source -> preprocess -> model -> analyzer -> overlay -> sink,
//! with per-stage latency, a JSONL record per frame, and a summary at the end.
//!
//! Capture runs on its own thread ([`capture_thread`]): a camera is read at
//! its own pace and, when processing is still busy, the newest frame wins
//! and the drop is logged in place; a fast replay waits instead. The other
//! stages run in turn on the calling thread. The "capture" stage time is
//! how long a frame waited between the source and processing, and the
//! total is from the source handing the frame over to the screen showing it.

pub mod capture_thread;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::analyze::anomaly::{Check, DetectorParams, NativeView};
use crate::analyze::{AnomalyDetector, Verdict, classify};
use crate::capture::{CaptureError, FrameSource};
use crate::display::{DisplayError, FrameSink, Overlay, OverlayInfo, Status, result_status};
use crate::infer::{Bundle, InferError, InferOptions, Model, Task, tract};
use crate::preprocess::{PreprocessError, Preprocessor};
pub use capture_thread::{CaptureThread, Flow, Item, Mailbox};

/// What the runtime watches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Live ultrasound: anomaly detection over the sequence.
    Ultrasound,
    /// Radiographs: classification.
    Xray,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Ultrasound => "ultrasound",
            Mode::Xray => "xray",
        }
    }

    /// The task a model must have to serve this mode.
    pub fn task(self) -> Task {
        match self {
            Mode::Ultrasound => Task::Reconstruct,
            Mode::Xray => Task::Classify,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Display(#[from] DisplayError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error("{bundle}: a {found:?} model cannot serve {mode} mode (needs {needed:?})")]
    WrongTask {
        bundle: String,
        mode: &'static str,
        found: Task,
        needed: Task,
    },
    #[error("{}: {source}", path.display())]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the capture thread: {0}")]
    Thread(String),
}

/// What is left in the pipeline once its source moved to the capture thread.
struct Taken;

impl FrameSource for Taken {
    fn describe(&self) -> String {
        "(running on the capture thread)".into()
    }
    fn next_frame(&mut self) -> Result<Option<crate::frame::Frame>, CaptureError> {
        Ok(None)
    }
}

/// The stages, in order, as named in logs and summaries.
pub const STAGES: [&str; 6] = [
    "capture",
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
    samples: [Window; 6],
    total: Window,
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

/// Median, 99th percentile and maximum of one stage, in milliseconds.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Latency {
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn latency(samples: &[u32]) -> Latency {
    if samples.is_empty() {
        return Latency {
            median_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
        };
    }
    let mut s = samples.to_vec();
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
    /// The last frame's capture-to-display time.
    pub fn last_total_us(&self) -> Option<u32> {
        self.total.last
    }
    fn push(&mut self, stamps: &[Instant; 7]) {
        for (i, w) in stamps.windows(2).enumerate() {
            self.samples[i].push(micros(w[1] - w[0]));
        }
        self.total.push(micros(stamps[6] - stamps[0]));
    }
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub mode: Mode,
    pub source: String,
    pub sink: String,
    pub model: String,
    pub demonstration: bool,
    pub kernels: &'static str,
    /// The model variant that ran and why (`precision = auto` timings).
    pub precision: String,
    pub frames: u64,
    pub skipped: u64,
    /// Frames replaced by a newer one before processing was free (live flow).
    pub dropped: u64,
    /// Times the live device had no signal (timeouts, disconnections, failed reopens).
    pub no_signal: u64,
    pub model_failures: u64,
    pub wall: Duration,
    pub times: StageTimes,
    /// (seq, reason) of each alarm raised.
    pub alarms: Vec<(u64, &'static str)>,
    /// The last verdict, for one-shot uses.
    pub last: Option<Verdict>,
    pub labels: Vec<String>,
    pub files: Vec<PathBuf>,
}

impl RunSummary {
    pub fn to_json(&self) -> serde_json::Value {
        let stages: serde_json::Map<String, serde_json::Value> = STAGES
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), json!(self.times.stage(i))))
            .collect();
        json!({
            "mode": self.mode.name(),
            "source": self.source,
            "display": self.sink,
            "model": self.model,
            "demonstration_model": self.demonstration,
            "preprocess_kernels": self.kernels,
            "precision": self.precision,
            "frames_processed": self.frames,
            "frames_skipped": self.skipped,
            "frames_dropped": self.dropped,
            "no_signal_events": self.no_signal,
            "model_failures": self.model_failures,
            "wall_seconds": self.wall.as_secs_f64(),
            "fps": self.frames as f64 / self.wall.as_secs_f64().max(1e-9),
            "latency": stages,
            "latency_total": self.times.total(),
            "alarms": self.alarms.iter().map(|(s, r)| json!({"seq": s, "reason": r})).collect::<Vec<_>>(),
            "last_result": self.last.as_ref().map(|v| verdict_json(v, &self.labels)),
            "files": self.files,
        })
    }
}

fn verdict_json(v: &Verdict, labels: &[String]) -> serde_json::Value {
    match v {
        Verdict::Classification(c) => json!({
            "classification": {
                "top": labels.get(c.top),
                "confident": c.confident,
                "probabilities": labels.iter().zip(&c.probabilities).map(|(l, p)| (l.clone(), json!(p))).collect::<serde_json::Map<_, _>>(),
            }
        }),
        Verdict::Anomaly(a) => json!({
            "anomaly": {
                "score": a.score,
                "cause": a.cause.map(|r| r.text()),
                "warming_up": a.warming_up,
                "alarm": a.alarm.map(|r| r.text()),
                "alarm_since_us": a.alarm_since_us,
                "features": {
                    "reconstruction_error": a.features.reconstruction_error,
                    "mean": a.features.mean,
                    "speckle_contrast": a.features.speckle_contrast,
                    "roughness": a.features.roughness,
                    "difference": a.features.difference,
                    "outside": a.features.outside,
                },
                "scores": Check::ALL.iter().zip(&a.scores).map(|(c, s)| (c.name().to_string(), json!(s))).collect::<serde_json::Map<_, _>>(),
            }
        }),
    }
}

/// One JSON object per line of the `--jsonl` log.
fn write_log_line(
    w: &mut Box<dyn Write + Send>,
    path: &std::path::Path,
    line: &serde_json::Value,
) -> Result<(), PipelineError> {
    writeln!(w, "{line}").map_err(|e| PipelineError::Log {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Limits and outputs of a run.
#[derive(Default)]
pub struct RunOptions {
    pub max_frames: Option<u64>,
    pub duration: Option<Duration>,
    pub jsonl: Option<Box<dyn Write + Send>>,
    pub jsonl_path: Option<PathBuf>,
    /// Called after each frame with the number processed so far.
    pub progress: Option<Box<dyn FnMut(u64)>>,
    /// Set (by a signal handler) to end the run after the current frame.
    pub stop: Option<Arc<AtomicBool>>,
    /// Whether capture waits for processing (recordings replayed as fast
    /// as possible) or drops the waiting frame for a newer one (live).
    pub flow: Flow,
}

/// SIGINT and SIGTERM end a run after the current frame, so every sink is
/// dropped (the console back in text mode, files flushed); a second signal
/// ends the process at once, for a run stuck in a device call.
pub fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the conditional exit checks the flag before it is set.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// Everything one run needs, built and checked before the first frame.
pub struct Pipeline {
    mode: Mode,
    source: Box<dyn FrameSource>,
    pre: Preprocessor,
    model: Box<dyn Model>,
    precision: String,
    bundle: Bundle,
    detector: Option<AnomalyDetector>,
    overlay: Overlay,
    sink: Box<dyn FrameSink>,
}

impl Pipeline {
    /// Checks that the bundle serves `mode` and builds every stage, with the
    /// default inference options (`precision = auto`, one thread).
    pub fn new(
        mode: Mode,
        source: Box<dyn FrameSource>,
        bundle: Bundle,
        sink: Box<dyn FrameSink>,
    ) -> Result<Pipeline, PipelineError> {
        Pipeline::with_options(mode, source, bundle, sink, &InferOptions::default())
    }

    /// As [`Pipeline::new`], with the board's inference options.
    pub fn with_options(
        mode: Mode,
        source: Box<dyn FrameSource>,
        bundle: Bundle,
        sink: Box<dyn FrameSink>,
        infer: &InferOptions,
    ) -> Result<Pipeline, PipelineError> {
        let m = &bundle.manifest;
        if m.model.task != mode.task() {
            return Err(PipelineError::WrongTask {
                bundle: bundle.origin.display().to_string(),
                mode: mode.name(),
                found: m.model.task,
                needed: mode.task(),
            });
        }
        let pre = Preprocessor::new(m.chain(), Some(m.input_quant()))?;
        let (model, selection) = tract::select(&bundle, infer)?;
        let model = Box::new(model);
        let precision = format!("{}, {} thread(s)", selection.describe(), infer.threads);
        let detector = (mode == Mode::Ultrasound).then(|| {
            AnomalyDetector::new(DetectorParams::new(
                m.thresholds.anomaly_error.unwrap_or(f32::INFINITY),
            ))
        });
        let info = OverlayInfo {
            mode: mode.name().into(),
            model_line: format!(
                "{} {} {}",
                m.model.name,
                m.model.version,
                bundle.short_hash()
            ),
            demonstration: m.model.demonstration,
            labels: m.output.labels.clone(),
        };
        let overlay = Overlay::new(sink.size(), info);
        Ok(Pipeline {
            mode,
            source,
            pre,
            model,
            precision,
            bundle,
            detector,
            overlay,
            sink,
        })
    }

    /// Runs until the source ends or a limit is reached.
    pub fn run(mut self, mut opts: RunOptions) -> Result<RunSummary, PipelineError> {
        let m = self.bundle.manifest.clone();
        let mut summary = RunSummary {
            mode: self.mode,
            source: self.source.describe(),
            sink: self.sink.describe(),
            model: format!(
                "{} {} ({})",
                m.model.name,
                m.model.version,
                self.bundle.short_hash()
            ),
            demonstration: m.model.demonstration,
            kernels: self.pre.kernel_name(),
            precision: self.precision.clone(),
            frames: 0,
            skipped: 0,
            dropped: 0,
            no_signal: 0,
            model_failures: 0,
            wall: Duration::ZERO,
            times: StageTimes::default(),
            alarms: Vec::new(),
            last: None,
            labels: m.output.labels.clone(),
            files: Vec::new(),
        };
        tracing::info!(source = %summary.source, display = %summary.sink, model = %summary.model, "starting {} run", self.mode.name());
        let start = Instant::now();
        let mut notifier = crate::health::Notifier::from_env();
        let min_conf = m.thresholds.min_confidence.unwrap_or(0.0);
        let mut alarm_up = false;
        let log_path = opts.jsonl_path.clone().unwrap_or_default();
        let mut last_meta = crate::frame::FrameMeta::default();
        let source = std::mem::replace(&mut self.source, Box::new(Taken));
        let capture = CaptureThread::start(source, opts.flow, opts.max_frames)
            .map_err(|e| PipelineError::Thread(e.to_string()))?;
        let mut stopping = false;
        let mut last_report = Instant::now();
        loop {
            if !stopping
                && (opts
                    .stop
                    .as_ref()
                    .is_some_and(|s| s.load(Ordering::Relaxed))
                    || opts.duration.is_some_and(|d| start.elapsed() >= d))
            {
                // Whatever the capture thread already posted is still handled.
                if opts
                    .stop
                    .as_ref()
                    .is_some_and(|s| s.load(Ordering::Relaxed))
                {
                    tracing::info!("stopping: signal received");
                }
                capture.stop();
                stopping = true;
            }
            let Some(item) = capture.mailbox.take() else {
                break;
            };
            let (frame, t0) = match item {
                Item::Frame(frame, at) => (frame, at),
                Item::Dropped(meta) => {
                    summary.dropped += 1;
                    tracing::debug!(seq = meta.seq, "frame dropped: a newer one arrived first");
                    if let Some(w) = opts.jsonl.as_mut() {
                        let line = json!({"seq": meta.seq, "timestamp_us": meta.timestamp_us, "status": "dropped", "reason": "a newer frame arrived before processing was free"});
                        write_log_line(w, &log_path, &line)?;
                    }
                    continue;
                }
                Item::Skipped(e) => {
                    summary.skipped += 1;
                    tracing::warn!("frame skipped: {e}");
                    if let Some(w) = opts.jsonl.as_mut() {
                        let line = json!({"status": "skipped", "reason": e.to_string()});
                        write_log_line(w, &log_path, &line)?;
                    }
                    continue;
                }
                Item::NoSignal(e) => {
                    // A live device went away; it reopens itself with backoff.
                    summary.no_signal += 1;
                    notifier.alive();
                    notifier.status("no signal: reopening the camera");
                    tracing::warn!("no signal: {e}");
                    let canvas = self.overlay.render(
                        self.pre.display(),
                        Status::NoSignal(&e.to_string()),
                        None,
                    );
                    self.sink.show(canvas, &last_meta)?;
                    if let Some(w) = opts.jsonl.as_mut() {
                        let line = json!({"status": "no_signal", "reason": e.to_string()});
                        write_log_line(w, &log_path, &line)?;
                    }
                    continue;
                }
                Item::Failed(e) => return Err(e.into()),
            };
            last_meta = frame.meta;
            let t1 = Instant::now();
            if let Err(e) = self.pre.process(&frame) {
                summary.skipped += 1;
                tracing::warn!(seq = frame.meta.seq, "frame skipped: {e}");
                if let Some(w) = opts.jsonl.as_mut() {
                    let line = json!({"seq": frame.meta.seq, "timestamp_us": frame.meta.timestamp_us, "status": "skipped", "reason": e.to_string()});
                    write_log_line(w, &log_path, &line)?;
                }
                let _ = capture.recycle.send(frame);
                continue;
            }
            let t2 = Instant::now();
            // The output stays in the model's own buffer: nothing copied per frame.
            let outcome = self.model.run(self.pre.model_input());
            let t3 = Instant::now();
            let verdict = match &outcome {
                Ok(out) => match self.detector.as_mut() {
                    Some(det) => Some(Verdict::Anomaly(det.update(
                        frame.meta,
                        self.pre.processed().width,
                        &self.pre.processed().data,
                        out,
                        m.input.pixel_scale,
                        Some(NativeView::of(self.pre.display(), self.pre.active_area())),
                    ))),
                    None => classify::classify(out, min_conf).map(Verdict::Classification),
                },
                Err(_) => None,
            };
            let t4 = Instant::now();
            let failure = match (&outcome, &verdict) {
                (Err(e), _) => Some(e.to_string()),
                (Ok(_), None) => Some("model output is not finite".to_string()),
                _ => None,
            };
            if let Some(why) = &failure {
                summary.model_failures += 1;
                tracing::error!(seq = frame.meta.seq, "AI unavailable: {why}");
            }
            let status = match (&verdict, &failure) {
                // The verdict is of this very frame (one thread); the check is
                // what keeps it honest once stages run apart.
                (Some(v), None) => {
                    result_status(v, frame.meta.timestamp_us, frame.meta.timestamp_us)
                }
                (_, Some(why)) => Status::AiUnavailable(why),
                (None, None) => Status::AiUnavailable("no result"),
            };
            let elapsed = start.elapsed().as_secs_f32().max(1e-6);
            let fps = (summary.frames + 1) as f32 / elapsed;
            // The screen shows the previous frame's capture-to-display time.
            let timing = summary
                .times
                .last_total_us()
                .map(|us| (fps, us as f32 / 1000.0));
            let canvas = self.overlay.render(self.pre.display(), status, timing);
            let t5 = Instant::now();
            self.sink.show(canvas, &frame.meta)?;
            let t6 = Instant::now();

            let stamps = [t0, t1, t2, t3, t4, t5, t6];
            summary.times.push(&stamps);
            if last_report.elapsed() >= REPORT_EVERY {
                last_report = Instant::now();
                let t = summary.times.total();
                tracing::info!(
                    frames = summary.frames + 1,
                    dropped = summary.dropped,
                    skipped = summary.skipped,
                    fps = format_args!("{fps:.1}"),
                    "capture to display: median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    t.median_ms,
                    t.p99_ms,
                    t.max_ms
                );
            }
            if let Some(Verdict::Anomaly(a)) = &verdict {
                if let (Some(r), false) = (a.alarm, alarm_up) {
                    summary.alarms.push((frame.meta.seq, r.text()));
                    tracing::warn!(seq = frame.meta.seq, "ALARM raised: {}", r.text());
                }
                alarm_up = a.alarm.is_some();
            }
            if let Some(w) = opts.jsonl.as_mut() {
                let lat: serde_json::Map<String, serde_json::Value> = STAGES
                    .iter()
                    .zip(stamps.windows(2))
                    .map(|(n, w)| (n.to_string(), json!((w[1] - w[0]).as_secs_f64() * 1000.0)))
                    .chain([("total".to_string(), json!((t6 - t0).as_secs_f64() * 1000.0))])
                    .collect();
                let mut line = json!({
                    "seq": frame.meta.seq,
                    "timestamp_us": frame.meta.timestamp_us,
                    "status": if failure.is_some() { "ai_unavailable" } else { "processed" },
                    "latency_ms": lat,
                });
                if let (Some(v), Some(obj)) = (&verdict, line.as_object_mut())
                    && let Some(extra) = verdict_json(v, &m.output.labels).as_object()
                {
                    obj.extend(extra.clone());
                }
                if let (Some(why), Some(obj)) = (&failure, line.as_object_mut()) {
                    obj.insert("reason".into(), json!(why));
                }
                write_log_line(w, &log_path, &line)?;
            }
            let _ = capture.recycle.send(frame);
            summary.frames += 1;
            notifier.alive();
            summary.last = verdict.or(summary.last.take());
            if let Some(p) = opts.progress.as_mut() {
                p(summary.frames);
            }
        }
        if let Some(w) = opts.jsonl.as_mut() {
            w.flush().map_err(|e| PipelineError::Log {
                path: log_path.clone(),
                source: e,
            })?;
        }
        notifier.stopping();
        if !capture.join() {
            tracing::error!("the capture thread panicked");
        }
        summary.wall = start.elapsed();
        summary.files = self.sink.finish()?;
        Ok(summary)
    }
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A screen slower than the camera: frames are dropped for newer ones,
    /// and every frame the source gave appears in the log exactly once.
    #[test]
    fn newest_wins_accounts_for_every_frame() {
        use crate::capture::synthetic::SyntheticSource;
        use crate::display::Canvas;

        struct SlowSink;
        impl FrameSink for SlowSink {
            fn describe(&self) -> String {
                "slow".into()
            }
            fn size(&self) -> (u32, u32) {
                (64, 48)
            }
            fn show(
                &mut self,
                _: &Canvas,
                _: &crate::frame::FrameMeta,
            ) -> Result<(), DisplayError> {
                std::thread::sleep(Duration::from_millis(15));
                Ok(())
            }
        }
        #[derive(Clone, Default)]
        struct Log(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Log {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let bundle = crate::demo::embedded_bundle(Mode::Ultrasound).unwrap();
        let source = Box::new(SyntheticSource::new(320, 240, 30, Some(40)));
        let pipeline = Pipeline::new(Mode::Ultrasound, source, bundle, Box::new(SlowSink)).unwrap();
        let log = Log::default();
        let summary = pipeline
            .run(RunOptions {
                jsonl: Some(Box::new(log.clone())),
                flow: Flow::NewestWins,
                ..RunOptions::default()
            })
            .unwrap();
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..40).collect::<Vec<_>>(), "each frame once");
        let dropped = lines.iter().filter(|l| l["status"] == "dropped").count() as u64;
        assert!(dropped > 0, "the slow screen made the capture drop frames");
        assert_eq!((summary.frames, summary.dropped), (40 - dropped, dropped));
    }

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
