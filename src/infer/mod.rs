//! Inference: verified model bundles run by tract.
//!
//! [`bundle`] reads a bundle and checks its hashes and, by the board's
//! policy, its [`signature`]; [`graph`] reads what an ONNX graph is before
//! tract builds it; [`tract`] checks those facts against the manifest and
//! runs the model. The pipeline talks to the [`Model`] trait only, so no
//! tract type leaks out.
//!
//! To add another engine: implement [`Model`] and construct it where
//! `tract::select` is called (`pipeline.rs`, `main.rs`); bundles and their
//! checks stay as they are.

pub mod bundle;
pub mod depthwise;
pub mod faults;
pub mod graph;
pub mod import;
pub mod normalize;
pub mod qdq;
pub mod reference;
pub mod signature;
pub mod tract;

pub use bundle::{
    Bundle, BundleError, Manifest, PixelGate, SignaturePolicy, SignatureStatus, Task,
};
pub use signature::{KeyError, PublicKey, SecretKey};
pub use tract::{InferOptions, NodeTime, Precision, PrecisionPolicy, Selection, TractModel};

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("{model}: not an ONNX model: {reason}")]
    NotOnnx { model: String, reason: String },
    #[error("{model}: uses operators tract cannot run: {}", ops.join(", "))]
    UnsupportedOps { model: String, ops: Vec<String> },
    #[error("{model}: does not match its manifest: {what}")]
    ManifestMismatch { model: String, what: String },
    #[error("{bundle}: has no {precision} model")]
    NoVariant {
        bundle: String,
        precision: &'static str,
    },
    #[error("{model}: cannot load model: {reason}")]
    Load { model: String, reason: String },
    #[error("threads: {reason}")]
    Threads { reason: String },
    #[error("{model}: input has {actual} values, the model takes {expected}")]
    InputSize {
        model: String,
        expected: usize,
        actual: usize,
    },
    #[error("{model}: inference failed: {reason}")]
    Run { model: String, reason: String },
}

/// A loaded model: int8 input in, float outputs out.
pub trait Model: Send {
    /// Runs one input; the returned slice is valid until the next call.
    fn run(&mut self, input: &[i8]) -> Result<&[f32], InferError>;

    /// Runs one input and also returns the bundle's pixel gate score (an
    /// out-of-distribution score the graph computes beside its answer;
    /// `None` when the bundle has no gate). Models without one need not
    /// implement it.
    fn run_gated(&mut self, input: &[i8]) -> Result<(&[f32], Option<f32>), InferError> {
        self.run(input).map(|out| (out, None))
    }
}
