//! The scalar reference of the depthwise kernels: the specification the NEON
//! twins are proven against.

/// One output row of one channel over a padded input plane:
/// `acc[o] = bias + sum over ky < kh, kx < kw of
/// taps[ky * kw + kx] * src[ky * row_stride + o * stride + kx]`, in wrapping
/// i32 arithmetic (the sums of an int8 network never come near it; wrapping
/// keeps the twins identical on any input). The input zero point is folded
/// into `bias` by the caller. `src` holds every value a tap reads.
#[allow(clippy::too_many_arguments)]
#[inline]
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
    // Tap by tap over the whole row (the sum's order does not matter in
    // wrapping arithmetic), so that the compiler vectorizes the inner loop
    // where this is the kernel that runs (x86).
    acc.fill(bias);
    let n = acc.len();
    if n == 0 {
        return;
    }
    for ky in 0..kh {
        for kx in 0..kw {
            let t = i32::from(taps[ky * kw + kx]);
            let row = &src[ky * row_stride + kx..][..(n - 1) * stride + 1];
            if stride == 1 {
                for (a, &x) in acc.iter_mut().zip(row) {
                    *a = a.wrapping_add(t * i32::from(x));
                }
            } else {
                for (a, &x) in acc.iter_mut().zip(row.iter().step_by(stride)) {
                    *a = a.wrapping_add(t * i32::from(x));
                }
            }
        }
    }
}

/// tract's fixed-point rescaling (`i32 * Scaler` in tract-linalg's
/// `generic::rounding`, ties to even), with the multiplier and shift
/// resolved: `(value, shift)` is `(acc * mult, shift)` (a scale without a
/// multiplier has `mult = 1`). A shift of 0 or less is a left shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPoint {
    pub mult: i32,
    pub shift: i64,
}

impl FixedPoint {
    #[inline(always)]
    pub fn apply(self, acc: i32) -> i32 {
        let val = i64::from(self.mult) * i64::from(acc);
        if self.shift > 0 {
            let half = 1i64 << (self.shift - 1);
            let nudge = ((val.abs() >> self.shift) & 1) - 1;
            (val.signum() * ((val.abs() + half + nudge) >> self.shift)) as i32
        } else {
            (val << -self.shift) as i32
        }
    }
}

/// Accumulators to int8: `clamp(f(acc) + y0, -128, 127)`.
#[inline]
pub fn requantize_i8(acc: &[i32], f: FixedPoint, y0: i32, out: &mut [i8]) {
    let finish = |v: i32| {
        v.wrapping_add(y0)
            .clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8
    };
    if (1..=62).contains(&f.shift) {
        // `apply` with its branches out of the loop: round(|v| / 2^shift)
        // with ties to even is `(|v| + half - 1 + bit) >> shift`, `bit`
        // the lowest bit of the truncated quotient; then v's sign.
        let (mult, shift) = (i64::from(f.mult), f.shift);
        let half_minus_one = (1i64 << (shift - 1)) - 1;
        for (o, &a) in out.iter_mut().zip(acc) {
            let v = mult * i64::from(a);
            let m = v.abs();
            let q = (m + half_minus_one + ((m >> shift) & 1)) >> shift;
            *o = finish((if v < 0 { -q } else { q }) as i32);
        }
    } else {
        for (o, &a) in out.iter_mut().zip(acc) {
            *o = finish(f.apply(a));
        }
    }
}
