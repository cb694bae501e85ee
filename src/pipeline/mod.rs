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
pub mod infer_thread;
pub mod trigger;

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::analyze::anomaly::{Check, DetectorParams};
use crate::analyze::{AnomalyDetector, Verdict};
use crate::buttons::{Button, Presses};
use crate::capture::{CaptureError, FrameSource};
use crate::display::{
    DisplayError, FrameSink, Overlay, OverlayInfo, Recording, Status, result_status,
};
use crate::infer::{Bundle, InferError, InferOptions, Model, Task, tract};
use crate::preprocess::{GrayImage, PreprocessError, Preprocessor, ToGray};
use crate::record::{RecordError, RecordReport, RecordSettings, Recorder};
pub use capture_thread::{CaptureThread, Flow, Item, Mailbox};
pub use infer_thread::{Analyst, InferThread, Judged, NoOutcome, Outcome};
pub use trigger::{Trigger, TriggerState};

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
    #[error(transparent)]
    Record(#[from] RecordError),
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
struct LostWarning {
    last: Option<Instant>,
    pending: u64,
}

const LOST_WARN_EVERY: Duration = Duration::from_secs(10);

impl LostWarning {
    fn add(&mut self, n: u64) {
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
    fn reserve(&mut self) {
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
    fn push_shown(&mut self, s: &Shown) {
        let [taken, converted, drawn, done] = s.stamps;
        self.samples[0].push(micros(taken - s.captured));
        self.samples[1].push(micros(converted - taken));
        self.samples[5].push(micros(drawn - converted));
        self.samples[6].push(micros(done - drawn));
        self.total.push(micros(done - s.captured));
    }
    /// A frame the model judged: preprocess, infer, analyze.
    fn push_judged(&mut self, o: &Outcome) {
        for (i, w) in o.stamps.windows(2).enumerate() {
            self.samples[2 + i].push(micros(w[1] - w[0]));
        }
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
    /// sha256 of the model file that ran (int8 or f32).
    pub model_sha256: String,
    /// Frames the model judged (with a result or a model failure).
    pub frames: u64,
    /// Pictures shown.
    pub shown: u64,
    /// Frames shown without a model run (the model busy with an earlier
    /// one; in X-ray mode, no classification asked for).
    pub not_inferred: u64,
    pub skipped: u64,
    /// Frames replaced by a newer one before processing was free (live flow).
    pub dropped: u64,
    /// Times the live device had no signal (timeouts, disconnections, failed reopens).
    pub no_signal: u64,
    pub model_failures: u64,
    /// Frames the live device dropped before bedside saw them.
    pub device_lost: u64,
    /// Buffers the live device flagged as damaged (skipped).
    pub device_damaged: u64,
    /// Times inference gave no result within the stall bound.
    pub inference_stalls: u64,
    /// The recording sessions of the run.
    pub recordings: Vec<RecordReport>,
    /// MODE was pressed: the caller starts this mode next.
    pub switch_to: Option<Mode>,
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
            "model_sha256": self.model_sha256,
            "frames_processed": self.frames,
            "frames_shown": self.shown,
            "frames_shown_without_inference": self.not_inferred,
            "frames_skipped": self.skipped,
            "frames_dropped": self.dropped,
            "no_signal_events": self.no_signal,
            "model_failures": self.model_failures,
            "inference_stalls": self.inference_stalls,
            "device_frames_lost": self.device_lost,
            "device_buffers_damaged": self.device_damaged,
            "recordings": self.recordings.iter().map(|r| json!({"session": r.session, "pictures": r.pictures, "results": r.results, "dropped": r.dropped, "error": r.error})).collect::<Vec<_>>(),
            "wall_seconds": self.wall.as_secs_f64(),
            "fps": self.shown as f64 / self.wall.as_secs_f64().max(1e-9),
            "inference_fps": self.frames as f64 / self.wall.as_secs_f64().max(1e-9),
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The display loop's stages of a shown picture, in milliseconds.
fn shown_latency(s: &Shown) -> serde_json::Value {
    let [taken, converted, drawn, done] = s.stamps;
    json!({
        "capture": ms(taken - s.captured),
        "picture": ms(converted - taken),
        "overlay": ms(drawn - converted),
        "display": ms(done - drawn),
        "total": ms(done - s.captured),
    })
}

/// The log record of a frame the model judged; `shown` is how its own
/// picture reached the screen.
fn outcome_line(o: &Outcome, shown: Option<&Shown>, labels: &[String]) -> serde_json::Value {
    let mut lat = match shown {
        Some(s) => shown_latency(s),
        None => json!({}),
    };
    if let Some(obj) = lat.as_object_mut() {
        for (name, w) in ["preprocess", "infer", "analyze"]
            .iter()
            .zip(o.stamps.windows(2))
        {
            obj.insert(name.to_string(), json!(ms(w[1] - w[0])));
        }
        // From capture to the result being ready.
        obj.insert("result".into(), json!(ms(o.stamps[3] - o.captured)));
    }
    let (status, reason) = match &o.judged {
        Judged::Verdict(_) => ("processed", None),
        Judged::Failed(why) => ("ai_unavailable", Some(why.as_str())),
        Judged::Skipped(why) => ("skipped", Some(why.as_str())),
    };
    let mut line = json!({
        "seq": o.meta.seq,
        "timestamp_us": o.meta.timestamp_us,
        "status": status,
        "latency_ms": lat,
    });
    if let Some(obj) = line.as_object_mut() {
        if let Judged::Verdict(v) = &o.judged
            && let Some(extra) = verdict_json(v, labels).as_object()
        {
            obj.extend(extra.clone());
        }
        if let Some(why) = reason {
            obj.insert("reason".into(), json!(why));
        }
    }
    line
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
    /// How long a frame may be with the model before the screen says AI
    /// UNAVAILABLE (default [`DEFAULT_STALL_AFTER`]).
    pub stall_after: Option<Duration>,
    /// How long a result may be drawn over newer pictures (default
    /// [`RESULT_VALIDITY_US`](crate::display::RESULT_VALIDITY_US)).
    pub result_valid: Option<Duration>,
    /// X-ray mode: when to classify (default: every frame).
    pub trigger: Option<Trigger>,
    /// X-ray `stable` trigger: unchanged frames that make a picture stable.
    pub stable_frames: Option<u32>,
    /// Operator button presses (FREEZE classifies in X-ray mode, RECORD
    /// starts and stops recording).
    pub buttons: Option<Arc<Presses>>,
    /// Where and what RECORD records; `None`: recording is not configured
    /// and RECORD writes nothing.
    pub recording: Option<RecordSettings>,
    /// Record from the start (`run --record`), not only after RECORD.
    pub record_from_start: bool,
    /// How often fps and latency are logged (default [`REPORT_EVERY`]).
    pub report_every: Option<Duration>,
    /// MODE ends the run to switch to this mode (`None`: the board has no
    /// model for another mode, and MODE is ignored with a log line).
    pub switch_mode_to: Option<Mode>,
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
    analyst: Analyst,
    precision: String,
    /// sha256 of the model file the chosen precision runs.
    model_sha256: String,
    bundle: Bundle,
    overlay: Overlay,
    sink: Box<dyn FrameSink>,
}

/// How long a frame may be with the model before the screen says
/// AI UNAVAILABLE (the board profile's `[inference] stall_after_ms`).
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(2);

/// Unchanged frames that make an X-ray picture stable (`[xray] stable_frames`).
pub const DEFAULT_STABLE_FRAMES: u32 = 5;

/// The frame with the model, and how its picture was shown.
struct InFlight {
    submitted: Instant,
    shown: Option<Shown>,
}

/// When one picture reached the screen.
#[derive(Clone, Copy)]
struct Shown {
    /// Took from capture, converted, overlay drawn, shown.
    stamps: [Instant; 4],
    captured: Instant,
}

/// What the screen shows of the model's work: the newest outcome with a
/// result or a failure, and in X-ray mode the image it belongs to.
struct Results {
    newest: Option<Outcome>,
    /// X-ray: the image classified, shown with its result until the next one.
    held: GrayImage,
    held_valid: bool,
    /// X-ray: the picture handed to the model with the frame in flight.
    candidate: GrayImage,
    /// The last outcome, when it was a skipped frame (not shown, but logged).
    skipped: Option<Outcome>,
    alarm_up: bool,
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
        let precision = format!("{}, {} thread(s)", selection.describe(), infer.threads);
        let model_sha256 = bundle.sha256_of(selection.chosen).to_string();
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
        let analyst = Analyst {
            pre,
            model: Box::new(model),
            detector,
            min_confidence: m.thresholds.min_confidence.unwrap_or(0.0),
            pixel_scale: m.input.pixel_scale,
        };
        Ok(Pipeline {
            mode,
            source,
            analyst,
            precision,
            model_sha256,
            bundle,
            overlay,
            sink,
        })
    }

    /// Replaces the anomaly detector's settings (the board's `[alarm]`).
    pub fn set_detector_params(&mut self, params: DetectorParams) {
        if self.analyst.detector.is_some() {
            self.analyst.detector = Some(AnomalyDetector::new(params));
        }
    }

    /// The anomaly detector's settings for this bundle (its error threshold).
    pub fn detector_params(&self) -> Option<DetectorParams> {
        self.analyst.detector.as_ref().map(|d| *d.params())
    }

    /// Wraps the model, e.g. in [`crate::infer::faults::FaultyModel`] for a rehearsal.
    pub fn wrap_model(&mut self, wrap: impl FnOnce(Box<dyn Model>) -> Box<dyn Model>) {
        let placeholder: Box<dyn Model> = Box::new(NoModel);
        let inner = std::mem::replace(&mut self.analyst.model, placeholder);
        self.analyst.model = wrap(inner);
    }

    /// Runs until the source ends or a limit is reached.
    pub fn run(self, mut opts: RunOptions) -> Result<RunSummary, PipelineError> {
        let Pipeline {
            mode,
            source,
            analyst,
            precision,
            model_sha256,
            bundle,
            mut overlay,
            mut sink,
        } = self;
        let m = bundle.manifest.clone();
        let mut summary = RunSummary {
            mode,
            source: source.describe(),
            sink: sink.describe(),
            model: format!(
                "{} {} ({})",
                m.model.name,
                m.model.version,
                bundle.short_hash()
            ),
            demonstration: m.model.demonstration,
            kernels: analyst.pre.kernel_name(),
            precision,
            model_sha256,
            frames: 0,
            shown: 0,
            not_inferred: 0,
            skipped: 0,
            dropped: 0,
            no_signal: 0,
            model_failures: 0,
            inference_stalls: 0,
            device_lost: 0,
            device_damaged: 0,
            recordings: Vec::new(),
            switch_to: None,
            wall: Duration::ZERO,
            times: StageTimes::default(),
            alarms: Vec::new(),
            last: None,
            labels: m.output.labels.clone(),
            files: Vec::new(),
        };
        tracing::info!(source = %summary.source, display = %summary.sink, model = %summary.model, "starting {} run", mode.name());
        let start = Instant::now();
        let mut notifier = crate::health::Notifier::from_env();
        let log_path = opts.jsonl_path.clone().unwrap_or_default();
        let lossless = opts.flow == Flow::Lossless;
        let stall_after = opts.stall_after.unwrap_or(DEFAULT_STALL_AFTER);
        let valid_us = opts
            .result_valid
            .map_or(crate::display::RESULT_VALIDITY_US, |d| {
                d.as_micros().min(u128::from(u64::MAX)) as u64
            });
        let mut trigger = (mode == Mode::Xray).then(|| {
            TriggerState::new(
                opts.trigger.unwrap_or(Trigger::Every),
                opts.stable_frames.unwrap_or(DEFAULT_STABLE_FRAMES),
            )
        });
        // Button counts are read before capture starts: a press while the
        // first frames arrive is a press (found under qemu, where the
        // capture thread got two frames ahead before these were read).
        let presses = opts.buttons.clone();
        let mut freeze_seen = presses.as_ref().map_or(0, |p| p.count(Button::Freeze));
        let mut record_seen = presses.as_ref().map_or(0, |p| p.count(Button::Record));
        let mut mode_seen = presses.as_ref().map_or(0, |p| p.count(Button::Mode));
        let capture = CaptureThread::start(source, opts.flow, opts.max_frames)
            .map_err(|e| PipelineError::Thread(e.to_string()))?;
        let infer = InferThread::start(analyst, capture.recycle.clone())
            .map_err(|e| PipelineError::Thread(e.to_string()))?;
        let mut to_gray = ToGray::default();
        let mut results = Results {
            newest: None,
            held: GrayImage::default(),
            held_valid: false,
            candidate: GrayImage::default(),
            skipped: None,
            alarm_up: false,
        };
        let mut in_flight: Option<InFlight> = None;
        let mut stalled_since: Option<Instant> = None;
        let mut infer_stopped = false;
        let mut why = String::new();
        let mut last_meta = crate::frame::FrameMeta::default();
        let mut stopping = false;
        let mut idle = false;
        let mut last_report = Instant::now();
        let mut lost_warning = LostWarning::default();
        let report_every = opts.report_every.unwrap_or(REPORT_EVERY);
        summary.times.reserve();
        let mut recorder = match (&opts.recording, opts.record_from_start) {
            (Some(settings), true) => Some(Recorder::start(settings)?),
            _ => None,
        };
        loop {
            let signalled = opts
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed));
            if !stopping && (signalled || opts.duration.is_some_and(|d| start.elapsed() >= d)) {
                // Whatever the capture thread already posted is still handled.
                if signalled {
                    tracing::info!("stopping: signal received");
                }
                capture.stop();
                stopping = true;
            }
            let Some(item) = capture.mailbox.take() else {
                break;
            };
            let (frame, captured) = match item {
                Item::Frame(frame, at) => (frame, at),
                Item::Dropped(meta) => {
                    summary.dropped += 1;
                    tracing::debug!(seq = meta.seq, "frame dropped: a newer one arrived first");
                    log_event(
                        &mut opts.jsonl,
                        &log_path,
                        || json!({"seq": meta.seq, "timestamp_us": meta.timestamp_us, "status": "dropped", "reason": "a newer frame arrived before the screen was free"}),
                    )?;
                    continue;
                }
                Item::Lost(n) => {
                    summary.device_lost += n;
                    lost_warning.add(n);
                    log_event(
                        &mut opts.jsonl,
                        &log_path,
                        || json!({"status": "lost", "frames": n, "reason": "dropped by the device before bedside saw them (a gap in its sequence numbers)"}),
                    )?;
                    continue;
                }
                Item::Damaged(n) => {
                    summary.device_damaged += n;
                    tracing::warn!("the device flagged {n} buffer(s) as damaged: skipped");
                    log_event(
                        &mut opts.jsonl,
                        &log_path,
                        || json!({"status": "skipped", "frames": n, "reason": "the device flagged the buffer as damaged"}),
                    )?;
                    continue;
                }
                Item::Skipped(e) => {
                    summary.skipped += 1;
                    tracing::warn!("frame skipped: {e}");
                    log_event(
                        &mut opts.jsonl,
                        &log_path,
                        || json!({"status": "skipped", "reason": e.to_string()}),
                    )?;
                    continue;
                }
                Item::NoSignal(e) => {
                    // A live device went away; it reopens itself with backoff.
                    summary.no_signal += 1;
                    notifier.alive();
                    notifier.status("no signal: reopening the camera");
                    tracing::warn!("no signal: {e}");
                    let canvas =
                        overlay.render(to_gray.image(), Status::NoSignal(&e.to_string()), None);
                    sink.show(canvas, &last_meta)?;
                    log_event(
                        &mut opts.jsonl,
                        &log_path,
                        || json!({"status": "no_signal", "reason": e.to_string()}),
                    )?;
                    continue;
                }
                Item::Idle(e) => {
                    // A hot folder with nothing new: alive (READY=1 the
                    // first time, then the watchdog), and the screen says
                    // so once per idle stretch. The log is flushed, so a
                    // second signal (exit 130 at once) loses no line.
                    notifier.alive();
                    if !idle {
                        idle = true;
                        notifier.status("waiting for images");
                        tracing::info!("{e}");
                        let canvas = overlay.render(
                            to_gray.image(),
                            Status::Waiting("waiting for images"),
                            None,
                        );
                        sink.show(canvas, &last_meta)?;
                        if let Some(w) = opts.jsonl.as_mut() {
                            w.flush().map_err(|e| PipelineError::Log {
                                path: log_path.clone(),
                                source: e,
                            })?;
                        }
                    }
                    continue;
                }
                Item::Failed(e) => {
                    infer.finish(stall_after);
                    return Err(e.into());
                }
            };
            idle = false;
            let meta = frame.meta;
            last_meta = meta;
            let taken = Instant::now();
            to_gray.run(&frame);
            let converted = Instant::now();

            // An outcome that came in while this frame was on its way (live
            // flow; a lossless run waits for each frame's own below).
            if !lossless && in_flight.is_some() {
                match infer.try_take() {
                    Ok(o) => {
                        let shown = in_flight.take().and_then(|f| f.shown);
                        results.apply(o, mode, &mut overlay, &mut summary, &mut stalled_since);
                        log_outcome(
                            &mut opts.jsonl,
                            &log_path,
                            &mut recorder,
                            &results,
                            shown.as_ref(),
                            &m.output.labels,
                            mode,
                        )?;
                    }
                    Err(NoOutcome::Stopped) => {
                        in_flight = None;
                        infer_stopped = true;
                    }
                    Err(NoOutcome::Pending) => {}
                }
            }
            if let Some(p) = &presses {
                let n = p.count(Button::Mode);
                if n != mode_seen && !stopping {
                    mode_seen = n;
                    match opts.switch_mode_to {
                        Some(next) => {
                            tracing::warn!("MODE pressed: switching to {} mode", next.name());
                            summary.switch_to = Some(next);
                            capture.stop();
                            stopping = true;
                        }
                        None => tracing::warn!(
                            "MODE pressed: the board has no model for another mode ([models] in its profile); staying in {} mode",
                            mode.name()
                        ),
                    }
                }
                let n = p.count(Button::Record);
                if n != record_seen {
                    record_seen = n;
                    toggle_recording(&mut recorder, opts.recording.as_ref(), &mut summary);
                }
            }
            if let (Some(p), Some(t)) = (&presses, trigger.as_mut()) {
                let n = p.count(Button::Freeze);
                if n != freeze_seen {
                    freeze_seen = n;
                    tracing::info!(seq = meta.seq, "FREEZE: classifying this picture");
                    t.press();
                }
            }
            // Does this frame go to the model?
            let wanted = match trigger.as_mut() {
                None => true,
                Some(t) => t.update(to_gray.image()),
            };
            let mut submitted = false;
            if wanted && in_flight.is_none() && !infer_stopped {
                if mode == Mode::Xray {
                    results.candidate.copy_from(to_gray.image());
                }
                match infer.submit(frame, captured) {
                    Ok(()) => {
                        submitted = true;
                        in_flight = Some(InFlight {
                            submitted: Instant::now(),
                            shown: None,
                        });
                    }
                    Err(frame) => {
                        infer_stopped = true;
                        let _ = capture.recycle.try_send(frame);
                    }
                }
            } else {
                if wanted && let Some(t) = trigger.as_mut() {
                    t.defer();
                }
                let _ = capture.recycle.try_send(frame);
            }
            // A lossless run shows each frame with its own result.
            let mut own_result = false;
            while lossless && in_flight.is_some() {
                match infer.wait(stall_after) {
                    Ok(o) => {
                        in_flight = None;
                        results.apply(o, mode, &mut overlay, &mut summary, &mut stalled_since);
                        own_result = true;
                    }
                    Err(NoOutcome::Stopped) => {
                        in_flight = None;
                        infer_stopped = true;
                    }
                    Err(NoOutcome::Pending) => {
                        // Stalled: say so on screen, then keep waiting (a
                        // replay must not lose frames).
                        note_stall(&mut stalled_since, &mut summary, &mut notifier, stall_after);
                        if let Some(f) = &in_flight {
                            describe_stall(&mut why, f.submitted.elapsed());
                        }
                        let canvas =
                            overlay.render(to_gray.image(), Status::AiUnavailable(&why), None);
                        sink.show(canvas, &meta)?;
                    }
                }
            }
            // A frame with the model past the bound: the model has stalled.
            if let Some(f) = &in_flight
                && f.submitted.elapsed() >= stall_after
            {
                note_stall(&mut stalled_since, &mut summary, &mut notifier, stall_after);
                describe_stall(&mut why, f.submitted.elapsed());
            }
            let stalled = stalled_since.is_some();

            let (picture, status) = if infer_stopped {
                (
                    to_gray.image(),
                    Status::AiUnavailable("the inference thread stopped"),
                )
            } else if stalled {
                (to_gray.image(), Status::AiUnavailable(&why))
            } else {
                match results.newest.as_ref().map(|o| (&o.judged, o.meta)) {
                    Some((Judged::Verdict(v), at)) if mode == Mode::Xray && results.held_valid => (
                        &results.held,
                        result_status(v, at.timestamp_us, at.timestamp_us, valid_us),
                    ),
                    Some((Judged::Verdict(v), at)) if mode == Mode::Ultrasound => (
                        to_gray.image(),
                        result_status(v, at.timestamp_us, meta.timestamp_us, valid_us),
                    ),
                    Some((Judged::Failed(e), _)) => (to_gray.image(), Status::AiUnavailable(e)),
                    _ => (
                        to_gray.image(),
                        Status::Waiting(
                            trigger
                                .as_ref()
                                .map_or("model starting", |t| t.policy().prompt()),
                        ),
                    ),
                }
            };
            let screen = status.name();
            let elapsed = start.elapsed().as_secs_f32().max(1e-6);
            let fps = (summary.shown + 1) as f32 / elapsed;
            // The screen shows the previous picture's capture-to-display time.
            let timing = summary
                .times
                .last_total_us()
                .map(|us| (fps, us as f32 / 1000.0));
            overlay.set_recording(match &recorder {
                None => Recording::Off,
                Some(r) if r.failed() => Recording::Failed,
                Some(_) => Recording::On,
            });
            let canvas = overlay.render(picture, status, timing);
            let drawn = Instant::now();
            if let Err(e) = sink.show(canvas, &meta) {
                // The run ends here; the frame is still accounted for.
                log_event(
                    &mut opts.jsonl,
                    &log_path,
                    || json!({"seq": meta.seq, "timestamp_us": meta.timestamp_us, "status": "display_failed", "reason": e.to_string()}),
                )?;
                return Err(e.into());
            }
            let done = Instant::now();
            let shown = Shown {
                stamps: [taken, converted, drawn, done],
                captured,
            };
            summary.times.push_shown(&shown);
            summary.shown += 1;
            if mode == Mode::Ultrasound
                && let Some(r) = recorder.as_mut()
            {
                r.picture(meta.seq, picture);
            }
            if !stalled && !infer_stopped {
                notifier.alive();
            }
            if submitted && !own_result {
                if let Some(f) = in_flight.as_mut() {
                    f.shown = Some(shown);
                }
            } else if own_result {
                log_outcome(
                    &mut opts.jsonl,
                    &log_path,
                    &mut recorder,
                    &results,
                    Some(&shown),
                    &m.output.labels,
                    mode,
                )?;
            } else {
                summary.not_inferred += 1;
                if let Some(w) = opts.jsonl.as_mut() {
                    let reason = match (mode, wanted) {
                        (Mode::Xray, false) => "no classification asked for this picture",
                        _ => "the model was busy with an earlier frame",
                    };
                    let mut line = json!({
                        "seq": meta.seq,
                        "timestamp_us": meta.timestamp_us,
                        "status": "shown",
                        "reason": reason,
                        "screen": screen,
                        "latency_ms": shown_latency(&shown),
                    });
                    if let (Some(o), Some(obj)) = (&results.newest, line.as_object_mut()) {
                        obj.insert("result_of_seq".into(), json!(o.meta.seq));
                    }
                    write_log_line(w, &log_path, &line)?;
                }
            }
            if last_report.elapsed() >= report_every {
                last_report = Instant::now();
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
            if let Some(p) = opts.progress.as_mut() {
                p(summary.shown);
            }
        }
        // The frame still with the model: its outcome is logged if it comes in time.
        if in_flight.is_some()
            && !infer_stopped
            && let Ok(o) = infer.wait(stall_after)
        {
            let shown = in_flight.take().and_then(|f| f.shown);
            results.apply(o, mode, &mut overlay, &mut summary, &mut stalled_since);
            log_outcome(
                &mut opts.jsonl,
                &log_path,
                &mut recorder,
                &results,
                shown.as_ref(),
                &m.output.labels,
                mode,
            )?;
        }
        if let Some(w) = opts.jsonl.as_mut() {
            w.flush().map_err(|e| PipelineError::Log {
                path: log_path.clone(),
                source: e,
            })?;
        }
        if let Some(r) = recorder.take() {
            summary.recordings.push(r.finish());
        }
        notifier.stopping();
        if !infer.finish(stall_after) {
            tracing::error!("the inference thread did not end cleanly");
        }
        if !capture.join() {
            tracing::error!("the capture thread panicked");
        }
        summary.last = match results.newest {
            Some(Outcome {
                judged: Judged::Verdict(v),
                ..
            }) => Some(v),
            _ => None,
        };
        summary.wall = start.elapsed();
        summary.files = sink.finish()?;
        Ok(summary)
    }
}

/// Stands in for the model while it is being wrapped.
struct NoModel;

impl Model for NoModel {
    fn run(&mut self, _: &[i8]) -> Result<&[f32], InferError> {
        Err(InferError::Run {
            model: "none".into(),
            reason: "no model".into(),
        })
    }
}

/// Writes the record of the outcome just taken to the log and, while
/// recording, to the session (with the classified image in X-ray mode).
#[allow(clippy::too_many_arguments)]
fn log_outcome(
    jsonl: &mut Option<Box<dyn Write + Send>>,
    path: &std::path::Path,
    recorder: &mut Option<Recorder>,
    results: &Results,
    shown: Option<&Shown>,
    labels: &[String],
    mode: Mode,
) -> Result<(), PipelineError> {
    let Some(o) = results.logged() else {
        return Ok(());
    };
    if jsonl.is_none() && recorder.is_none() {
        return Ok(());
    }
    let line = outcome_line(o, shown, labels);
    if let Some(w) = jsonl.as_mut() {
        write_log_line(w, path, &line)?;
    }
    if let Some(r) = recorder.as_mut() {
        r.result(&line);
        if mode == Mode::Xray && results.skipped.is_none() && results.held_valid {
            r.picture(o.meta.seq, &results.held);
        }
    }
    Ok(())
}

/// RECORD: starts a session, or ends the one running. Without a
/// `[recording]` configuration nothing is written, and the log says so.
fn toggle_recording(
    recorder: &mut Option<Recorder>,
    settings: Option<&RecordSettings>,
    summary: &mut RunSummary,
) {
    if let Some(r) = recorder.take() {
        summary.recordings.push(r.finish());
        return;
    }
    match settings {
        None => tracing::warn!(
            "RECORD pressed: recording is not configured ([recording] in the board profile, or run --record DIR); nothing is written"
        ),
        Some(s) => match Recorder::start(s) {
            Ok(r) => *recorder = Some(r),
            Err(e) => tracing::error!("RECORD pressed, but {e}; not recording"),
        },
    }
}

/// What the screen says while a frame has been with the model for `waited`
/// (written into a reused buffer: a stall does not allocate per frame).
fn describe_stall(why: &mut String, waited: Duration) {
    why.clear();
    let _ = write!(why, "inference stalled for {:.1} s", waited.as_secs_f32());
}

/// Writes an event record to the log, if there is one; the record is
/// built only then.
fn log_event(
    jsonl: &mut Option<Box<dyn Write + Send>>,
    path: &std::path::Path,
    line: impl FnOnce() -> serde_json::Value,
) -> Result<(), PipelineError> {
    match jsonl.as_mut() {
        Some(w) => write_log_line(w, path, &line()),
        None => Ok(()),
    }
}

/// Logs (once per stall) that inference stopped answering.
fn note_stall(
    since: &mut Option<Instant>,
    summary: &mut RunSummary,
    notifier: &mut crate::health::Notifier,
    bound: Duration,
) {
    if since.is_none() {
        *since = Some(Instant::now());
        summary.inference_stalls += 1;
        tracing::error!(
            "AI unavailable: no result for {:.1} s (inference stalled); the picture goes on",
            bound.as_secs_f32()
        );
        notifier.status("AI unavailable: inference stalled");
    }
}

impl Results {
    /// Takes in an outcome: counts it, and makes it the one shown unless
    /// the frame was skipped.
    fn apply(
        &mut self,
        o: Outcome,
        mode: Mode,
        overlay: &mut Overlay,
        summary: &mut RunSummary,
        stalled_since: &mut Option<Instant>,
    ) {
        if let Some(since) = stalled_since.take() {
            tracing::warn!(
                "inference resumed after a stall of {:.1} s",
                since.elapsed().as_secs_f32()
            );
        }
        summary.times.push_judged(&o);
        match &o.judged {
            Judged::Skipped(e) => {
                summary.skipped += 1;
                tracing::warn!(seq = o.meta.seq, "frame skipped: {e}");
                // Logged, but the result on screen stays.
                self.skipped = Some(o);
                return;
            }
            Judged::Failed(why) => {
                summary.frames += 1;
                summary.model_failures += 1;
                tracing::error!(seq = o.meta.seq, "AI unavailable: {why}");
                self.held_valid = false;
            }
            Judged::Verdict(v) => {
                summary.frames += 1;
                if mode == Mode::Xray {
                    std::mem::swap(&mut self.held, &mut self.candidate);
                    self.held_valid = true;
                }
                if let Verdict::Anomaly(a) = v {
                    overlay.record_score(a.score);
                    match (a.alarm, self.alarm_up) {
                        (Some(r), false) => {
                            summary.alarms.push((o.meta.seq, r.text()));
                            tracing::warn!(seq = o.meta.seq, "ALARM raised: {}", r.text());
                        }
                        (None, true) => tracing::info!(seq = o.meta.seq, "alarm cleared"),
                        _ => {}
                    }
                    self.alarm_up = a.alarm.is_some();
                }
            }
        }
        self.skipped = None;
        self.newest = Some(o);
    }

    /// The outcome [`apply`](Self::apply) took last.
    fn logged(&self) -> Option<&Outcome> {
        self.skipped.as_ref().or(self.newest.as_ref())
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
    /// "Slower" is by the source's count, not by the wall clock: the screen
    /// holds each picture until the source has read frame seq + 3 (or has
    /// none left), so two frames reached the mailbox meanwhile and the
    /// second replaced the first, however the threads are scheduled (a
    /// loaded CI machine, qemu).
    #[test]
    fn newest_wins_accounts_for_every_frame() {
        use std::sync::atomic::AtomicU64;

        use crate::capture::synthetic::SyntheticSource;
        use crate::display::Canvas;

        const FRAMES: u64 = 40;
        /// Counts the frames read from the source.
        struct Counted(SyntheticSource, Arc<AtomicU64>);
        impl FrameSource for Counted {
            fn describe(&self) -> String {
                self.0.describe()
            }
            fn next_frame(&mut self) -> Result<Option<crate::frame::Frame>, CaptureError> {
                let f = self.0.next_frame()?;
                if f.is_some() {
                    self.1.fetch_add(1, Ordering::SeqCst);
                }
                Ok(f)
            }
        }
        struct SlowSink(Arc<AtomicU64>);
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
                meta: &crate::frame::FrameMeta,
            ) -> Result<(), DisplayError> {
                // Frame seq + 3 read: the capture thread posted seq + 1 and
                // seq + 2 while this one is on screen.
                let ahead = (meta.seq + 4).min(FRAMES);
                let waited = Instant::now();
                while self.0.load(Ordering::SeqCst) < ahead {
                    assert!(
                        waited.elapsed() < Duration::from_secs(60),
                        "the capture thread did not read frame {ahead} in 60 s"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
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
        let read = Arc::new(AtomicU64::new(0));
        let source = Box::new(Counted(
            SyntheticSource::new(320, 240, 30, Some(FRAMES)),
            Arc::clone(&read),
        ));
        let pipeline =
            Pipeline::new(Mode::Ultrasound, source, bundle, Box::new(SlowSink(read))).unwrap();
        let log = Log::default();
        let summary = pipeline
            .run(RunOptions {
                jsonl: Some(Box::new(log.clone())),
                flow: Flow::NewestWins,
                // The last frame's record is written if its result comes
                // within the stall bound: far above any inference here.
                stall_after: Some(Duration::from_secs(60)),
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
        assert_eq!(seqs, (0..FRAMES).collect::<Vec<_>>(), "each frame once");
        let dropped = lines.iter().filter(|l| l["status"] == "dropped").count() as u64;
        assert!(dropped > 0, "the slow screen made the capture drop frames");
        assert_eq!(
            (summary.shown, summary.dropped),
            (FRAMES - dropped, dropped)
        );
        // Shown frames were judged by the model, or shown while it was busy.
        assert_eq!(summary.frames + summary.not_inferred, summary.shown);
        let shown_only = lines.iter().filter(|l| l["status"] == "shown").count() as u64;
        assert_eq!(shown_only, summary.not_inferred);
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
