//! What a run did: counts of every kind of frame, latency, alarms and
//! recordings, printed at the end of a run and written to the demo's
//! summary.json.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::Mode;
use super::log::verdict_json;
use super::stats::{STAGES, StageTimes};
use crate::analyze::Verdict;
use crate::infer::Bundle;
use crate::record::RecordReport;

/// An alarm of the run: the frame that raised it and its reason, and,
/// when it cleared before the run ended, the frame that cleared it and
/// how long it was up (frame time).
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmSpan {
    pub seq: u64,
    pub reason: &'static str,
    /// The frame time it was raised at (the span's start).
    pub since_us: u64,
    pub cleared: Option<(u64, f64)>,
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
    /// Frames not analyzed because their file said the model is not for
    /// them (X-ray gate).
    pub refused: u64,
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
    /// Each alarm raised, and its end when it cleared during the run.
    pub alarms: Vec<AlarmSpan>,
    /// The last verdict, for one-shot uses.
    pub last: Option<Verdict>,
    pub labels: Vec<String>,
    pub files: Vec<PathBuf>,
}

impl RunSummary {
    /// The summary of a run about to start, every count at zero.
    pub(super) fn new(
        mode: Mode,
        source: String,
        sink: String,
        bundle: &Bundle,
        kernels: &'static str,
        precision: String,
        model_sha256: String,
    ) -> RunSummary {
        let m = &bundle.manifest;
        RunSummary {
            mode,
            source,
            sink,
            model: format!(
                "{} {} ({})",
                m.model.name,
                m.model.version,
                bundle.short_hash()
            ),
            demonstration: m.model.demonstration,
            kernels,
            precision,
            model_sha256,
            frames: 0,
            shown: 0,
            not_inferred: 0,
            skipped: 0,
            dropped: 0,
            no_signal: 0,
            model_failures: 0,
            refused: 0,
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
        }
    }

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
            "refused": self.refused,
            "inference_stalls": self.inference_stalls,
            "device_frames_lost": self.device_lost,
            "device_buffers_damaged": self.device_damaged,
            "recordings": self.recordings.iter().map(|r| json!({"session": r.session, "pictures": r.pictures, "results": r.results, "dropped": r.dropped, "error": r.error})).collect::<Vec<_>>(),
            "wall_seconds": self.wall.as_secs_f64(),
            "fps": self.shown as f64 / self.wall.as_secs_f64().max(1e-9),
            "inference_fps": self.frames as f64 / self.wall.as_secs_f64().max(1e-9),
            "latency": stages,
            "latency_total": self.times.total(),
            "alarms": self.alarms.iter().map(|a| json!({"seq": a.seq, "reason": a.reason,
                "cleared_seq": a.cleared.map(|(s, _)| s), "duration_s": a.cleared.map(|(_, d)| d)})).collect::<Vec<_>>(),
            "last_result": self.last.as_ref().map(|v| verdict_json(v, &self.labels)),
            "files": self.files,
        })
    }
}
