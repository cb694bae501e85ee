//! NEON (Advanced SIMD) kernels for aarch64. Each has a scalar twin in
//! [`super::generic`] and a property test proving identical output on random
//! lengths and offsets (so tails and unaligned starts are covered).
#![allow(unsafe_code)]

use std::arch::aarch64::*;

use super::generic;

/// 16 gray values from 16 R, G, B values: `(R*wr + G*wg + B*wb + 2^13) >> 14`
/// in 32-bit lanes, exactly as [`generic::rgb24_to_gray`].
#[inline(always)]
fn weighted_gray(r: uint8x16_t, g: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
    // SAFETY: register-only arithmetic; NEON is part of the aarch64 baseline.
    unsafe {
        let (wr, wg, wb) = (
            vdup_n_u16(generic::GRAY_R_Q14 as u16),
            vdup_n_u16(generic::GRAY_G_Q14 as u16),
            vdup_n_u16(generic::GRAY_B_Q14 as u16),
        );
        let half = vdupq_n_u32(1 << 13);
        let eight = |r: uint16x8_t, g: uint16x8_t, b: uint16x8_t| {
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
        let lo = eight(
            vmovl_u8(vget_low_u8(r)),
            vmovl_u8(vget_low_u8(g)),
            vmovl_u8(vget_low_u8(b)),
        );
        let hi = eight(vmovl_high_u8(r), vmovl_high_u8(g), vmovl_high_u8(b));
        vcombine_u8(vmovn_u16(lo), vmovn_u16(hi))
    }
}

/// Runs `step` over 16-pixel blocks of `bpp`-byte pixels, then `tail` (the
/// scalar twin) over the rest. `step(src_ptr, dst_ptr)` reads `16 * bpp` bytes
/// and writes 16.
#[inline(always)]
fn blocks(
    src: &[u8],
    dst: &mut [u8],
    bpp: usize,
    step: impl Fn(*const u8, *mut u8),
    tail: fn(&[u8], &mut [u8]),
) {
    let n = dst.len().min(src.len() / bpp);
    let body = n - n % 16;
    let mut i = 0;
    while i < body {
        // i + 16 <= body <= n, and bpp * n <= src.len(): both pointers stay in bounds.
        step(src[bpp * i..].as_ptr(), dst[i..].as_mut_ptr());
        i += 16;
    }
    tail(&src[bpp * body..], &mut dst[body..n]);
}

/// NEON twin of [`generic::rgb24_to_gray`].
pub fn rgb24_to_gray(src: &[u8], dst: &mut [u8]) {
    // SAFETY: `blocks` passes pointers with 48 readable and 16 writable bytes.
    blocks(
        src,
        dst,
        3,
        |s, d| unsafe {
            let p = vld3q_u8(s);
            vst1q_u8(d, weighted_gray(p.0, p.1, p.2));
        },
        generic::rgb24_to_gray,
    );
}

/// NEON twin of [`generic::bgr24_to_gray`].
pub fn bgr24_to_gray(src: &[u8], dst: &mut [u8]) {
    // SAFETY: as above, 48 readable and 16 writable bytes.
    blocks(
        src,
        dst,
        3,
        |s, d| unsafe {
            let p = vld3q_u8(s);
            vst1q_u8(d, weighted_gray(p.2, p.1, p.0));
        },
        generic::bgr24_to_gray,
    );
}

/// NEON twin of [`generic::xrgb8888_to_gray`] (bytes B, G, R, X).
pub fn xrgb8888_to_gray(src: &[u8], dst: &mut [u8]) {
    // SAFETY: 64 readable and 16 writable bytes per block.
    blocks(
        src,
        dst,
        4,
        |s, d| unsafe {
            let p = vld4q_u8(s);
            vst1q_u8(d, weighted_gray(p.2, p.1, p.0));
        },
        generic::xrgb8888_to_gray,
    );
}

/// NEON twin of [`generic::yuyv_to_gray`]: de-interleaves 16 pixels per step.
pub fn yuyv_to_gray(src: &[u8], dst: &mut [u8]) {
    // SAFETY: 32 readable and 16 writable bytes per block.
    blocks(
        src,
        dst,
        2,
        |s, d| unsafe { vst1q_u8(d, vld2q_u8(s).0) },
        generic::yuyv_to_gray,
    );
}

/// NEON twin of [`generic::uyvy_to_gray`].
pub fn uyvy_to_gray(src: &[u8], dst: &mut [u8]) {
    // SAFETY: 32 readable and 16 writable bytes per block.
    blocks(
        src,
        dst,
        2,
        |s, d| unsafe { vst1q_u8(d, vld2q_u8(s).1) },
        generic::uyvy_to_gray,
    );
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Same output as the scalar twin for `bpp`-byte pixels, on random data,
    /// lengths (0 to 200 pixels: tails and blocks) and start offsets.
    fn same(
        neon: fn(&[u8], &mut [u8]),
        scalar: fn(&[u8], &mut [u8]),
        bpp: usize,
        px: &[u8],
        offset: usize,
    ) -> Result<(), TestCaseError> {
        let src = &px[offset.min(px.len())..];
        let n = src.len() / bpp;
        let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
        neon(src, &mut a);
        scalar(src, &mut b);
        prop_assert_eq!(a, b);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn rgb24(px in proptest::collection::vec(any::<u8>(), 0..600), off in 0usize..4) {
            same(rgb24_to_gray, generic::rgb24_to_gray, 3, &px, off)?;
        }

        #[test]
        fn bgr24(px in proptest::collection::vec(any::<u8>(), 0..600), off in 0usize..4) {
            same(bgr24_to_gray, generic::bgr24_to_gray, 3, &px, off)?;
        }

        #[test]
        fn xrgb8888(px in proptest::collection::vec(any::<u8>(), 0..800), off in 0usize..4) {
            same(xrgb8888_to_gray, generic::xrgb8888_to_gray, 4, &px, off)?;
        }

        #[test]
        fn yuyv(px in proptest::collection::vec(any::<u8>(), 0..400), off in 0usize..4) {
            same(yuyv_to_gray, generic::yuyv_to_gray, 2, &px, off)?;
        }

        #[test]
        fn uyvy(px in proptest::collection::vec(any::<u8>(), 0..400), off in 0usize..4) {
            same(uyvy_to_gray, generic::uyvy_to_gray, 2, &px, off)?;
        }
    }
}
