//! NEON (Advanced SIMD) kernels for aarch64. Each has a scalar twin in
//! [`super::generic`] and a property test proving identical output on random
//! lengths and offsets (so tails and unaligned starts are covered).
#![allow(unsafe_code)]

use std::arch::aarch64::*;

use super::generic;

/// 16 gray values from 16 R, G, B values, exactly as
/// [`generic::rgb24_to_gray`]'s `(R*wr + G*wg + B*wb + 2^13) >> 14`, in
/// 16-bit lanes: each Q14 weight is split into its high and low bytes,
/// `w = 256*h + l`, so `A = R*hr + G*hg + B*hb` and `B = R*lr + G*lg + B*lb`
/// both fit 16 bits (the low bytes sum to 256, so B <= 255 * 256), and
///
/// `(256*A + B + 2^13) >> 14 == (A + (B >> 8) + 32) >> 6`
///
/// because the low byte of B cannot carry past a multiple of 2^14 once A
/// and B's high byte are in units of 2^8. Two widening multiplies and two
/// multiply-adds per half, one shift-accumulate and one rounding narrow:
/// 16 arithmetic instructions for 16 pixels, where 32-bit lanes took 30.
#[inline(always)]
fn weighted_gray(r: uint8x16_t, g: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
    const fn hi(w: u32) -> u8 {
        (w >> 8) as u8
    }
    const fn lo(w: u32) -> u8 {
        (w & 0xff) as u8
    }
    const _: () = assert!(
        lo(generic::GRAY_R_Q14) as u32
            + lo(generic::GRAY_G_Q14) as u32
            + lo(generic::GRAY_B_Q14) as u32
            <= 256
            && generic::GRAY_R_Q14 + generic::GRAY_G_Q14 + generic::GRAY_B_Q14 <= 1 << 14,
        "the split-weight sums must fit 16 bits"
    );
    // SAFETY: register-only arithmetic; NEON is part of the aarch64 baseline.
    unsafe {
        let (hr2, hg2, hb2) = (
            vdupq_n_u8(hi(generic::GRAY_R_Q14)),
            vdupq_n_u8(hi(generic::GRAY_G_Q14)),
            vdupq_n_u8(hi(generic::GRAY_B_Q14)),
        );
        let (lr2, lg2, lb2) = (
            vdupq_n_u8(lo(generic::GRAY_R_Q14)),
            vdupq_n_u8(lo(generic::GRAY_G_Q14)),
            vdupq_n_u8(lo(generic::GRAY_B_Q14)),
        );
        let (hr, hg, hb) = (vget_low_u8(hr2), vget_low_u8(hg2), vget_low_u8(hb2));
        let (lr, lg, lb) = (vget_low_u8(lr2), vget_low_u8(lg2), vget_low_u8(lb2));
        // Low eight pixels.
        let a = vmlal_u8(
            vmlal_u8(vmull_u8(vget_low_u8(r), hr), vget_low_u8(g), hg),
            vget_low_u8(b),
            hb,
        );
        let l = vmlal_u8(
            vmlal_u8(vmull_u8(vget_low_u8(r), lr), vget_low_u8(g), lg),
            vget_low_u8(b),
            lb,
        );
        let low = vrshrn_n_u16::<6>(vsraq_n_u16::<8>(a, l));
        // High eight.
        let a = vmlal_high_u8(vmlal_high_u8(vmull_high_u8(r, hr2), g, hg2), b, hb2);
        let l = vmlal_high_u8(vmlal_high_u8(vmull_high_u8(r, lr2), g, lg2), b, lb2);
        vrshrn_high_n_u16::<6>(low, vsraq_n_u16::<8>(a, l))
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
        // Unzips rather than `vld4q_u8`: with the X bytes unused, LLVM
        // turned the four-way load into lane-by-lane moves (49 instructions
        // a block, no better than the scalar twin).
        |s, d| unsafe {
            let q = vld1q_u8_x4(s);
            let (br, gx) = (
                (vuzp1q_u8(q.0, q.1), vuzp1q_u8(q.2, q.3)),
                (vuzp2q_u8(q.0, q.1), vuzp2q_u8(q.2, q.3)),
            );
            let (b, r) = (vuzp1q_u8(br.0, br.1), vuzp2q_u8(br.0, br.1));
            let g = vuzp1q_u8(gx.0, gx.1);
            vst1q_u8(d, weighted_gray(r, g, b));
        },
        generic::xrgb8888_to_gray,
    );
}

/// NEON twin of [`generic::rgb_to_xrgb8888`]: 16 pixels per step, a
/// three-way de-interleaving load and a four-way interleaving store.
pub fn rgb_to_xrgb8888(rgb: &[u8], out: &mut [u8]) {
    let n = (rgb.len() / 3).min(out.len() / 4);
    let body = n - n % 16;
    let mut i = 0;
    while i < body {
        // SAFETY: reads rgb[3i..3i + 48] and writes out[4i..4i + 64], both
        // inside since i + 16 <= body <= n.
        unsafe {
            let p = vld3q_u8(rgb.as_ptr().add(3 * i));
            let x = uint8x16x4_t(p.2, p.1, p.0, vdupq_n_u8(0xFF));
            vst4q_u8(out.as_mut_ptr().add(4 * i), x);
        }
        i += 16;
    }
    generic::rgb_to_xrgb8888(&rgb[3 * body..], &mut out[4 * body..]);
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

/// NEON twin of [`generic::minmax_u16`]: 64 bytes per step in one
/// four-register load, two sets of eight-lane running minimum and maximum
/// (halving the dependency chains), reduced across lanes at the end.
pub fn minmax_u16(src: &[u8], acc: (u16, u16)) -> (u16, u16) {
    let body = src.len() - src.len() % 64;
    if body == 0 {
        return generic::minmax_u16(src, acc);
    }
    // SAFETY: every load reads 64 bytes at i with i + 64 <= body <= src.len().
    let (lo, hi) = unsafe {
        let (mut lo0, mut hi0) = (vdupq_n_u16(acc.0), vdupq_n_u16(acc.1));
        let (mut lo1, mut hi1) = (lo0, hi0);
        let mut p = src.as_ptr();
        let end = p.add(body);
        while p < end {
            let x = vld1q_u8_x4(p);
            let (a, b, c, d) = (
                vreinterpretq_u16_u8(x.0),
                vreinterpretq_u16_u8(x.1),
                vreinterpretq_u16_u8(x.2),
                vreinterpretq_u16_u8(x.3),
            );
            lo0 = vminq_u16(lo0, vminq_u16(a, b));
            hi0 = vmaxq_u16(hi0, vmaxq_u16(a, b));
            lo1 = vminq_u16(lo1, vminq_u16(c, d));
            hi1 = vmaxq_u16(hi1, vmaxq_u16(c, d));
            p = p.add(64);
        }
        (
            vminvq_u16(vminq_u16(lo0, lo1)),
            vmaxvq_u16(vmaxq_u16(hi0, hi1)),
        )
    };
    generic::minmax_u16(&src[body..], (lo, hi))
}

/// NEON twin of [`generic::resize_vertical`]: 32 columns per step (then 16),
/// each tap one weight broadcast and widening multiply-accumulates into
/// u32x4 accumulators held in registers, then a rounding narrowing shift
/// (`vrshrn #6` is exactly `(acc + 32) >> 6`). Thirty-two columns per step
/// halve the per-tap loop and weight overhead of sixteen.
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
    /// `L` 16-column lanes of accumulators over every tap, stored at `x`.
    ///
    /// SAFETY (callers): x + 16 * L <= n, and every tap's row holds 16 * L
    /// bytes from x (the assert above).
    #[inline(always)]
    unsafe fn columns<const L: usize>(
        src: &[u8],
        stride: usize,
        weights: &[u32],
        out: &mut [u16],
        x: usize,
    ) {
        // SAFETY: loads read 16 bytes at k*stride + x + 16*l < src.len();
        // stores write out[x..x + 16 * L], both by the caller's bounds.
        unsafe {
            let mut a = [[vdupq_n_u32(0); 4]; L];
            let mut row = src.as_ptr().add(x);
            for &w in weights {
                let w = w as u16;
                for (l, a) in a.iter_mut().enumerate() {
                    let p = vld1q_u8(row.add(16 * l));
                    let (lo, hi) = (vmovl_u8(vget_low_u8(p)), vmovl_high_u8(p));
                    a[0] = vmlal_n_u16(a[0], vget_low_u16(lo), w);
                    a[1] = vmlal_high_n_u16(a[1], lo, w);
                    a[2] = vmlal_n_u16(a[2], vget_low_u16(hi), w);
                    a[3] = vmlal_high_n_u16(a[3], hi, w);
                }
                row = row.add(stride);
            }
            let o = out.as_mut_ptr().add(x);
            for (l, a) in a.iter().enumerate() {
                vst1q_u16(
                    o.add(16 * l),
                    vrshrn_high_n_u32::<6>(vrshrn_n_u32::<6>(a[0]), a[1]),
                );
                vst1q_u16(
                    o.add(16 * l + 8),
                    vrshrn_high_n_u32::<6>(vrshrn_n_u32::<6>(a[2]), a[3]),
                );
            }
        }
    }
    let mut x = 0;
    while x + 32 <= n {
        // SAFETY: x + 32 <= n.
        unsafe { columns::<2>(src, stride, weights, out, x) };
        x += 32;
    }
    if x + 16 <= n {
        // SAFETY: x + 16 <= n.
        unsafe { columns::<1>(src, stride, weights, out, x) };
        x += 16;
    }
    generic::resize_vertical(&src[x..], stride, weights, &mut out[x..]);
}

/// NEON twin of [`generic::resize_horizontal`]: eight outputs at a time
/// where their taps fit a 32-value window of the row
/// ([`generic::HorizontalTaps::new`] lays them out): the window in one
/// four-register load, then per tap one table lookup (TBL over the 64
/// bytes) for the eight values, one load of their weights and two widening
/// multiply-accumulates; a rounding shift by 22 and two saturating narrows
/// give the bytes (`(sum + 2^21) >> 22`, at most 255, as the twin).
/// Groups without a window, and the last outputs, are summed as the twin.
pub fn resize_horizontal(row: &[u16], taps: &generic::HorizontalTaps, out: &mut [u8]) {
    match taps.n {
        1 => windowed::<1>(row, taps, out),
        2 => windowed::<2>(row, taps, out),
        3 => windowed::<3>(row, taps, out),
        4 => windowed::<4>(row, taps, out),
        5 => windowed::<5>(row, taps, out),
        6 => windowed::<6>(row, taps, out),
        // Seven taps or more is a shrink by over six: such a group's taps
        // span more than the window anyway.
        _ => generic::resize_horizontal(row, taps, out),
    }
}

/// [`resize_horizontal`] with `N` taps per output, unrolled.
#[inline(always)]
fn windowed<const N: usize>(row: &[u16], taps: &generic::HorizontalTaps, out: &mut [u8]) {
    let outs = out.len().min(taps.start.len());
    let groups = (outs / 8)
        .min(taps.group_base.len())
        .min(taps.group_idx.len() / N)
        .min(taps.group_w.len() / N);
    let (idx, w) = (taps.group_idx.as_ptr(), taps.group_w.as_ptr());
    for (g, &base) in taps.group_base[..groups].iter().enumerate() {
        if base == generic::NO_WINDOW || base + generic::WINDOW > row.len() {
            taps.sum_range(row, g * 8..g * 8 + 8, out);
            continue;
        }
        // SAFETY: the window reads row[base..base + 32] (checked above);
        // the group's N index and weight vectors are at g*N.. within their
        // tables (groups is bounded by both); indices are below 64 by
        // construction (TBL yields 0 for any that are not); the store
        // writes out[g*8..g*8 + 8] with g*8 + 8 <= outs.
        unsafe {
            let win = vld1q_u8_x4(row.as_ptr().add(base).cast::<u8>());
            let (idx, w) = (idx.add(g * N), w.add(g * N));
            let (mut lo, mut hi) = (vdupq_n_u32(0), vdupq_n_u32(0));
            for i in 0..N {
                let v = vreinterpretq_u16_u8(vqtbl4q_u8(win, vld1q_u8((*idx.add(i)).as_ptr())));
                let w = vld1q_u16((*w.add(i)).as_ptr());
                lo = vmlal_u16(lo, vget_low_u16(v), vget_low_u16(w));
                hi = vmlal_high_u16(hi, v, w);
            }
            let bytes = vqmovn_u16(vcombine_u16(
                vqmovn_u32(vrshrq_n_u32::<22>(lo)),
                vqmovn_u32(vrshrq_n_u32::<22>(hi)),
            ));
            vst1_u8(out.as_mut_ptr().add(g * 8), bytes);
        }
    }
    taps.sum_range(row, groups * 8..outs, out);
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
        fn minmax(
            px in proptest::collection::vec(any::<u8>(), 0..400),
            off in 0usize..4,
            extremes in any::<bool>(),
        ) {
            // Samples at the ends of the range.
            let px: Vec<u8> = if extremes {
                px.iter().map(|&b| if b & 1 == 0 { 0 } else { 0xff }).collect()
            } else {
                px
            };
            let src = &px[off.min(px.len())..];
            for start in [(u16::MAX, 0), (0, u16::MAX), (300, 301)] {
                prop_assert_eq!(minmax_u16(src, start), generic::minmax_u16(src, start));
            }
        }

        #[test]
        fn canvas_to_xrgb8888(px in proptest::collection::vec(any::<u8>(), 0..600), off in 0usize..4) {
            let src = &px[off.min(px.len())..];
            let n = src.len() / 3;
            let (mut a, mut b) = (vec![7u8; 4 * n + 3], vec![7u8; 4 * n + 3]);
            rgb_to_xrgb8888(src, &mut a);
            generic::rgb_to_xrgb8888(src, &mut b);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn resize_horizontal_pass(
            n in 1usize..8,
            row_len in 1usize..120,
            outs in 0usize..70,
            spread in 1usize..6,
            seed in any::<u64>(),
        ) {
            let (row, taps) = generic::random_horizontal(n, row_len, outs, spread, seed);
            let (mut a, mut b) = (vec![0u8; outs], vec![0u8; outs]);
            resize_horizontal(&row, &taps, &mut a);
            generic::resize_horizontal(&row, &taps, &mut b);
            prop_assert_eq!(a, b);
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
    }
}
