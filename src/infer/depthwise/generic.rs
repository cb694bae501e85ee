//! The scalar reference of the depthwise kernels: the specification the NEON
//! twins are proven against.

/// One input row's taps into a row of accumulators:
/// `acc[o] += sum over k of taps[k] * (src[o * stride + k] - x0)`, in wrapping
/// i32 arithmetic (the sums of an int8 network never come near it; wrapping
/// keeps the twins identical on any input). `src` holds at least
/// `(acc.len() - 1) * stride + taps.len()` values.
pub fn dw_row(src: &[i8], stride: usize, taps: &[i8], x0: i8, acc: &mut [i32]) {
    for (o, a) in acc.iter_mut().enumerate() {
        let window = &src[o * stride..o * stride + taps.len()];
        for (&t, &x) in taps.iter().zip(window) {
            *a = a.wrapping_add(i32::from(t) * (i32::from(x) - i32::from(x0)));
        }
    }
}
