//! `bedside eval-anomaly`: how well the ultrasound anomaly detector catches
//! each kind of trouble on a real cine, and how often it cries wolf.
//!
//! The cine is replayed in a loop as 8-bit gray, anomalies are written into
//! it at seeded random times ([`crate::analyze::inject`]), and every frame
//! goes through the bundle's own preprocessing, model and detector, exactly
//! as in `bedside run`. Reported per kind: the AUROC of the per-frame score
//! (injected frames against clean ones of the same run), the detection delay
//! in frames, and the frames never alarmed on; and false alarms per hour on
//! a separate clean replay.

pub mod plot;
pub mod variations;

use std::path::Path;

use serde::Serialize;

use crate::analyze::anomaly::features::Features;
use crate::analyze::anomaly::{AlarmReason, Check, CheckScores, NativeView};
use crate::analyze::inject::{AnomalyKind, InjectionPlan, Injector, Segment};
use crate::analyze::metrics::{
    alarm_onsets, auroc, detection_delays, false_alarms_per_hour, median,
};
use crate::analyze::{AnomalyDetector, AnomalyVerdict, anomaly::DetectorParams};
use crate::capture::dicom::DicomSource;
use crate::capture::{CaptureError, FrameSource};
use crate::frame::{Frame, FrameMeta, PixelFormat};
use crate::infer::{Bundle, InferOptions, Model, tract};
use crate::preprocess::convert::Converter;
use crate::preprocess::kernels::kernels;
use crate::preprocess::{GrayImage, Preprocessor};

/// What to run.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub seed: u64,
    /// Frames of the injected replay.
    pub frames: u64,
    /// Simulated hours of clean replay for the false-alarm rate.
    pub clean_hours: f64,
    pub kinds: Vec<AnomalyKind>,
    /// Segment lengths and the clean gap between segments, in frames.
    pub min_len: u64,
    pub max_len: u64,
    pub min_gap: u64,
    /// An alarm up to this many frames after a segment ends still counts as its detection.
    pub grace: u64,
    /// Seconds of frame time each normal-variation scenario runs
    /// ([`variations`]); 0 skips them.
    pub variation_seconds: f64,
    /// Judge the model's reconstruction error (the out-of-distribution
    /// check). Off, only the model-free checks run: what the rest of the
    /// detector does on pictures the model was not trained for.
    pub model_check: bool,
    /// A second real sequence to switch to, for one more normal change:
    /// its name and its file's bytes.
    pub switch_to: Option<(String, std::sync::Arc<[u8]>)>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            seed: 1,
            frames: 6_000,
            clean_hours: 1.0,
            kinds: AnomalyKind::ALL.to_vec(),
            min_len: 10,
            max_len: 60,
            min_gap: 90,
            grace: 5,
            variation_seconds: 10.0,
            model_check: true,
            switch_to: None,
        }
    }
}

/// One frame of the injected replay.
#[derive(Clone, Copy, Debug)]
pub struct TracePoint {
    pub score: f32,
    pub scores: CheckScores,
    pub features: Features,
    pub warming_up: bool,
    pub alarm: Option<AlarmReason>,
    pub injected: Option<AnomalyKind>,
}

/// The most of its threshold the combined score may reach on the clean
/// frames' 99.9th percentile (issue 28): a margin, not a hair trigger.
pub const CLEAN_MARGIN_GOAL: f32 = 0.7;

/// How close clean frames come to the threshold (1.0) of one check, or of
/// the combined score (the largest check's).
#[derive(Clone, Debug, Serialize)]
pub struct CleanQuantiles {
    pub check: String,
    pub p99: f32,
    pub p999: f32,
    pub max: f32,
}

/// The `q` quantile (0..=1) of `v` (sorted here), nearest rank; NaN if empty.
fn quantile(v: &mut [f32], q: f64) -> f32 {
    if v.is_empty() {
        return f32::NAN;
    }
    v.sort_unstable_by(f32::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The figures for one kind.
#[derive(Clone, Debug, Serialize)]
pub struct KindReport {
    pub kind: String,
    pub segments: usize,
    pub auroc: Option<f64>,
    pub median_delay: Option<u64>,
    pub max_delay: Option<u64>,
    pub missed: usize,
    /// The reason the alarm gave most often during this kind's segments.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub cine: String,
    pub model: String,
    /// Whether the model's reconstruction error was judged.
    pub model_check: bool,
    /// When the detector turned the model's check off itself on the clean
    /// replay (it did not know the picture: another machine's), in
    /// seconds of frame time.
    pub model_check_off_s: Option<f64>,
    pub cine_frames: usize,
    pub frame_interval_us: u64,
    pub injected_frames: u64,
    pub kinds: Vec<KindReport>,
    pub clean_frames: u64,
    pub clean_hours: f64,
    pub false_alarms: u64,
    pub false_alarms_per_hour: f64,
    /// Seconds of clean replay (frame time) before the first false alarm.
    pub first_false_alarm_s: Option<f64>,
    /// Scores of the clean replay's frames after warm-up: the combined
    /// score first, then each check.
    pub clean_scores: Vec<CleanQuantiles>,
    /// Normal changes of the picture and the alarms they raised.
    pub variations: Vec<variations::VariationReport>,
    /// Per frame of the injected run, for plots and tuning.
    #[serde(skip)]
    pub trace: Vec<TracePoint>,
    /// The injected segments.
    #[serde(skip)]
    pub segments: Vec<Segment>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("{0}")]
    Setup(String),
}

/// Every frame of a cine as gray: (frames, width, height, frame interval).
/// Gray frames, their width and height, and the frame interval (µs).
type GrayCine = (Vec<Vec<u8>>, u32, u32, u64);

fn load_gray(path: &Path, bytes: &[u8]) -> Result<GrayCine, EvalError> {
    let mut src = DicomSource::from_bytes(path, bytes)?;
    let interval = src.interval_us();
    let mut frames = Vec::new();
    let (mut w, mut h) = (0, 0);
    let mut g = GrayImage::default();
    while let Some(f) = src.next_frame()? {
        Converter::default().run(kernels(), &f, &mut g);
        (w, h) = (g.width, g.height);
        frames.push(g.data.clone());
    }
    if frames.len() < 2 {
        return Err(EvalError::Setup(format!(
            "{}: a cine of at least 2 frames is needed",
            path.display()
        )));
    }
    Ok((frames, w, h, interval))
}

/// One replay through preprocessing, model and detector.
struct Runner {
    pre: Preprocessor,
    model: Box<dyn Model>,
    detector: AnomalyDetector,
    pixel_scale: f32,
    params: DetectorParams,
}

impl Runner {
    fn new(bundle: &Bundle, model_check: bool) -> Result<Runner, EvalError> {
        let m = &bundle.manifest;
        let pre = Preprocessor::new(m.chain(), Some(m.input_quant()))
            .map_err(|e| EvalError::Setup(e.to_string()))?;
        let (model, _) = tract::select(bundle, &InferOptions::default())
            .map_err(|e| EvalError::Setup(e.to_string()))?;
        let threshold = m.thresholds.anomaly_error.filter(|_| model_check);
        let params = DetectorParams::new(threshold.unwrap_or(f32::INFINITY));
        Ok(Runner {
            pre,
            model: Box::new(model),
            detector: AnomalyDetector::new(params),
            pixel_scale: m.input.pixel_scale,
            params,
        })
    }

    fn restart(&mut self) {
        self.detector = AnomalyDetector::new(self.params);
    }

    /// The detector's verdict on one gray frame (and the frame's buffer back).
    fn step(
        &mut self,
        pixels: Vec<u8>,
        w: u32,
        h: u32,
        meta: FrameMeta,
    ) -> Result<(AnomalyVerdict, Vec<u8>), EvalError> {
        let frame = Frame::packed(pixels, PixelFormat::Gray8, w, h, meta)
            .map_err(|e| EvalError::Setup(e.to_string()))?;
        self.pre
            .process(&frame)
            .map_err(|e| EvalError::Setup(e.to_string()))?;
        let out = self
            .model
            .run(self.pre.model_input())
            .map_err(|e| EvalError::Setup(e.to_string()))?;
        let v = self.detector.update(
            meta,
            self.pre.processed().width,
            &self.pre.processed().data,
            out,
            self.pixel_scale,
            Some(NativeView::of(self.pre.display(), self.pre.active_area())),
        );
        Ok((v, frame.into_parts().0))
    }
}

/// Runs the evaluation; `progress(done, total)` is called now and then.
pub fn eval_anomaly(
    bundle: &Bundle,
    cine: &Path,
    cine_bytes: &[u8],
    opts: &EvalOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<EvalReport, EvalError> {
    let gray = load_gray(cine, cine_bytes)?;
    let second = match &opts.switch_to {
        Some((name, bytes)) => Some((name.as_str(), load_gray(Path::new(name), bytes)?)),
        None => None,
    };
    let (frames, w, h, interval) = (&gray.0, gray.1, gray.2, gray.3);
    let mut runner = Runner::new(bundle, opts.model_check)?;
    let plan = InjectionPlan::seeded(
        opts.seed,
        opts.frames,
        &opts.kinds,
        opts.min_len,
        opts.max_len,
        opts.min_gap,
    );
    let other = crate::demo::other_modality_picture(w, h)?;
    let setup = |e: crate::analyze::inject::InjectError| EvalError::Setup(e.to_string());
    // Shadows fall inside the image sector, as the detector would find it.
    let sector = crate::preprocess::crop::detect_active_area(&GrayImage {
        width: w,
        height: h,
        data: frames[0].clone(),
    });
    let mut injector = Injector::new(opts.seed, w, h)
        .map_err(setup)?
        .with_other_modality(other)
        .map_err(setup)?
        .with_sector_columns(sector.x, sector.x + sector.width);
    let clean_frames = (opts.clean_hours * 3.6e9 / interval.max(1) as f64).round() as u64;
    let total = opts.frames + clean_frames;
    let mut buffer = Vec::with_capacity((w * h) as usize);
    let mut trace = Vec::with_capacity(opts.frames as usize);
    let mut previous = frames[0].clone();
    for i in 0..opts.frames {
        let clean = &frames[(i % frames.len() as u64) as usize];
        buffer.clear();
        buffer.extend_from_slice(clean);
        let kind = plan.segment_at(i).map(|s| (s.kind, i - s.start));
        if let Some((k, at)) = kind {
            injector
                .apply(k, at, &mut buffer, &previous)
                .map_err(|e| EvalError::Setup(e.to_string()))?;
        } else {
            previous.copy_from_slice(clean);
        }
        let meta = FrameMeta {
            seq: i,
            timestamp_us: i * interval,
        };
        let (v, back) = runner.step(std::mem::take(&mut buffer), w, h, meta)?;
        buffer = back;
        trace.push(TracePoint {
            score: v.score,
            scores: v.scores,
            features: v.features,
            warming_up: v.warming_up,
            alarm: v.alarm,
            injected: kind.map(|k| k.0),
        });
        if i % 500 == 0 {
            progress(i, total);
        }
    }
    // Scores of clean frames after the warm-up, against each kind's frames.
    let clean_scores: Vec<f32> = trace
        .iter()
        .filter(|t| t.injected.is_none() && !t.warming_up)
        .map(|t| t.score)
        .collect();
    let alarms: Vec<bool> = trace.iter().map(|t| t.alarm.is_some()).collect();
    let mut kinds = Vec::new();
    for &kind in &opts.kinds {
        let segs: Vec<_> = plan
            .segments
            .iter()
            .filter(|s| s.kind == kind)
            .copied()
            .collect();
        let pos: Vec<f32> = trace
            .iter()
            .filter(|t| t.injected == Some(kind))
            .map(|t| t.score)
            .collect();
        let reason = AlarmReason::ALL
            .into_iter()
            .map(|r| {
                let n = trace
                    .iter()
                    .filter(|t| t.injected == Some(kind) && t.alarm == Some(r))
                    .count();
                (n, r)
            })
            .filter(|(n, _)| *n > 0)
            .max_by_key(|(n, _)| *n)
            .map(|(_, r)| r.text().to_string());
        let delays = detection_delays(&alarms, &segs, opts.grace);
        let mut hit: Vec<u64> = delays.iter().flatten().copied().collect();
        kinds.push(KindReport {
            kind: kind.to_string(),
            segments: segs.len(),
            auroc: auroc(&pos, &clean_scores),
            median_delay: median(&mut hit),
            max_delay: hit.iter().max().copied(),
            missed: delays.iter().filter(|d| d.is_none()).count(),
            reason,
        });
    }
    // Clean replay: a fresh detector, the cine looped.
    runner.restart();
    let mut clean_alarm = Vec::with_capacity(clean_frames as usize);
    let mut model_check_off_s = None;
    // The combined score, then each check's, per clean frame after warm-up.
    let mut clean_by_check: Vec<Vec<f32>> = vec![Vec::new(); 1 + Check::ALL.len()];
    for i in 0..clean_frames {
        buffer.clear();
        buffer.extend_from_slice(&frames[(i % frames.len() as u64) as usize]);
        let meta = FrameMeta {
            seq: i,
            timestamp_us: i * interval,
        };
        let (v, back) = runner.step(std::mem::take(&mut buffer), w, h, meta)?;
        buffer = back;
        clean_alarm.push(v.alarm.is_some());
        if v.model_check_off && model_check_off_s.is_none() {
            model_check_off_s = Some(meta.timestamp_us as f64 / 1e6);
        }
        if !v.warming_up {
            clean_by_check[0].push(v.score);
            for (c, &sc) in clean_by_check[1..].iter_mut().zip(&v.scores) {
                c.push(sc);
            }
        }
        if i % 2000 == 0 {
            progress(opts.frames + i, total);
        }
    }
    let variations = if opts.variation_seconds > 0.0 {
        variations::run(
            bundle,
            opts.model_check,
            &gray,
            second.as_ref().map(|(n, c)| (*n, c)),
            opts.variation_seconds,
        )?
    } else {
        Vec::new()
    };
    progress(total, total);
    let false_alarms = alarm_onsets(&clean_alarm);
    let names = std::iter::once("combined").chain(Check::ALL.iter().map(|c| c.name()));
    let clean_scores = names
        .zip(clean_by_check.iter_mut())
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, v)| CleanQuantiles {
            check: name.to_string(),
            p99: quantile(v, 0.99),
            p999: quantile(v, 0.999),
            max: quantile(v, 1.0),
        })
        .collect();
    Ok(EvalReport {
        cine: cine.display().to_string(),
        model: format!(
            "{} {}",
            bundle.manifest.model.name, bundle.manifest.model.version
        ),
        model_check: opts.model_check,
        model_check_off_s,
        cine_frames: frames.len(),
        frame_interval_us: interval,
        injected_frames: opts.frames,
        kinds,
        clean_frames,
        clean_hours: opts.clean_hours,
        false_alarms,
        false_alarms_per_hour: false_alarms_per_hour(false_alarms, clean_frames, interval),
        first_false_alarm_s: clean_alarm
            .iter()
            .position(|&a| a)
            .map(|i| (i as u64 * interval) as f64 / 1e6),
        clean_scores,
        variations,
        trace,
        segments: plan.segments.clone(),
    })
}

impl EvalReport {
    /// The table as people read it.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{} ({} frames, {:.1} ms/frame), model {}\n{} injected frames, {} clean frames ({:.2} h)\n\n{:<9} {:>8} {:>7} {:>12} {:>9} {:>7}  {}\n",
            self.cine,
            self.cine_frames,
            self.frame_interval_us as f64 / 1000.0,
            if let Some(t) = self.model_check_off_s {
                format!(
                    "{} (it did not know the picture: its check went off at {t:.1} s)",
                    self.model
                )
            } else if self.model_check {
                self.model.clone()
            } else {
                format!("{} (its reconstruction check off)", self.model)
            },
            self.injected_frames,
            self.clean_frames,
            self.clean_hours,
            "kind",
            "segments",
            "AUROC",
            "median delay",
            "max delay",
            "missed",
            "alarm reason"
        );
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |d| d.to_string());
        for k in &self.kinds {
            s.push_str(&format!(
                "{:<9} {:>8} {:>7} {:>12} {:>9} {:>7}  {}\n",
                k.kind,
                k.segments,
                k.auroc.map_or("-".into(), |a| format!("{a:.3}")),
                opt(k.median_delay),
                opt(k.max_delay),
                k.missed,
                k.reason.as_deref().unwrap_or("-")
            ));
        }
        if self.clean_frames == 0 {
            s.push_str("\nno clean replay (--clean-hours 0): no false-alarm rate\n");
        } else {
            s.push_str(&format!(
                "\nfalse alarms on clean replay: {} in {:.2} h ({:.1} per hour){}\n",
                self.false_alarms,
                self.clean_hours,
                self.false_alarms_per_hour,
                self.first_false_alarm_s
                    .map_or(String::new(), |t| format!(", the first after {t:.1} s"))
            ));
        }
        if !self.clean_scores.is_empty() {
            s.push_str(&format!(
                "\nclean frames' scores (1.0 = a check's threshold; the goal for the combined p99.9 is {CLEAN_MARGIN_GOAL}):\n{:<15} {:>6} {:>6} {:>6}\n",
                "check", "p99", "p99.9", "max"
            ));
            for q in &self.clean_scores {
                s.push_str(&format!(
                    "{:<15} {:>6.3} {:>6.3} {:>6.3}\n",
                    q.check, q.p99, q.p999, q.max
                ));
            }
        }
        if !self.variations.is_empty() {
            s.push_str(&format!(
                "\nnormal changes of the picture (alarms after the first {} s should be 0):\n",
                variations::SETTLE_US / 1_000_000
            ));
            for v in &self.variations {
                s.push_str(&format!(
                    "{:<11} {:>6} frames {:>3} alarm(s){}  {}\n",
                    v.name,
                    v.frames,
                    v.alarms,
                    v.first_alarm_s.map_or(String::new(), |t| format!(
                        ", first at {t:.1} s: {}",
                        v.reasons.join(", ")
                    )),
                    v.description
                ));
            }
        }
        s
    }
}
