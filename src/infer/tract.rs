//! tract-onnx behind [`Model`].
//!
//! Loading, once at start-up: decode the verified bytes, read the graph's
//! facts ([`GraphFacts`]) and refuse it, naming the reason, when tract lacks
//! an operator or the graph does not take what the manifest promises (input
//! type, shape, int8 quantization; output size; the declared op set); then
//! fix the input fact, optimize, make the plan and spawn its one state.
//! Running: the int8 input is copied into a tensor allocated at load and the
//! outputs into a buffer allocated at load; tract's own intermediates are
//! its business.
//!
//! [`select`] implements `precision = auto`: it times the bundle's int8 and
//! f32 plans on this CPU and keeps the faster.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;

use super::graph::{GraphFacts, ONNX_FLOAT, ONNX_INT8};
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

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::F32 => "f32",
        }
    }
}

/// The board's choice: a fixed precision, or the faster one measured here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionPolicy {
    #[default]
    Auto,
    Int8,
    F32,
}

/// How models are loaded and run (board profile `[inference]`, `--precision`,
/// `--threads`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InferOptions {
    pub precision: PrecisionPolicy,
    /// Threads for tract's matrix products; 1 runs everything on the calling thread.
    pub threads: usize,
}

impl Default for InferOptions {
    fn default() -> Self {
        InferOptions {
            precision: PrecisionPolicy::Auto,
            threads: 1,
        }
    }
}

/// Most threads a board may ask for (the boards have 4-8 cores).
pub const MAX_THREADS: usize = 64;

pub struct TractModel {
    name: String,
    state: TypedSimpleState,
    shape: Vec<usize>,
    precision: Precision,
    threads: usize,
    /// (scale, zero point) of the int8 input, for the f32 variant.
    dequant: (f32, i32),
    /// Allocated at load; refilled in place while tract holds no reference.
    input: Arc<Tensor>,
    output: Vec<f32>,
    /// Which output is the bundle's pixel gate score (manifest `[gate]`).
    gate_output: Option<usize>,
}

/// tract errors chain with anyhow; one line for logs and screens.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn same_scale(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

impl TractModel {
    /// The int8 model of a verified bundle, one thread.
    pub fn load(bundle: &Bundle) -> Result<TractModel, InferError> {
        TractModel::load_precision(bundle, Precision::Int8)
    }

    /// The chosen model of a verified bundle, one thread.
    pub fn load_precision(bundle: &Bundle, precision: Precision) -> Result<TractModel, InferError> {
        TractModel::load_with(bundle, precision, 1)
    }

    /// The chosen model of a verified bundle with `threads` threads for
    /// matrix products.
    pub fn load_with(
        bundle: &Bundle,
        precision: Precision,
        threads: usize,
    ) -> Result<TractModel, InferError> {
        let m = &bundle.manifest;
        let (file, bytes) = match precision {
            Precision::Int8 => (&m.files.int8.path, &bundle.model_bytes),
            Precision::F32 => match (&m.files.f32, &bundle.f32_bytes) {
                (Some(f), Some(bytes)) => (&f.path, bytes),
                _ => {
                    return Err(InferError::NoVariant {
                        bundle: bundle.origin.display().to_string(),
                        precision: "f32",
                    });
                }
            },
        };
        let name = bundle.origin.join(file).display().to_string();
        let mismatch = |what: String| InferError::ManifestMismatch {
            model: name.clone(),
            what,
        };
        let load = |reason: String| InferError::Load {
            model: name.clone(),
            reason,
        };
        if !(1..=MAX_THREADS).contains(&threads) {
            return Err(InferError::Threads {
                reason: format!("{threads} threads asked for; give 1 to {MAX_THREADS}"),
            });
        }
        avoid_broken_kernels();
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(|e| InferError::NotOnnx {
                model: name.clone(),
                reason: one_line(&e),
            })?;
        let facts = GraphFacts::read(&proto).map_err(|r| InferError::NotOnnx {
            model: name.clone(),
            reason: r,
        })?;
        let lacking = facts.unsupported(|op| onnx.op_register.0.contains_key(op));
        if !lacking.is_empty() {
            return Err(InferError::UnsupportedOps {
                model: name.clone(),
                ops: lacking,
            });
        }
        let shape = m.input.shape.clone();
        let (want_type, dt) = match precision {
            Precision::Int8 => (ONNX_INT8, i8::datum_type()),
            Precision::F32 => (ONNX_FLOAT, f32::datum_type()),
        };
        let input = &facts.input;
        if input.elem_type != want_type {
            return Err(mismatch(format!(
                "its input '{}' is {}, the {} variant must take {}",
                input.name,
                input.type_name(),
                precision.name(),
                if want_type == ONNX_INT8 { "i8" } else { "f32" }
            )));
        }
        if !input.fits(&shape) {
            return Err(mismatch(format!(
                "its input '{}' has shape {}, the manifest says {:?}",
                input.name,
                input.shape_text(),
                shape
            )));
        }
        if precision == Precision::Int8 {
            let (scale, zp) = facts.input_quant.ok_or_else(|| {
                mismatch(format!(
                    "no quantized operator reads its int8 input '{}', so its scale and zero point are unknown",
                    input.name
                ))
            })?;
            if !same_scale(scale, m.input.scale) || zp != m.input.zero_point {
                return Err(mismatch(format!(
                    "its input is quantized with scale {scale} zero point {zp}, the manifest says scale {} zero point {}",
                    m.input.scale, m.input.zero_point
                )));
            }
            let declared = &m.provenance.ops;
            if !declared.is_empty() {
                let mut declared = declared.clone();
                declared.sort();
                if declared != facts.op_names() {
                    return Err(mismatch(format!(
                        "its operators are {:?}, the manifest declares {:?}",
                        facts.op_names(),
                        declared
                    )));
                }
            }
        }
        // The pixel gate's score: a named output other than the first, one value.
        let gate_output = match &m.gate {
            None => None,
            Some(g) => match facts.outputs.iter().position(|o| o.name == g.output) {
                Some(0) => {
                    return Err(mismatch(format!(
                        "the gate's output '{}' is the model's first output; the answer must come first",
                        g.output
                    )));
                }
                Some(i) => Some(i),
                None => {
                    return Err(mismatch(format!(
                        "the manifest's [gate] reads output '{}', the graph has no such output",
                        g.output
                    )));
                }
            },
        };
        let executor = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("bedside-mm-{i}"))
                    .build()
                    .map(|pool| Executor::MultiThread(Arc::new(pool)))
                    .map_err(|e| InferError::Threads {
                        reason: e.to_string(),
                    })
            })
            .transpose()?;
        // tract is a compiler with asserts inside; a hostile graph that got
        // past the checks above must not take the process down with it.
        let mut proto = proto;
        let built = catch_unwind(AssertUnwindSafe(|| -> TractResult<_> {
            if precision == Precision::Int8 && super::qdq::enabled() {
                let folded = super::qdq::fold(&mut proto);
                if folded.any() {
                    tracing::info!(
                        "{name}: QDQ onto int8 operators: {} convolutions, {} matrix products ({} activations folded)",
                        folded.conv,
                        folded.matmul,
                        folded.activations
                    );
                }
            }
            let mut typed = onnx
                .model_for_proto_model(&proto)?
                .with_input_fact(0, InferenceFact::dt_shape(dt, shape.clone()))?
                .into_typed()?
                .into_decluttered()?;
            if precision == Precision::Int8 && super::depthwise::enabled() {
                super::depthwise::rewrite(&mut typed)?;
            }
            let typed = typed.into_optimized()?;
            let out_fact = typed.output_fact(0)?.clone();
            let gate_fact = gate_output
                .map(|i| typed.output_fact(i).cloned())
                .transpose()?;
            let options = RunOptions {
                executor: executor.clone(),
                ..RunOptions::default()
            };
            let plan = typed.into_runnable_with_options(&options)?;
            let state = plan.spawn()?;
            Ok((out_fact, gate_fact, state))
        }));
        let (out_fact, gate_fact, state) = match built {
            Ok(r) => r.map_err(|e| load(one_line(&e)))?,
            Err(_) => return Err(load("tract failed on this graph (internal panic)".into())),
        };
        let outputs: usize = m.output.shape.iter().product();
        match out_fact.shape.as_concrete() {
            Some(dims) if dims.iter().product::<usize>() == outputs => {}
            Some(dims) => {
                return Err(mismatch(format!(
                    "it outputs shape {dims:?}, the manifest says {:?}",
                    m.output.shape
                )));
            }
            None => {
                return Err(mismatch(format!(
                    "its output shape is not fixed, the manifest says {:?}",
                    m.output.shape
                )));
            }
        }
        if let Some(fact) = gate_fact
            && fact
                .shape
                .as_concrete()
                .map(|d| d.iter().product::<usize>())
                != Some(1)
        {
            return Err(mismatch(format!(
                "the gate's output has shape {:?}, it must be one value",
                fact.shape
            )));
        }
        let input = Tensor::zero_dt(dt, &shape).map_err(|e| load(one_line(&e)))?;
        Ok(TractModel {
            name,
            state,
            shape,
            precision,
            threads,
            dequant: (m.input.scale, m.input.zero_point),
            input: Arc::new(input),
            output: Vec::with_capacity(outputs),
            gate_output,
        })
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Names of the matrix-multiply kernels tract picked for this plan (for
    /// example `arm64simd_mmm_i32_8x8` with SMLAL, `arm64simd_mmm_i32_8x8_dot`
    /// with SDOT), read from the optimized model's node descriptions, sorted
    /// and deduplicated.
    pub fn matmul_kernels(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .state
            .plan()
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

    /// Mean time per node over `runs` runs of `input`, slowest first: tract's
    /// per-node profile of the optimized plan, for finding where the time goes.
    pub fn profile(&mut self, input: &[i8], runs: usize) -> Result<Vec<NodeTime>, InferError> {
        let n_nodes = self.state.plan().model().nodes().len();
        let mut totals = vec![Duration::ZERO; n_nodes];
        let runs = runs.max(1);
        // One warm-up run, untimed.
        self.run(input)?;
        for _ in 0..runs {
            let mut started = (0, Instant::now());
            self.run_observed(input, |event| match event {
                Some(node) => started = (node, Instant::now()),
                None => totals[started.0] += started.1.elapsed(),
            })?;
        }
        let model = self.state.plan().model();
        let mut out: Vec<NodeTime> = model
            .nodes()
            .iter()
            .map(|n| NodeTime {
                node: n.name.clone(),
                op: n.op.name().to_string(),
                kernels: kernels_of(n),
                mean: totals[n.id] / runs as u32,
            })
            .filter(|n| n.mean > Duration::ZERO)
            .collect();
        out.sort_by_key(|n| std::cmp::Reverse(n.mean));
        Ok(out)
    }

    /// Runs `input` once, calling `around` with `Some(node id)` just before
    /// each node of the plan is evaluated and `None` just after: for tools
    /// and tests that put something (time, allocations) down to operators.
    /// The outputs are discarded; [`TractModel::node_ops`] names the ids.
    pub fn run_observed(
        &mut self,
        input: &[i8],
        mut around: impl FnMut(Option<usize>),
    ) -> Result<(), InferError> {
        let name = &self.name;
        let err = |e: anyhow::Error| InferError::Run {
            model: name.clone(),
            reason: one_line(&e),
        };
        self.check_input(input)?;
        fill_input(&mut self.input, self.precision, self.dequant, input).map_err(err)?;
        let value = TValue::from_const(self.input.clone());
        self.state
            .run_plan_with_eval(tvec![value], |ctx, op_state, node, inputs| {
                around(Some(node.id));
                let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                around(None);
                r
            })
            .map_err(err)?;
        Ok(())
    }

    /// Each node of the optimized plan: tract's operator name and whether
    /// it computes in integers (its output is i8, u8 or i32) rather than
    /// floats, so `model info` can say what runs on int8 kernels and what
    /// falls back to float. Constants and the input are left out.
    pub fn node_kinds(&self) -> Vec<(String, bool)> {
        let model = self.state.plan().model();
        model
            .nodes()
            .iter()
            .filter(|n| !matches!(n.op.name().as_ref(), "Const" | "Source"))
            .map(|n| {
                let integer = n.outputs.first().is_some_and(|o| {
                    matches!(
                        o.fact.datum_type.unquantized(),
                        DatumType::I8 | DatumType::U8 | DatumType::I32
                    )
                });
                (n.op.name().to_string(), integer)
            })
            .collect()
    }

    /// Refuses an input of the wrong size before tract sees it.
    fn check_input(&self, input: &[i8]) -> Result<(), InferError> {
        let expected: usize = self.shape.iter().product();
        if input.len() == expected {
            return Ok(());
        }
        Err(InferError::InputSize {
            model: self.name.clone(),
            expected,
            actual: input.len(),
        })
    }

    /// tract's operator name for each node id of the optimized plan (the
    /// ids [`TractModel::run_observed`] reports).
    pub fn node_ops(&self) -> Vec<String> {
        let model = self.state.plan().model();
        model
            .nodes()
            .iter()
            .map(|n| n.op.name().to_string())
            .collect()
    }
}

/// Multiply-accumulates of one inference of the bundle's float model, from
/// tract's cost model of its decluttered graph; `None` without a float
/// model or when tract cannot say.
pub fn macs(bundle: &Bundle) -> Option<u64> {
    let bytes = bundle.f32_bytes.as_ref()?;
    let shape = bundle.manifest.input.shape.clone();
    let count = || -> TractResult<u64> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())?
            .with_input_fact(0, f32::fact(&shape).into())?
            .into_typed()?
            .into_decluttered()?;
        let mut macs = 0u64;
        for node in model.nodes() {
            let inputs = model.node_input_facts(node.id)?;
            for (cost, n) in node.op.cost(&inputs)? {
                if matches!(cost, tract_onnx::tract_core::ops::Cost::FMA(_)) {
                    macs += n.to_i64()? as u64;
                }
            }
        }
        Ok(macs)
    };
    catch_unwind(AssertUnwindSafe(count)).ok()?.ok()
}

/// Writes `input` into the tensor allocated at load.
fn fill_input(
    tensor: &mut Arc<Tensor>,
    precision: Precision,
    (scale, zp): (f32, i32),
    input: &[i8],
) -> TractResult<()> {
    // Copies only if tract still held the tensor, which it does not
    // between runs: then the buffer is reused as is.
    let mut view = Arc::make_mut(tensor).try_as_plain_ram_mut()?;
    match precision {
        Precision::Int8 => view.as_slice_mut::<i8>()?.copy_from_slice(input),
        Precision::F32 => {
            for (x, &q) in view.as_slice_mut::<f32>()?.iter_mut().zip(input) {
                *x = (i32::from(q) - zp) as f32 * scale;
            }
        }
    }
    Ok(())
}

impl Model for TractModel {
    fn run(&mut self, input: &[i8]) -> Result<&[f32], InferError> {
        self.run_gated(input).map(|(out, _)| out)
    }

    fn run_gated(&mut self, input: &[i8]) -> Result<(&[f32], Option<f32>), InferError> {
        self.check_input(input)?;
        // Errors are built from a borrowed name: nothing allocated per frame
        // unless something fails.
        let err = |name: &str, e: anyhow::Error| InferError::Run {
            model: name.to_string(),
            reason: one_line(&e),
        };
        fill_input(&mut self.input, self.precision, self.dequant, input)
            .map_err(|e| err(&self.name, e))?;
        let out = self
            .state
            .run(tvec![TValue::from_const(self.input.clone())])
            .map_err(|e| err(&self.name, e))?;
        let first = out
            .first()
            .ok_or_else(|| err(&self.name, anyhow::anyhow!("model produced no output")))?;
        first
            .cast_to::<f32>()
            .and_then(|v| {
                let view = v.try_as_plain_ram()?;
                self.output.clear();
                self.output.extend_from_slice(view.as_slice::<f32>()?);
                Ok(())
            })
            .map_err(|e| err(&self.name, e))?;
        let gate = match self.gate_output {
            None => None,
            Some(i) => {
                let score = out
                    .get(i)
                    .ok_or_else(|| anyhow::anyhow!("the gate's output is missing"))
                    .and_then(|t| {
                        Ok(*t
                            .to_plain_array_view::<f32>()?
                            .iter()
                            .next()
                            .ok_or_else(|| anyhow::anyhow!("the gate's output is empty"))?)
                    })
                    .map_err(|e| err(&self.name, e))?;
                Some(score)
            }
        };
        Ok((&self.output, gate))
    }
}

/// One node's share of a run ([`TractModel::profile`]).
#[derive(Clone, Debug)]
pub struct NodeTime {
    pub node: String,
    /// tract's operator name (e.g. `Conv`, `OptMatMul`, `Pad`).
    pub op: String,
    /// The compute kernels the node ran: tract-linalg's matrix-multiply
    /// kernel names for an `OptMatMul` (e.g. `arm64simd_mmm_i32_8x8`),
    /// bedside's depthwise row kernel; empty for other operators.
    pub kernels: Vec<String>,
    pub mean: Duration,
}

impl NodeTime {
    /// What kind of work the node is, for the profile's summary: packing
    /// (tract's `OptMatMulPack` and the like), im2col (`Im2col`,
    /// `LazyIm2col`), or `None` for everything else.
    pub fn overhead(&self) -> Option<&'static str> {
        if self.op.contains("Pack") {
            Some("packing")
        } else if self.op.contains("Im2col") {
            Some("im2col")
        } else {
            None
        }
    }
}

/// The kernels a node of the optimized plan runs (see [`NodeTime::kernels`]).
fn kernels_of(n: &TypedNode) -> Vec<String> {
    use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
    if let Some(mm) = n.op_as::<OptMatMul>() {
        let mut names: Vec<String> = mm.mmm.iter().map(|k| k.name().to_string()).collect();
        names.dedup();
        names
    } else if n.op_as::<super::depthwise::QuantDepthwise>().is_some() {
        vec![format!(
            "bedside_dw_row_{}",
            super::depthwise::kernels().name
        )]
    } else {
        Vec::new()
    }
}

/// What `precision = auto` measured and chose.
#[derive(Clone, Debug)]
pub struct Selection {
    pub chosen: Precision,
    /// Median run time of each variant timed (empty when nothing was timed).
    pub timings: Vec<(Precision, Duration)>,
    pub reason: String,
}

impl Selection {
    /// "int8 (auto: int8 3.1 ms, f32 4.2 ms)" and the like.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.chosen.name(), self.reason)
    }
}

/// Timed runs per variant for `auto`, after one warm-up run.
pub const AUTO_RUNS: usize = 5;

fn median_run(model: &mut TractModel, input: &[i8]) -> Result<Duration, InferError> {
    model.run(input)?;
    let mut times = Vec::with_capacity(AUTO_RUNS);
    for _ in 0..AUTO_RUNS {
        let t = Instant::now();
        model.run(input)?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[AUTO_RUNS / 2])
}

/// Loads the model the options ask for; with `auto`, times the int8 and f32
/// variants on this CPU (a mid-gray input; the models' cost does not depend
/// on the pixels) and keeps the faster.
pub fn select(bundle: &Bundle, opts: &InferOptions) -> Result<(TractModel, Selection), InferError> {
    let fixed = |p: Precision, reason: &str| -> Result<(TractModel, Selection), InferError> {
        let m = TractModel::load_with(bundle, p, opts.threads)?;
        Ok((
            m,
            Selection {
                chosen: p,
                timings: Vec::new(),
                reason: reason.to_string(),
            },
        ))
    };
    match opts.precision {
        PrecisionPolicy::Int8 => return fixed(Precision::Int8, "forced"),
        PrecisionPolicy::F32 => return fixed(Precision::F32, "forced"),
        PrecisionPolicy::Auto if bundle.f32_bytes.is_none() => {
            return fixed(Precision::Int8, "auto: the bundle has no f32 model");
        }
        PrecisionPolicy::Auto => {}
    }
    let n: usize = bundle.manifest.input.shape.iter().product();
    let mid_gray = vec![0i8; n];
    let mut int8 = TractModel::load_with(bundle, Precision::Int8, opts.threads)?;
    let mut f32m = TractModel::load_with(bundle, Precision::F32, opts.threads)?;
    let t8 = median_run(&mut int8, &mid_gray)?;
    let t32 = median_run(&mut f32m, &mid_gray)?;
    let reason = format!(
        "auto: int8 {:.2} ms, f32 {:.2} ms, median of {AUTO_RUNS} on this CPU",
        t8.as_secs_f64() * 1e3,
        t32.as_secs_f64() * 1e3,
    );
    let timings = vec![(Precision::Int8, t8), (Precision::F32, t32)];
    // Ties go to int8: it is what the thresholds were calibrated on.
    let (model, chosen) = if t32 < t8 {
        (f32m, Precision::F32)
    } else {
        (int8, Precision::Int8)
    };
    tracing::info!(
        "{}: precision {} ({reason})",
        bundle.origin.display(),
        chosen.name()
    );
    Ok((
        model,
        Selection {
            chosen,
            timings,
            reason,
        },
    ))
}

/// Keeps tract off kernels found broken here, before tract first probes the
/// CPU. On x86-64 with AMX (this project's build hosts, not its boards),
/// tract 0.23.9's `avx512amx_mmm_i32_16x16` reads past its packed input:
/// on a thread whose heap arena ends at the buffer it is a SIGSEGV (found
/// when inference moved to its own thread: `bedside run` crashed at the
/// first frame, the fault at a `tileloaddt1`). The AVX-512 VNNI kernels
/// serve instead. A `TRACT_CPU_ISA` in the environment still wins.
fn avoid_broken_kernels() {
    #[cfg(target_arch = "x86_64")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if let Err(e) =
                tract_onnx::tract_core::knobs::set_config_global("TRACT_CPU_ISA", "-amx-int8")
            {
                tracing::warn!("cannot keep tract off its AMX kernels: {e}");
            }
        });
    }
}
