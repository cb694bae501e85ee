//! `bedside model import`: a quantized ONNX file (and optionally its float
//! original) made into a bundle the runtime loads and has checked.
//!
//! The int8 graph is normalized ([`super::normalize`]): the input's
//! `QuantizeLinear` moves into the manifest, uint8 becomes int8,
//! onnxruntime's com.microsoft operators become standard ones. The
//! manifest's facts (input shape and quantization, output size, operator
//! set) are read from the graph, never typed by hand; every file gets its
//! sha256. Then the bundle is loaded the way `run` loads it and each
//! variant runs once: an import that cannot run is not written.

use std::path::{Path, PathBuf};

use prost::Message;
use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use super::bundle::{
    FileEntry, Files, InputSection, Manifest, ModelSection, OutputSection, Provenance, Thresholds,
};
use super::graph::{GraphFacts, ONNX_FLOAT};
use super::normalize::{NormalizeError, Normalized, RgbFolded, fold_rgb, normalize};
use super::{Bundle, BundleError, InferError, Precision, Task, TractModel};
use crate::safe_read::{Links, ReadError, read_file};

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The quantized model (onnxruntime's `quantize_static` output, QOperator
    /// or QDQ, or a graph that already takes int8).
    pub int8: PathBuf,
    /// The float model it was quantized from, for `--precision f32` and
    /// `auto`.
    pub f32: Option<PathBuf>,
    pub task: Task,
    /// One per output, for `classify`.
    pub labels: Vec<String>,
    /// The preprocessing chain; default `resize=WxH,quantize`.
    pub chain: Option<String>,
    pub name: String,
    pub version: String,
    pub description: String,
    /// Trained on synthetic or unvalidated data: announced on screen.
    pub demonstration: bool,
    pub trained_on: String,
    pub licence: String,
    /// What one pixel level is in the model's input units (the float value
    /// of pixel 255 is `255 * pixel_scale`); default 1/255.
    pub pixel_scale: f32,
    pub min_confidence: Option<f32>,
    /// Required for `reconstruct`.
    pub anomaly_error: Option<f32>,
    /// The bundle folder to write; must not exist or be empty.
    pub out: PathBuf,
    /// Fold the first convolution of a 3-channel network over its colour
    /// channels so it takes gray ([`super::normalize::fold_rgb`]).
    pub gray_from_rgb: bool,
    /// A folder of pictures (anything `images:` reads, one frame each) to
    /// make reference inputs from: written to the bundle's `golden.json`
    /// through its chain and quantization, for `models/tools/golden.py` to
    /// add another runtime's outputs.
    pub reference: Option<PathBuf>,
}

/// The most reference pictures an import takes.
pub const MAX_REFERENCES: usize = 32;

/// What [`import`] wrote.
#[derive(Clone, Debug)]
pub struct Imported {
    pub manifest: Manifest,
    pub normalized: Normalized,
    /// The variants that loaded and ran, e.g. `["int8", "f32"]`.
    pub ran: Vec<&'static str>,
    /// What `gray_from_rgb` folded in the int8 model, and the largest
    /// difference between the float model on three equal channels and
    /// the folded float model on one (when a float model was given).
    pub rgb: Option<(RgbFolded, Option<f32>)>,
    /// Reference inputs written to `golden.json` (0 without `reference`).
    pub reference_inputs: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Read(ReadError),
    #[error("{}: not an ONNX model: {reason}", path.display())]
    NotOnnx { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Normalize {
        path: PathBuf,
        source: NormalizeError,
    },
    #[error("{}: uses operators tract cannot run: {}; export without them or replace them with standard ONNX operators", path.display(), ops.join(", "))]
    Unsupported { path: PathBuf, ops: Vec<String> },
    #[error("{}: {reason}", path.display())]
    Float { path: PathBuf, reason: String },
    #[error("{reason}")]
    Options { reason: String },
    #[error("{}: {reason}", path.display())]
    Out { path: PathBuf, reason: String },
    #[error("the written bundle does not load: {0}")]
    Bundle(BundleError),
    #[error("the written bundle does not run: {0}")]
    Run(InferError),
    #[error("{}: {reason}", path.display())]
    Reference { path: PathBuf, reason: String },
}

fn sha256_hex(bytes: &[u8]) -> String {
    super::signature::hex(&Sha256::digest(bytes))
}

fn read_model(path: &Path) -> Result<(Vec<u8>, pb::ModelProto), ImportError> {
    let bytes = read_file(
        path,
        super::bundle::MODEL_FILE_LIMIT,
        Links::Follow,
        "a model file",
    )
    .map_err(ImportError::Read)?;
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|e| ImportError::NotOnnx {
            path: path.to_path_buf(),
            reason: format!("{e:#}").replace('\n', " "),
        })?;
    Ok((bytes, proto))
}

/// The output's element count, from tract's analysis of the graph.
fn output_len(
    proto: &pb::ModelProto,
    path: &Path,
    dt: DatumKind,
    shape: &[usize],
) -> Result<usize, ImportError> {
    use tract_onnx::prelude::*;
    let fail = |reason: String| ImportError::NotOnnx {
        path: path.to_path_buf(),
        reason,
    };
    let dt = match dt {
        DatumKind::I8 => i8::datum_type(),
        DatumKind::F32 => f32::datum_type(),
    };
    let analysed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        || -> TractResult<Option<usize>> {
            let mut proto = proto.clone();
            if dt == i8::datum_type() {
                super::qdq::fold(&mut proto);
            }
            let typed = tract_onnx::onnx()
                .model_for_proto_model(&proto)?
                .with_input_fact(0, InferenceFact::dt_shape(dt, shape.to_vec()))?
                .into_typed()?;
            Ok(typed
                .output_fact(0)?
                .shape
                .as_concrete()
                .map(|d| d.iter().product()))
        },
    ));
    match analysed {
        Ok(Ok(Some(n))) => Ok(n),
        Ok(Ok(None)) => Err(fail(
            "its output shape is not fixed for a fixed input".into(),
        )),
        Ok(Err(e)) => Err(fail(format!(
            "tract cannot build it: {}",
            format!("{e:#}").replace('\n', " ")
        ))),
        Err(_) => Err(fail("tract failed on this graph (internal panic)".into())),
    }
}

#[derive(Clone, Copy)]
enum DatumKind {
    I8,
    F32,
}

/// Checks that the float model takes float input of the int8 model's
/// shape and has as many outputs.
fn check_float(
    proto: &pb::ModelProto,
    path: &Path,
    shape: &[usize],
    outputs: usize,
) -> Result<(), ImportError> {
    let bad = |reason: String| ImportError::Float {
        path: path.to_path_buf(),
        reason,
    };
    let facts = GraphFacts::read(proto).map_err(bad)?;
    if facts.input.elem_type != ONNX_FLOAT {
        return Err(bad(format!(
            "its input '{}' is {}, the float model must take f32",
            facts.input.name,
            facts.input.type_name()
        )));
    }
    if !facts.input.fits(shape) {
        return Err(bad(format!(
            "its input has shape {}, the int8 model's is {shape:?}",
            facts.input.shape_text()
        )));
    }
    let n = output_len(proto, path, DatumKind::F32, shape)?;
    if n != outputs {
        return Err(bad(format!("it has {n} outputs, the int8 model {outputs}")));
    }
    Ok(())
}

/// Makes the bundle; see the module's docs.
pub fn import(opts: &ImportOptions) -> Result<Imported, ImportError> {
    let option = |reason: String| ImportError::Options { reason };
    if opts.name.trim().is_empty() || opts.version.trim().is_empty() {
        return Err(option("give the bundle a --name and a --version".into()));
    }
    let (source_bytes, mut proto) = read_model(&opts.int8)?;
    let normalize_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImportError::Normalize { path, source }
    };
    let mut normalized =
        normalize(&mut proto, opts.gray_from_rgb).map_err(normalize_err(&opts.int8))?;
    let rgb_int8 = if normalized.input_shape[1] == 3 {
        let folded = fold_rgb(&mut proto).map_err(normalize_err(&opts.int8))?;
        normalized.input_shape[1] = 1;
        Some(folded)
    } else {
        None
    };
    let facts = GraphFacts::read(&proto).map_err(|reason| ImportError::NotOnnx {
        path: opts.int8.clone(),
        reason,
    })?;
    let onnx = tract_onnx::onnx();
    let lacking = facts.unsupported(|op| onnx.op_register.0.contains_key(op));
    if !lacking.is_empty() {
        return Err(ImportError::Unsupported {
            path: opts.int8.clone(),
            ops: lacking,
        });
    }
    let shape = normalized.input_shape.clone();
    let outputs = output_len(&proto, &opts.int8, DatumKind::I8, &shape)?;
    let (h, w) = (shape[2], shape[3]);
    match opts.task {
        Task::Classify if opts.labels.len() != outputs => {
            return Err(option(format!(
                "the model has {outputs} outputs: give --labels with {outputs} names, in the order of the outputs"
            )));
        }
        Task::Reconstruct if outputs != h * w => {
            return Err(option(format!(
                "a reconstruct model must output one value per input pixel ({h}x{w} = {}); this one has {outputs}",
                h * w
            )));
        }
        Task::Reconstruct if opts.anomaly_error.is_none() => {
            return Err(option(
                "a reconstruct model needs --anomaly-error (the mean absolute reconstruction error above which a frame is anomalous)".into(),
            ));
        }
        _ => {}
    }
    let mut rgb_check = None;
    let float = match &opts.f32 {
        Some(path) if rgb_int8.is_some() => {
            let (_, original) = read_model(path)?;
            let mut folded = original.clone();
            fold_rgb(&mut folded).map_err(normalize_err(path))?;
            check_float(&folded, path, &shape, outputs)?;
            rgb_check = Some(gray_agreement(&original, &folded, path, &shape)?);
            Some(folded.encode_to_vec())
        }
        Some(path) => {
            let (bytes, proto) = read_model(path)?;
            check_float(&proto, path, &shape, outputs)?;
            Some(bytes)
        }
        None => None,
    };
    let int8_bytes = proto.encode_to_vec();
    let output_shape = if opts.task == Task::Reconstruct {
        vec![1, 1, h, w]
    } else {
        vec![1, outputs]
    };
    let manifest = Manifest {
        model: ModelSection {
            name: opts.name.clone(),
            version: opts.version.clone(),
            task: opts.task,
            demonstration: opts.demonstration,
            description: opts.description.clone(),
        },
        input: InputSection {
            shape: shape.clone(),
            dtype: "i8".into(),
            scale: normalized.input_scale,
            zero_point: normalized.input_zero_point,
            pixel_scale: opts.pixel_scale,
            preprocess: opts
                .chain
                .clone()
                .unwrap_or_else(|| format!("resize={w}x{h},quantize")),
        },
        output: OutputSection {
            shape: output_shape,
            kind: match opts.task {
                Task::Classify => "logits".into(),
                Task::Reconstruct => "reconstruction".into(),
            },
            labels: opts.labels.clone(),
        },
        thresholds: Thresholds {
            min_confidence: opts.min_confidence,
            anomaly_error: opts.anomaly_error,
        },
        // Fitted on held-out images, which import does not have:
        // models/train/calibrate.py adds it to a bundle.
        calibration: None,
        gate: None,
        files: Files {
            int8: FileEntry {
                path: "model.onnx".into(),
                sha256: sha256_hex(&int8_bytes),
            },
            f32: float.as_ref().map(|b| FileEntry {
                path: "model_f32.onnx".into(),
                sha256: sha256_hex(b),
            }),
        },
        provenance: Provenance {
            trained_on: opts.trained_on.clone(),
            evaluation: String::new(),
            ops: facts.op_names(),
            licence: opts.licence.clone(),
            made_by: format!(
                "bedside {} model import from {} (sha256 {})",
                env!("CARGO_PKG_VERSION"),
                opts.int8.file_name().map_or_else(
                    || opts.int8.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                ),
                sha256_hex(&source_bytes)
            ),
        },
    };
    let text = toml::to_string(&manifest).map_err(|e| option(format!("manifest: {e}")))?;
    let text = format!(
        "# Written by `bedside model import`; its facts are read from the graph.\n\
         # Change the name, labels, chain or thresholds with the import's options.\n{text}"
    );
    // Checked as `run` will check it before anything is written.
    let manifest_path = opts.out.join("manifest.toml");
    Manifest::parse(&manifest_path, &text).map_err(|e| option(e.to_string()))?;
    write_bundle(&opts.out, &text, &int8_bytes, float.as_deref())?;
    let checked = check_bundle(&opts.out).and_then(|ran| {
        let refs = match &opts.reference {
            Some(dir) => write_reference_inputs(&opts.out, dir)?,
            None => 0,
        };
        Ok((ran, refs))
    });
    let (ran, reference_inputs) = checked.inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&opts.out);
    })?;
    Ok(Imported {
        manifest,
        normalized,
        ran,
        rgb: rgb_int8.map(|f| (f, rgb_check)),
        reference_inputs,
    })
}

/// The largest difference between the colour float model fed a gray
/// picture in all three channels and the folded model fed it once, over
/// three seeded pictures: the fold is exact in real arithmetic, so this is
/// float rounding, and more means the fold is wrong.
fn gray_agreement(
    original: &pb::ModelProto,
    folded: &pb::ModelProto,
    path: &Path,
    shape: &[usize],
) -> Result<f32, ImportError> {
    use tract_onnx::prelude::*;
    let fail = |e: anyhow::Error| ImportError::Float {
        path: path.to_path_buf(),
        reason: format!(
            "--gray-from-rgb check: {}",
            format!("{e:#}").replace('\n', " ")
        ),
    };
    let run = |proto: &pb::ModelProto, channels: usize, gray: &[f32]| -> TractResult<Vec<f32>> {
        let dims = [1, channels, shape[2], shape[3]];
        let input: Vec<f32> = (0..channels).flat_map(|_| gray.iter().copied()).collect();
        let plan = tract_onnx::onnx()
            .model_for_proto_model(proto)?
            .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), dims.to_vec()))?
            .into_optimized()?
            .into_runnable()?;
        let out = plan.run(tvec![Tensor::from_shape(&dims, &input)?.into_tvalue()])?;
        Ok(out[0]
            .cast_to::<f32>()?
            .try_as_plain_ram()?
            .as_slice::<f32>()?
            .to_vec())
    };
    let n = shape[2] * shape[3];
    let mut worst = 0f32;
    for seed in 1..=3u32 {
        // A fixed picture per seed, values 0..1 (a multiplicative hash).
        let gray: Vec<f32> = (0..n as u32)
            .map(|i| (i.wrapping_add(seed * 7919).wrapping_mul(2_654_435_761) >> 24) as f32 / 255.0)
            .collect();
        let a = run(original, 3, &gray).map_err(fail)?;
        let b = run(folded, 1, &gray).map_err(fail)?;
        let scale = a.iter().fold(1f32, |m, v| m.max(v.abs()));
        worst = a
            .iter()
            .zip(&b)
            .fold(worst, |m, (x, y)| m.max((x - y).abs() / scale));
    }
    if worst > 1e-4 {
        return Err(ImportError::Float {
            path: path.to_path_buf(),
            reason: format!(
                "--gray-from-rgb: the folded float model differs from the colour one on gray pictures by {worst:.2e} (relative)"
            ),
        });
    }
    Ok(worst)
}

/// Writes the bundle's files into `out`, which must not exist or be empty.
fn write_bundle(
    out: &Path,
    manifest: &str,
    int8: &[u8],
    f32: Option<&[u8]>,
) -> Result<(), ImportError> {
    let fail = |path: &Path, e: std::io::Error| ImportError::Out {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ImportError::Out {
                    path: out.to_path_buf(),
                    reason: "exists and is not empty; give a new folder".into(),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).map_err(|e| fail(out, e))?;
        }
        Err(e) => return Err(fail(out, e)),
    }
    let mut files: Vec<(&str, &[u8])> =
        vec![("model.onnx", int8), ("manifest.toml", manifest.as_bytes())];
    if let Some(b) = f32 {
        files.push(("model_f32.onnx", b));
    }
    for (name, bytes) in files {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(|e| fail(&path, e))?;
    }
    Ok(())
}

/// Makes the bundle's model input from each picture in `dir` (sorted by
/// name) with its own chain and quantization, and writes them as the
/// cases of its `golden.json`, without outputs yet.
fn write_reference_inputs(out: &Path, dir: &Path) -> Result<usize, ImportError> {
    use crate::capture::{self, SourceOptions, SourceSpec};
    use crate::preprocess::Preprocessor;
    let fail = |path: &Path, reason: String| ImportError::Reference {
        path: path.to_path_buf(),
        reason,
    };
    let bundle = Bundle::load(out).map_err(ImportError::Bundle)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| fail(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(fail(dir, "holds no pictures".into()));
    }
    if files.len() > MAX_REFERENCES {
        return Err(fail(
            dir,
            format!(
                "holds {} files; give at most {MAX_REFERENCES} reference pictures",
                files.len()
            ),
        ));
    }
    let mut pre = Preprocessor::new(bundle.manifest.chain(), Some(bundle.manifest.input_quant()))
        .map_err(|e| fail(dir, e.to_string()))?;
    let mut cases = Vec::new();
    for file in &files {
        let mut src = capture::open(&SourceSpec::images(file.clone()), &SourceOptions::default())
            .map_err(|e| fail(file, e.to_string()))?;
        let frame = src
            .next_frame()
            .map_err(|e| fail(file, e.to_string()))?
            .ok_or_else(|| fail(file, "no picture in the file".into()))?;
        pre.process(&frame).map_err(|e| fail(file, e.to_string()))?;
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        cases.push(super::reference::Case {
            name: name.clone(),
            input: pre.model_input().to_vec(),
            output: Vec::new(),
            f32_output: None,
            source: Some(serde_json::Value::String(name)),
            gate_score: None,
        });
    }
    let refs = super::reference::References {
        runtime: String::new(),
        tolerance: None,
        cases,
    };
    let path = out.join(super::reference::REFERENCE_FILE);
    let text = serde_json::to_string(&refs).map_err(|e| fail(&path, e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| fail(&path, e.to_string()))?;
    Ok(refs.cases.len())
}

/// Loads the written bundle as `run` does and runs each variant once.
fn check_bundle(out: &Path) -> Result<Vec<&'static str>, ImportError> {
    use super::Model;
    let bundle = Bundle::load(out).map_err(ImportError::Bundle)?;
    let n: usize = bundle.manifest.input.shape.iter().product();
    let mut ran = Vec::new();
    let mut variants = vec![Precision::Int8];
    if bundle.f32_bytes.is_some() {
        variants.push(Precision::F32);
    }
    for p in variants {
        let mut m = TractModel::load_precision(&bundle, p).map_err(ImportError::Run)?;
        m.run(&vec![0i8; n]).map_err(ImportError::Run)?;
        ran.push(p.name());
    }
    Ok(ran)
}
