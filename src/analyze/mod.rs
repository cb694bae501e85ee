//! Analyzers turn raw model outputs into a [`Verdict`] the screen and the log show.
//! Each implements [`Analyzer`], the last stage on the model's thread:
//! [`Classifier`] in X-ray mode, [`AnomalyAnalyzer`] in ultrasound mode.
//!
//! - [`classify`]: softmax over logits, top class, confidence threshold
//! - [`gate`]: the X-ray input gate from DICOM attributes (modality, body
//!   part, view, presentation intent)
//! - [`anomaly`]: features inside the sector, an online baseline, scores and an alarm with hysteresis
//! - [`inject`]: seeded anomalies (lifted probe, frozen image, gain jump, noise,
//!   shadow, another modality) written into replayed frames, for evaluation
//! - [`metrics`]: AUROC, detection delay and false alarms per hour

pub mod anomaly;
pub mod classify;
pub mod gate;
pub mod inject;
pub mod metrics;

pub use anomaly::{AlarmReason, AnomalyDetector, AnomalyVerdict};
pub use classify::{Classification, Classifier};

use crate::frame::FrameMeta;
use crate::preprocess::GrayImage;
use anomaly::NativeView;

/// What the analyzers concluded about one frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Classification(Classification),
    Anomaly(AnomalyVerdict),
}

/// One frame as an analyzer sees it, after inference.
pub struct Evidence<'a> {
    pub meta: FrameMeta,
    /// The picture the model was given (8-bit, after preprocessing).
    pub input: &'a GrayImage,
    /// The frame's gray picture before the resize, and its active area.
    pub native: NativeView<'a>,
    /// The model's output for this frame.
    pub output: &'a [f32],
}

/// The last stage on the model's thread: from the model's output for one
/// frame to a [`Verdict`]. An analyzer keeps whatever state it needs
/// across frames (the anomaly detector its baseline); it runs on the
/// model's thread, so it must be `Send`.
pub trait Analyzer: Send {
    /// Judges one frame. `None` when the output cannot be judged (not
    /// finite, the wrong size): the screen then says AI UNAVAILABLE, never
    /// a made-up result.
    fn analyze(&mut self, e: &Evidence<'_>) -> Option<Verdict>;
}

/// The anomaly detector as the pipeline's analyzer: the model reconstructs
/// its input, in units of `pixel_scale`.
pub struct AnomalyAnalyzer {
    pub detector: AnomalyDetector,
    pub pixel_scale: f32,
}

impl Analyzer for AnomalyAnalyzer {
    fn analyze(&mut self, e: &Evidence<'_>) -> Option<Verdict> {
        Some(Verdict::Anomaly(self.detector.update(
            e.meta,
            e.input.width,
            &e.input.data,
            e.output,
            self.pixel_scale,
            Some(e.native),
        )))
    }
}
