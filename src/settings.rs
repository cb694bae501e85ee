//! Ranges of the run settings that both the board profile and the command
//! line can set, defined once so both check the same bounds and say so in
//! the same words. The profile names a setting by its key
//! (`inference.stall_after_ms`, in milliseconds), the command line by its
//! flag (`--stall-after`, in seconds); the error gives the value and the
//! range in the unit the user wrote.

use std::ops::RangeInclusive;
use std::time::Duration;

/// How long a frame may be with the model before the screen says AI
/// UNAVAILABLE: `[inference] stall_after_ms`, `--stall-after`.
pub const STALL_AFTER: DurationRange = DurationRange::millis(100, 3_600_000);

/// How long a result may be drawn over newer pictures:
/// `[inference] result_valid_ms`.
pub const RESULT_VALID: DurationRange = DurationRange::millis(100, 60_000);

/// How often a running pipeline logs its fps and latency: `--stats-every`.
pub const STATS_EVERY: DurationRange = DurationRange::millis(1_000, 86_400_000);

/// Unchanged frames that make an X-ray picture stable:
/// `[xray] stable_frames`, `--stable-frames`.
pub const STABLE_FRAMES: RangeInclusive<u32> = 1..=600;

/// A setting outside its range.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{name} = {value}: give {range}")]
pub struct OutOfRange {
    /// The key or flag, as the user wrote it.
    pub name: String,
    pub value: String,
    pub range: String,
}

/// The range of a duration setting, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct DurationRange {
    min_ms: u64,
    max_ms: u64,
}

impl DurationRange {
    pub const fn millis(min_ms: u64, max_ms: u64) -> DurationRange {
        DurationRange { min_ms, max_ms }
    }

    /// A profile value in milliseconds.
    pub fn from_millis(&self, name: &str, ms: u64) -> Result<Duration, OutOfRange> {
        if (self.min_ms..=self.max_ms).contains(&ms) {
            return Ok(Duration::from_millis(ms));
        }
        Err(OutOfRange {
            name: name.into(),
            value: ms.to_string(),
            range: format!("{} to {}", self.min_ms, self.max_ms),
        })
    }

    /// A command-line value in seconds (not finite: out of range too).
    pub fn from_seconds(&self, name: &str, seconds: f64) -> Result<Duration, OutOfRange> {
        let ms = seconds * 1000.0;
        if ms.is_finite() && (self.min_ms as f64..=self.max_ms as f64).contains(&ms) {
            return Ok(Duration::from_secs_f64(seconds));
        }
        Err(OutOfRange {
            name: name.into(),
            value: seconds.to_string(),
            range: format!(
                "{} to {} seconds",
                self.min_ms as f64 / 1000.0,
                self.max_ms as f64 / 1000.0
            ),
        })
    }
}

/// A count setting within `range`.
pub fn count(name: &str, n: u32, range: RangeInclusive<u32>) -> Result<u32, OutOfRange> {
    if range.contains(&n) {
        return Ok(n);
    }
    Err(OutOfRange {
        name: name.into(),
        value: n.to_string(),
        range: format!("{} to {}", range.start(), range.end()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_and_the_command_line_share_bounds_and_words() {
        assert_eq!(
            STALL_AFTER.from_millis("inference.stall_after_ms", 100),
            Ok(Duration::from_millis(100))
        );
        assert_eq!(
            STALL_AFTER.from_seconds("--stall-after", 0.1),
            Ok(Duration::from_millis(100))
        );
        let profile = STALL_AFTER
            .from_millis("inference.stall_after_ms", 99)
            .unwrap_err();
        assert_eq!(
            profile.to_string(),
            "inference.stall_after_ms = 99: give 100 to 3600000"
        );
        let cli = STALL_AFTER.from_seconds("--stall-after", 0.05).unwrap_err();
        assert_eq!(
            cli.to_string(),
            "--stall-after = 0.05: give 0.1 to 3600 seconds"
        );
        for bad in [f64::NAN, f64::INFINITY, -1.0, 3600.5] {
            assert!(
                STALL_AFTER.from_seconds("--stall-after", bad).is_err(),
                "{bad}"
            );
        }
        assert_eq!(count("--stable-frames", 1, STABLE_FRAMES), Ok(1));
        assert_eq!(
            count("xray.stable_frames", 0, STABLE_FRAMES)
                .unwrap_err()
                .to_string(),
            "xray.stable_frames = 0: give 1 to 600"
        );
        assert!(count("--stable-frames", 601, STABLE_FRAMES).is_err());
    }
}
