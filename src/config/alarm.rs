//! `[alarm]`: the ultrasound alarm's hysteresis and baseline, over the
//! detector's defaults.

use serde::Deserialize;

use crate::analyze::anomaly::MAX_WINDOW;

/// `[alarm]`: the ultrasound alarm's hysteresis and baseline.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlarm {
    /// Raise after this many abnormal frames among the last `window`.
    raise_after: Option<usize>,
    window: Option<usize>,
    /// Clear after this many normal frames in a row.
    clear_after: Option<usize>,
    /// Frame time the baseline is learned over.
    warmup_ms: Option<u64>,
    /// Reconstruction error for "unexpected content" (default: the bundle's).
    error_threshold: Option<f32>,
}

/// The `[alarm]` keys a board may set; unset keys keep the detector's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AlarmSettings {
    pub raise_after: Option<usize>,
    pub window: Option<usize>,
    pub clear_after: Option<usize>,
    pub warmup_ms: Option<u64>,
    pub error_threshold: Option<f32>,
}

impl AlarmSettings {
    /// The detector's settings with this board's overrides.
    pub fn apply(
        &self,
        mut p: crate::analyze::anomaly::DetectorParams,
    ) -> crate::analyze::anomaly::DetectorParams {
        if let Some(v) = self.raise_after {
            p.raise_k = v;
        }
        if let Some(v) = self.window {
            p.window = v;
        }
        if let Some(v) = self.clear_after {
            p.clear_m = v;
        }
        if let Some(v) = self.warmup_ms {
            p.warmup_us = v * 1000;
        }
        if let Some(v) = self.error_threshold {
            p.error_threshold = v;
        }
        p
    }
}

impl RawAlarm {
    pub(super) fn check(self) -> Result<AlarmSettings, String> {
        let a = self;
        let window = a.window.unwrap_or(5);
        if !(1..=MAX_WINDOW).contains(&window) {
            return Err(format!("alarm.window = {window}: give 1 to {MAX_WINDOW}"));
        }
        let raise = a.raise_after.unwrap_or(3);
        if !(1..=window).contains(&raise) {
            return Err(format!(
                "alarm.raise_after = {raise}: give 1 to the window ({window})"
            ));
        }
        if let Some(c) = a.clear_after
            && !(1..=600).contains(&c)
        {
            return Err(format!("alarm.clear_after = {c}: give 1 to 600"));
        }
        if let Some(w) = a.warmup_ms
            && !(100..=60_000).contains(&w)
        {
            return Err(format!("alarm.warmup_ms = {w}: give 100 to 60000"));
        }
        if let Some(t) = a.error_threshold
            && !(t.is_finite() && t > 0.0)
        {
            return Err(format!(
                "alarm.error_threshold = {t}: give a positive number"
            ));
        }
        Ok(AlarmSettings {
            raise_after: a.raise_after,
            window: a.window,
            clear_after: a.clear_after,
            warmup_ms: a.warmup_ms,
            error_threshold: a.error_threshold,
        })
    }
}
