//! NEON twins of [`super::generic`]. Proven bit-identical by the property
//! tests in `super::tests`.
//!
//! - [`dw_row`]: eight outputs per step, every tap of the kernel window one
//!   widening multiply-accumulate (SMLAL) of 16-bit lanes into 32-bit
//!   accumulators that stay in registers for the whole window; stride 2
//!   takes every other input with a de-interleaving load (LD2). The last
//!   outputs of a row are one more step ending at the row's end (or, for a
//!   row shorter than a step, eight lanes of which the first are kept);
//!   other strides go to the scalar twin.
//! - [`requantize_i8`]: eight accumulators per step through tract's
//!   fixed-point rescaling in 64-bit lanes (SMULL, then the rounding shift
//!   with ties to even written out), the zero point, and two saturating
//!   narrows (SQXTN) that are the clamp to int8.
#![allow(unsafe_code)]

use std::arch::aarch64::*;

use super::generic::{self, FixedPoint};

#[allow(clippy::too_many_arguments)]
pub fn dw_row(
    src: &[i8],
    row_stride: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    taps: &[i8],
    bias: i32,
    acc: &mut [i32],
) {
    let n = acc.len();
    if !((stride == 1 || stride == 2) && kh > 0 && kw > 0 && taps.len() >= kh * kw) {
        generic::dw_row(src, row_stride, kh, kw, stride, taps, bias, acc);
        return;
    }
    // One past the last byte a step of eight outputs from `o` loads: 8
    // bytes (LD1) or 16 bytes (LD2) from `(kh - 1) * row_stride + o *
    // stride + kw - 1`.
    let end = |o: usize| (kh - 1) * row_stride + o * stride + kw - 1 + 8 * stride;
    // Eight outputs from `o`.
    // SAFETY (for callers): `end(o) <= src.len()` and `taps.len() >= kh *
    // kw`, so every load reads inside `src` (the furthest is the last
    // tap's, in the last row). NEON is part of the aarch64 baseline.
    let step = |o: usize| unsafe {
        let mut lo = vdupq_n_s32(bias);
        let mut hi = lo;
        for ky in 0..kh {
            let row = src.as_ptr().add(ky * row_stride + o * stride);
            for kx in 0..kw {
                let t = i16::from(*taps.get_unchecked(ky * kw + kx));
                let x = if stride == 1 {
                    vld1_s8(row.add(kx))
                } else {
                    vld2_s8(row.add(kx)).0
                };
                let x = vmovl_s8(x);
                lo = vmlal_n_s16(lo, vget_low_s16(x), t);
                hi = vmlal_high_n_s16(hi, x, t);
            }
        }
        (lo, hi)
    };
    let mut o = 0;
    // SAFETY: each store writes acc[o..o + 8] with `o + 8 <= n`, and each
    // step is called with `end(o) <= src.len()`.
    unsafe {
        while o + 8 <= n && end(o) <= src.len() {
            let (lo, hi) = step(o);
            vst1q_s32(acc.as_mut_ptr().add(o), lo);
            vst1q_s32(acc.as_mut_ptr().add(o + 4), hi);
            o += 8;
        }
        if o < n && n >= 8 && end(n - 8) <= src.len() {
            // The last eight outputs again, overlapping the ones done:
            // outputs are written, not accumulated, so that is exact.
            let (lo, hi) = step(n - 8);
            vst1q_s32(acc.as_mut_ptr().add(n - 8), lo);
            vst1q_s32(acc.as_mut_ptr().add(n - 4), hi);
            o = n;
        } else if o < n && n < 8 && end(0) <= src.len() {
            // A row shorter than a step (the 7x7 layers): eight lanes
            // computed, the first `n` kept. The padded plane's slack holds
            // what the other lanes read.
            let (lo, hi) = step(0);
            let mut lanes = [0i32; 8];
            vst1q_s32(lanes.as_mut_ptr(), lo);
            vst1q_s32(lanes.as_mut_ptr().add(4), hi);
            acc.copy_from_slice(&lanes[..n]);
            o = n;
        }
    }
    if o < n {
        generic::dw_row(
            &src[o * stride..],
            row_stride,
            kh,
            kw,
            stride,
            taps,
            bias,
            &mut acc[o..],
        );
    }
}

pub fn requantize_i8(acc: &[i32], f: FixedPoint, y0: i32, out: &mut [i8]) {
    let n = acc.len().min(out.len());
    let mut i = 0;
    // A shift of 0 or less (a scale of 1 or more) never comes from a
    // convolution's scales; the scalar twin takes it. So does a shift
    // past 62, where the rounding constant would not fit.
    if (1..=62).contains(&f.shift) {
        // SAFETY: a step reads acc[i..i + 8] and writes out[i..i + 8] only
        // while `i + 8 <= n`, within both slices. NEON is baseline.
        unsafe {
            let mult = vdup_n_s32(f.mult);
            let right = vdupq_n_s64(-f.shift);
            let one = vdupq_n_s64(1);
            let half_minus_one = vdupq_n_s64((1i64 << (f.shift - 1)) - 1);
            let zero_point = vdupq_n_s32(y0);
            // round(|v| / 2^shift), ties to even, with the sign of v: as
            // the scalar twin, `(|v| + half - 1 + bit) >> shift` where
            // `bit` is the lowest bit of the truncated quotient.
            let round = |v: int64x2_t| {
                let a = vabsq_s64(v);
                let bit = vandq_s64(vshlq_s64(a, right), one);
                let q = vshlq_s64(vaddq_s64(vaddq_s64(a, half_minus_one), bit), right);
                vbslq_s64(vcltzq_s64(v), vnegq_s64(q), q)
            };
            let four = |a: int32x4_t| {
                let lo = round(vmull_s32(vget_low_s32(a), mult));
                let hi = round(vmull_high_s32(a, vcombine_s32(mult, mult)));
                vaddq_s32(vcombine_s32(vmovn_s64(lo), vmovn_s64(hi)), zero_point)
            };
            while i + 8 <= n {
                let a = four(vld1q_s32(acc.as_ptr().add(i)));
                let b = four(vld1q_s32(acc.as_ptr().add(i + 4)));
                let narrow = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
                vst1_s8(out.as_mut_ptr().add(i), vqmovn_s16(narrow));
                i += 8;
            }
        }
    }
    if i < n {
        generic::requantize_i8(&acc[i..n], f, y0, &mut out[i..n]);
    }
}
