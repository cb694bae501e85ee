//! The scalar kernels of [`super::generic`], compiled a second time with
//! AVX2 enabled, for x86-64 machines that have it (chosen at run time).
//! The x86-64 baseline (SSE2) has no byte-to-int widening or 32- and 64-bit
//! lane multiplies of the kind these loops need, so the baseline build of
//! the same code stays scalar; with AVX2 the compiler vectorizes it. Same
//! source, so the same results; the twin property tests in `super::tests`
//! check it anyway. x86 is where bedside is developed and compared, not
//! where it is deployed: this is the portable kernel the issue allows,
//! not a hand-written one.
#![allow(unsafe_code)]

use super::generic::{self, FixedPoint};

/// Whether this CPU runs these kernels.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn dw_row_avx2(
    src: &[i8],
    row_stride: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    taps: &[i8],
    bias: i32,
    acc: &mut [i32],
) {
    generic::dw_row(src, row_stride, kh, kw, stride, taps, bias, acc);
}

#[target_feature(enable = "avx2")]
unsafe fn requantize_i8_avx2(acc: &[i32], f: FixedPoint, y0: i32, out: &mut [i8]) {
    generic::requantize_i8(acc, f, y0, out);
}

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
    // SAFETY: chosen by `super::kernels` only when `available()` said the
    // CPU has AVX2; the body is safe code.
    unsafe { dw_row_avx2(src, row_stride, kh, kw, stride, taps, bias, acc) }
}

pub fn requantize_i8(acc: &[i32], f: FixedPoint, y0: i32, out: &mut [i8]) {
    // SAFETY: as `dw_row`.
    unsafe { requantize_i8_avx2(acc, f, y0, out) }
}
