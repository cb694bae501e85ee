//! The decode budget: how much memory one input may make bedside hold.
//!
//! A file's header says how big its pictures are, and a hostile file says
//! whatever costs most: a 409-byte deflated DICOM can claim 4 GiB of pixel
//! data, a 1.6 MB JPEG DICOM 16384x16384 RGB, a 4 MB deflate stream can
//! inflate to 4 GiB. Every decoder checks the claim against one number
//! before it allocates, and bounds decompression while it runs:
//!
//! - a file read into memory (DICOM, PNG, JPEG, TIFF) may be at most the
//!   budget;
//! - a deflated DICOM data set may inflate to at most the budget;
//! - one decoded frame (its stored samples, and the pixels made from them)
//!   may take at most the budget.
//!
//! The default, 256 MiB, fits a 2 GB Raspberry Pi with room for the model
//! and the rest of the pipeline, and holds every real image we know of: a
//! 43x43 cm detector at 16 bits is about 70 MB, a 640x480 RGB echo cine of
//! 300 frames 276 MB uncompressed (so a bigger one is refused as a file;
//! raise the budget for it). The board profile's `[limits]
//! decode_budget_mib` and `--decode-budget MIB` change it.

use std::fmt;

/// How many bytes one input may cost (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeBudget {
    bytes: u64,
}

/// The smallest budget a profile or flag may set: below it even the demo's
/// radiograph would not fit.
pub const MIN_BUDGET_MIB: u64 = 16;
/// The largest: more than any board bedside runs on has.
pub const MAX_BUDGET_MIB: u64 = 16 * 1024;

impl DecodeBudget {
    /// The default: 256 MiB.
    pub const DEFAULT: DecodeBudget = DecodeBudget { bytes: 256 << 20 };

    /// A budget of `mib` MiB, within [`MIN_BUDGET_MIB`]..=[`MAX_BUDGET_MIB`].
    pub fn from_mib(mib: u64) -> Result<DecodeBudget, String> {
        if (MIN_BUDGET_MIB..=MAX_BUDGET_MIB).contains(&mib) {
            Ok(DecodeBudget { bytes: mib << 20 })
        } else {
            Err(format!(
                "decode budget {mib} MiB is outside {MIN_BUDGET_MIB}..={MAX_BUDGET_MIB} MiB"
            ))
        }
    }

    pub fn bytes(self) -> u64 {
        self.bytes
    }

    /// Refuses a claim of `claim` bytes (or one too large to count) for
    /// `what` ("a decoded frame", "the inflated data set").
    pub fn check(self, what: &str, claim: Option<u64>) -> Result<(), OverBudget> {
        match claim {
            Some(c) if c <= self.bytes => Ok(()),
            _ => Err(OverBudget {
                what: what.to_string(),
                claim,
                budget: self.bytes,
            }),
        }
    }
}

impl Default for DecodeBudget {
    fn default() -> Self {
        DecodeBudget::DEFAULT
    }
}

impl fmt::Display for DecodeBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytes_text(self.bytes))
    }
}

/// A claim over the budget.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} would take {}, over the decode budget of {} (--decode-budget, or [limits] decode_budget_mib)",
        .claim.map_or_else(|| "more than can be counted".to_string(), bytes_text),
        bytes_text(*.budget))]
pub struct OverBudget {
    pub what: String,
    /// `None`: the claim overflowed while it was computed.
    pub claim: Option<u64>,
    pub budget: u64,
}

/// A byte count for people: "256 MiB", "4.0 GiB", "409 bytes".
pub fn bytes_text(n: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    match n {
        n if n >= GIB => format!("{:.1} GiB", n as f64 / GIB as f64),
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= MIB => format!("{:.1} MiB", n as f64 / MIB as f64),
        n if n >= KIB => format!("{:.1} KiB", n as f64 / KIB as f64),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_within_pass_and_over_or_uncountable_are_refused_with_both_figures() {
        let b = DecodeBudget::from_mib(16).unwrap();
        assert!(b.check("a frame", Some(16 << 20)).is_ok());
        let e = b
            .check("a decoded frame", Some((16 << 20) + 1))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a decoded frame would take 16.0 MiB, over the decode budget of 16 MiB \
             (--decode-budget, or [limits] decode_budget_mib)"
        );
        let e = b.check("the pixel data", None).unwrap_err();
        assert!(e.to_string().contains("more than can be counted"), "{e}");
        assert_eq!(DecodeBudget::default().bytes(), 256 << 20);
        assert!(DecodeBudget::from_mib(15).is_err());
        assert!(DecodeBudget::from_mib(MAX_BUDGET_MIB + 1).is_err());
        assert_eq!(bytes_text(4 << 30), "4.0 GiB");
        assert_eq!(bytes_text(409), "409 bytes");
    }
}
