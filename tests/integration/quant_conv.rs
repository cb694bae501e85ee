//! The patched tract-core (PATCHES.md): quantized convolutions gather their
//! patches lazily. Every case here builds one quantized `Conv` and runs it
//! both ways, lazily and through tract's own eager im2col
//! (`TRACT_QUANT_LAZY_IM2COL=0`, entered as a knob scope around the
//! optimization), and asks for the same bytes. On x86 and under qemu A72 the
//! matrix product packs the patches in tract's regular format; under qemu A76
//! the SDOT kernel takes the four-k packing, so the three qemu passes cover
//! both packings. The four-k gather has a NEON path for panels in one input
//! row and a scalar twin (`TRACT_QUANT_LAZY_IM2COL_K4_SIMD=0`): each case
//! runs both, and they must agree with each other and with the eager path.
//! The demonstration bundles are compared the same way.
//!
//! bedside's own quantized depthwise operator (`bedside::infer::depthwise`)
//! is held to the same standard: a depthwise convolution rewritten to it
//! gives tract's bytes.

use bedside::infer::{Bundle, Model, Precision, TractModel};
use proptest::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::knobs::KnobScope;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

use crate::common::root;

#[derive(Debug, Clone)]
struct Case {
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    /// (top, left, bottom, right)
    pad: (usize, usize, usize, usize),
    per_channel_scale: bool,
    /// One group per channel (then `co == ci`).
    depthwise: bool,
    x0: i8,
    y0: i8,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..6, 1usize..20, 1usize..14, 1usize..24),
        (1usize..4, 1usize..4, 1usize..3, 1usize..3),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3),
        (any::<bool>(), any::<i8>(), any::<i8>(), any::<u64>()),
    )
        .prop_map(
            |((ci, co, h, w), (kh, kw, sh, sw), pad, (pc, x0, y0, seed))| {
                // The padded input must hold the kernel at least once.
                let h = h.max(kh);
                let w = w.max(kw);
                Case {
                    ci,
                    co,
                    h,
                    w,
                    kernel: (kh, kw),
                    stride: (sh, sw),
                    pad: (pad.0 % kh, pad.1 % kw, pad.2 % kh, pad.3 % kw),
                    per_channel_scale: pc,
                    depthwise: false,
                    x0,
                    y0,
                    seed,
                }
            },
        )
}

/// A small deterministic generator: the case's seed gives its data.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next() as u8 as i8).collect()
    }
}

fn conv_model(c: &Case) -> TractResult<(TypedModel, Tensor)> {
    let mut r = Lcg(c.seed);
    let (kh, kw) = c.kernel;
    let mut m = TypedModel::default();
    let x = m.add_source("x", i8::fact([1, c.ci, c.h, c.w]))?;
    let ci_per_group = if c.depthwise { 1 } else { c.ci };
    let k = tract_ndarray::Array4::from_shape_vec(
        (c.co, ci_per_group, kh, kw),
        r.i8s(c.co * ci_per_group * kh * kw),
    )?;
    let k = m.add_const("k", k.into_tensor())?;
    let bias: Vec<i32> = (0..c.co).map(|_| (r.next() % 8192) as i32 - 4096).collect();
    let b = m.add_const("b", tensor1(&bias))?;
    let x0 = m.add_const("x0", tensor0(c.x0 as i32))?;
    let x_scale = m.add_const("x_scale", tensor0(0.02f32))?;
    let k0 = m.add_const("k0", tensor0(0i32))?;
    let k_scale = if c.per_channel_scale {
        let s: Vec<f32> = (0..c.co).map(|i| 0.004 + 0.001 * i as f32).collect();
        m.add_const("k_scale", tensor1(&s))?
    } else {
        m.add_const("k_scale", tensor0(0.006f32))?
    };
    let y0 = m.add_const("y0", tensor0(c.y0 as i32))?;
    // From no clamping to most outputs clamped, by the case's seed.
    let y_scale = [0.5f32, 0.05, 0.005][(c.seed % 3) as usize];
    let y_scale = m.add_const("y_scale", tensor0(y_scale))?;
    let (pt, pl, pb, pr) = c.pad;
    let conv = Conv {
        pool_spec: PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec!(kh, kw),
            padding: PaddingSpec::Explicit(tvec!(pt, pl), tvec!(pb, pr)),
            dilations: None,
            strides: Some(tvec!(c.stride.0, c.stride.1)),
            input_channels: c.ci,
            output_channels: c.co,
        },
        kernel_fmt: KernelFormat::OIHW,
        group: if c.depthwise { c.ci } else { 1 },
        q_params: Some(i8::datum_type()),
    };
    let y = m.wire_node(
        "conv",
        conv,
        &[x, k, b, x0, x_scale, k0, k_scale, y0, y_scale],
    )?;
    m.select_output_outlets(&y)?;
    let input =
        tract_ndarray::Array4::from_shape_vec((1, c.ci, c.h, c.w), r.i8s(c.ci * c.h * c.w))?;
    Ok((m, input.into_tensor()))
}

/// Which way a quantized convolution gathers its patches.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    /// tract's own eager im2col.
    Eager,
    /// The patch's lazy gather, NEON where it applies (the default).
    Lazy,
    /// The lazy gather with the four-k packing's scalar twin forced.
    LazyScalar,
}

fn lazy_scope(path: Path) -> TractResult<KnobScope> {
    let flag = |on: bool| if on { "1" } else { "0" };
    KnobScope::new([
        ("TRACT_QUANT_LAZY_IM2COL", flag(path != Path::Eager)),
        ("TRACT_QUANT_LAZY_IM2COL_K4", flag(path != Path::Eager)),
        ("TRACT_QUANT_LAZY_IM2COL_K4_SIMD", flag(path == Path::Lazy)),
    ])
}

/// Optimizes and runs `model` along `path`; returns the output and the names
/// of the optimized graph's operators.
fn run(model: &TypedModel, path: Path, input: &Tensor) -> TractResult<(Tensor, Vec<String>)> {
    let scope = lazy_scope(path)?;
    let plan = scope.enter(|| model.clone().into_optimized()?.into_runnable())?;
    let ops = plan
        .model()
        .nodes()
        .iter()
        .map(|n| n.op.name().to_string())
        .collect();
    let out = plan.run(tvec!(input.clone().into_tvalue()))?;
    Ok((out[0].clone().into_tensor(), ops))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_206),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn lazy_quantized_conv_is_bit_identical_to_eager(c in case()) {
        let (model, input) = conv_model(&c).unwrap();
        let (lazy, lazy_ops) = run(&model, Path::Lazy, &input).unwrap();
        let (scalar, _) = run(&model, Path::LazyScalar, &input).unwrap();
        let (eager, eager_ops) = run(&model, Path::Eager, &input).unwrap();
        prop_assert_eq!(lazy.shape(), eager.shape());
        prop_assert_eq!(
            lazy.as_bytes(), scalar.as_bytes(),
            "the NEON and scalar four-k gathers differ for {:?}", c
        );
        prop_assert_eq!(
            lazy.as_bytes(), eager.as_bytes(),
            "lazy and eager outputs differ for {:?}", c
        );
        // Both paths were taken: tract's eager one materializes the patches
        // (Im2col), the patched one gathers them per panel (LazyIm2col),
        // except for a 1x1 kernel, which has nothing to gather (tract turns
        // its stride into a Downsample first).
        prop_assert!(!eager_ops.iter().any(|o| o == "LazyIm2col"), "{:?}", eager_ops);
        let gathers = c.kernel != (1, 1);
        prop_assert_eq!(
            lazy_ops.iter().any(|o| o == "LazyIm2col"), gathers,
            "{:?}: {:?}", c, lazy_ops
        );
    }
}

/// Depthwise cases: 2 to 11 channels, the same geometry as above.
fn depthwise_case() -> impl Strategy<Value = Case> {
    (case(), 2usize..12).prop_map(|(c, ch)| Case {
        ci: ch,
        co: ch,
        depthwise: true,
        ..c
    })
}

/// Optimizes and runs `model` after bedside's depthwise rewrite; returns the
/// output and how many convolutions were rewritten.
fn run_rewritten(model: &TypedModel, input: &Tensor) -> TractResult<(Tensor, usize)> {
    let mut m = model.clone().into_decluttered()?;
    let rewritten = bedside::infer::depthwise::rewrite(&mut m)?;
    let plan = m.into_optimized()?.into_runnable()?;
    let out = plan.run(tvec!(input.clone().into_tvalue()))?;
    Ok((out[0].clone().into_tensor(), rewritten))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_207),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn bedside_depthwise_is_bit_identical_to_tract(c in depthwise_case()) {
        let (model, input) = conv_model(&c).unwrap();
        let (ours, rewritten) = run_rewritten(&model, &input).unwrap();
        prop_assert_eq!(rewritten, 1);
        let (tracts, _) = run(&model, Path::Eager, &input).unwrap();
        prop_assert_eq!(ours.shape(), tracts.shape());
        prop_assert_eq!(
            ours.as_bytes(), tracts.as_bytes(),
            "bedside's depthwise and tract's differ for {:?}", c
        );
    }
}

/// The demonstration bundles give the same bytes both ways on the demo
/// assets' inputs (a seeded pseudo-random picture and a flat one).
#[test]
fn demo_bundles_run_the_same_with_and_without_the_lazy_path() {
    for name in ["xray-demo", "echo-ae-demo"] {
        let bundle = Bundle::load(&root().join("models").join(name)).unwrap();
        let n: usize = bundle.manifest.input.shape.iter().product();
        let mut r = Lcg(7);
        let inputs = [r.i8s(n), vec![-128i8; n]];
        let load = |path: Path| {
            let scope = lazy_scope(path).unwrap();
            scope.enter(|| TractModel::load_precision(&bundle, Precision::Int8).unwrap())
        };
        let mut eager = load(Path::Eager);
        for path in [Path::Lazy, Path::LazyScalar] {
            let mut lazy = load(path);
            for input in &inputs {
                let a = lazy.run(input).unwrap().to_vec();
                let b = eager.run(input).unwrap().to_vec();
                let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{name}: {path:?} {a:?} vs eager {b:?}");
            }
        }
    }
}

/// `bedside model profile` says what ran: the matrix-multiply kernels by
/// tract-linalg's names (i32 accumulators for int8), per node and summed,
/// and the share of the time spent packing and in im2col.
#[test]
fn model_profile_names_the_kernels_and_the_packing_share() {
    let bundle = root().join("models/xray-demo");
    let (code, out, err) = crate::common::run(&[
        "model",
        "profile",
        bundle.to_str().unwrap(),
        "--precision",
        "int8",
        "--runs",
        "1",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("kernel ")),
        "no kernel table: {out}"
    );
    let named = out
        .lines()
        .filter(|l| l.contains(" ms ") && l.contains('[') && l.contains("_i32_"))
        .count();
    assert!(named > 0, "no node names an int8 kernel: {out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("packing ") && l.contains("% and im2col ")),
        "no packing and im2col share: {out}"
    );
}
