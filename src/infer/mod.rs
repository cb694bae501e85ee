//! Inference: verified model bundles run by tract.
//!
//! [`bundle`] reads and checks a bundle; [`tract`] runs its int8 ONNX model.
//! The pipeline talks to the [`Model`] trait only, so no tract type leaks out.

pub mod bundle;
pub mod tract;

pub use bundle::{Bundle, BundleError, Manifest, Task};
pub use tract::{Precision, TractModel};

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("{bundle}: cannot load model: {reason}")]
    Load { bundle: String, reason: String },
    #[error("{bundle}: input has {actual} values, the model takes {expected}")]
    InputSize {
        bundle: String,
        expected: usize,
        actual: usize,
    },
    #[error("{bundle}: inference failed: {reason}")]
    Run { bundle: String, reason: String },
}

/// A loaded model: int8 input in, float outputs out.
pub trait Model: Send {
    /// Runs one input; the returned slice is valid until the next call.
    fn run(&mut self, input: &[i8]) -> Result<&[f32], InferError>;
}
