//! Model bundles: a folder with `manifest.toml` and the ONNX files it names.
//!
//! The loader reads each model file once into memory, checks its sha256 against
//! the manifest, and hands those same bytes to the engine: no check-then-use race,
//! no SIGBUS from a file truncated under a memory map.
//!
//! A bundle may also carry `manifest.sig`, an ed25519 signature over the
//! manifest's bytes (see [`super::signature`]); [`Bundle::check_signature`]
//! applies a board's [`SignaturePolicy`] to it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::signature::{self, PublicKey, SIGNATURE_FILE};
use crate::preprocess::{Chain, InputQuant};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: no such file or directory", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: invalid manifest: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error("{}: sha256 mismatch (manifest says {expected}, file is {actual}): corrupt or altered model", path.display())]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{}: not signed, and this board accepts signed bundles only", path.display())]
    Unsigned { path: PathBuf },
    #[error("{}: bad signature: {reason}", path.display())]
    BadSignature { path: PathBuf, reason: String },
    /// A symlink, FIFO, device or oversized file where a bundle file should be.
    #[error(transparent)]
    Unreadable(crate::safe_read::ReadError),
}

/// The most a bundle's model file may be: more than any network a board
/// can run in real time (ResNet-50 in f32 is 98 MB), little enough that a
/// stray multi-gigabyte file is refused before it is read.
pub const MODEL_FILE_LIMIT: u64 = 512 << 20;
/// The most a manifest or a signature file may be.
pub const TEXT_FILE_LIMIT: u64 = 1 << 20;

/// Reads a bundle's file: a regular file (not a symlink) within `limit`,
/// through one descriptor (`crate::safe_read`).
fn read_bundle_file(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, BundleError> {
    use crate::safe_read::{Links, ReadError, read_file};
    read_file(path, limit, Links::Refuse, what).map_err(|e| match e {
        ReadError::NotFound { path } => BundleError::NotFound { path },
        ReadError::Io { path, source } => BundleError::Io { path, source },
        other => BundleError::Unreadable(other),
    })
}

impl BundleError {
    /// A few words for the screen of a run whose model was refused (the
    /// panel has room for about 24 characters on a 320x240 panel).
    pub fn screen_reason(&self) -> &'static str {
        match self {
            BundleError::NotFound { .. } | BundleError::Io { .. } | BundleError::Unreadable(_) => {
                "model refused: unreadable"
            }
            BundleError::Manifest { .. } => "model refused: bad manifest",
            BundleError::HashMismatch { .. } => "model refused: hash mismatch",
            BundleError::Unsigned { .. } => "model refused: not signed",
            BundleError::BadSignature { .. } => "model refused: bad signature",
        }
    }
}

/// Which bundles a board accepts (`[inference]` of the board profile).
#[derive(Clone, Debug, Default)]
pub struct SignaturePolicy {
    /// Refuse bundles without a signature by a trusted key.
    pub required: bool,
    /// Signers whose signatures are accepted.
    pub trusted: Vec<PublicKey>,
}

/// What [`Bundle::check_signature`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureStatus {
    Unsigned,
    /// Signed, but no trusted key was given to check it with.
    NotChecked,
    /// Signed by this trusted key.
    Verified(PublicKey),
}

/// What the model does with its output.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Class logits; softmax gives probabilities per label.
    Classify,
    /// A reconstruction of the input; its error is an anomaly score.
    Reconstruct,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub name: String,
    pub version: String,
    pub task: Task,
    /// Trained on synthetic or unvalidated data: announced on screen.
    pub demonstration: bool,
    #[serde(default)]
    pub description: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    pub shape: Vec<usize>,
    pub dtype: String,
    pub scale: f32,
    pub zero_point: i32,
    pub pixel_scale: f32,
    pub preprocess: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    pub shape: Vec<usize>,
    pub kind: String,
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Classification below this top probability is shown as uncertain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f32>,
    /// Mean absolute reconstruction error (pixel_scale units) above which a frame is anomalous.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly_error: Option<f32>,
}

/// Temperature scaling fitted at training time on held-out images: the
/// logits are divided by `temperature` before the softmax, so the top
/// probability matches how often the model is right on data like its
/// held-out set. It never changes the top class. It cannot make a model
/// honest about pictures unlike its training data (that is the input
/// gate's job): docs/MODELS.md.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    pub temperature: f32,
    /// What it was fitted on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fitted_on: String,
    /// Expected calibration error on held-out images not used for the fit,
    /// before and after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ece_before: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ece_after: Option<f32>,
}

/// The pixel gate: an out-of-distribution score the model computes as a
/// second graph output, and the threshold above which the picture is
/// unlike the model's training images and gets no answer (issue 29;
/// `models/train/gate.py` fits it; docs/MODELS.md).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PixelGate {
    /// The graph output holding the score (one value).
    pub output: String,
    /// Scores above this are refused.
    pub threshold: f32,
    /// What the score measures.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub features: String,
    /// What it was fitted on and how the threshold was set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fitted_on: String,
    /// The largest score on the held-out images the threshold was set on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_out_max: Option<f32>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub int8: FileEntry,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f32: Option<FileEntry>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub trained_on: String,
    #[serde(default)]
    pub evaluation: String,
    #[serde(default)]
    pub ops: Vec<String>,
    pub licence: String,
    /// What made the bundle (a training script, `bedside model import`
    /// with the source file's name and sha256).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub made_by: String,
}

/// `manifest.toml`, validated.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub model: ModelSection,
    pub input: InputSection,
    pub output: OutputSection,
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<PixelGate>,
    pub files: Files,
    pub provenance: Provenance,
}

impl Manifest {
    /// Parses and checks a manifest; `path` is for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, BundleError> {
        let bad = |reason: String| BundleError::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let m: Manifest = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if m.input.dtype != "i8" {
            return Err(bad(format!(
                "input dtype '{}' is not supported (expected i8)",
                m.input.dtype
            )));
        }
        if m.input.shape.len() != 4 || m.input.shape[0] != 1 || m.input.shape[1] != 1 {
            return Err(bad(format!(
                "input shape {:?} is not [1, 1, H, W]",
                m.input.shape
            )));
        }
        if m.input.shape.iter().any(|&d| d == 0 || d > 4096) {
            return Err(bad(format!(
                "input shape {:?} has a side outside 1..=4096",
                m.input.shape
            )));
        }
        if !(m.input.scale.is_finite()
            && m.input.scale > 0.0
            && m.input.pixel_scale.is_finite()
            && m.input.pixel_scale > 0.0)
        {
            return Err(bad("input scale and pixel_scale must be positive".into()));
        }
        if !(-128..=127).contains(&m.input.zero_point) {
            return Err(bad(format!(
                "input zero_point {} is outside int8",
                m.input.zero_point
            )));
        }
        let chain: Chain = m
            .input
            .preprocess
            .parse()
            .map_err(|e| bad(format!("preprocess: {e}")))?;
        if !chain.quantizes() {
            return Err(bad("preprocess chain must end in 'quantize'".into()));
        }
        let (h, w) = (m.input.shape[2] as u32, m.input.shape[3] as u32);
        // The chain must end at the model's size whatever the frame size.
        if chain.output_size(w + 1, h + 1) != (w, h) {
            return Err(bad(format!(
                "preprocess chain does not produce the model's {w}x{h} input"
            )));
        }
        let outputs: usize = m.output.shape.iter().product();
        match m.model.task {
            Task::Classify if outputs > crate::analyze::classify::MAX_CLASSES => {
                return Err(bad(format!(
                    "{outputs} classes: bedside takes at most {}",
                    crate::analyze::classify::MAX_CLASSES
                )));
            }
            Task::Classify if m.output.labels.len() != outputs || outputs < 2 => {
                return Err(bad(format!(
                    "{} labels for {outputs} outputs",
                    m.output.labels.len()
                )));
            }
            Task::Reconstruct if outputs != (w * h) as usize => {
                return Err(bad(format!(
                    "reconstruction output {outputs} does not match input {w}x{h}"
                )));
            }
            Task::Reconstruct if m.thresholds.anomaly_error.is_none() => {
                return Err(bad(
                    "reconstruct models need thresholds.anomaly_error".into()
                ));
            }
            _ => {}
        }
        if let Some(c) = &m.calibration {
            if m.model.task != Task::Classify {
                return Err(bad("calibration is for classify models only".into()));
            }
            if !(c.temperature.is_finite() && (0.01..=100.0).contains(&c.temperature)) {
                return Err(bad(format!(
                    "calibration temperature {} is outside 0.01..=100",
                    c.temperature
                )));
            }
        }
        if let Some(g) = &m.gate {
            if m.model.task != Task::Classify {
                return Err(bad("gate is for classify models only".into()));
            }
            if g.output.is_empty() {
                return Err(bad("gate output is empty (name the graph output)".into()));
            }
            if !(g.threshold.is_finite() && g.threshold > 0.0) {
                return Err(bad(format!(
                    "gate threshold {} is not a positive number",
                    g.threshold
                )));
            }
        }
        for f in std::iter::once(&m.files.int8).chain(m.files.f32.as_ref()) {
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!("sha256 of {} is not 64 hex digits", f.path)));
            }
            if f.path.contains('/') || f.path.contains('\\') || f.path.starts_with('.') {
                return Err(bad(format!(
                    "file {} must be a plain name inside the bundle",
                    f.path
                )));
            }
        }
        Ok(m)
    }

    /// The temperature the logits are divided by (1 without calibration).
    pub fn temperature(&self) -> f32 {
        self.calibration.as_ref().map_or(1.0, |c| c.temperature)
    }

    pub fn chain(&self) -> Chain {
        // Validated in `parse`.
        self.input
            .preprocess
            .parse()
            .unwrap_or_else(|_| Chain { steps: Vec::new() })
    }

    pub fn input_quant(&self) -> InputQuant {
        InputQuant {
            scale: self.input.scale,
            zero_point: self.input.zero_point,
            pixel_scale: self.input.pixel_scale,
        }
    }

    /// (width, height) of the model input.
    pub fn input_size(&self) -> (u32, u32) {
        (self.input.shape[3] as u32, self.input.shape[2] as u32)
    }
}

/// A verified bundle: manifest plus the int8 model bytes (and the f32
/// model's, when the bundle is a folder that has one).
#[derive(Clone, Debug)]
pub struct Bundle {
    /// Where it came from (folder, or `embedded:NAME`).
    pub origin: PathBuf,
    pub manifest: Manifest,
    /// The exact bytes of `manifest.toml` (what a signature covers).
    pub manifest_bytes: Vec<u8>,
    /// `manifest.sig`, when the bundle has one.
    pub signature: Option<[u8; 64]>,
    pub model_bytes: Vec<u8>,
    /// The f32 model, hash-checked like the int8 one.
    pub f32_bytes: Option<Vec<u8>>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    signature::hex(&Sha256::digest(bytes))
}

/// The model file's sha256 must be the manifest's.
fn check_hash(bytes: &[u8], expected: &str, path: &Path) -> Result<(), BundleError> {
    let actual = sha256_hex(bytes);
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(BundleError::HashMismatch {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        })
    }
}

impl Bundle {
    /// Loads `dir/manifest.toml` and the int8 model, checking its hash.
    ///
    /// Every file is read once through a descriptor opened without
    /// following a symlink and checked with `fstat` (a regular file within
    /// [`MODEL_FILE_LIMIT`] or [`TEXT_FILE_LIMIT`]); the bundle's folder
    /// itself may be reached through a symlink (`models/current` -> `v2`).
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let read = |p: &Path| read_bundle_file(p, MODEL_FILE_LIMIT, "a model file");
        if !dir.exists() {
            return Err(BundleError::NotFound {
                path: dir.to_path_buf(),
            });
        }
        let manifest_path = dir.join("manifest.toml");
        let manifest_bytes = read_bundle_file(&manifest_path, TEXT_FILE_LIMIT, "a manifest")?;
        let text = std::str::from_utf8(&manifest_bytes).map_err(|_| BundleError::Manifest {
            path: manifest_path.clone(),
            reason: "not UTF-8 text".into(),
        })?;
        let manifest = Manifest::parse(&manifest_path, text)?;
        let sig_path = dir.join(SIGNATURE_FILE);
        let signature = match read_bundle_file(&sig_path, TEXT_FILE_LIMIT, "a signature") {
            Ok(bytes) => {
                let bad = || BundleError::BadSignature {
                    path: sig_path.clone(),
                    reason: "not 128 hex digits".into(),
                };
                let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
                Some(signature::parse_signature("", text).map_err(|_| bad())?)
            }
            Err(BundleError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let model_path = dir.join(&manifest.files.int8.path);
        let bytes = read(&model_path)?;
        let f32_bytes = match &manifest.files.f32 {
            Some(f) => {
                let path = dir.join(&f.path);
                let bytes = read(&path)?;
                check_hash(&bytes, &f.sha256, &path)?;
                Some(bytes)
            }
            None => None,
        };
        let mut b = Bundle::verified(dir.to_path_buf(), manifest, bytes, &model_path)?;
        b.f32_bytes = f32_bytes;
        b.manifest_bytes = manifest_bytes;
        b.signature = signature;
        Ok(b)
    }

    /// A bundle compiled into the binary (the demo's).
    pub fn from_parts(
        name: &str,
        manifest_text: &str,
        model_bytes: &[u8],
    ) -> Result<Bundle, BundleError> {
        let origin = PathBuf::from(format!("embedded:{name}"));
        let manifest = Manifest::parse(&origin.join("manifest.toml"), manifest_text)?;
        let model_path = origin.join(&manifest.files.int8.path);
        let mut b = Bundle::verified(origin, manifest, model_bytes.to_vec(), &model_path)?;
        b.manifest_bytes = manifest_text.as_bytes().to_vec();
        Ok(b)
    }

    fn verified(
        origin: PathBuf,
        manifest: Manifest,
        bytes: Vec<u8>,
        path: &Path,
    ) -> Result<Bundle, BundleError> {
        check_hash(&bytes, &manifest.files.int8.sha256, path)?;
        Ok(Bundle {
            origin,
            manifest,
            manifest_bytes: Vec::new(),
            signature: None,
            model_bytes: bytes,
            f32_bytes: None,
        })
    }

    /// Applies a board's signature policy: a present signature must verify
    /// with one of the trusted keys; a required one must be present.
    pub fn check_signature(
        &self,
        policy: &SignaturePolicy,
    ) -> Result<SignatureStatus, BundleError> {
        let sig_path = self.origin.join(SIGNATURE_FILE);
        match (&self.signature, policy.trusted.is_empty()) {
            (None, _) if policy.required => Err(BundleError::Unsigned {
                path: self.origin.clone(),
            }),
            (None, _) => Ok(SignatureStatus::Unsigned),
            (Some(_), true) if policy.required => Err(BundleError::BadSignature {
                path: sig_path,
                reason: "signatures are required but no trusted key is configured".into(),
            }),
            (Some(_), true) => Ok(SignatureStatus::NotChecked),
            (Some(sig), false) => policy
                .trusted
                .iter()
                .find(|k| k.verifies(&self.manifest_bytes, sig))
                .map(|k| SignatureStatus::Verified(k.clone()))
                .ok_or_else(|| BundleError::BadSignature {
                    path: sig_path,
                    reason: format!(
                        "does not verify with {} of the manifest (altered manifest or untrusted signer)",
                        match policy.trusted.len() {
                            1 => "the trusted key".to_string(),
                            n => format!("any of the {n} trusted keys"),
                        }
                    ),
                }),
        }
    }

    /// First 8 hex digits of the model's sha256, for the screen.
    pub fn short_hash(&self) -> &str {
        &self.manifest.files.int8.sha256[..8]
    }

    /// The sha256 of the file that runs at `precision` (the int8 file's when
    /// the bundle has no float one, as the loader would refuse it anyway).
    pub fn sha256_of(&self, precision: super::Precision) -> &str {
        match (precision, &self.manifest.files.f32) {
            (super::Precision::F32, Some(f)) => &f.sha256,
            _ => &self.manifest.files.int8.sha256,
        }
    }
}
