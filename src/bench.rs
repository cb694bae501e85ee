//! `bedside bench`: what every stage costs on the board it runs on, so
//! boards can be compared with one command (the board table in docs/PERFORMANCE.md).
//!
//! Stages, each timed over `runs` repetitions after one warm-up:
//!
//! - capture: the given source's frame interval and format when one is
//!   given (`--source`; a live camera runs at its own rate), and always the
//!   two conversions every source needs: a DICOM cine frame decoded, a
//!   640x480 YUYV frame (the usual webcam format) to gray;
//! - preprocessing: each model's chain on its real input;
//! - inference: each model, each variant it has (int8, f32), each thread
//!   count asked for;
//! - analysis: the anomaly detector and the classifier on real outputs;
//! - overlay and display: the screen drawn at the display size and
//!   converted to XRGB8888 and RGB565.
//!
//! Nothing is written anywhere; the inputs are the bundled cine and
//! radiograph, or the bundles given.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::analyze::anomaly::{DetectorParams, NativeView};
use crate::analyze::{AnomalyDetector, Verdict, classify};
use crate::capture::dicom::DicomSource;
use crate::capture::{CaptureError, FrameSource};
use crate::display::pixels::{ScreenFormat, convert_row};
use crate::display::{Overlay, OverlayInfo, Status};
use crate::frame::{Frame, FrameMeta, PixelFormat};
use crate::infer::tract::{Precision, TractModel};
use crate::infer::{Bundle, Model};
use crate::preprocess::convert::Converter;
use crate::preprocess::kernels::kernels;
use crate::preprocess::{GrayImage, Preprocessor};

/// One timed stage.
#[derive(Clone, Debug, Serialize)]
pub struct StageTiming {
    pub stage: String,
    pub detail: String,
    pub runs: usize,
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A stage that could not be timed, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub stage: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub machine: String,
    pub arch: &'static str,
    pub kernels: &'static str,
    pub cores: usize,
    pub stages: Vec<StageTiming>,
    pub skipped: Vec<Skipped>,
}

/// What to measure.
pub struct BenchOptions {
    pub runs: usize,
    pub threads: Vec<usize>,
    /// Bundles to time (ultrasound and X-ray).
    pub bundles: Vec<Bundle>,
    /// A source to time, already open (e.g. the board's camera).
    pub source: Option<Box<dyn FrameSource>>,
    pub screen: (u32, u32),
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("{stage}: {reason}")]
    Stage { stage: String, reason: String },
}

fn stage_error(stage: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Stage {
        stage: stage.to_string(),
        reason: e.to_string(),
    }
}

/// Times `f` `runs` times after one warm-up call.
fn time<E>(runs: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<Vec<Duration>, E> {
    f()?;
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed());
    }
    Ok(v)
}

fn summarise(
    stage: impl Into<String>,
    detail: impl Into<String>,
    mut d: Vec<Duration>,
) -> StageTiming {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    let at = |q: f64| {
        d.get(((d.len() - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    StageTiming {
        stage: stage.into(),
        detail: detail.into(),
        runs: d.len(),
        median_ms: ms(at(0.5)),
        p99_ms: ms(at(0.99)),
        max_ms: ms(d.last().copied().unwrap_or_default()),
    }
}

/// What this machine calls itself: the device tree's model on boards,
/// else the CPU's name.
pub fn machine_name() -> String {
    if let Ok(m) = std::fs::read_to_string("/proc/device-tree/model") {
        return m.trim_end_matches('\0').trim().to_string();
    }
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Runs every stage; `progress(done, total, what)` before each.
pub fn run(
    mut opts: BenchOptions,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<BenchReport, BenchError> {
    let runs = opts.runs.max(1);
    let mut stages = Vec::new();
    let mut skipped = Vec::new();
    let variants = opts.bundles.len() * 2 * opts.threads.len();
    let total = 3 + opts.bundles.len() * 3 + variants + 3;
    let mut done = 0;
    let mut step = |what: &str| {
        progress(done, total, what);
        done += 1;
    };

    // Capture.
    step("capture");
    match opts.source.as_mut() {
        Some(src) => {
            let name = src.describe();
            let mut last: Option<(PixelFormat, u32, u32)> = None;
            let d = time(runs, || -> Result<(), BenchError> {
                let f = src
                    .next_frame()?
                    .ok_or_else(|| stage_error("capture", "the source ended"))?;
                last = Some((f.format(), f.width(), f.height()));
                src.recycle(f);
                Ok(())
            })?;
            let (fmt, w, h) = last.unwrap_or((PixelFormat::Gray8, 0, 0));
            let t = summarise("capture", format!("{name}: {fmt:?} {w}x{h}"), d);
            let fps = 1000.0 / t.median_ms.max(1e-9);
            stages.push(StageTiming {
                detail: format!("{}, {fps:.1} fps", t.detail),
                ..t
            });
        }
        None => skipped.push(Skipped {
            stage: "capture".into(),
            reason:
                "no --source given (the board's camera is timed with --source v4l2:/dev/videoN)"
                    .into(),
        }),
    }
    step("decode");
    let mut cine = DicomSource::from_bytes(
        std::path::Path::new("embedded:echo_cine.dcm"),
        crate::demo::ECHO_CINE,
    )?;
    let mut echo = Vec::new();
    while let Some(f) = cine.next_frame()? {
        echo.push(f);
    }
    let mut decoder = DicomSource::from_bytes(
        std::path::Path::new("embedded:echo_cine.dcm"),
        crate::demo::ECHO_CINE,
    )?;
    let d = time(runs, || -> Result<(), BenchError> {
        if decoder.next_frame()?.is_none() {
            decoder = DicomSource::from_bytes(
                std::path::Path::new("embedded:echo_cine.dcm"),
                crate::demo::ECHO_CINE,
            )?;
        }
        Ok(())
    })?;
    let (ew, eh) = (echo[0].width(), echo[0].height());
    stages.push(summarise(
        "decode",
        format!("DICOM echo cine frame {ew}x{eh} (JPEG, YBR)"),
        d,
    ));
    step("convert");
    let yuyv: Vec<u8> = (0..640 * 480 * 2).map(|i| (i * 7 % 251) as u8).collect();
    let yuyv = Frame::packed(yuyv, PixelFormat::Yuyv, 640, 480, FrameMeta::default())
        .map_err(|e| stage_error("convert", e))?;
    let mut gray = GrayImage::default();
    let mut conv = Converter::default();
    let d = time(runs, || -> Result<(), BenchError> {
        conv.run(kernels(), &yuyv, &mut gray);
        Ok(())
    })?;
    stages.push(summarise("convert", "YUYV 640x480 to gray", d));

    let chest = DicomSource::from_bytes(
        std::path::Path::new("embedded:chest_cr.dcm"),
        crate::demo::CHEST_CR,
    )?
    .next_frame()?
    .ok_or_else(|| stage_error("decode", "the bundled radiograph has no frame"))?;
    let mut last_display = GrayImage::default();
    for bundle in &opts.bundles {
        let m = &bundle.manifest;
        let name = format!("{} {}", m.model.name, m.model.version);
        let ultrasound = m.model.task == crate::infer::bundle::Task::Reconstruct;
        let input: &[Frame] = if ultrasound {
            &echo
        } else {
            std::slice::from_ref(&chest)
        };
        step("preprocess");
        let mut pre = Preprocessor::new(m.chain(), Some(m.input_quant()))
            .map_err(|e| stage_error("preprocess", e))?;
        let mut i = 0;
        let d = time(runs, || {
            i += 1;
            pre.process(&input[i % input.len()])
        })
        .map_err(|e| stage_error("preprocess", e))?;
        let (iw, ih) = (input[0].width(), input[0].height());
        stages.push(summarise(
            "preprocess",
            format!("{name}: {} on {iw}x{ih}", m.chain()),
            d,
        ));
        pre.process(&input[0])
            .map_err(|e| stage_error("preprocess", e))?;
        last_display = pre.display().clone();
        let model_input = pre.model_input().to_vec();

        let mut output = Vec::new();
        for precision in [Precision::Int8, Precision::F32] {
            for &threads in &opts.threads {
                step("infer");
                match TractModel::load_with(bundle, precision, threads) {
                    Ok(mut model) => {
                        let d = time(runs, || model.run(&model_input).map(|_| ()))
                            .map_err(|e| stage_error("infer", e))?;
                        stages.push(summarise(
                            "infer",
                            format!("{name}: {}, {threads} thread(s)", precision.name()),
                            d,
                        ));
                        if output.is_empty() {
                            output = model
                                .run(&model_input)
                                .map_err(|e| stage_error("infer", e))?
                                .to_vec();
                        }
                    }
                    Err(e) => skipped.push(Skipped {
                        stage: "infer".into(),
                        reason: format!("{name}: {}, {threads} thread(s): {e}", precision.name()),
                    }),
                }
            }
        }
        step("analyze");
        if ultrasound {
            let mut det = AnomalyDetector::new(DetectorParams::new(
                m.thresholds.anomaly_error.unwrap_or(f32::INFINITY),
            ));
            let mut frames = Vec::new();
            for f in &echo {
                pre.process(f).map_err(|e| stage_error("analyze", e))?;
                frames.push((
                    pre.processed().clone(),
                    pre.display().clone(),
                    pre.active_area(),
                ));
            }
            let mut seq = 0u64;
            let mut judge = |det: &mut AnomalyDetector| -> Result<(), BenchError> {
                let (view, native, area) = &frames[(seq % frames.len() as u64) as usize];
                let meta = FrameMeta {
                    seq,
                    timestamp_us: seq * 33_333,
                };
                seq += 1;
                det.update(
                    meta,
                    view.width,
                    &view.data,
                    &output,
                    m.input.pixel_scale,
                    Some(NativeView::of(native, *area)),
                );
                Ok(())
            };
            for _ in 0..64 {
                judge(&mut det)?;
            }
            let d = time(runs, || judge(&mut det))?;
            stages.push(summarise(
                "analyze",
                format!("{name}: anomaly detector, after warm-up"),
                d,
            ));
        } else {
            let min = m.thresholds.min_confidence.unwrap_or(0.0);
            let d = time(runs, || -> Result<(), BenchError> {
                std::hint::black_box(classify::classify(&output, m.temperature(), min));
                Ok(())
            })?;
            stages.push(summarise(
                "analyze",
                format!("{name}: softmax and top class"),
                d,
            ));
        }
    }

    // Overlay and display.
    step("overlay");
    let info = OverlayInfo {
        mode: "ultrasound".into(),
        model_line: "bench".into(),
        demonstration: true,
        labels: vec![],
    };
    let mut overlay = Overlay::new(opts.screen, info);
    let verdict = Verdict::Anomaly(Default::default());
    if last_display.data.is_empty() {
        Converter::default().run(kernels(), &echo[0], &mut last_display);
    }
    let d = time(runs, || -> Result<(), BenchError> {
        overlay.render(&last_display, Status::Result(&verdict), Some((30.0, 20.0)));
        Ok(())
    })?;
    let (sw, sh) = opts.screen;
    stages.push(summarise(
        "overlay",
        format!("{sw}x{sh} screen, ultrasound state"),
        d,
    ));
    let canvas = overlay
        .render(&last_display, Status::Result(&verdict), None)
        .clone();
    for (format, label) in [
        (ScreenFormat::Xrgb8888, "XRGB8888"),
        (ScreenFormat::Rgb565Le, "RGB565"),
    ] {
        step("display");
        let mut out = vec![0u8; sw as usize * format.bytes_per_pixel()];
        let d = time(runs, || -> Result<(), BenchError> {
            for row in canvas.rgb.chunks_exact(sw as usize * 3) {
                convert_row(row, format, &mut out);
            }
            Ok(())
        })?;
        stages.push(summarise(
            "display",
            format!("{sw}x{sh} canvas to {label}"),
            d,
        ));
    }
    progress(total, total, "done");
    Ok(BenchReport {
        machine: machine_name(),
        arch: std::env::consts::ARCH,
        kernels: kernels().name,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        stages,
        skipped,
    })
}

impl BenchReport {
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{} ({}, {} core(s), {} kernels)\n\n{:<11} {:>9} {:>9} {:>9}  {}\n",
            self.machine,
            self.arch,
            self.cores,
            self.kernels,
            "stage",
            "median ms",
            "p99 ms",
            "max ms",
            "what"
        );
        for t in &self.stages {
            s.push_str(&format!(
                "{:<11} {:>9.3} {:>9.3} {:>9.3}  {}\n",
                t.stage, t.median_ms, t.p99_ms, t.max_ms, t.detail
            ));
        }
        for k in &self.skipped {
            s.push_str(&format!(
                "{:<11} {:>9} {:>9} {:>9}  {}\n",
                k.stage, "-", "-", "-", k.reason
            ));
        }
        s
    }
}
