//! Ultrasound anomaly detection over time: per-frame features, a baseline
//! learned during warm-up, and an alarm with hysteresis that carries its reason.
//!
//! Features per frame: the model's mean absolute reconstruction error (content
//! that does not look like the exam), the mean intensity (probe lifted: the
//! sector goes dark), and the mean absolute difference to the previous frame
//! (frozen picture). The alarm is raised after `raise_k` of the last `window`
//! frames are abnormal and cleared after `clear_m` calm frames in a row.
//! Buffers have fixed capacity; time comes only from the frames.

/// Why the alarm is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmReason {
    /// The picture went dark: no contact, probe lifted.
    NoContact,
    /// Consecutive frames are identical: frozen image.
    Frozen,
    /// The model cannot reconstruct the picture: unexpected content or artefact.
    UnexpectedContent,
}

impl AlarmReason {
    pub fn text(self) -> &'static str {
        match self {
            AlarmReason::NoContact => "no contact / probe lifted",
            AlarmReason::Frozen => "frozen image",
            AlarmReason::UnexpectedContent => "unexpected content",
        }
    }
}

/// Detector output for one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyVerdict {
    /// Reconstruction error divided by the model's threshold (1.0 = at threshold).
    pub score: f32,
    pub reconstruction_error: f32,
    pub mean_intensity: f32,
    pub frame_difference: f32,
    /// Still learning the baseline; no alarm yet.
    pub warming_up: bool,
    pub alarm: Option<AlarmReason>,
}

/// Tuning of the detector.
#[derive(Clone, Copy, Debug)]
pub struct DetectorParams {
    /// Reconstruction error at which a frame counts as anomalous.
    pub error_threshold: f32,
    /// Frames used to learn the baseline before alarms may sound.
    pub warmup: usize,
    /// Raise after this many abnormal frames among the last `window`.
    pub raise_k: usize,
    pub window: usize,
    /// Clear after this many calm frames in a row.
    pub clear_m: usize,
    /// Mean intensity (0..255) below which the sector counts as dark.
    pub dark_level: f32,
    /// Mean absolute difference (0..255) below which two frames count as identical.
    pub frozen_level: f32,
}

impl DetectorParams {
    pub fn new(error_threshold: f32) -> DetectorParams {
        DetectorParams {
            error_threshold,
            warmup: 5,
            raise_k: 3,
            window: 5,
            clear_m: 5,
            dark_level: 8.0,
            frozen_level: 0.05,
        }
    }
}

const MAX_WINDOW: usize = 64;

pub struct AnomalyDetector {
    params: DetectorParams,
    seen: usize,
    recent: [Option<AlarmReason>; MAX_WINDOW],
    calm_run: usize,
    alarm: Option<AlarmReason>,
    previous: Vec<u8>,
}

impl AnomalyDetector {
    pub fn new(mut params: DetectorParams) -> AnomalyDetector {
        params.window = params.window.clamp(1, MAX_WINDOW);
        params.raise_k = params.raise_k.clamp(1, params.window);
        AnomalyDetector {
            params,
            seen: 0,
            recent: [None; MAX_WINDOW],
            calm_run: 0,
            alarm: None,
            previous: Vec::new(),
        }
    }

    /// Judges one frame: `pixels` is the model's input picture (8-bit), `recon`
    /// the model's reconstruction in units of `pixel_scale`.
    pub fn update(&mut self, pixels: &[u8], recon: &[f32], pixel_scale: f32) -> AnomalyVerdict {
        let n = pixels.len().max(1) as f32;
        let err: f32 = pixels
            .iter()
            .zip(recon)
            .map(|(&p, &r)| (f32::from(p) * pixel_scale - r).abs())
            .sum::<f32>()
            / n;
        let mean = pixels.iter().map(|&p| u32::from(p)).sum::<u32>() as f32 / n;
        let diff = if self.previous.len() == pixels.len() {
            self.previous
                .iter()
                .zip(pixels)
                .map(|(&a, &b)| u32::from(a.abs_diff(b)))
                .sum::<u32>() as f32
                / n
        } else {
            f32::INFINITY
        };
        self.previous.clear();
        self.previous.extend_from_slice(pixels);

        let p = self.params;
        let reason = if mean < p.dark_level {
            Some(AlarmReason::NoContact)
        } else if diff < p.frozen_level {
            Some(AlarmReason::Frozen)
        } else if !err.is_finite() || err > p.error_threshold {
            Some(AlarmReason::UnexpectedContent)
        } else {
            None
        };
        let slot = self.seen % p.window;
        self.recent[slot] = reason;
        self.seen += 1;
        let warming_up = self.seen <= p.warmup;
        if !warming_up {
            let abnormal = self.recent[..p.window.min(self.seen)]
                .iter()
                .filter(|r| r.is_some())
                .count();
            if reason.is_none() {
                self.calm_run += 1;
            } else {
                self.calm_run = 0;
            }
            if self.alarm.is_none() && abnormal >= p.raise_k {
                self.alarm = reason.or_else(|| self.recent.iter().flatten().next().copied());
            } else if self.alarm.is_some() && self.calm_run >= p.clear_m {
                self.alarm = None;
            } else if let (Some(_), Some(r)) = (self.alarm, reason) {
                self.alarm = Some(r);
            }
        }
        AnomalyVerdict {
            score: err / p.error_threshold.max(f32::EPSILON),
            reconstruction_error: err,
            mean_intensity: mean,
            frame_difference: if diff.is_finite() { diff } else { 255.0 },
            warming_up,
            alarm: self.alarm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seed: u8) -> Vec<u8> {
        (0..64u32)
            .map(|i| (60 + (i * 7 + u32::from(seed) * 13) % 50) as u8)
            .collect()
    }

    fn run(det: &mut AnomalyDetector, px: &[u8], recon_offset: f32) -> AnomalyVerdict {
        let recon: Vec<f32> = px
            .iter()
            .map(|&p| f32::from(p) / 255.0 + recon_offset)
            .collect();
        det.update(px, &recon, 1.0 / 255.0)
    }

    #[test]
    fn raises_with_reason_and_clears() {
        let mut d = AnomalyDetector::new(DetectorParams::new(0.05));
        for s in 0..10 {
            assert_eq!(run(&mut d, &frame(s), 0.0).alarm, None);
        }
        let dark = vec![0u8; 64];
        let mut raised_at = None;
        for i in 0..5 {
            if run(&mut d, &dark, 0.0).alarm == Some(AlarmReason::NoContact) && raised_at.is_none()
            {
                raised_at = Some(i);
            }
        }
        assert_eq!(raised_at, Some(2), "3 of 5 frames");
        for s in 20..26 {
            run(&mut d, &frame(s), 0.0);
        }
        assert_eq!(
            run(&mut d, &frame(30), 0.0).alarm,
            None,
            "cleared after calm frames"
        );
        let mut last = None;
        for s in 40..45 {
            last = run(&mut d, &frame(s), 0.2).alarm;
        }
        assert_eq!(last, Some(AlarmReason::UnexpectedContent));
    }

    #[test]
    fn frozen_picture_alarms() {
        let mut d = AnomalyDetector::new(DetectorParams::new(0.05));
        for s in 0..8 {
            run(&mut d, &frame(s), 0.0);
        }
        let still = frame(99);
        let alarms: Vec<_> = (0..6).map(|_| run(&mut d, &still, 0.0).alarm).collect();
        assert_eq!(alarms.last(), Some(&Some(AlarmReason::Frozen)));
    }
}
