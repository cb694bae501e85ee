//! The scalar reference of the depthwise kernels: the specification the NEON
//! twins are proven against.

/// One output row of one channel over a padded input plane:
/// `acc[o] = bias + sum over ky < kh, kx < kw of
/// taps[ky * kw + kx] * src[ky * row_stride + o * stride + kx]`, in wrapping
/// i32 arithmetic (the sums of an int8 network never come near it; wrapping
/// keeps the twins identical on any input). The input zero point is folded
/// into `bias` by the caller. `src` holds every value a tap reads.
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
    for (o, a) in acc.iter_mut().enumerate() {
        let mut sum = bias;
        for ky in 0..kh {
            let window = &src[ky * row_stride + o * stride..][..kw];
            for (&t, &x) in taps[ky * kw..(ky + 1) * kw].iter().zip(window) {
                sum = sum.wrapping_add(i32::from(t) * i32::from(x));
            }
        }
        *a = sum;
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
pub fn requantize_i8(acc: &[i32], f: FixedPoint, y0: i32, out: &mut [i8]) {
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = f
            .apply(a)
            .wrapping_add(y0)
            .clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8;
    }
}
