//! Quantized depthwise convolution, as a tract operator of bedside's own.
//!
//! tract 0.23.9 has no int8 depthwise kernel: a quantized depthwise
//! convolution becomes an im2col per channel and a matrix product one row
//! tall, which leaves most of each kernel tile idle; in a MobileNetV2 the 17
//! depthwise layers take ~90% of the int8 time (issue #25). [`rewrite`]
//! replaces each such convolution, after tract has decluttered the graph and
//! before it optimizes it, with [`QuantDepthwise`]: i8 in, the quantized
//! output out, the requantization done plane by plane while the
//! accumulators are still in cache. It is an extension through tract's
//! public operator and patch APIs, not a change to tract.
//!
//! The requantization is tract's own arithmetic, value for value
//! ([`Rescale`]): what tract's `Scale` operator becomes for this scale
//! (the fixed-point `Scaler` with ties to even when the scale is one value,
//! `scale_by` in f32 when it differs per channel), plus the output zero
//! point, clamped to the output type. An earlier version wired tract's own
//! `Scale`, `Add`, `Min`, `Max` and `Cast` operators behind the
//! accumulators: five passes over an i32 tensor the size of the output,
//! which cost more than the convolution itself. Fused, one int8 inference
//! of a MobileNetV2 under qemu-aarch64 fell from 511 M to 305 M
//! instructions as a Cortex-A76, 592 M to 387 M as a Cortex-A72
//! (docs/PERFORMANCE.md).
//!
//! Each channel's input plane is first copied into a padded plane whose
//! border holds the input zero point `x0`, so every output column takes the
//! same path; `x0` is folded into the bias (`bias - x0 * sum(w)`), so the
//! row kernel multiplies raw inputs: `acc = bias + sum over the taps of
//! w * (x - x0)`, where a padded tap adds `w * (x0 - x0) = 0`. A weight
//! zero point of 0 is required. That is the same i32 that tract's eager
//! path computes (with the padding summed and the zero-point terms
//! subtracted afterwards), in wrapping arithmetic, which the fold does not
//! change. `tests/integration/quant_conv.rs` compares the two.
//!
//! The kernels ([`generic`]; [`neon`] on aarch64; on x86-64 with AVX2,
//! [`x86`]: the generic code compiled for AVX2. They are the row of a whole
//! kernel window and the int8 requantization) are chosen once, like the
//! preprocessing kernels, and `BEDSIDE_FORCE_SCALAR=1` forces the scalar
//! ones.

pub mod generic;
#[cfg(target_arch = "aarch64")]
pub mod neon;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::sync::{Arc, OnceLock};

use tract_linalg::Scaler;
use tract_linalg::mmm::RoundingPolicy;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

use generic::FixedPoint;

/// Whether [`rewrite`] runs at load (default yes; `BEDSIDE_QUANT_DEPTHWISE=0`
/// leaves tract's own path, for comparison).
pub fn enabled() -> bool {
    std::env::var_os("BEDSIDE_QUANT_DEPTHWISE").is_none_or(|v| v != "0")
}

/// Row kernel: see [`generic::dw_row`].
pub type DwRow = fn(
    src: &[i8],
    row_stride: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    taps: &[i8],
    bias: i32,
    acc: &mut [i32],
);
/// Requantization to int8: see [`generic::requantize_i8`].
pub type RequantizeI8 = fn(acc: &[i32], f: FixedPoint, y0: i32, out: &mut [i8]);

/// The kernels for this CPU, with their name for reports.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub name: &'static str,
    pub row: DwRow,
    pub requantize_i8: RequantizeI8,
}

/// The kernels for this CPU, chosen once (`BEDSIDE_FORCE_SCALAR=1`: the
/// scalar ones).
pub fn kernels() -> &'static Kernels {
    static KERNELS: OnceLock<Kernels> = OnceLock::new();
    KERNELS.get_or_init(|| {
        let generic = Kernels {
            name: "generic",
            row: generic::dw_row,
            requantize_i8: generic::requantize_i8,
        };
        if crate::preprocess::kernels::scalar_forced() {
            return generic;
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            return Kernels {
                name: "neon",
                row: neon::dw_row,
                requantize_i8: neon::requantize_i8,
            };
        }
        #[cfg(target_arch = "x86_64")]
        if x86::available() {
            return Kernels {
                name: "avx2",
                row: x86::dw_row,
                requantize_i8: x86::requantize_i8,
            };
        }
        generic
    })
}

/// Bytes after a padded plane, for what a NEON step of its last output row
/// reads beyond the outputs it keeps: up to 16 bytes from the last tap
/// (LD2, of which the even ones are kept), from the row's start when the
/// row is shorter than a step.
const PLANE_SLACK: usize = 32;

/// The shape of one channel's convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Input height and width.
    pub h: usize,
    pub w: usize,
    /// Output height and width.
    pub oh: usize,
    pub ow: usize,
    /// Kernel height and width.
    pub kh: usize,
    pub kw: usize,
    /// Strides, y and x.
    pub sy: usize,
    pub sx: usize,
    /// Padding before, top and left (after is implied by the output size).
    pub pt: usize,
    pub pl: usize,
}

impl Geometry {
    /// Height and width of the padded plane: the input with `pt` rows
    /// above and `pl` columns left, and as many below and right as the
    /// last output's window reaches.
    pub fn padded_size(&self) -> (usize, usize) {
        let ph = (self.h + self.pt).max((self.oh - 1) * self.sy + self.kh);
        let pw = (self.w + self.pl).max((self.ow - 1) * self.sx + self.kw);
        (ph, pw)
    }
}

/// One channel: `out = bias + sum over the taps of w * (x - x0)`, the
/// padding holding `x0`. `x` is the h*w input plane, `taps` the kh*kw
/// weights, `out` the oh*ow accumulators; `padded` is scratch for the
/// padded plane (grown once, then reused).
#[allow(clippy::too_many_arguments)]
pub fn plane(
    k: &Kernels,
    g: &Geometry,
    x: &[i8],
    taps: &[i8],
    x0: i8,
    bias: i32,
    padded: &mut Vec<i8>,
    out: &mut [i32],
) {
    let (ph, pw) = g.padded_size();
    padded.clear();
    padded.resize(ph * pw + PLANE_SLACK, x0);
    for (iy, row) in x.chunks_exact(g.w).take(g.h).enumerate() {
        padded[(iy + g.pt) * pw + g.pl..][..g.w].copy_from_slice(row);
    }
    let tap_sum: i32 = taps.iter().map(|&t| i32::from(t)).sum();
    let bias = bias.wrapping_sub(i32::from(x0).wrapping_mul(tap_sum));
    for (oy, acc) in out.chunks_exact_mut(g.ow).take(g.oh).enumerate() {
        (k.row)(
            &padded[oy * g.sy * pw..],
            pw,
            g.kh,
            g.kw,
            g.sx,
            taps,
            bias,
            acc,
        );
    }
}

/// How accumulators become output values: tract's `Scale` for this scale
/// (see the module doc), then `+ y0`, then (for an i8 output) the clamp.
#[derive(Clone, Debug, PartialEq)]
pub enum Rescale {
    /// One scale for every channel: tract's fixed-point multiplier and
    /// shift, rounding ties to even.
    Fixed(Scaler),
    /// A scale per channel: `round_ties_to_even(|acc| * s) * sign(acc)` in
    /// f32, as tract's `scale_by`.
    PerChannel(Arc<[f32]>),
}

impl Eq for Rescale {}

impl std::hash::Hash for Rescale {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Rescale::Fixed(s) => s.hash(state),
            Rescale::PerChannel(s) => s.iter().for_each(|v| v.to_bits().hash(state)),
        }
    }
}

impl Rescale {
    /// Chosen as tract's `Scale` declutters: a scale that is one value
    /// (however many times repeated) takes the fixed-point path.
    pub fn new(scales: &[f32]) -> Rescale {
        match scales {
            [first, rest @ ..] if rest.iter().all(|s| s == first) => {
                Rescale::Fixed(Scaler::new(*first, RoundingPolicy::Even))
            }
            _ => Rescale::PerChannel(scales.into()),
        }
    }
}

/// The output's type and zero point, and the rescaling before them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requant {
    pub rescale: Rescale,
    pub y0: i32,
    /// i8 (clamped to -128..=127) or i32 (not clamped).
    pub out_dt: DatumType,
}

/// The fixed-point form of a `Scaler` (which rounds ties to even here).
fn fixed_point(s: &Scaler) -> FixedPoint {
    debug_assert_eq!(
        s.policy,
        RoundingPolicy::Even,
        "Rescale::new rounds ties to even"
    );
    match s.mult {
        Some(mult) => FixedPoint {
            mult,
            shift: s.shift as i64 + 31,
        },
        None => FixedPoint {
            mult: 1,
            shift: s.shift as i64,
        },
    }
}

/// tract's `scale_by` for an i32: `round_ties_to_even(|acc| * s) * sign(acc)`
/// in f32, saturated to i32.
#[inline(always)]
fn scale_by(acc: i32, s: f32) -> i32 {
    let b = acc as f32;
    (round_ties_to_even(b.abs() * s) * b.signum()) as i32
}

/// One channel's accumulators to output values, as tract computes them.
trait Requantize: Datum + Copy {
    /// `+ y0`, then the output type's range.
    fn finish(v: i32, y0: i32) -> Self;

    /// Channel `c`'s accumulators into `out`.
    fn requantize(_k: &Kernels, acc: &[i32], r: &Requant, c: usize, out: &mut [Self]) {
        requantize_scalar(acc, r, c, out);
    }
}

impl Requantize for i8 {
    #[inline(always)]
    fn finish(v: i32, y0: i32) -> i8 {
        v.wrapping_add(y0)
            .clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8
    }

    /// One scale for every channel (the common case) takes the kernel.
    fn requantize(k: &Kernels, acc: &[i32], r: &Requant, c: usize, out: &mut [i8]) {
        match &r.rescale {
            Rescale::Fixed(s) => (k.requantize_i8)(acc, fixed_point(s), r.y0, out),
            Rescale::PerChannel(_) => requantize_scalar(acc, r, c, out),
        }
    }
}

impl Requantize for i32 {
    #[inline(always)]
    fn finish(v: i32, y0: i32) -> i32 {
        v.wrapping_add(y0)
    }
}

/// Channel `c`'s accumulators into `out`, one value at a time.
fn requantize_scalar<T: Requantize>(acc: &[i32], r: &Requant, c: usize, out: &mut [T]) {
    let y0 = r.y0;
    match &r.rescale {
        Rescale::Fixed(s) => {
            let f = fixed_point(s);
            for (o, &a) in out.iter_mut().zip(acc) {
                *o = T::finish(f.apply(a), y0);
            }
        }
        Rescale::PerChannel(s) => {
            let s = s[c];
            for (o, &a) in out.iter_mut().zip(acc) {
                *o = T::finish(scale_by(a, s), y0);
            }
        }
    }
}

/// i8 `[1, C, H, W]` (or `[C, H, W]`) in, `[1, C, OH, OW]` out in the
/// output type, with the bias and the input zero point folded into the
/// accumulators and the requantization applied to them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuantDepthwise {
    pub geometry: Geometry,
    pub channels: usize,
    /// Whether the tensors have a leading batch axis (of 1).
    pub batch_axis: bool,
    pub x0: i8,
    /// C * kh * kw weights, channel-major.
    pub taps: Arc<[i8]>,
    /// One per channel.
    pub bias: Arc<[i32]>,
    pub requant: Requant,
}

impl QuantDepthwise {
    fn output_shape(&self) -> TVec<usize> {
        let g = &self.geometry;
        let mut s: TVec<usize> = tvec!(self.channels, g.oh, g.ow);
        if self.batch_axis {
            s.insert(0, 1);
        }
        s
    }
}

impl Op for QuantDepthwise {
    fn name(&self) -> StaticName {
        "BedsideQuantDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.geometry;
        Ok(vec![format!(
            "{} channels, {}x{} stride {}x{}, kernel {}",
            self.channels,
            g.kh,
            g.kw,
            g.sy,
            g.sx,
            kernels().name
        )])
    }

    op_as_typed_op!();
}

impl QuantDepthwise {
    /// Every channel's plane into `out`, through one plane of accumulators
    /// kept per thread (so a run allocates only its output tensor).
    fn run<T: Requantize>(&self, x: &[i8], out: &mut [T]) {
        thread_local! {
            static SCRATCH: std::cell::RefCell<(Vec<i8>, Vec<i32>)> =
                const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        let g = &self.geometry;
        let (plane_in, plane_out, k) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
        let kernels = kernels();
        let r = &self.requant;
        SCRATCH.with_borrow_mut(|(padded, acc)| {
            acc.resize(plane_out, 0);
            for c in 0..self.channels {
                plane(
                    kernels,
                    g,
                    &x[c * plane_in..(c + 1) * plane_in],
                    &self.taps[c * k..(c + 1) * k],
                    self.x0,
                    self.bias[c],
                    padded,
                    acc,
                );
                T::requantize(
                    kernels,
                    acc,
                    r,
                    c,
                    &mut out[c * plane_out..(c + 1) * plane_out],
                );
            }
        });
    }
}

impl EvalOp for QuantDepthwise {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let x = x.to_plain_array_view::<i8>()?;
        let x = x.as_slice().context("depthwise input is not contiguous")?;
        let g = &self.geometry;
        ensure!(
            x.len() == self.channels * g.h * g.w,
            "depthwise input has {} values",
            x.len()
        );
        let out_dt = self.requant.out_dt;
        let mut out = Tensor::zero_dt(out_dt, &self.output_shape())?;
        if out_dt == i8::datum_type() {
            let mut view = out.to_plain_array_view_mut::<i8>()?;
            let out = view
                .as_slice_mut()
                .context("depthwise output is not contiguous")?;
            self.run(x, out);
        } else {
            let mut view = out.to_plain_array_view_mut::<i32>()?;
            let out = view
                .as_slice_mut()
                .context("depthwise output is not contiguous")?;
            self.run(x, out);
        }
        Ok(tvec!(out.into_tvalue()))
    }

    op_out_of_plan!();
}

impl TypedOp for QuantDepthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type == i8::datum_type());
        Ok(tvec!(self.requant.out_dt.fact(&*self.output_shape())))
    }

    as_op!();
}

/// Replaces every quantized depthwise convolution that [`QuantDepthwise`]
/// can run exactly (see [`plan`]) with it; returns how many. Run on a decluttered model, before `into_optimized`.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut count = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        let Some(plan) = plan(model, node, conv)? else {
            continue;
        };
        let name = node.name.clone();
        let mut patch = TypedModelPatch::new(format!("bedside quantized depthwise {name}"));
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(format!("{name}.depthwise"), plan.op, &[x])?[0];
        patch.shunt_outside(model, id.into(), y)?;
        patch.apply(model)?;
        count += 1;
    }
    if count > 0 {
        model.compact()?;
    }
    Ok(count)
}

/// What a quantized `Conv` node becomes, when it can.
pub struct Plan {
    pub op: QuantDepthwise,
}

/// The plan for `node`, or `None` (tract's own path then runs) unless it is
/// a depthwise convolution with an i8 input of fixed shape and batch 1,
/// NCHW or CHW, OIHW i8 constant weights with a zero point of 0, constant
/// bias, zero points and scales, and no dilation.
pub fn plan(model: &TypedModel, node: &TypedNode, conv: &Conv) -> TractResult<Option<Plan>> {
    let Some(out_dt) = conv.q_params else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let c = spec.input_channels;
    if node.inputs.len() != 9
        || conv.group != c
        || spec.output_channels != c
        || c < 2
        || conv.kernel_fmt != KernelFormat::OIHW
        || !matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW)
        || spec.rank() != 2
        || spec.dilations().iter().any(|&d| d != 1)
        || !(out_dt == i8::datum_type() || out_dt == i32::datum_type())
    {
        return Ok(None);
    }
    let facts: TVec<&TypedFact> = node
        .inputs
        .iter()
        .map(|&i| model.outlet_fact(i))
        .collect::<TractResult<_>>()?;
    let x = facts[0];
    let Some(shape) = x.shape.as_concrete() else {
        return Ok(None);
    };
    let batch_axis = spec.data_format == DataFormat::NCHW;
    if x.datum_type != i8::datum_type() || (batch_axis && shape[0] != 1) {
        return Ok(None);
    }
    let consts: Option<Vec<Arc<Tensor>>> = facts[1..].iter().map(|f| f.konst.clone()).collect();
    let Some(consts) = consts else {
        return Ok(None);
    };
    let [w, bias, x0, x_scale, k0, k_scale, y0, y_scale] = &consts[..] else {
        return Ok(None);
    };
    if w.datum_type() != i8::datum_type() || !k0.is_all_zero()? || x0.len() != 1 || y0.len() != 1 {
        return Ok(None);
    }
    let (Ok(x0), Ok(y0)) = (
        i8::try_from(x0.cast_to_scalar::<i32>()?),
        y0.cast_to_scalar::<i32>(),
    ) else {
        return Ok(None);
    };
    let hw = &shape[shape.len() - 2..];
    let padding = spec.computed_padding(hw);
    let (kh, kw) = (spec.kernel_shape[0], spec.kernel_shape[1]);
    let strides = spec.strides();
    let geometry = Geometry {
        h: hw[0],
        w: hw[1],
        oh: padding[0].convoluted,
        ow: padding[1].convoluted,
        kh,
        kw,
        sy: strides[0],
        sx: strides[1],
        pt: padding[0].pad_before,
        pl: padding[1].pad_before,
    };
    if w.shape() != [c, 1, kh, kw] || geometry.oh == 0 || geometry.ow == 0 {
        return Ok(None);
    }
    let taps: Arc<[i8]> = w.to_plain_array_view::<i8>()?.iter().copied().collect();
    let bias = bias.cast_to::<i32>()?;
    let bias: Vec<i32> = bias.to_plain_array_view::<i32>()?.iter().copied().collect();
    let bias: Arc<[i32]> = match bias.len() {
        0 => vec![0; c].into(),
        1 => vec![bias[0]; c].into(),
        n if n == c => bias.into(),
        _ => return Ok(None),
    };
    // As tract's combine_scales: (k_scale * x_scale) / y_scale, in f32.
    let x_scale = x_scale.cast_to_scalar::<f32>()?;
    let y_scale = y_scale.cast_to_scalar::<f32>()?;
    let k_scale = k_scale.cast_to::<f32>()?;
    let k_scale: Vec<f32> = k_scale
        .to_plain_array_view::<f32>()?
        .iter()
        .copied()
        .collect();
    if !(k_scale.len() == 1 || k_scale.len() == c) {
        return Ok(None);
    }
    let scale: Vec<f32> = k_scale.iter().map(|k| (k * x_scale) / y_scale).collect();
    Ok(Some(Plan {
        op: QuantDepthwise {
            geometry,
            channels: c,
            batch_axis,
            x0,
            taps,
            bias,
            requant: Requant {
                rescale: Rescale::new(&scale),
                y0,
                out_dt,
            },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, tap by tap over the padded plane.
    fn naive(g: &Geometry, x: &[i8], taps: &[i8], x0: i8, bias: i32) -> Vec<i32> {
        let mut out = vec![bias; g.oh * g.ow];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let iy = (oy * g.sy + ky) as isize - g.pt as isize;
                        let ix = (ox * g.sx + kx) as isize - g.pl as isize;
                        let v = if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                            x0
                        } else {
                            x[iy as usize * g.w + ix as usize]
                        };
                        let t = i32::from(taps[ky * g.kw + kx]);
                        out[oy * g.ow + ox] =
                            out[oy * g.ow + ox].wrapping_add(t * (i32::from(v) - i32::from(x0)));
                    }
                }
            }
        }
        out
    }

    fn geometry() -> impl Strategy<Value = Geometry> {
        (
            1usize..20,
            1usize..40,
            1usize..4,
            1usize..4,
            1usize..3,
            1usize..3,
            0usize..3,
            0usize..3,
        )
            .prop_map(|(h, w, kh, kw, sy, sx, pt, pl)| {
                let (h, w) = (h.max(kh), w.max(kw));
                let (pt, pl) = (pt % kh, pl % kw);
                // Symmetric padding, as ONNX's pads usually are.
                let oh = (h + 2 * pt - kh) / sy + 1;
                let ow = (w + 2 * pl - kw) / sx + 1;
                Geometry {
                    h,
                    w,
                    oh,
                    ow,
                    kh,
                    kw,
                    sy,
                    sx,
                    pt,
                    pl,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn plane_is_the_definition(
            g in geometry(),
            seed in any::<u64>(),
            x0 in any::<i8>(),
            bias in -100_000i32..100_000,
        ) {
            let mut r = crate::rng::SplitMix64(seed);
            let x: Vec<i8> = (0..g.h * g.w).map(|_| r.next_u64() as i8).collect();
            let taps: Vec<i8> = (0..g.kh * g.kw).map(|_| r.next_u64() as i8).collect();
            let mut out = vec![0; g.oh * g.ow];
            let mut padded = Vec::new();
            plane(kernels(), &g, &x, &taps, x0, bias, &mut padded, &mut out);
            prop_assert_eq!(&out, &naive(&g, &x, &taps, x0, bias));
            // Scratch left over from a larger plane changes nothing.
            padded.resize(padded.len() * 2 + 64, 77);
            plane(kernels(), &g, &x, &taps, x0, bias, &mut padded, &mut out);
            prop_assert_eq!(out, naive(&g, &x, &taps, x0, bias));
        }

        /// The NEON row kernel against its scalar twin: random lengths,
        /// windows up to 5x5, strides 1 to 3 (3: the scalar fallback),
        /// slack after the rows, any bias.
        #[test]
        fn row_kernels_are_twins(
            n in 0usize..70,
            stride in 1usize..4,
            (kh, kw) in (1usize..6, 1usize..6),
            pad in 0usize..9,
            slack in 0usize..20,
            seed in any::<u64>(),
            bias in any::<i32>(),
        ) {
            let mut r = crate::rng::SplitMix64(seed);
            let row_stride = n.saturating_sub(1) * stride + kw + pad;
            let len = (kh - 1) * row_stride + n.saturating_sub(1) * stride + kw + slack;
            let src: Vec<i8> = (0..len).map(|_| r.next_u64() as i8).collect();
            let taps: Vec<i8> = (0..kh * kw).map(|_| r.next_u64() as i8).collect();
            let mut want = vec![0; n];
            generic::dw_row(&src, row_stride, kh, kw, stride, &taps, bias, &mut want);
            let mut got = vec![-1; n];
            (kernels().row)(&src, row_stride, kh, kw, stride, &taps, bias, &mut got);
            prop_assert_eq!(got, want);
        }

        /// The NEON requantization against its scalar twin, over the
        /// scales a convolution has (tract's own `Scaler` of a random
        /// scale), any accumulator and any zero point.
        #[test]
        fn requantize_kernels_are_twins(
            n in 0usize..40,
            scale_exp in -30i32..0,
            scale_mantissa in 1.0f32..2.0,
            y0 in -200i32..200,
            seed in any::<u64>(),
            wide in any::<bool>(),
        ) {
            let mut r = crate::rng::SplitMix64(seed);
            let scale = scale_mantissa * 2f32.powi(scale_exp);
            let f = fixed_point(&Scaler::new(scale, RoundingPolicy::Even));
            // Small accumulators hit exact ties; wide ones the extremes.
            let acc: Vec<i32> = (0..n)
                .map(|_| if wide { r.next_u64() as i32 } else { (r.next_u64() % 4097) as i32 - 2048 })
                .collect();
            let mut want = vec![0; n];
            generic::requantize_i8(&acc, f, y0, &mut want);
            let mut got = vec![99; n];
            (kernels().requantize_i8)(&acc, f, y0, &mut got);
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        /// The scalar requantization is tract's `Scaler` (then `+ y0` and
        /// the clamp), value for value, for convolution-sized scales.
        #[test]
        fn requantization_is_tracts_scaler(
            scale_exp in -30i32..0,
            scale_mantissa in 1.0f32..2.0,
            y0 in -200i32..200,
            acc in proptest::collection::vec(any::<i32>(), 0..40),
        ) {
            let scaler = Scaler::new(scale_mantissa * 2f32.powi(scale_exp), RoundingPolicy::Even);
            let mut got = vec![0i8; acc.len()];
            generic::requantize_i8(&acc, fixed_point(&scaler), y0, &mut got);
            for (&a, &g) in acc.iter().zip(&got) {
                let want = (scaler * a).wrapping_add(y0).clamp(-128, 127);
                prop_assert_eq!(i32::from(g), want, "acc {}", a);
            }
        }
    }

    /// Exact ties round to even, as tract's `Scaler` does: 0.5 -> 0,
    /// 1.5 -> 2, 2.5 -> 2, -2.5 -> -2.
    #[test]
    fn requantization_rounds_ties_to_even() {
        let f = fixed_point(&Scaler::new(0.5, RoundingPolicy::Even));
        let acc = [1, 3, 5, -5, 7, -7, 0, 2, 1, 3, 5, -5, 7, -7, 0, 2];
        let mut out = [0i8; 16];
        (kernels().requantize_i8)(&acc, f, 0, &mut out);
        assert_eq!(out[..8], [0, 2, 2, -2, 4, -4, 0, 1]);
        assert_eq!(out[..8], out[8..]);
        for (&a, &o) in acc.iter().zip(&out) {
            assert_eq!(i32::from(o), Scaler::new(0.5, RoundingPolicy::Even) * a);
        }
    }

    #[test]
    fn the_kernel_is_neon_on_aarch64_unless_forced() {
        let name = kernels().name;
        #[cfg(target_arch = "x86_64")]
        let simd = if x86::available() { "avx2" } else { "generic" };
        #[cfg(target_arch = "aarch64")]
        let simd = "neon";
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let simd = "generic";
        let want = if crate::preprocess::kernels::scalar_forced() {
            "generic"
        } else {
            simd
        };
        assert_eq!(name, want);
    }
}
