//! The scalar kernels of [`super::generic`], compiled a second time with
//! AVX2 enabled, for x86-64 machines that have it (chosen at run time).
//! The x86-64 baseline (SSE2) has no byte shuffle and only 128-bit lanes,
//! so the baseline build of the same loops vectorizes poorly (the YUYV
//! unpacking not at all); with AVX2 the compiler does better. Same source,
//! so the same results; the property tests below check it anyway. x86 is
//! where bedside is developed and compared with OpenCV, not where it is
//! deployed: this is a portable kernel, not a hand-written one (as the
//! depthwise convolution's, `crate::infer::depthwise::x86`).
#![allow(unsafe_code)]

use super::Kernels;
use super::generic;

/// Whether this CPU runs these kernels.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// For each kernel: an AVX2 copy of the generic body, and a safe wrapper
/// for the table (chosen only when [`available`] said yes).
macro_rules! avx2 {
    ($($name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {
        mod compiled {
            use super::generic;
            $(
                #[target_feature(enable = "avx2")]
                pub unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
                    generic::$name($($arg),*)
                }
            )*
        }
        $(
            pub fn $name($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: in the table only when `available()` said the CPU
                // has AVX2; the body is safe code.
                unsafe { compiled::$name($($arg),*) }
            }
        )*
    };
}

avx2! {
    rgb24_to_gray(src: &[u8], dst: &mut [u8]);
    bgr24_to_gray(src: &[u8], dst: &mut [u8]);
    xrgb8888_to_gray(src: &[u8], dst: &mut [u8]);
    yuyv_to_gray(src: &[u8], dst: &mut [u8]);
    uyvy_to_gray(src: &[u8], dst: &mut [u8]);
    window_u16(src: &[u8], voi: &generic::VoiFixed, dst: &mut [u8]);
    minmax_u16(src: &[u8], acc: (u16, u16)) -> (u16, u16);
    lut_to_i8(src: &[u8], lut: &[i8; 256], dst: &mut [i8]);
    resize_vertical(src: &[u8], stride: usize, weights: &[u32], out: &mut [u16]);
    resize_horizontal(row: &[u16], taps: &generic::HorizontalTaps, out: &mut [u8]);
    rgb_to_xrgb8888(rgb: &[u8], out: &mut [u8]);
    clahe_row(
        row: &mut [u8],
        cols: generic::ClaheTaps<'_>,
        top: &[[u8; 256]],
        bottom: &[[u8; 256]],
        w2y: u32
    );
}

/// The generic table with every kernel that vectorizes better under AVX2
/// replaced by its AVX2 build. (Table lookups and the histogram are
/// scalar either way.)
pub const AVX2: Kernels = Kernels {
    name: "avx2",
    rgb24_to_gray,
    bgr24_to_gray,
    xrgb8888_to_gray,
    yuyv_to_gray,
    uyvy_to_gray,
    window_u16,
    minmax_u16,
    lut_in_place: generic::lut_in_place,
    lut_to_i8,
    histogram_add: generic::histogram_add,
    resize_vertical,
    resize_horizontal,
    rgb_to_xrgb8888,
    clahe_row,
};

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn pixel_rows(px in proptest::collection::vec(any::<u8>(), 0..900), off in 0usize..4) {
            prop_assume!(available());
            let src = &px[off.min(px.len())..];
            let rows: [(super::super::RowToGray, super::super::RowToGray, usize); 5] = [
                (rgb24_to_gray, generic::rgb24_to_gray, 3),
                (bgr24_to_gray, generic::bgr24_to_gray, 3),
                (xrgb8888_to_gray, generic::xrgb8888_to_gray, 4),
                (yuyv_to_gray, generic::yuyv_to_gray, 2),
                (uyvy_to_gray, generic::uyvy_to_gray, 2),
            ];
            for (fast, twin, bpp) in rows {
                let n = src.len() / bpp;
                let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
                fast(src, &mut a);
                twin(src, &mut b);
                prop_assert_eq!(a, b);
            }
            let n = src.len() / 3;
            let (mut a, mut b) = (vec![7u8; 4 * n], vec![7u8; 4 * n]);
            rgb_to_xrgb8888(src, &mut a);
            generic::rgb_to_xrgb8888(src, &mut b);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn samples_and_tables(
            px in proptest::collection::vec(any::<u8>(), 0..600),
            center in -70000.0f64..140000.0,
            width in 1.0f64..140000.0,
            invert in any::<bool>(),
            lut in proptest::collection::vec(any::<i8>(), 256),
        ) {
            prop_assume!(available());
            let voi = generic::VoiFixed::new(center, width, invert);
            let n = px.len() / 2;
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            window_u16(&px, &voi, &mut a);
            generic::window_u16(&px, &voi, &mut b);
            prop_assert_eq!(a, b);
            prop_assert_eq!(minmax_u16(&px, (u16::MAX, 0)), generic::minmax_u16(&px, (u16::MAX, 0)));
            let lut: [i8; 256] = lut.try_into().unwrap();
            let (mut a, mut b) = (vec![0i8; px.len()], vec![0i8; px.len()]);
            lut_to_i8(&px, &lut, &mut a);
            generic::lut_to_i8(&px, &lut, &mut b);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn resize_passes(
            n in 1usize..8,
            row_len in 1usize..120,
            outs in 0usize..70,
            seed in any::<u64>(),
        ) {
            prop_assume!(available());
            let (row, taps) = generic::random_horizontal(n, row_len, outs, 3, seed);
            let n = taps.n;
            let r = |i: u64, m: u64| (seed.wrapping_mul(2 * i + 1).rotate_left((i % 61) as u32) % m) as usize;
            let (mut a, mut b) = (vec![0u8; outs], vec![0u8; outs]);
            resize_horizontal(&row, &taps, &mut a);
            generic::resize_horizontal(&row, &taps, &mut b);
            prop_assert_eq!(a, b);
            // The vertical pass over n rows of row_len bytes.
            let bytes: Vec<u8> = (0..row_len * n).map(|i| r(7000 + i as u64, 256) as u8).collect();
            let w: Vec<u32> = taps.weights.get(..n).map_or_else(|| vec![16384], <[u32]>::to_vec);
            let rows = w.len();
            let (mut a, mut b) = (vec![0u16; row_len], vec![0u16; row_len]);
            resize_vertical(&bytes[..row_len * rows], row_len, &w, &mut a);
            generic::resize_vertical(&bytes[..row_len * rows], row_len, &w, &mut b);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn clahe_blend_row(
            row in proptest::collection::vec(any::<u8>(), 1..100),
            tiles in proptest::collection::vec(any::<u8>(), 256 * 6),
            w2y in 0u32..65536,
            seed in any::<u64>(),
        ) {
            prop_assume!(available());
            let luts: Vec<[u8; 256]> = tiles.chunks_exact(256).map(|c| c.try_into().unwrap()).collect();
            let n = row.len();
            let r = |i: usize, m: u64| (seed.wrapping_mul(i as u64 * 2 + 1).rotate_left(i as u32 % 64) % m) as u32;
            let t1: Vec<u32> = (0..n).map(|i| r(i, 3)).collect();
            let t2: Vec<u32> = (0..n).map(|i| r(i + 7, 3)).collect();
            let w2: Vec<u32> = (0..n).map(|i| match i % 5 { 0 => 0, 1 => 65535, _ => r(i + 3, 65536) }).collect();
            let cols = generic::ClaheTaps { t1: &t1, t2: &t2, w2: &w2 };
            let (mut a, mut b) = (row.clone(), row);
            clahe_row(&mut a, cols, &luts[..3], &luts[3..], w2y);
            generic::clahe_row(&mut b, cols, &luts[..3], &luts[3..], w2y);
            prop_assert_eq!(a, b);
        }
    }
}
