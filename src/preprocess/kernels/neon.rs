//! NEON (Advanced SIMD) kernels for aarch64. Each has a scalar twin in
//! [`super::generic`] and a property test proving identical output.
#![allow(unsafe_code)]

use std::arch::aarch64::*;

use super::generic;

/// NEON twin of [`generic::rgb24_to_gray`]: 16 pixels per step, Q14 weights in
/// 32-bit lanes, then the scalar kernel for the tail.
pub fn rgb24_to_gray(src: &[u8], dst: &mut [u8]) {
    let n = dst.len().min(src.len() / 3);
    let body = n - n % 16;
    // SAFETY: NEON is part of the aarch64 baseline; every load reads
    // src[3*i .. 3*i+48] and every store writes dst[i .. i+16] with i + 16 <= body <= n,
    // and 3 * n <= src.len().
    unsafe {
        let (wr, wg, wb) = (
            vdup_n_u16(generic::GRAY_R_Q14 as u16),
            vdup_n_u16(generic::GRAY_G_Q14 as u16),
            vdup_n_u16(generic::GRAY_B_Q14 as u16),
        );
        let half = vdupq_n_u32(1 << 13);
        let mut i = 0;
        while i < body {
            let px = vld3q_u8(src.as_ptr().add(3 * i));
            let lanes = |r: uint16x8_t, g: uint16x8_t, b: uint16x8_t| {
                let lo = vmlal_u16(
                    vmlal_u16(vmlal_u16(half, vget_low_u16(r), wr), vget_low_u16(g), wg),
                    vget_low_u16(b),
                    wb,
                );
                let hi = vmlal_u16(
                    vmlal_u16(vmlal_u16(half, vget_high_u16(r), wr), vget_high_u16(g), wg),
                    vget_high_u16(b),
                    wb,
                );
                vcombine_u16(vshrn_n_u32::<14>(lo), vshrn_n_u32::<14>(hi))
            };
            let lo = lanes(
                vmovl_u8(vget_low_u8(px.0)),
                vmovl_u8(vget_low_u8(px.1)),
                vmovl_u8(vget_low_u8(px.2)),
            );
            let hi = lanes(
                vmovl_high_u8(px.0),
                vmovl_high_u8(px.1),
                vmovl_high_u8(px.2),
            );
            vst1q_u8(
                dst.as_mut_ptr().add(i),
                vcombine_u8(vmovn_u16(lo), vmovn_u16(hi)),
            );
            i += 16;
        }
    }
    generic::rgb24_to_gray(&src[3 * body..], &mut dst[body..n]);
}

/// NEON twin of [`generic::yuyv_to_gray`]: de-interleaves 16 pixels per step.
pub fn yuyv_to_gray(src: &[u8], dst: &mut [u8]) {
    let n = dst.len().min(src.len() / 2);
    let body = n - n % 16;
    // SAFETY: each step reads src[2*i .. 2*i+32] and writes dst[i .. i+16], i + 16 <= body <= n.
    unsafe {
        let mut i = 0;
        while i < body {
            let yuv = vld2q_u8(src.as_ptr().add(2 * i));
            vst1q_u8(dst.as_mut_ptr().add(i), yuv.0);
            i += 16;
        }
    }
    generic::yuyv_to_gray(&src[2 * body..], &mut dst[body..n]);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn rgb24_to_gray_matches_scalar(px in proptest::collection::vec(any::<u8>(), 0..600), offset in 0usize..3) {
            let src = &px[offset.min(px.len())..];
            let n = src.len() / 3;
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            rgb24_to_gray(src, &mut a);
            generic::rgb24_to_gray(src, &mut b);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn yuyv_to_gray_matches_scalar(px in proptest::collection::vec(any::<u8>(), 0..600), offset in 0usize..2) {
            let src = &px[offset.min(px.len())..];
            let n = src.len() / 2;
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            yuyv_to_gray(src, &mut a);
            generic::yuyv_to_gray(src, &mut b);
            prop_assert_eq!(a, b);
        }
    }
}
