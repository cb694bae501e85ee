//! Per-pixel kernels, chosen once at start-up.
//!
//! [`generic`] holds the scalar reference of every kernel: it is the
//! specification. [`neon`] holds aarch64 versions of the hot ones, each proven
//! bit-identical to its twin by a property test that runs under QEMU as
//! Cortex-A72 and Cortex-A76, and each executing at least 1.25x fewer
//! instructions than its twin (`scripts/icount --check` holds it to that:
//! LLVM vectorizes the plain loops of [`generic`] well, and a NEON kernel
//! that does not beat them is removed). `window_u16` and `clahe_row` are
//! scalar on aarch64 too, for that reason (the table below says why). On
//! x86-64 with AVX2, [`x86`] is the generic code compiled for AVX2 (where
//! bedside is compared with OpenCV; not a deployment target). `BEDSIDE_FORCE_SCALAR=1` forces the scalar table
//! (the tract `TRACT_CPU_*` idea), so CI covers both paths.

pub mod generic;
#[cfg(target_arch = "aarch64")]
pub mod neon;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::sync::OnceLock;

/// Row kernel: converts one row of `src` pixels into `dst` gray bytes.
pub type RowToGray = fn(src: &[u8], dst: &mut [u8]);

/// Converts one row of little-endian 16-bit samples through a VOI window.
pub type WindowU16 = fn(src: &[u8], voi: &generic::VoiFixed, dst: &mut [u8]);
/// Folds the smallest and largest 16-bit sample of a row into the pair.
pub type MinmaxU16 = fn(src: &[u8], acc: (u16, u16)) -> (u16, u16);
/// Applies a 256-entry table in place.
pub type LutInPlace = fn(data: &mut [u8], lut: &[u8; 256]);
/// Applies a 256-entry int8 table from `src` into `dst`.
pub type LutToI8 = fn(src: &[u8], lut: &[i8; 256], dst: &mut [i8]);
/// Adds the histogram of `src` to `hist`.
pub type HistogramAdd = fn(src: &[u8], hist: &mut [u32; 256]);
/// Vertical resize pass (see [`generic::resize_vertical`]).
pub type ResizeVertical = fn(src: &[u8], stride: usize, weights: &[u32], out: &mut [u16]);
/// Canvas row to screen row (see [`generic::rgb_to_xrgb8888`]).
pub type RowToScreen = fn(rgb: &[u8], out: &mut [u8]);
/// Horizontal resize pass (see [`generic::resize_horizontal`]).
pub type ResizeHorizontal = fn(row: &[u16], taps: &generic::HorizontalTaps, out: &mut [u8]);
/// One row of the CLAHE blend (see [`generic::clahe_row`]).
pub type ClaheRow = fn(
    row: &mut [u8],
    cols: generic::ClaheTaps<'_>,
    top: &[[u8; 256]],
    bottom: &[[u8; 256]],
    w2y: u32,
);

/// The kernel table in use.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// Which instruction set the table uses, for logs and reports.
    pub name: &'static str,
    pub rgb24_to_gray: RowToGray,
    pub bgr24_to_gray: RowToGray,
    pub xrgb8888_to_gray: RowToGray,
    pub yuyv_to_gray: RowToGray,
    pub uyvy_to_gray: RowToGray,
    pub window_u16: WindowU16,
    pub minmax_u16: MinmaxU16,
    pub lut_in_place: LutInPlace,
    pub lut_to_i8: LutToI8,
    pub histogram_add: HistogramAdd,
    pub resize_vertical: ResizeVertical,
    pub resize_horizontal: ResizeHorizontal,
    pub rgb_to_xrgb8888: RowToScreen,
    pub clahe_row: ClaheRow,
}

impl Kernels {
    /// The names of the kernels in which this table differs from `base`
    /// (for the NEON table against [`GENERIC`]: the kernels with a SIMD
    /// twin of their own, which `scripts/icount` holds to a gain).
    pub fn differing_from(&self, base: &Kernels) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! compare {
            ($($f:ident),*) => {
                $(if !std::ptr::fn_addr_eq(self.$f, base.$f) {
                    v.push(stringify!($f));
                })*
            };
        }
        compare!(
            rgb24_to_gray,
            bgr24_to_gray,
            xrgb8888_to_gray,
            yuyv_to_gray,
            uyvy_to_gray,
            window_u16,
            minmax_u16,
            lut_in_place,
            lut_to_i8,
            histogram_add,
            resize_vertical,
            resize_horizontal,
            rgb_to_xrgb8888,
            clahe_row
        );
        v
    }
}

/// The scalar reference table.
pub const GENERIC: Kernels = Kernels {
    name: "generic",
    rgb24_to_gray: generic::rgb24_to_gray,
    bgr24_to_gray: generic::bgr24_to_gray,
    xrgb8888_to_gray: generic::xrgb8888_to_gray,
    yuyv_to_gray: generic::yuyv_to_gray,
    uyvy_to_gray: generic::uyvy_to_gray,
    window_u16: generic::window_u16,
    minmax_u16: generic::minmax_u16,
    lut_in_place: generic::lut_in_place,
    lut_to_i8: generic::lut_to_i8,
    histogram_add: generic::histogram_add,
    resize_vertical: generic::resize_vertical,
    resize_horizontal: generic::resize_horizontal,
    rgb_to_xrgb8888: generic::rgb_to_xrgb8888,
    clahe_row: generic::clahe_row,
};

/// The NEON table (every aarch64 core has Advanced SIMD).
#[cfg(target_arch = "aarch64")]
pub const NEON: Kernels = Kernels {
    name: "neon",
    rgb24_to_gray: neon::rgb24_to_gray,
    bgr24_to_gray: neon::bgr24_to_gray,
    xrgb8888_to_gray: neon::xrgb8888_to_gray,
    yuyv_to_gray: neon::yuyv_to_gray,
    uyvy_to_gray: neon::uyvy_to_gray,
    // Scalar on purpose: LLVM vectorizes the twin as well as the
    // hand-written NEON did (677k against 687k instructions on a 460x488
    // frame), and a kernel that does not win is code to prove for nothing.
    window_u16: generic::window_u16,
    minmax_u16: neon::minmax_u16,
    lut_in_place: neon::lut_in_place,
    lut_to_i8: neon::lut_to_i8,
    histogram_add: neon::histogram_add,
    resize_vertical: neon::resize_vertical,
    resize_horizontal: neon::resize_horizontal,
    rgb_to_xrgb8888: neon::rgb_to_xrgb8888,
    // Scalar on purpose: the four table reads per pixel are a gather NEON
    // has no instruction for, and the NEON blend in u64 lanes cost more
    // than LLVM's scalar code (2.78 M against 2.64 M instructions for
    // CLAHE on 224x224).
    clahe_row: generic::clahe_row,
};

/// Whether the environment forces the scalar kernels.
pub fn scalar_forced() -> bool {
    std::env::var_os("BEDSIDE_FORCE_SCALAR").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The table for this CPU, detected once.
pub fn kernels() -> &'static Kernels {
    static TABLE: OnceLock<Kernels> = OnceLock::new();
    TABLE.get_or_init(|| {
        if scalar_forced() {
            return GENERIC;
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            return NEON;
        }
        #[cfg(target_arch = "x86_64")]
        if x86::available() {
            return x86::AVX2;
        }
        GENERIC
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each run of the test command proves which table it exercised.
    #[test]
    fn dispatch_follows_cpu_and_switch() {
        let name = kernels().name;
        if scalar_forced() {
            assert_eq!(name, "generic");
        } else if cfg!(target_arch = "aarch64") {
            assert_eq!(name, "neon");
        } else {
            #[cfg(target_arch = "x86_64")]
            let simd = if x86::available() { "avx2" } else { "generic" };
            #[cfg(not(target_arch = "x86_64"))]
            let simd = "generic";
            assert_eq!(name, simd);
        }
    }
}
