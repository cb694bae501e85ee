//! tract-onnx behind [`Model`]: parse the verified bytes, fix the input fact to
//! the manifest's int8 shape, optimize once, keep one state for every run.

use std::sync::Arc;

use tract_onnx::prelude::*;

use super::{Bundle, InferError, Model};

/// Which of the bundle's models runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// `model.onnx`: QOperator int8, fed the preprocessor's int8 directly.
    Int8,
    /// `model_f32.onnx`: the float graph, fed the same int8 input
    /// dequantized with the manifest's scale and zero point.
    F32,
}

pub struct TractModel {
    name: String,
    plan: Arc<TypedRunnableModel>,
    shape: Vec<usize>,
    precision: Precision,
    /// (scale, zero point) of the int8 input, for the f32 variant.
    dequant: (f32, i32),
    output: Vec<f32>,
}

/// tract errors chain with anyhow; one line for logs and screens.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

impl TractModel {
    /// Builds the optimized plan of the int8 model from a verified bundle.
    pub fn load(bundle: &Bundle) -> Result<TractModel, InferError> {
        TractModel::load_precision(bundle, Precision::Int8)
    }

    /// Builds the optimized plan of the chosen model of a verified bundle.
    pub fn load_precision(bundle: &Bundle, precision: Precision) -> Result<TractModel, InferError> {
        let name = bundle.origin.display().to_string();
        let load = |reason: String| InferError::Load {
            bundle: name.clone(),
            reason,
        };
        let shape = bundle.manifest.input.shape.clone();
        let (bytes, dt) = match precision {
            Precision::Int8 => (&bundle.model_bytes, i8::datum_type()),
            Precision::F32 => (
                bundle
                    .f32_bytes
                    .as_ref()
                    .ok_or_else(|| load("the bundle has no f32 model".into()))?,
                f32::datum_type(),
            ),
        };
        let plan = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(|e| load(format!("not a valid ONNX model: {}", one_line(&e))))?
            .with_input_fact(0, InferenceFact::dt_shape(dt, shape.clone()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| load(one_line(&e)))?;
        let q = &bundle.manifest.input;
        Ok(TractModel {
            name,
            plan,
            shape,
            precision,
            dequant: (q.scale, q.zero_point),
            output: Vec::new(),
        })
    }
}

impl TractModel {
    /// Names of the matrix-multiply kernels tract picked for this plan (for
    /// example `arm64simd_mmm_i32_8x8` with SMLAL, `arm64simd_mmm_i32_8x8_dot`
    /// with SDOT), read from the optimized model's node descriptions, sorted
    /// and deduplicated.
    pub fn matmul_kernels(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .plan
            .model()
            .nodes()
            .iter()
            .filter_map(|n| n.op.info().ok())
            .flatten()
            .flat_map(|line| {
                line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.contains("mmm_"))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        names.sort();
        names.dedup();
        names
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
        let tensor = match self.precision {
            Precision::Int8 => Tensor::from_shape(&self.shape, input),
            Precision::F32 => {
                let (scale, zp) = self.dequant;
                let x: Vec<f32> = input
                    .iter()
                    .map(|&q| (i32::from(q) - zp) as f32 * scale)
                    .collect();
                Tensor::from_shape(&self.shape, &x)
            }
        }
        .map_err(err)?;
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
