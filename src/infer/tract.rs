//! tract-onnx behind [`Model`]: parse the verified bytes, fix the input fact to
//! the manifest's int8 shape, optimize once, keep one state for every run.

use std::sync::Arc;

use tract_onnx::prelude::*;

use super::{Bundle, InferError, Model};

pub struct TractModel {
    name: String,
    plan: Arc<TypedRunnableModel>,
    shape: Vec<usize>,
    output: Vec<f32>,
}

/// tract errors chain with anyhow; one line for logs and screens.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

impl TractModel {
    /// Builds the optimized plan from a verified bundle.
    pub fn load(bundle: &Bundle) -> Result<TractModel, InferError> {
        let name = bundle.origin.display().to_string();
        let load = |reason: String| InferError::Load {
            bundle: name.clone(),
            reason,
        };
        let shape = bundle.manifest.input.shape.clone();
        let plan = tract_onnx::onnx()
            .model_for_read(&mut bundle.model_bytes.as_slice())
            .map_err(|e| load(format!("not a valid ONNX model: {}", one_line(&e))))?
            .with_input_fact(0, InferenceFact::dt_shape(i8::datum_type(), shape.clone()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| load(one_line(&e)))?;
        Ok(TractModel {
            name,
            plan,
            shape,
            output: Vec::new(),
        })
    }
}

impl Model for TractModel {
    fn run(&mut self, input: &[i8]) -> Result<&[f32], InferError> {
        let expected: usize = self.shape.iter().product();
        if input.len() != expected {
            return Err(InferError::InputSize {
                bundle: self.name.clone(),
                expected,
                actual: input.len(),
            });
        }
        let err = |e: anyhow::Error| InferError::Run {
            bundle: self.name.clone(),
            reason: one_line(&e),
        };
        let tensor = Tensor::from_shape(&self.shape, input).map_err(err)?;
        let out = self.plan.run(tvec![tensor.into()]).map_err(err)?;
        let first = out
            .first()
            .ok_or_else(|| err(anyhow::anyhow!("model produced no output")))?;
        let as_f32 = first.cast_to::<f32>().map_err(err)?;
        let values = as_f32
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .map_err(err)?;
        self.output = values;
        Ok(&self.output)
    }
}
