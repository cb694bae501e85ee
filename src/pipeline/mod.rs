//! The frame loop: source -> preprocess -> model -> analyzer -> overlay ->
//! sink, with per-stage latency, a JSONL record per frame, and a summary at
//! the end. Three threads, so neither the camera nor the screen waits for
//! the model:
//!
//! - capture ([`capture_thread`]) reads the source at its own pace; while
//!   the display loop is busy the newest frame wins and the drop is logged
//!   in place, a fast replay waits instead;
//! - the model ([`infer_thread`]) preprocesses, infers and analyzes one
//!   frame at a time, taking a new one only when idle;
//! - the display loop ([`display_loop`], on the calling thread) converts
//!   each frame to the screen's gray picture, draws the newest result over
//!   it and shows it ([`screen`] chooses what the screen says), and
//!   accounts for every frame in the statistics ([`stats`]), the log
//!   ([`log`]) and the [`RunSummary`].
//!
//! The "capture" stage time is how long a frame waited between the source
//! and the display loop, and the total is from the source handing the frame
//! over to the screen showing it.

pub mod capture_thread;
mod display_loop;
pub mod infer_thread;
mod log;
pub use log::rfc3339_utc;
mod screen;
mod stats;
mod summary;
pub mod trigger;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::analyze::anomaly::DetectorParams;
use crate::analyze::{Analyzer, AnomalyAnalyzer, AnomalyDetector, Classifier};
use crate::buttons::Presses;
use crate::capture::{CaptureError, FrameSource};
use crate::display::{DisplayError, FrameSink, Overlay, OverlayInfo};
use crate::infer::{Bundle, InferError, InferOptions, Manifest, Model, Task, tract};
use crate::preprocess::{PreprocessError, Preprocessor};
use crate::record::{RecordError, RecordSettings};
pub use capture_thread::{CaptureThread, Flow, Item, Mailbox};
use display_loop::{DisplayLoop, Event};
pub use infer_thread::{Analyst, Gate, InferThread, Judged, NoOutcome, Outcome};
pub use stats::{Latency, REPORT_EVERY, STAGES, StageTimes, WINDOW};
pub use summary::{AlarmSpan, RunSummary};
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
    /// What the run was configured with (board profile, settings), merged
    /// into the log's `run_start` record for the audit.
    pub audit: Option<serde_json::Value>,
    /// Anomalies or faults are injected (`--inject`, `--faults`,
    /// `--model-faults`, the demo's probe lift): every `--jsonl` record says
    /// `"rehearsal": true`, so no rehearsed alarm reads as a real one.
    pub rehearsal: bool,
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
    /// Ultrasound mode: the anomaly detector's settings (`None`: X-ray).
    detector_params: Option<DetectorParams>,
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
        let detector_params = (mode == Mode::Ultrasound)
            .then(|| DetectorParams::new(m.thresholds.anomaly_error.unwrap_or(f32::INFINITY)));
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
        let mut overlay = Overlay::new(sink.size(), info);
        overlay.set_diagonal_in(sink.diagonal_in());
        let analyst = Analyst {
            pre,
            model: Box::new(model),
            analyzer: analyzer(detector_params, m),
            gate: (mode == Mode::Xray).then_some(crate::analyze::gate::chest_xray as Gate),
            pixel_gate: m
                .gate
                .as_ref()
                .filter(|_| mode == Mode::Xray)
                .map(|g| g.threshold),
        };
        Ok(Pipeline {
            mode,
            source,
            analyst,
            detector_params,
            precision,
            model_sha256,
            bundle,
            overlay,
            sink,
        })
    }

    /// Replaces the anomaly detector's settings (the board's `[alarm]`);
    /// nothing in X-ray mode.
    pub fn set_detector_params(&mut self, params: DetectorParams) {
        if self.detector_params.is_some() {
            self.detector_params = Some(params);
            self.analyst.analyzer = analyzer(Some(params), &self.bundle.manifest);
        }
    }

    /// The anomaly detector's settings for this bundle (its error threshold).
    pub fn detector_params(&self) -> Option<DetectorParams> {
        self.detector_params
    }

    /// Wraps the model, e.g. in [`crate::infer::faults::FaultyModel`] for a rehearsal.
    pub fn wrap_model(&mut self, wrap: impl FnOnce(Box<dyn Model>) -> Box<dyn Model>) {
        let placeholder: Box<dyn Model> = Box::new(NoModel);
        let inner = std::mem::replace(&mut self.analyst.model, placeholder);
        self.analyst.model = wrap(inner);
    }

    /// Runs until the source ends or a limit is reached. Each pass of the
    /// loop is one frame's journey through the display loop; preprocessing,
    /// inference and analysis happen meanwhile on the model's thread.
    /// A caution the screen shows for the whole run (see
    /// [`Overlay::set_caution`]).
    pub fn set_caution(&mut self, text: Option<String>) {
        self.overlay.set_caution(text);
    }

    /// The screen's diagonal in inches when the board profile gives it
    /// (`[display] diagonal_in`) and the display does not: it sizes the
    /// alarm banner's lettering for reading at 1 m.
    pub fn set_screen_diagonal(&mut self, diagonal_in: Option<f32>) {
        if diagonal_in.is_some() {
            self.overlay.set_diagonal_in(diagonal_in);
        }
    }

    pub fn run(self, opts: RunOptions) -> Result<RunSummary, PipelineError> {
        let mut run = DisplayLoop::start(self, opts)?;
        while let Some(item) = run.next_event() {
            let (frame, captured) = match run.handle(item)? {
                Event::Frame(frame, captured) => (frame, captured),
                Event::Handled => continue,
                Event::Failed(e) => return Err(run.fail(e)),
            };
            let meta = frame.meta;
            let converted = run.convert(&frame);
            run.take_finished_outcome()?;
            run.read_buttons(meta.seq)?;
            let offer = run.offer_to_model(frame, captured);
            let own_result = run.wait_own_result(&meta)?;
            run.check_stall()?;
            let shown = run.show(&meta, converted, captured)?;
            run.account(&meta, offer, own_result, shown)?;
            run.report();
        }
        run.finish()
    }
}

/// The mode's analyzer: with detector settings (ultrasound) the anomaly
/// detector, without them (X-ray) the classifier.
fn analyzer(detector: Option<DetectorParams>, m: &Manifest) -> Box<dyn Analyzer> {
    match detector {
        Some(params) => Box::new(AnomalyAnalyzer {
            detector: AnomalyDetector::new(params),
            pixel_scale: m.input.pixel_scale,
        }),
        None => Box::new(Classifier {
            temperature: m.temperature(),
            min_confidence: m.thresholds.min_confidence.unwrap_or(0.0),
        }),
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
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::time::Instant;

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
        let all: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // The run's start and end records frame the frames' records.
        assert_eq!(all.first().unwrap()["status"], "run_start");
        assert_eq!(all.last().unwrap()["status"], "run_end");
        let lines = &all[1..all.len() - 1];
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
}
