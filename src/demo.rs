//! The embedded default: a real echo cine and a real chest radiograph, with the
//! two demonstration bundles, compiled into the binary so `bedside demo` runs
//! anywhere the binary does (a fresh checkout or a board).
//!
//! Ultrasound: the 30-frame echo cine, followed by frames with the picture
//! blanked (a simulated lifted probe) so the alarm path is shown too.
//! X-ray: the radiograph, classified once.

use std::path::{Path, PathBuf};

use crate::capture::dicom::DicomSource;
use crate::capture::{CaptureError, FrameSource};
use crate::display::headless::HeadlessSink;
use crate::frame::{Frame, FrameMeta, PixelFormat};
use crate::infer::{Bundle, BundleError};
use crate::pipeline::{Mode, Pipeline, PipelineError, RunOptions, RunSummary};

pub const ECHO_CINE: &[u8] = include_bytes!("../assets/demo/echo_cine.dcm");
pub const CHEST_CR: &[u8] = include_bytes!("../assets/demo/chest_cr.dcm");
const ECHO_MANIFEST: &str = include_str!("../models/echo-ae-demo/manifest.toml");
const ECHO_MODEL: &[u8] = include_bytes!("../models/echo-ae-demo/model.onnx");
const XRAY_MANIFEST: &str = include_str!("../models/xray-demo/manifest.toml");
const XRAY_MODEL: &[u8] = include_bytes!("../models/xray-demo/model.onnx");

/// Frames of simulated probe lift appended to the cine.
pub const LIFTED_FRAMES: u64 = 10;

/// The bundle compiled in for a mode.
pub fn embedded_bundle(mode: Mode) -> Result<Bundle, BundleError> {
    match mode {
        Mode::Ultrasound => Bundle::from_parts("echo-ae-demo", ECHO_MANIFEST, ECHO_MODEL),
        Mode::Xray => Bundle::from_parts("xray-demo", XRAY_MANIFEST, XRAY_MODEL),
    }
}

/// Replays a source, then repeats its last frame with every pixel black.
struct ThenLifted {
    inner: Box<dyn FrameSource>,
    last: Option<Frame>,
    remaining: u64,
}

impl FrameSource for ThenLifted {
    fn describe(&self) -> String {
        format!(
            "{} + {} blank frames (simulated probe lift)",
            self.inner.describe(),
            LIFTED_FRAMES
        )
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if let Some(f) = self.inner.next_frame()? {
            self.last = Some(f.clone());
            return Ok(Some(f));
        }
        let Some(last) = self.last.as_ref() else {
            return Ok(None);
        };
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let meta = FrameMeta {
            seq: last.meta.seq + 1,
            timestamp_us: last.meta.timestamp_us + 33_333,
        };
        let (w, h) = (last.width(), last.height());
        let blank = Frame::packed(vec![0; (w * h) as usize], PixelFormat::Gray8, w, h, meta)
            .map_err(|e| CaptureError::BadFrame {
                path: "demo".into(),
                source: e,
            })?;
        self.last = Some(blank.clone());
        Ok(Some(blank))
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
                let cine = DicomSource::from_bytes(Path::new("embedded:echo_cine.dcm"), ECHO_CINE)?;
                let n = u64::from(cine.frame_count()) + LIFTED_FRAMES;
                (
                    Box::new(ThenLifted {
                        inner: Box::new(cine),
                        last: None,
                        remaining: LIFTED_FRAMES,
                    }),
                    n,
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
        let sink = Box::new(HeadlessSink::new(&dir, (640, 480), 1).map_err(PipelineError::from)?);
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
