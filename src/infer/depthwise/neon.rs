//! NEON twin of [`super::generic::dw_row`]: eight outputs per step, each tap
//! one widening multiply-accumulate (SMLAL) of `x - x0` in 16-bit lanes into
//! 32-bit accumulators; stride 2 takes every other input with a
//! de-interleaving load (LD2). Other strides and the tail go to the scalar
//! twin. Proven bit-identical by the property tests in `super::tests`.
#![allow(unsafe_code)]

use std::arch::aarch64::*;

use super::generic;

pub fn dw_row(src: &[i8], stride: usize, taps: &[i8], x0: i8, acc: &mut [i32]) {
    let n = acc.len();
    let mut o = 0;
    if (stride == 1 || stride == 2) && !taps.is_empty() {
        // One past the last byte a step at `o` loads: 8 bytes (LD1) or 16
        // bytes (LD2) from `o * stride + k` for the last tap k.
        let end = |o: usize| o * stride + taps.len() - 1 + 8 * stride;
        // SAFETY: a step runs only while `o + 8 <= acc.len()` and `end(o) <=
        // src.len()`, so every load reads inside `src` and every store writes
        // inside `acc`; NEON is part of the aarch64 baseline.
        unsafe {
            let zero_point = vdupq_n_s16(i16::from(x0));
            while o + 8 <= n && end(o) <= src.len() {
                let mut lo = vld1q_s32(acc.as_ptr().add(o));
                let mut hi = vld1q_s32(acc.as_ptr().add(o + 4));
                for (k, &t) in taps.iter().enumerate() {
                    let p = src.as_ptr().add(o * stride + k);
                    let x = if stride == 1 {
                        vld1_s8(p)
                    } else {
                        vld2_s8(p).0
                    };
                    let d = vsubq_s16(vmovl_s8(x), zero_point);
                    lo = vmlal_n_s16(lo, vget_low_s16(d), i16::from(t));
                    hi = vmlal_high_n_s16(hi, d, i16::from(t));
                }
                vst1q_s32(acc.as_mut_ptr().add(o), lo);
                vst1q_s32(acc.as_mut_ptr().add(o + 4), hi);
                o += 8;
            }
        }
    }
    if o < n {
        generic::dw_row(&src[o * stride..], stride, taps, x0, &mut acc[o..]);
    }
}
