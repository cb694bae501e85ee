//! A fault injector around any [`FrameSource`]: the failures real grabbers
//! and consoles produce, on demand and reproducibly (smoltcp's
//! `phy::FaultInjector`, for frames).
//!
//! Per frame, with the plan's probabilities and a seeded generator:
//!
//! - **drop**: the frame is lost; the next one follows with a sequence gap,
//!   as when a grabber overruns its buffers;
//! - **duplicate**: the frame comes twice with the same sequence number, as
//!   when a device re-sends a buffer;
//! - **corrupt**: a band of rows is overwritten with noise; the frame is still
//!   well-formed (a bad cable, a decoder glitch);
//! - **truncate**: the buffer is cut short and fails validation, surfacing as
//!   [`CaptureError::BadFrame`] (a short `bytesused`, a half-written file);
//! - **stall**: the frame arrives late by the plan's stall time.
//!
//! `--faults drop=0.05,dup=0.02,corrupt=0.02,truncate=0.01,stall=0.01:300,seed=7`
//! on `bedside run` wraps the source with this (stall time in ms).

use crate::rng::SplitMix64;
use std::str::FromStr;
use std::time::Duration;

use super::{CaptureError, FrameSource};
use crate::frame::Frame;

/// Probabilities (0..=1) of each fault per frame, and the generator's seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultPlan {
    pub drop: f64,
    pub duplicate: f64,
    pub corrupt: f64,
    pub truncate: f64,
    pub stall: f64,
    pub stall_time: Duration,
    pub seed: u64,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            drop: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            truncate: 0.0,
            stall: 0.0,
            stall_time: Duration::from_millis(500),
            seed: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "bad fault plan '{spec}': {reason} (expected e.g. drop=0.05,dup=0.02,corrupt=0.02,truncate=0.01,stall=0.01:300,seed=7)"
)]
pub struct BadFaultPlan {
    spec: String,
    reason: String,
}

impl FromStr for FaultPlan {
    type Err = BadFaultPlan;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| BadFaultPlan {
            spec: s.to_string(),
            reason,
        };
        let mut plan = FaultPlan::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("'{part}' is not key=value")))?;
            let prob = |v: &str| -> Result<f64, BadFaultPlan> {
                match v.parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                    _ => Err(bad(format!("{key}={v}: give a probability from 0 to 1"))),
                }
            };
            match key {
                "drop" => plan.drop = prob(value)?,
                "dup" | "duplicate" => plan.duplicate = prob(value)?,
                "corrupt" => plan.corrupt = prob(value)?,
                "truncate" => plan.truncate = prob(value)?,
                "stall" => {
                    let (p, ms) = value.split_once(':').unwrap_or((value, "500"));
                    plan.stall = prob(p)?;
                    let ms: u64 = ms
                        .parse()
                        .ok()
                        .filter(|&m| m <= 60_000)
                        .ok_or_else(|| bad(format!("stall time '{ms}' is not 0..=60000 ms")))?;
                    plan.stall_time = Duration::from_millis(ms);
                }
                "seed" => {
                    plan.seed = value
                        .parse()
                        .map_err(|_| bad(format!("seed '{value}' is not a number")))?
                }
                _ => return Err(bad(format!("unknown fault '{key}'"))),
            }
        }
        Ok(plan)
    }
}

/// How many of each fault were injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub dropped: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub truncated: u64,
    pub stalled: u64,
}

/// Wraps a source and injects the plan's faults.
pub struct FaultInjector {
    inner: Box<dyn FrameSource>,
    plan: FaultPlan,
    rng: SplitMix64,
    repeat: Option<Frame>,
    counts: FaultCounts,
    sleep: Box<dyn FnMut(Duration) + Send>,
}

impl FaultInjector {
    pub fn new(inner: Box<dyn FrameSource>, plan: FaultPlan) -> FaultInjector {
        FaultInjector::with_sleep(inner, plan, Box::new(std::thread::sleep))
    }

    /// As [`FaultInjector::new`], with the function that waits out a stall
    /// (tests pass one that records instead of sleeping).
    pub fn with_sleep(
        inner: Box<dyn FrameSource>,
        plan: FaultPlan,
        sleep: Box<dyn FnMut(Duration) + Send>,
    ) -> FaultInjector {
        FaultInjector {
            inner,
            rng: SplitMix64(plan.seed),
            plan,
            repeat: None,
            counts: FaultCounts::default(),
            sleep,
        }
    }

    pub fn counts(&self) -> FaultCounts {
        self.counts
    }

    /// Overwrites a band of rows (at least one, at most a quarter) with noise.
    fn corrupt(&mut self, frame: Frame) -> Result<Frame, CaptureError> {
        let (mut data, format, width, height, stride, meta, tone) = frame.into_parts();
        let rows = (height as usize / 4).max(1);
        let first = self.rng.index(height as usize - rows + 1);
        let end = ((first + rows) * stride).min(data.len());
        for b in &mut data[first * stride..end] {
            *b = self.rng.next_u64() as u8;
        }
        // Same buffer length and layout: revalidation passes.
        Frame::new_checked(data, format, width, height, stride, meta)
            .map(|f| f.with_tone(tone))
            .map_err(|e| self.bad_frame(meta.seq, e))
    }

    /// The error of frame `seq` (named, so a skipped record says which frame it was).
    fn bad_frame(&self, seq: u64, e: crate::frame::FrameError) -> CaptureError {
        CaptureError::BadFrame {
            path: format!("{} (injected fault, frame {seq})", self.inner.describe()).into(),
            source: e,
        }
    }

    /// Cuts the buffer short, so that the frame no longer validates (a cut
    /// inside slack past the last row would still validate: then to nothing).
    fn truncate(&mut self, frame: Frame) -> CaptureError {
        let (data, format, width, height, stride, meta, _) = frame.into_parts();
        let keep = self.rng.index(data.len());
        let mut cut = data;
        cut.truncate(keep);
        let refused = Frame::new_checked(cut, format, width, height, stride, meta)
            .err()
            .or_else(|| Frame::new_checked(Vec::new(), format, width, height, stride, meta).err());
        match refused {
            Some(e) => self.bad_frame(meta.seq, e),
            // new_checked never accepts an empty buffer; stay total anyway.
            None => CaptureError::Device {
                device: format!("{} (injected fault)", self.inner.describe()).into(),
                reason: format!("truncated {width}x{height} frame"),
            },
        }
    }
}

impl FrameSource for FaultInjector {
    /// The inner source's counts, with the frames this injector dropped
    /// counted as lost: the pipeline logs them (`status: "lost"`) as it does
    /// a device's sequence gaps, so the log accounts for every frame.
    fn device_counts(&self) -> Option<super::v4l2::assemble::CaptureCounts> {
        let mut c = self.inner.device_counts().unwrap_or_default();
        c.dropped += self.counts.dropped;
        Some(c)
    }

    fn describe(&self) -> String {
        format!("{} with injected faults", self.inner.describe())
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if let Some(f) = self.repeat.take() {
            return Ok(Some(f));
        }
        loop {
            let Some(frame) = self.inner.next_frame()? else {
                return Ok(None);
            };
            if self.rng.chance(self.plan.drop) {
                self.counts.dropped += 1;
                continue;
            }
            if self.rng.chance(self.plan.stall) {
                self.counts.stalled += 1;
                (self.sleep)(self.plan.stall_time);
            }
            if self.rng.chance(self.plan.truncate) {
                self.counts.truncated += 1;
                return Err(self.truncate(frame));
            }
            let frame = if self.rng.chance(self.plan.corrupt) {
                self.counts.corrupted += 1;
                self.corrupt(frame)?
            } else {
                frame
            };
            if self.rng.chance(self.plan.duplicate) {
                self.counts.duplicated += 1;
                self.repeat = Some(frame.clone());
            }
            return Ok(Some(frame));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::synthetic::SyntheticSource;
    use std::sync::{Arc, Mutex};

    fn source(n: u64) -> Box<dyn FrameSource> {
        Box::new(SyntheticSource::new(64, 48, 30, Some(n)))
    }

    fn drain(src: &mut FaultInjector) -> (Vec<Frame>, u64) {
        let (mut frames, mut errors) = (Vec::new(), 0);
        loop {
            match src.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => return (frames, errors),
                Err(CaptureError::BadFrame { .. }) => errors += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn parses_plans_and_rejects_bad_ones() {
        let p: FaultPlan = "drop=0.1,dup=0.2,corrupt=0.3,truncate=0.4,stall=0.5:250,seed=9"
            .parse()
            .unwrap();
        assert_eq!(
            (p.drop, p.duplicate, p.corrupt, p.truncate, p.stall),
            (0.1, 0.2, 0.3, 0.4, 0.5)
        );
        assert_eq!((p.stall_time, p.seed), (Duration::from_millis(250), 9));
        for bad in ["drop=2", "drop", "wobble=0.1", "stall=0.1:x", "seed=-1"] {
            assert!(bad.parse::<FaultPlan>().is_err(), "{bad}");
        }
    }

    #[test]
    fn no_faults_pass_every_frame_through_unchanged() {
        let mut plain = source(20);
        let mut f = FaultInjector::new(source(20), FaultPlan::default());
        let (frames, errors) = drain(&mut f);
        assert_eq!((frames.len(), errors), (20, 0));
        for got in frames {
            let want = plain.next_frame().unwrap().unwrap();
            assert_eq!(got.meta, want.meta);
            assert_eq!(got.into_parts().0, want.into_parts().0);
        }
    }

    #[test]
    fn each_fault_does_what_it_says_and_is_counted() {
        let stalls = Arc::new(Mutex::new(Vec::new()));
        let s = stalls.clone();
        let plan: FaultPlan = "drop=0.2,dup=0.2,corrupt=0.2,truncate=0.1,stall=0.1:300,seed=3"
            .parse()
            .unwrap();
        let mut f = FaultInjector::with_sleep(
            source(400),
            plan,
            Box::new(move |d| s.lock().unwrap().push(d)),
        );
        let (frames, errors) = drain(&mut f);
        let c = f.counts();
        assert_eq!(errors, c.truncated);
        // Every source frame is accounted for: delivered once, dropped or cut.
        assert_eq!(
            frames.len() as u64,
            400 - c.dropped - c.truncated + c.duplicated
        );
        for (count, what) in [
            (c.dropped, "dropped"),
            (c.duplicated, "duplicated"),
            (c.corrupted, "corrupted"),
            (c.truncated, "truncated"),
            (c.stalled, "stalled"),
        ] {
            assert!(count > 10, "{what}: {count} of 400");
        }
        assert!(
            stalls
                .lock()
                .unwrap()
                .iter()
                .all(|d| *d == Duration::from_millis(300))
        );
        assert_eq!(stalls.lock().unwrap().len() as u64, c.stalled);
        // Duplicates repeat their sequence number; drops leave gaps.
        let seqs: Vec<u64> = frames.iter().map(|f| f.meta.seq).collect();
        let repeats = seqs.windows(2).filter(|w| w[0] == w[1]).count() as u64;
        assert_eq!(repeats, c.duplicated);
        assert!(seqs.windows(2).all(|w| w[1] >= w[0]));
        assert!(seqs.windows(2).any(|w| w[1] > w[0] + 1));
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let plan: FaultPlan = "drop=0.3,corrupt=0.3,seed=11".parse().unwrap();
        let run = || {
            let mut f = FaultInjector::new(source(50), plan);
            let (frames, _) = drain(&mut f);
            frames
                .into_iter()
                .map(|fr| (fr.meta.seq, fr.into_parts().0))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn corruption_changes_pixels_but_keeps_the_layout() {
        let plan: FaultPlan = "corrupt=1,seed=5".parse().unwrap();
        let mut plain = source(5);
        let mut f = FaultInjector::new(source(5), plan);
        for _ in 0..5 {
            let got = f.next_frame().unwrap().unwrap();
            let want = plain.next_frame().unwrap().unwrap();
            assert_eq!(
                (got.format(), got.width(), got.height(), got.stride()),
                (want.format(), want.width(), want.height(), want.stride())
            );
            assert_ne!(got.into_parts().0, want.into_parts().0);
        }
    }
}
