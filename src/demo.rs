//! The embedded default: a real echo cine and a real chest radiograph, with the
//! two demonstration bundles, compiled into the binary so `bedside demo` runs
//! anywhere the binary does (a fresh checkout or a board).
//!
//! Ultrasound: the whole cycle an operator sees, on the 30-frame echo cine
//! looped five times (150 frames, 5 s of cine time): learning the baseline
//! (the first second), normal, a rehearsed probe lift (frames
//! [`LIFT_START`].. blanked for [`LIFT_FRAMES`], drawn by `--inject`'s
//! rehearsal source) with its alarm, and the alarm cleared when contact
//! returns. X-ray: the radiograph, classified once.

use std::path::{Path, PathBuf};

use crate::analyze::inject::{AnomalyKind, Segment};
use crate::capture::dicom::DicomSource;
use crate::capture::rehearse::{Rehearsal, RehearsalSource};
use crate::capture::replay::{Opener, Pace, Replay};
use crate::capture::{CaptureError, FrameSource};
use crate::display::headless::{HeadlessSink, HeadlessSpec};
use crate::infer::{Bundle, BundleError};
use crate::pipeline::{Mode, Pipeline, PipelineError, RunOptions, RunSummary};

pub const ECHO_CINE: &[u8] = include_bytes!("../assets/demo/echo_cine.dcm");
pub const CHEST_CR: &[u8] = include_bytes!("../assets/demo/chest_cr.dcm");
const ECHO_MANIFEST: &str = include_str!("../models/echo-ae-demo/manifest.toml");
const ECHO_MODEL: &[u8] = include_bytes!("../models/echo-ae-demo/model.onnx");
const XRAY_MANIFEST: &str = include_str!("../models/xray-demo/manifest.toml");
const XRAY_MODEL: &[u8] = include_bytes!("../models/xray-demo/model.onnx");

/// Frames the ultrasound half shows: the cine looped five times.
pub const ULTRASOUND_FRAMES: u64 = 150;
/// Where the rehearsed probe lift starts (after the baseline and two
/// seconds of normal), and how long it lasts.
pub const LIFT_START: u64 = 75;
pub const LIFT_FRAMES: u64 = 20;

/// The bundle compiled in for a mode.
pub fn embedded_bundle(mode: Mode) -> Result<Bundle, BundleError> {
    match mode {
        Mode::Ultrasound => Bundle::from_parts("echo-ae-demo", ECHO_MANIFEST, ECHO_MODEL),
        Mode::Xray => Bundle::from_parts("xray-demo", XRAY_MANIFEST, XRAY_MODEL),
    }
}

/// Runs both modes into `out/{ultrasound,xray}`; `frames` caps each mode.
pub fn run(
    out: &Path,
    frames: Option<u64>,
    progress: impl FnMut(&str, u64, u64) + 'static + Clone,
) -> Result<Vec<RunSummary>, DemoError> {
    let mut summaries = Vec::new();
    for mode in [Mode::Ultrasound, Mode::Xray] {
        let dir = out.join(mode.name());
        let (source, total): (Box<dyn FrameSource>, u64) = match mode {
            Mode::Ultrasound => {
                let cine: Opener = Box::new(|| {
                    Ok(Box::new(DicomSource::from_bytes(
                        Path::new("embedded:echo_cine.dcm"),
                        ECHO_CINE,
                    )?))
                });
                let looped = Replay::new(cine, Pace::Fast, true)?;
                let lift = Rehearsal {
                    segments: vec![Segment {
                        kind: AnomalyKind::Blank,
                        start: LIFT_START,
                        len: LIFT_FRAMES,
                    }],
                    seed: 1,
                };
                (
                    Box::new(RehearsalSource::new(Box::new(looped), lift)),
                    ULTRASOUND_FRAMES,
                )
            }
            Mode::Xray => (
                Box::new(DicomSource::from_bytes(
                    Path::new("embedded:chest_cr.dcm"),
                    CHEST_CR,
                )?),
                1,
            ),
        };
        let total = frames.map_or(total, |f| f.min(total));
        let sink =
            Box::new(HeadlessSink::new(&HeadlessSpec::new(&dir), 1).map_err(PipelineError::from)?);
        let pipeline = Pipeline::new(mode, source, embedded_bundle(mode)?, sink)?;
        let jsonl_path = dir.join("frames.jsonl");
        let jsonl =
            crate::private_output::open(&jsonl_path, false).map_err(|e| DemoError::Write {
                path: jsonl_path.clone(),
                source: e,
            })?;
        let mut p = progress.clone();
        let name = mode.name();
        let summary = pipeline.run(RunOptions {
            max_frames: Some(total),
            jsonl: Some(Box::new(std::io::BufWriter::new(jsonl))),
            jsonl_path: Some(jsonl_path.clone()),
            progress: Some(Box::new(move |n| p(name, n, total))),
            // The ultrasound half's probe lift is rehearsed.
            rehearsal: mode == Mode::Ultrasound,
            ..RunOptions::default()
        })?;
        let mut summary = summary;
        summary.files.push(jsonl_path);
        summaries.push(summary);
    }
    let path = out.join("summary.json");
    let json = serde_json::json!({ "runs": summaries.iter().map(RunSummary::to_json).collect::<Vec<_>>() });
    crate::private_output::write(&path, format!("{json:#}\n").as_bytes()).map_err(|e| {
        DemoError::Write {
            path: path.clone(),
            source: e,
        }
    })?;
    Ok(summaries)
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The bundled chest radiograph as gray at `w` x `h`: the "other
/// modality" of anomaly injection (`eval-anomaly`, `run --inject`).
pub fn other_modality_picture(w: u32, h: u32) -> Result<Vec<u8>, CaptureError> {
    use crate::preprocess::GrayImage;
    use crate::preprocess::convert::Converter;
    use crate::preprocess::kernels::kernels;
    use crate::preprocess::resize::ResizePlan;
    let path = Path::new("embedded:chest_cr.dcm");
    let mut src = DicomSource::from_bytes(path, CHEST_CR)?;
    let f = src.next_frame()?.ok_or_else(|| CaptureError::BadFile {
        path: path.to_path_buf(),
        reason: "no frame".into(),
    })?;
    let mut g = GrayImage::default();
    Converter::default().run(kernels(), &f, &mut g);
    let mut out = vec![0u8; w as usize * h as usize];
    ResizePlan::new((g.width, g.height), (w, h)).run(kernels(), &g.data, &mut out);
    Ok(out)
}
