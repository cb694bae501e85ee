//! Region markers for counting guest instructions under QEMU (issue #10).
//!
//! [`begin`] and [`end`] place a pair of instructions that do nothing on a
//! real CPU and that the QEMU plugin in `tools/icount-plugin` recognises:
//!
//! - begin: `hint #0x7e` then `movz xzr, #ID`;
//! - end: `hint #0x7f` then `movz xzr, #ID`.
//!
//! `hint #0x7e` and `#0x7f` are unallocated hint encodings (architecturally
//! NOPs), and a move into the zero register discards its result; the second
//! word carries the region id, because the plugin API of QEMU 7.2 cannot
//! read registers. The plugin counts the instructions executed between a
//! begin and the end with the same id, by class, without the markers.
//!
//! On other architectures both functions are empty and compile to nothing.
//! They belong in measuring programs (`examples/icount_workload.rs`), not
//! in the live pipeline. `scripts/icount` runs them and `docs/PERFORMANCE.md`
//! ("Performance on Arm without a board") explains the figures.
//!
//! ```
//! use bedside::marker;
//! let v = marker::region::<{ marker::INFER }, _>(|| 6 * 7);
//! assert_eq!(v, 42);
//! ```

// The markers are inline assembly, which Rust calls unsafe.
#![allow(unsafe_code)]

/// Region ids the workload program uses for the stages of a frame.
pub const CONVERT: u16 = 1;
pub const PREPROCESS: u16 = 2;
pub const INFER: u16 = 3;
pub const ANALYZE: u16 = 4;
pub const OVERLAY: u16 = 5;
/// One kernel call (kernel comparisons: the NEON table against the scalar).
pub const KERNEL: u16 = 6;

/// The stage name of a region id, as reports print it.
pub fn stage_name(id: u16) -> &'static str {
    match id {
        CONVERT => "convert",
        PREPROCESS => "preprocess",
        INFER => "infer",
        ANALYZE => "analyze",
        OVERLAY => "overlay",
        KERNEL => "kernel",
        _ => "other",
    }
}

/// Starts region `ID`.
#[inline(always)]
pub fn begin<const ID: u16>() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: an unallocated hint (a NOP) and a move into the zero register:
    // no register, flag, memory or stack effect. Not marked `nomem`, so the
    // compiler keeps memory accesses on their side of the marker.
    unsafe {
        core::arch::asm!(
            "hint #0x7e",
            "movz xzr, #{id}",
            id = const ID,
            options(nostack, preserves_flags)
        );
    }
}

/// Ends region `ID`.
#[inline(always)]
pub fn end<const ID: u16>() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as in `begin`.
    unsafe {
        core::arch::asm!(
            "hint #0x7f",
            "movz xzr, #{id}",
            id = const ID,
            options(nostack, preserves_flags)
        );
    }
}

/// Runs `f` as region `ID` and returns its result.
#[inline(always)]
pub fn region<const ID: u16, R>(f: impl FnOnce() -> R) -> R {
    begin::<ID>();
    let r = f();
    end::<ID>();
    std::hint::black_box(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_do_nothing_but_run() {
        // On aarch64 this executes the hints (NOPs on every core and under
        // QEMU); elsewhere the markers are empty.
        let mut n = 0;
        for _ in 0..3 {
            n = region::<{ KERNEL }, _>(|| n + 1);
        }
        assert_eq!(n, 3);
        assert_eq!(stage_name(INFER), "infer");
        assert_eq!(stage_name(999), "other");
    }
}
