//! Reference outputs that travel with a bundle: `golden.json`.
//!
//! Each case is an int8 input exactly as bedside feeds it (after the
//! bundle's chain and quantization) and what another runtime computed for
//! it (`output` for the int8 model; `f32_output`, optionally, for the float
//! one): the demonstration bundles carry onnxruntime's, written by their
//! training scripts; for an imported bundle, `bedside model import
//! --reference DIR` writes the inputs and `models/tools/golden.py` adds
//! onnxruntime's outputs. [`check`] runs every case in tract and says how
//! far tract is from them, against a tolerance the file may state.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Bundle, InferError, Model, Precision, TractModel};
use crate::safe_read::{Links, ReadError, read_file};

/// The file's name inside a bundle.
pub const REFERENCE_FILE: &str = "golden.json";
/// The most a reference file may be (a 224x224 input is about 1 MB of text).
pub const REFERENCE_FILE_LIMIT: u64 = 64 << 20;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct References {
    /// What computed the outputs ("onnxruntime 1.31.1"); empty while only
    /// the inputs are there.
    #[serde(default)]
    pub runtime: String,
    /// Largest |tract - reference| accepted per variant; when absent, 2% of
    /// the references' output range for int8 and 0.01% for f32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Tolerance>,
    pub cases: Vec<Case>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
pub struct Tolerance {
    pub int8: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f32: Option<f32>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Case {
    pub name: String,
    pub input: Vec<i8>,
    #[serde(default)]
    pub output: Vec<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f32_output: Option<Vec<f32>>,
    /// Where the input came from, when known: a file name, or (the
    /// demonstration bundles) a file in the repository and a frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<serde_json::Value>,
    /// The pixel gate's score on this input (int8, by the reference
    /// runtime), for bundles with a `[gate]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_score: Option<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error(transparent)]
    Read(ReadError),
    #[error("{}: not a reference file: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("{}: case '{case}': {reason}", path.display())]
    Case {
        path: PathBuf,
        case: String,
        reason: String,
    },
    #[error(transparent)]
    Run(InferError),
}

/// How one variant compared.
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    pub precision: Precision,
    pub cases: usize,
    pub max_diff: f32,
    pub tolerance: f32,
    /// For a bundle with a pixel gate and reference scores: the largest
    /// |tract - reference| score and the tolerance (2% of the threshold).
    pub gate: Option<(f32, f32)>,
}

impl Agreement {
    pub fn holds(&self) -> bool {
        self.max_diff <= self.tolerance && self.gate.is_none_or(|(d, t)| d <= t)
    }
}

/// What [`check`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// No `golden.json` in the bundle.
    Missing,
    /// Inputs without outputs: `models/tools/golden.py` has not run yet.
    NoOutputs {
        cases: usize,
    },
    Checked(Vec<Agreement>),
}

impl Verdict {
    /// Whether references exist and every variant agrees with them.
    pub fn agrees(&self) -> bool {
        matches!(self, Verdict::Checked(v) if !v.is_empty() && v.iter().all(Agreement::holds))
    }

    /// One line for `model info` and `model verify`.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Missing => "no reference outputs (golden.json): tract's answers are not compared with any other runtime's".into(),
            Verdict::NoOutputs { cases } => format!(
                "golden.json has {cases} inputs but no outputs yet: run models/tools/golden.py"
            ),
            Verdict::Checked(v) => v
                .iter()
                .map(|a| {
                    format!(
                        "{} {} on {} reference cases: max |tract - reference| {:.3e} {} tolerance {:.3e}",
                        a.precision.name(),
                        if a.holds() { "agrees" } else { "DISAGREES" },
                        a.cases,
                        a.max_diff,
                        if a.holds() { "within" } else { "beyond" },
                        a.tolerance
                    ) + &a.gate.map_or(String::new(), |(d, t)| {
                        format!(", gate score max |tract - reference| {d:.3e} (tolerance {t:.3e})")
                    })
                })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// Reads `path` (a reference file).
pub fn read(path: &Path) -> Result<References, ReferenceError> {
    let bytes = read_file(
        path,
        REFERENCE_FILE_LIMIT,
        Links::Refuse,
        "a reference file",
    )
    .map_err(ReferenceError::Read)?;
    serde_json::from_slice(&bytes).map_err(|e| ReferenceError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn range(values: impl Iterator<Item = f32>) -> f32 {
    let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if hi >= lo { hi - lo } else { 0.0 }
}

/// Runs the bundle's references (its `golden.json`) in tract, int8 and,
/// where the file has float outputs and the bundle a float model, f32.
pub fn check(bundle: &Bundle) -> Result<Verdict, ReferenceError> {
    let path = bundle.origin.join(REFERENCE_FILE);
    let refs = match read(&path) {
        Ok(r) => r,
        Err(ReferenceError::Read(ReadError::NotFound { .. })) => return Ok(Verdict::Missing),
        Err(e) => return Err(e),
    };
    if refs.cases.iter().all(|c| c.output.is_empty()) {
        return Ok(Verdict::NoOutputs {
            cases: refs.cases.len(),
        });
    }
    let n: usize = bundle.manifest.input.shape.iter().product();
    let bad = |case: &Case, reason: String| ReferenceError::Case {
        path: path.clone(),
        case: case.name.clone(),
        reason,
    };
    let mut verdict = Vec::new();
    let mut variants = vec![Precision::Int8];
    if bundle.f32_bytes.is_some() && refs.cases.iter().all(|c| c.f32_output.is_some()) {
        variants.push(Precision::F32);
    }
    for precision in variants {
        let mut model =
            TractModel::load_precision(bundle, precision).map_err(ReferenceError::Run)?;
        let want = |c: &Case| -> Vec<f32> {
            match precision {
                Precision::Int8 => c.output.clone(),
                Precision::F32 => c.f32_output.clone().unwrap_or_default(),
            }
        };
        let spread = range(refs.cases.iter().flat_map(|c| want(c).into_iter()));
        let tolerance = match (precision, refs.tolerance) {
            (Precision::Int8, Some(t)) => t.int8,
            (Precision::F32, Some(Tolerance { f32: Some(t), .. })) => t,
            (Precision::Int8, _) => 0.02 * spread,
            (Precision::F32, _) => 1e-4 * spread,
        };
        let mut max_diff = 0f32;
        // The gate's scores are recorded for the int8 graph.
        let gate_threshold = bundle
            .manifest
            .gate
            .as_ref()
            .filter(|_| precision == Precision::Int8)
            .filter(|_| refs.cases.iter().all(|c| c.gate_score.is_some()))
            .map(|g| g.threshold);
        let mut gate_diff = 0f32;
        for case in &refs.cases {
            if case.input.len() != n {
                return Err(bad(
                    case,
                    format!("input has {} values, the model takes {n}", case.input.len()),
                ));
            }
            let expected = want(case);
            let (got, score) = model.run_gated(&case.input).map_err(ReferenceError::Run)?;
            if let (Some(_), Some(want), Some(s)) = (gate_threshold, case.gate_score, score) {
                let d = (s - want).abs();
                gate_diff = if d.is_nan() {
                    f32::INFINITY
                } else {
                    gate_diff.max(d)
                };
            }
            if got.len() != expected.len() {
                return Err(bad(
                    case,
                    format!(
                        "{} outputs recorded, the {} model gives {}",
                        expected.len(),
                        precision.name(),
                        got.len()
                    ),
                ));
            }
            for (a, b) in got.iter().zip(&expected) {
                let d = (a - b).abs();
                // A NaN anywhere is a disagreement, not a pass.
                max_diff = if d.is_nan() {
                    f32::INFINITY
                } else {
                    max_diff.max(d)
                };
            }
        }
        verdict.push(Agreement {
            precision,
            cases: refs.cases.len(),
            max_diff,
            tolerance,
            gate: gate_threshold.map(|t| (gate_diff, 0.02 * t)),
        });
    }
    Ok(Verdict::Checked(verdict))
}
