//! Scalar reference kernels: the specification the SIMD versions must match bit
//! for bit. Integer arithmetic only.

/// BT.601 luma weights in Q14, as OpenCV's `cvtColor(RGB2GRAY)` uses them
/// (0.299, 0.587, 0.114 scaled by 2^14 and rounded so they sum to 2^14).
pub const GRAY_R_Q14: u32 = 4899;
pub const GRAY_G_Q14: u32 = 9617;
pub const GRAY_B_Q14: u32 = 1868;

/// Packed R, G, B to gray: `(R*4899 + G*9617 + B*1868 + 2^13) >> 14`.
/// `src` holds `3 * dst.len()` bytes.
#[inline]
pub fn rgb24_to_gray(src: &[u8], dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(3)) {
        let y = u32::from(p[0]) * GRAY_R_Q14
            + u32::from(p[1]) * GRAY_G_Q14
            + u32::from(p[2]) * GRAY_B_Q14;
        *d = ((y + (1 << 13)) >> 14) as u8;
    }
}

/// Packed B, G, R to gray with the same weights. `src` holds `3 * dst.len()` bytes.
#[inline]
pub fn bgr24_to_gray(src: &[u8], dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(3)) {
        let y = u32::from(p[2]) * GRAY_R_Q14
            + u32::from(p[1]) * GRAY_G_Q14
            + u32::from(p[0]) * GRAY_B_Q14;
        *d = ((y + (1 << 13)) >> 14) as u8;
    }
}

/// Packed R, G, B to XRGB8888 (bytes B, G, R, 0xFF): the canvas to a
/// 32-bit framebuffer's row. As many pixels as both hold.
#[inline]
pub fn rgb_to_xrgb8888(rgb: &[u8], out: &mut [u8]) {
    for (o, p) in out.chunks_exact_mut(4).zip(rgb.chunks_exact(3)) {
        o.copy_from_slice(&[p[2], p[1], p[0], 0xFF]);
    }
}

/// XRGB8888 (bytes B, G, R, X) to gray. `src` holds `4 * dst.len()` bytes.
#[inline]
pub fn xrgb8888_to_gray(src: &[u8], dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(4)) {
        let y = u32::from(p[2]) * GRAY_R_Q14
            + u32::from(p[1]) * GRAY_G_Q14
            + u32::from(p[0]) * GRAY_B_Q14;
        *d = ((y + (1 << 13)) >> 14) as u8;
    }
}

/// UYVY (U Y0 V Y1) to gray: the luma bytes. `src` holds `2 * dst.len()` bytes.
#[inline]
pub fn uyvy_to_gray(src: &[u8], dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = p[1];
    }
}

/// YUYV (Y0 U Y1 V) to gray: the luma bytes. `src` holds `2 * dst.len()` bytes.
#[inline]
pub fn yuyv_to_gray(src: &[u8], dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = p[0];
    }
}

/// A DICOM linear VOI window (PS3.3 C.11.2.1.2) in fixed point, for 16-bit
/// samples: `y = min(255, ((clamp(x, lo, hi) - lo) * m + add).saturating_sub(sub) >> shift)`,
/// then `255 - y` for MONOCHROME1. [`VoiFixed::new`] picks the constants so
/// that the sum never exceeds 32 bits and `y` is the DICOM value rounded to
/// nearest, within one level (the module tests bound it over every input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoiFixed {
    lo: u16,
    hi: u16,
    m: u32,
    add: u32,
    sub: u32,
    shift: u32,
    invert: bool,
}

impl VoiFixed {
    /// The window of `center` and `width` (DICOM Window Center / Width).
    /// Widths below 1 are taken as 1, a threshold at `center - 0.5`.
    pub fn new(center: f64, width: f64, invert: bool) -> VoiFixed {
        let width = if width.is_finite() {
            width.max(1.0)
        } else {
            1.0
        };
        let center = if center.is_finite() { center } else { 0.0 };
        // Linear part: y = (x - lo_real) * 255 / (width - 1), clamped to 0..=255.
        let lo_real = center - 0.5 - (width - 1.0) / 2.0;
        let lo = lo_real.floor().clamp(0.0, 65535.0);
        let frac = lo_real - lo;
        let (span, slope) = if width > 1.0 {
            let hi = (lo_real + width - 1.0).ceil().clamp(lo, 65535.0);
            // Slopes above 255 * 256 (width - 1 below 1/256) are taken as
            // that: a ramp narrower than any step between integer samples.
            (hi - lo, (255.0 / (width - 1.0)).min(255.0 * 256.0))
        } else {
            // A threshold: x <= lo_real is 0, above it 255. With integer x
            // and lo = floor(lo_real) that is d = 0 against d >= 1.
            let step = if lo_real < lo { 0.0 } else { 1.0 };
            ((65535.0 - lo).min(1.0), 255.0 * step)
        };
        let offset = if width > 1.0 {
            0.5 - frac * slope
        } else if lo_real < lo {
            255.5 // everything is above the threshold
        } else {
            0.5
        };
        let mut shift = 24;
        loop {
            let one = f64::from(1u32 << shift);
            let m = (slope * one).round();
            // Capping `add` at 256 changes nothing: the result is 255 either way.
            let bias = (offset * one).round().min(256.0 * one);
            let (add, sub) = if bias >= 0.0 {
                (bias, 0.0)
            } else {
                (0.0, (-bias).min(f64::from(u32::MAX)))
            };
            if span * m + add <= f64::from(u32::MAX) || shift == 0 {
                return VoiFixed {
                    lo: lo as u16,
                    hi: (lo + span) as u16,
                    m: m as u32,
                    add: add as u32,
                    sub: sub as u32,
                    shift,
                    invert,
                };
            }
            shift -= 1;
        }
    }

    /// The gray value of one sample (wrapping arithmetic, as the SIMD twin's;
    /// [`VoiFixed::new`] guarantees it never wraps).
    #[inline(always)]
    pub fn apply(&self, x: u16) -> u8 {
        let d = u32::from(x.clamp(self.lo, self.hi) - self.lo);
        let y =
            (d.wrapping_mul(self.m).wrapping_add(self.add)).saturating_sub(self.sub) >> self.shift;
        let y = y.min(255) as u8;
        if self.invert { !y } else { y }
    }

    /// The constants, for SIMD twins: (lo, hi, m, add, sub, shift, invert).
    pub fn parts(&self) -> (u16, u16, u32, u32, u32, u32, bool) {
        (
            self.lo,
            self.hi,
            self.m,
            self.add,
            self.sub,
            self.shift,
            self.invert,
        )
    }
}

/// Little-endian 16-bit samples through a VOI window. `src` holds `2 * dst.len()` bytes.
#[inline]
pub fn window_u16(src: &[u8], voi: &VoiFixed, dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = voi.apply(u16::from_le_bytes([p[0], p[1]]));
    }
}

/// Smallest and largest of little-endian 16-bit samples, folded into `acc`
/// (start from `(u16::MAX, 0)`).
#[inline]
pub fn minmax_u16(src: &[u8], acc: (u16, u16)) -> (u16, u16) {
    src.chunks_exact(2).fold(acc, |(lo, hi), p| {
        let v = u16::from_le_bytes([p[0], p[1]]);
        (lo.min(v), hi.max(v))
    })
}

/// 8-bit samples through a 256-entry table, in place (equalize, gamma).
pub fn lut_in_place(data: &mut [u8], lut: &[u8; 256]) {
    for v in data.iter_mut() {
        *v = lut[usize::from(*v)];
    }
}

/// 8-bit samples through a 256-entry int8 table (quantization to the model input).
#[inline]
pub fn lut_to_i8(src: &[u8], lut: &[i8; 256], dst: &mut [i8]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = lut[usize::from(s)];
    }
}

/// Adds the histogram of `src` to `hist`.
pub fn histogram_add(src: &[u8], hist: &mut [u32; 256]) {
    for &s in src {
        hist[usize::from(s)] += 1;
    }
}

/// Vertical pass of a resize: `out[x] = (sum_k src[k*stride + x] * w[k] + 32) >> 6`
/// for `x < out.len()`, with Q14 weights that sum to 2^14, so the result is
/// the blended row in Q8 (at most 255 * 256, a u16).
#[inline]
pub fn resize_vertical(src: &[u8], stride: usize, weights: &[u32], out: &mut [u16]) {
    // Rows outer, columns inner, over blocks of 64 columns: the inner loop is
    // a plain multiply-add over contiguous bytes, which the compiler
    // vectorizes on any target (the same sums as the per-pixel definition).
    const BLOCK: usize = 64;
    for (b, outs) in out.chunks_mut(BLOCK).enumerate() {
        let x0 = b * BLOCK;
        let mut acc = [0u32; BLOCK];
        for (k, &w) in weights.iter().enumerate() {
            let row = &src[k * stride + x0..k * stride + x0 + outs.len()];
            for (a, &s) in acc.iter_mut().zip(row) {
                *a += u32::from(s) * w;
            }
        }
        for (o, &a) in outs.iter_mut().zip(&acc) {
            *o = ((a + 32) >> 6) as u16;
        }
    }
}

/// The horizontal pass's taps for one geometry: output `o` is
/// `(sum_i row[start[o] + i] * weights[o * n + i] + 2^21) >> 22`, at most
/// 255: Q8 row values, Q14 weights that sum to 2^14, `start[o] + n` within
/// the row. [`HorizontalTaps::new`] also lays the same taps out for eight
/// outputs at a time as byte indices into a 32-value window of the row
/// (`group_*`, for a SIMD twin's table lookups); a group whose taps span
/// more than 32 values has no window and is summed one output at a time.
#[derive(Clone, Debug, Default)]
pub struct HorizontalTaps {
    pub n: usize,
    pub start: Vec<usize>,
    pub weights: Vec<u32>,
    /// Per group of eight outputs: the window's first row index, or
    /// [`NO_WINDOW`].
    pub group_base: Vec<usize>,
    /// Per group and tap (`g * n + i`): the 16 byte indices of the eight
    /// outputs' values (little-endian u16) in the 64-byte window.
    pub group_idx: Vec<[u8; 16]>,
    /// Per group and tap: the eight outputs' weights.
    pub group_w: Vec<[u16; 8]>,
}

/// A group of eight outputs whose taps do not fit one window.
pub const NO_WINDOW: usize = usize::MAX;

/// Values in a group's window: four 16-byte registers of u16.
pub const WINDOW: usize = 32;

impl HorizontalTaps {
    /// Taps of `start.len()` outputs over a row of `row_len` values.
    pub fn new(n: usize, start: Vec<usize>, weights: Vec<u32>, row_len: usize) -> HorizontalTaps {
        let groups = start.len() / 8;
        let mut t = HorizontalTaps {
            n,
            group_base: Vec::with_capacity(groups),
            group_idx: Vec::with_capacity(groups * n),
            group_w: Vec::with_capacity(groups * n),
            start,
            weights,
        };
        for g in 0..groups {
            let outs = &t.start[g * 8..g * 8 + 8];
            let lo = outs.iter().copied().min().unwrap_or(0);
            let hi = outs.iter().copied().max().unwrap_or(0) + n;
            let fits = row_len >= WINDOW && hi - lo <= WINDOW && hi <= row_len;
            // Near the row's end the window slides left to stay inside it.
            let base = if fits {
                lo.min(row_len - WINDOW)
            } else {
                NO_WINDOW
            };
            t.group_base.push(base);
            for i in 0..n {
                let mut idx = [0u8; 16];
                let mut w = [0u16; 8];
                if fits {
                    for (j, &s) in outs.iter().enumerate() {
                        let e = (s + i - base) as u8;
                        idx[2 * j] = 2 * e;
                        idx[2 * j + 1] = 2 * e + 1;
                        w[j] = t.weights[(g * 8 + j) * n + i] as u16;
                    }
                }
                t.group_idx.push(idx);
                t.group_w.push(w);
            }
        }
        t
    }

    /// The sums of outputs `outs` (a range of output indices) into `out`.
    #[inline(always)]
    pub fn sum_range(&self, row: &[u16], outs: std::ops::Range<usize>, out: &mut [u8]) {
        let n = self.n;
        for o in outs {
            let sx = self.start[o];
            let sum: u32 = row[sx..sx + n]
                .iter()
                .zip(&self.weights[o * n..(o + 1) * n])
                .map(|(&v, &w)| u32::from(v) * w)
                .sum();
            out[o] = q22_to_u8(sum);
        }
    }
}

/// Q8 * Q14 -> Q22, rounded to a byte.
#[inline(always)]
pub fn q22_to_u8(sum: u32) -> u8 {
    ((sum + (1 << 21)) >> 22).min(255) as u8
}

/// Horizontal pass of a resize (see [`HorizontalTaps`]) into `out`, one
/// output per tap list. The common tap counts (2 to 6) get a fixed-length
/// sum the compiler unrolls.
#[inline]
pub fn resize_horizontal(row: &[u16], taps: &HorizontalTaps, out: &mut [u8]) {
    fn fixed<const N: usize>(row: &[u16], taps: &HorizontalTaps, out: &mut [u8]) {
        for ((o, &sx), wx) in out
            .iter_mut()
            .zip(&taps.start)
            .zip(taps.weights.chunks_exact(N))
        {
            let src = &row[sx..sx + N];
            let mut sum = 0u32;
            for i in 0..N {
                sum += u32::from(src[i]) * wx[i];
            }
            *o = q22_to_u8(sum);
        }
    }
    match taps.n {
        1 => fixed::<1>(row, taps, out),
        2 => fixed::<2>(row, taps, out),
        3 => fixed::<3>(row, taps, out),
        4 => fixed::<4>(row, taps, out),
        5 => fixed::<5>(row, taps, out),
        6 => fixed::<6>(row, taps, out),
        _ => taps.sum_range(row, 0..out.len().min(taps.start.len()), out),
    }
}

/// `v / 2^32` rounded half to even, as OpenCV's `cvRound` rounds: adding
/// `2^31 - 1` plus the quotient's low bit carries exactly when the remainder
/// is above one half, or equal to it with an odd quotient.
#[inline(always)]
pub fn round_half_even_32(v: u64) -> u64 {
    (v + ((1 << 31) - 1) + ((v >> 32) & 1)) >> 32
}

/// Per-column taps of a CLAHE blend: the two tile columns each pixel blends
/// and the Q16 weight of the second (structure of arrays, for SIMD loads).
#[derive(Clone, Copy, Debug)]
pub struct ClaheTaps<'a> {
    pub t1: &'a [u32],
    pub t2: &'a [u32],
    pub w2: &'a [u32],
}

impl ClaheTaps<'_> {
    /// The taps from column `n` on.
    pub fn skip(self, n: usize) -> Self {
        ClaheTaps {
            t1: &self.t1[n..],
            t2: &self.t2[n..],
            w2: &self.w2[n..],
        }
    }
}

/// One row of the CLAHE blend, in place. `top` and `bottom` are the LUTs of
/// the two tile rows this image row lies between; `w2y` is the Q16 weight of
/// `bottom`. Each pixel becomes the bilinear blend of its four tile LUTs,
/// rounded half to even from Q32.
#[inline]
pub fn clahe_row(
    row: &mut [u8],
    cols: ClaheTaps<'_>,
    top: &[[u8; 256]],
    bottom: &[[u8; 256]],
    w2y: u32,
) {
    let (w2y, w1y) = (u64::from(w2y), u64::from(CLAHE_ONE - w2y));
    let taps = cols.t1.iter().zip(cols.t2).zip(cols.w2);
    for (v, ((&t1, &t2), &w2x)) in row.iter_mut().zip(taps) {
        let s = usize::from(*v);
        let (t1, t2) = (t1 as usize, t2 as usize);
        let w1x = CLAHE_ONE - w2x;
        let upper = u32::from(top[t1][s]) * w1x + u32::from(top[t2][s]) * w2x;
        let lower = u32::from(bottom[t1][s]) * w1x + u32::from(bottom[t2][s]) * w2x;
        let blend = u64::from(upper) * w1y + u64::from(lower) * w2y;
        *v = round_half_even_32(blend) as u8;
    }
}

/// One in Q16, the CLAHE blend weight precision per axis.
pub const CLAHE_ONE: u32 = 1 << 16;

/// Random inputs for the property tests of the horizontal pass's twins
/// (`neon`, `x86`): Q8 row values, starts that advance by up to `spread`
/// per output (so some groups fit a window and some do not), and Q14
/// weights summing to 2^14 per output, all from `seed`.
#[cfg(test)]
pub(crate) fn random_horizontal(
    n: usize,
    row_len: usize,
    outs: usize,
    spread: usize,
    seed: u64,
) -> (Vec<u16>, HorizontalTaps) {
    let r =
        |i: u64, m: u64| (seed.wrapping_mul(2 * i + 1).rotate_left((i % 61) as u32) % m) as usize;
    let n = n.clamp(1, row_len.max(1));
    let row: Vec<u16> = (0..row_len).map(|i| r(i as u64, 65281) as u16).collect();
    let mut start = Vec::new();
    let mut s = 0usize;
    for o in 0..outs {
        start.push(s.min(row_len - n));
        s += r(1000 + o as u64, spread as u64 + 1);
    }
    let mut weights = Vec::new();
    for o in 0..outs {
        let mut cuts: Vec<u32> = (0..n - 1)
            .map(|i| r(5000 + (o * 8 + i) as u64, 16385) as u32)
            .collect();
        cuts.extend([0, 16384]);
        cuts.sort_unstable();
        weights.extend(cuts.windows(2).map(|c| c[1] - c[0]));
    }
    (row, HorizontalTaps::new(n, start, weights, row_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_weights_follow_bt601_and_channel_order() {
        let (mut rgb, mut bgr, mut xrgb) = ([0u8; 2], [0u8; 2], [0u8; 2]);
        rgb24_to_gray(&[255, 0, 0, 255, 255, 255], &mut rgb);
        bgr24_to_gray(&[0, 0, 255, 255, 255, 255], &mut bgr);
        xrgb8888_to_gray(&[0, 0, 255, 0, 255, 255, 255, 0], &mut xrgb);
        // Pure red: 255 * 0.299 = 76.2 -> 76; white stays 255.
        assert_eq!((rgb, bgr, xrgb), ([76, 255], [76, 255], [76, 255]));
        let mut y = [0u8; 2];
        uyvy_to_gray(&[1, 10, 2, 20], &mut y);
        assert_eq!(y, [10, 20]);
        yuyv_to_gray(&[10, 1, 20, 2], &mut y);
        assert_eq!(y, [10, 20]);
    }

    #[test]
    fn round_half_even_matches_its_definition() {
        let one = 1u64 << 32;
        for (q, rem, want) in [
            (2, one / 2, 2),
            (3, one / 2, 4),
            (2, one / 2 + 1, 3),
            (2, one / 2 - 1, 2),
            (255, 0, 255),
        ] {
            assert_eq!(round_half_even_32(q * one + rem), want, "{q} + {rem}/2^32");
        }
    }

    #[test]
    fn vertical_pass_keeps_flat_rows_flat() {
        let src = [200u8; 30];
        let mut out = [0u16; 10];
        resize_vertical(&src, 10, &[4000, 8000, 4384], &mut out);
        assert!(out.iter().all(|&o| o == 200 * 256));
    }
}
