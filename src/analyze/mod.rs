//! Analyzers turn raw model outputs into a [`Verdict`] the screen and the log show.
//!
//! - [`classify`]: softmax over logits, top class, confidence threshold
//! - [`anomaly`]: features inside the sector, an online baseline, scores and an alarm with hysteresis
//! - [`inject`]: seeded anomalies (lifted probe, frozen image, gain jump, noise,
//!   shadow, another modality) written into replayed frames, for evaluation
//! - [`metrics`]: AUROC, detection delay and false alarms per hour

pub mod anomaly;
pub mod classify;
pub mod inject;
pub mod metrics;

pub use anomaly::{AlarmReason, AnomalyDetector, AnomalyVerdict};
pub use classify::Classification;

/// What the analyzers concluded about one frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Classification(Classification),
    Anomaly(AnomalyVerdict),
}
