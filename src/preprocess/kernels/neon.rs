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
    tail: impl FnOnce(&[u8], &mut [u8]),
) {
    let n = dst.len().min(src.len() / bpp);
    let body = n - n % 16;
    let mut i = 0;
    while i < body {
        // Pointer arithmetic, not slice indexing: whether the optimizer
        // proves the index checks redundant varied with unrelated changes
        // elsewhere in the crate (+7% instructions for window_u16 once).
        // SAFETY: i + 16 <= body <= n and bpp * n <= src.len(), so both
        // offsets, and the blocks `step` reads and writes, stay in bounds.
        let (s, d) = unsafe { (src.as_ptr().add(bpp * i), dst.as_mut_ptr().add(i)) };
        step(s, d);
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

/// The four 64-byte quarters of a 256-entry table, as TBL operands.
#[inline(always)]
fn table_quarters(lut: *const u8) -> [uint8x16x4_t; 4] {
    // SAFETY: callers pass a pointer to 256 readable bytes.
    unsafe {
        let q = |o: usize| {
            uint8x16x4_t(
                vld1q_u8(lut.add(o)),
                vld1q_u8(lut.add(o + 16)),
                vld1q_u8(lut.add(o + 32)),
                vld1q_u8(lut.add(o + 48)),
            )
        };
        [q(0), q(64), q(128), q(192)]
    }
}

/// 16 entries of a 256-entry table: one TBL per 64-byte quarter, with the
/// index moved down by 64 each time; TBL reads 0 for an index outside its
/// quarter, so OR-ing the four gives exactly the entry.
#[inline(always)]
fn lookup16(t: &[uint8x16x4_t; 4], v: uint8x16_t) -> uint8x16_t {
    // SAFETY: register-only arithmetic.
    unsafe {
        let q = vdupq_n_u8(64);
        let (v1, v2, v3) = (vsubq_u8(v, q), vsubq_u8(v, vdupq_n_u8(128)), vaddq_u8(v, q));
        vorrq_u8(
            vorrq_u8(vqtbl4q_u8(t[0], v), vqtbl4q_u8(t[1], v1)),
            vorrq_u8(vqtbl4q_u8(t[2], v2), vqtbl4q_u8(t[3], v3)),
        )
    }
}

/// NEON twin of [`generic::lut_in_place`].
pub fn lut_in_place(data: &mut [u8], lut: &[u8; 256]) {
    let body = data.len() - data.len() % 16;
    let t = table_quarters(lut.as_ptr());
    let p = data.as_mut_ptr();
    let mut i = 0;
    while i < body {
        // SAFETY: i + 16 <= body <= data.len().
        unsafe { vst1q_u8(p.add(i), lookup16(&t, vld1q_u8(p.add(i)))) };
        i += 16;
    }
    generic::lut_in_place(&mut data[body..], lut);
}

/// NEON twin of [`generic::lut_to_i8`].
pub fn lut_to_i8(src: &[u8], lut: &[i8; 256], dst: &mut [i8]) {
    let n = src.len().min(dst.len());
    let body = n - n % 16;
    let t = table_quarters(lut.as_ptr().cast());
    let mut i = 0;
    while i < body {
        // SAFETY: i + 16 <= body <= both lengths; i8 and u8 share a layout.
        unsafe {
            let v = lookup16(&t, vld1q_u8(src.as_ptr().add(i)));
            vst1q_s8(dst.as_mut_ptr().add(i), vreinterpretq_s8_u8(v));
        }
        i += 16;
    }
    generic::lut_to_i8(&src[body..n], lut, &mut dst[body..n]);
}

/// NEON twin of [`generic::histogram_add`]. Counting is a scatter, which NEON
/// cannot do; what it buys is breaking the chain of increments to one bin
/// (the dark background of every radiograph and sector scan): 16 pixels per
/// load, lanes spread over four sub-histograms, merged with vector adds.
pub fn histogram_add(src: &[u8], hist: &mut [u32; 256]) {
    if src.len() < 1024 {
        return generic::histogram_add(src, hist);
    }
    let mut sub = [[0u32; 256]; 4];
    let body = src.len() - src.len() % 16;
    let mut i = 0;
    while i < body {
        // SAFETY: i + 16 <= body <= src.len().
        let v = unsafe { vld1q_u8(src.as_ptr().add(i)) };
        macro_rules! count {
            ($($lane:literal => $s:literal),*) => {
                // SAFETY: constant lanes within the 16 of the vector.
                $(sub[$s][usize::from(unsafe { vgetq_lane_u8::<$lane>(v) })] += 1;)*
            };
        }
        count!(0 => 0, 1 => 1, 2 => 2, 3 => 3, 4 => 0, 5 => 1, 6 => 2, 7 => 3,
               8 => 0, 9 => 1, 10 => 2, 11 => 3, 12 => 0, 13 => 1, 14 => 2, 15 => 3);
        i += 16;
    }
    for b in (0..256).step_by(4) {
        // SAFETY: b + 4 <= 256 for every table.
        unsafe {
            let s01 = vaddq_u32(
                vld1q_u32(sub[0][b..].as_ptr()),
                vld1q_u32(sub[1][b..].as_ptr()),
            );
            let s23 = vaddq_u32(
                vld1q_u32(sub[2][b..].as_ptr()),
                vld1q_u32(sub[3][b..].as_ptr()),
            );
            let h = hist[b..].as_mut_ptr();
            vst1q_u32(h, vaddq_u32(vld1q_u32(h), vaddq_u32(s01, s23)));
        }
    }
    generic::histogram_add(&src[body..], hist);
}

/// NEON twin of [`generic::window_u16`]: 16 samples per step, clamped and
/// offset in u16, scaled in u32 (`vmla`, then a saturating subtract and a
/// variable right shift), narrowed with saturation (the `min(255)`).
pub fn window_u16(src: &[u8], voi: &generic::VoiFixed, dst: &mut [u8]) {
    let (lo, hi, m, add, sub, shift, invert) = voi.parts();
    // SAFETY: register-only set-up.
    let (vlo, vhi, vm, vadd, vsub, vshift, vinv) = unsafe {
        (
            vdupq_n_u16(lo),
            vdupq_n_u16(hi),
            vdupq_n_u32(m),
            vdupq_n_u32(add),
            vdupq_n_u32(sub),
            vdupq_n_s32(-(shift as i32)),
            vdupq_n_u8(if invert { 0xff } else { 0 }),
        )
    };
    blocks(
        src,
        dst,
        2,
        // SAFETY: `blocks` passes pointers with 32 readable and 16 writable
        // bytes. Lanes are little-endian, as the samples.
        |s, d| unsafe {
            let eight = |p: *const u8| {
                let x = vreinterpretq_u16_u8(vld1q_u8(p));
                let d = vsubq_u16(vminq_u16(vmaxq_u16(x, vlo), vhi), vlo);
                let scale = |d: uint32x4_t| {
                    let y = vqsubq_u32(vmlaq_u32(vadd, d, vm), vsub);
                    vqmovn_u32(vshlq_u32(y, vshift))
                };
                let lo = scale(vmovl_u16(vget_low_u16(d)));
                let hi = scale(vmovl_high_u16(d));
                vqmovn_u16(vcombine_u16(lo, hi))
            };
            let y = vcombine_u8(eight(s), eight(s.add(16)));
            vst1q_u8(d, veorq_u8(y, vinv));
        },
        |s, d| generic::window_u16(s, voi, d),
    );
}

/// NEON twin of [`generic::minmax_u16`]: eight lanes of running minimum and
/// maximum, reduced across lanes at the end.
pub fn minmax_u16(src: &[u8], acc: (u16, u16)) -> (u16, u16) {
    let body = src.len() - src.len() % 16;
    if body == 0 {
        return generic::minmax_u16(src, acc);
    }
    // SAFETY: every load reads 16 bytes at i with i + 16 <= body <= src.len().
    let (lo, hi) = unsafe {
        let (mut lo, mut hi) = (vdupq_n_u16(acc.0), vdupq_n_u16(acc.1));
        let mut i = 0;
        while i < body {
            let x = vreinterpretq_u16_u8(vld1q_u8(src.as_ptr().add(i)));
            lo = vminq_u16(lo, x);
            hi = vmaxq_u16(hi, x);
            i += 16;
        }
        (vminvq_u16(lo), vmaxvq_u16(hi))
    };
    generic::minmax_u16(&src[body..], (lo, hi))
}

/// NEON twin of [`generic::resize_vertical`]: 16 columns per step, widening
/// multiply-accumulate into four u32x4, then a rounding narrowing shift
/// (`vrshrn #6` is exactly `(acc + 32) >> 6`).
pub fn resize_vertical(src: &[u8], stride: usize, weights: &[u32], out: &mut [u16]) {
    let n = out.len();
    let Some(last) = weights.len().checked_sub(1) else {
        return generic::resize_vertical(src, stride, weights, out);
    };
    // The scalar twin would panic on the same short input; fail the same way
    // before any unchecked load.
    assert!(
        last * stride + n <= src.len(),
        "resize rows outside the source"
    );
    let body = n - n % 16;
    let mut x = 0;
    while x < body {
        // SAFETY: every load reads 16 bytes at k*stride + x with k <= last and
        // x + 16 <= n, inside src by the assert; stores write out[x..x + 16].
        unsafe {
            let mut a = [vdupq_n_u32(0); 4];
            for (k, &w) in weights.iter().enumerate() {
                let p = vld1q_u8(src.as_ptr().add(k * stride + x));
                let w = w as u16;
                let (lo, hi) = (vmovl_u8(vget_low_u8(p)), vmovl_high_u8(p));
                a[0] = vmlal_n_u16(a[0], vget_low_u16(lo), w);
                a[1] = vmlal_n_u16(a[1], vget_high_u16(lo), w);
                a[2] = vmlal_n_u16(a[2], vget_low_u16(hi), w);
                a[3] = vmlal_n_u16(a[3], vget_high_u16(hi), w);
            }
            let o = out.as_mut_ptr().add(x);
            vst1q_u16(
                o,
                vcombine_u16(vrshrn_n_u32::<6>(a[0]), vrshrn_n_u32::<6>(a[1])),
            );
            vst1q_u16(
                o.add(8),
                vcombine_u16(vrshrn_n_u32::<6>(a[2]), vrshrn_n_u32::<6>(a[3])),
            );
        }
        x += 16;
    }
    generic::resize_vertical(&src[body..], stride, weights, &mut out[body..]);
}

/// NEON twin of [`generic::clahe_row`]: the four table reads per pixel are
/// scalar (a gather across four tables); the blend runs 8 pixels per step in
/// u32 (per row of tiles) and u64 (between rows), rounded half to even as
/// [`generic::round_half_even_32`].
pub fn clahe_row(
    row: &mut [u8],
    cols: generic::ClaheTaps<'_>,
    top: &[[u8; 256]],
    bottom: &[[u8; 256]],
    w2y: u32,
) {
    let n = row.len();
    let body = n - n % 8;
    let one = generic::CLAHE_ONE;
    let mut x = 0;
    while x < body {
        let mut g = [[0u32; 8]; 4];
        for i in 0..8 {
            let s = usize::from(row[x + i]);
            let (t1, t2) = (cols.t1[x + i] as usize, cols.t2[x + i] as usize);
            g[0][i] = u32::from(top[t1][s]);
            g[1][i] = u32::from(top[t2][s]);
            g[2][i] = u32::from(bottom[t1][s]);
            g[3][i] = u32::from(bottom[t2][s]);
        }
        let w2 = &cols.w2[x..x + 8];
        // SAFETY: loads of 4 u32 from 8-element arrays and slices at 0 and 4;
        // the store writes row[x..x + 8] with x + 8 <= n.
        unsafe {
            let half = |a: &[u32; 8], o: usize| vld1q_u32(a[o..].as_ptr());
            let mut out = [vdup_n_u16(0); 2];
            for (h, o) in out.iter_mut().zip([0usize, 4]) {
                let w2x = vld1q_u32(w2[o..].as_ptr());
                let w1x = vsubq_u32(vdupq_n_u32(one), w2x);
                let upper = vmlaq_u32(vmulq_u32(half(&g[0], o), w1x), half(&g[1], o), w2x);
                let lower = vmlaq_u32(vmulq_u32(half(&g[2], o), w1x), half(&g[3], o), w2x);
                let (wy1, wy2) = (vdup_n_u32(one - w2y), vdup_n_u32(w2y));
                let round = |b: uint64x2_t| {
                    let odd = vandq_u64(vshrq_n_u64::<32>(b), vdupq_n_u64(1));
                    let b = vaddq_u64(vaddq_u64(b, vdupq_n_u64((1 << 31) - 1)), odd);
                    vmovn_u64(vshrq_n_u64::<32>(b))
                };
                let lo = vmlal_u32(
                    vmull_u32(vget_low_u32(upper), wy1),
                    vget_low_u32(lower),
                    wy2,
                );
                let hi = vmlal_u32(
                    vmull_u32(vget_high_u32(upper), wy1),
                    vget_high_u32(lower),
                    wy2,
                );
                *h = vmovn_u32(vcombine_u32(round(lo), round(hi)));
            }
            vst1_u8(
                row.as_mut_ptr().add(x),
                vmovn_u16(vcombine_u16(out[0], out[1])),
            );
        }
        x += 8;
    }
    generic::clahe_row(&mut row[body..], cols.skip(body), top, bottom, w2y);
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

        #[test]
        fn lut_in_place_and_to_i8(
            px in proptest::collection::vec(any::<u8>(), 0..300),
            table in proptest::collection::vec(any::<u8>(), 256),
            off in 0usize..16,
        ) {
            let lut: [u8; 256] = table.try_into().unwrap();
            let src = &px[off.min(px.len())..];
            let (mut a, mut b) = (src.to_vec(), src.to_vec());
            lut_in_place(&mut a, &lut);
            generic::lut_in_place(&mut b, &lut);
            prop_assert_eq!(&a, &b);
            let lut8 = lut.map(|v| v as i8);
            let (mut a, mut b) = (vec![0i8; src.len()], vec![0i8; src.len()]);
            lut_to_i8(src, &lut8, &mut a);
            generic::lut_to_i8(src, &lut8, &mut b);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn histogram(
            px in proptest::collection::vec(any::<u8>(), 0..5000),
            flat in any::<bool>(),
            off in 0usize..16,
        ) {
            // A flat image is the worst case for one histogram: every count hits one bin.
            let px = if flat { vec![px.first().copied().unwrap_or(0); px.len()] } else { px };
            let src = &px[off.min(px.len())..];
            let (mut a, mut b) = ([7u32; 256], [7u32; 256]);
            histogram_add(src, &mut a);
            generic::histogram_add(src, &mut b);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn voi_window(
            px in proptest::collection::vec(any::<u8>(), 0..400),
            off in 0usize..4,
            center in -70000.0f64..140000.0,
            width in prop_oneof![0.0f64..4.0, 1.0f64..300.0, 1.0f64..140000.0],
            invert in any::<bool>(),
            extremes in any::<bool>(),
        ) {
            // Samples at the ends of the range exercise clamping and saturation.
            let px: Vec<u8> = if extremes {
                px.iter().map(|&b| if b & 1 == 0 { 0 } else { 0xff }).collect()
            } else {
                px
            };
            let voi = generic::VoiFixed::new(center, width, invert);
            let src = &px[off.min(px.len())..];
            let n = src.len() / 2;
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            window_u16(src, &voi, &mut a);
            generic::window_u16(src, &voi, &mut b);
            prop_assert_eq!(a, b);
            let start = (u16::MAX, 0);
            prop_assert_eq!(minmax_u16(src, start), generic::minmax_u16(src, start));
        }

        #[test]
        fn resize_vertical_pass(
            width in 1usize..70,
            pad in 0usize..20,
            cuts in proptest::collection::vec(0u32..=16384, 0..12),
            seed in any::<u64>(),
        ) {
            // Q14 weights that sum to 2^14, from random cut points; padded stride.
            let mut cuts = cuts;
            cuts.extend([0, 16384]);
            cuts.sort_unstable();
            let weights: Vec<u32> = cuts.windows(2).map(|c| c[1] - c[0]).collect();
            let stride = width + pad;
            let src: Vec<u8> = (0..stride * weights.len())
                .map(|i| (seed.wrapping_mul(i as u64 + 1) >> 29) as u8)
                .collect();
            let (mut a, mut b) = (vec![0u16; width], vec![0u16; width]);
            resize_vertical(&src, stride, &weights, &mut a);
            generic::resize_vertical(&src, stride, &weights, &mut b);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn clahe_blend_row(
            row in proptest::collection::vec(any::<u8>(), 1..100),
            tiles in proptest::collection::vec(any::<u8>(), 256 * 6),
            w2y in 0u32..65536,
            seed in any::<u64>(),
        ) {
            let luts: Vec<[u8; 256]> = tiles.chunks_exact(256).map(|c| c.try_into().unwrap()).collect();
            let n = row.len();
            let r = |i: usize, m: u64| (seed.wrapping_mul(i as u64 * 2 + 1).rotate_left(i as u32 % 64) % m) as u32;
            let t1: Vec<u32> = (0..n).map(|i| r(i, 3)).collect();
            let t2: Vec<u32> = (0..n).map(|i| r(i + 7, 3)).collect();
            // Weights at both ends of the range occur at tile centres and edges.
            let w2: Vec<u32> = (0..n).map(|i| match i % 5 { 0 => 0, 1 => 65535, _ => r(i + 3, 65536) }).collect();
            let cols = generic::ClaheTaps { t1: &t1, t2: &t2, w2: &w2 };
            let (mut a, mut b) = (row.clone(), row);
            clahe_row(&mut a, cols, &luts[..3], &luts[3..], w2y);
            generic::clahe_row(&mut b, cols, &luts[..3], &luts[3..], w2y);
            prop_assert_eq!(a, b);
        }
    }
}
