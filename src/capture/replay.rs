//! Replaying recorded frames: at the file's own rate or as fast as possible,
//! once or in a loop.
//!
//! A cine replayed at its Frame Time behaves like the cart's live video (for
//! demonstrations and soak runs on a bench); as fast as possible is for
//! batch work and tests. Looping reopens the source and carries sequence
//! numbers and timestamps on, so analyzers see one continuous recording.

use std::time::{Duration, Instant};

use super::{CaptureError, FrameSource};
use crate::frame::{Frame, FrameMeta};

/// How fast recorded frames are delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Pace {
    /// As fast as the pipeline takes them.
    #[default]
    Fast,
    /// At the recording's timestamps (DICOM Frame Time, a folder's interval).
    File,
}

/// Opens the recording again for the next pass of a loop.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, CaptureError> + Send>;
/// Waits (`std::thread::sleep`, or a test's fake).
pub type Sleep = Box<dyn FnMut(Duration) + Send>;
/// Reads a monotonic clock as time since some fixed start.
pub type Clock = Box<dyn FnMut() -> Duration + Send>;

/// A recorded source, paced and optionally looped.
pub struct Replay {
    open: Opener,
    inner: Box<dyn FrameSource>,
    pace: Pace,
    looping: bool,
    /// Added to the inner source's numbering on later passes.
    offset: FrameMeta,
    /// The last frame delivered, as the inner source numbered it.
    last_inner: Option<FrameMeta>,
    frames_this_pass: u64,
    /// Clock reading that corresponds to timestamp 0 (set at the first frame).
    base: Option<Duration>,
    sleep: Sleep,
    clock: Clock,
    pub passes: u64,
}

impl Replay {
    pub fn new(mut open: Opener, pace: Pace, looping: bool) -> Result<Replay, CaptureError> {
        let inner = open()?;
        let epoch = Instant::now();
        Ok(Replay::with_clock(
            open,
            inner,
            pace,
            looping,
            Box::new(std::thread::sleep),
            Box::new(move || epoch.elapsed()),
        ))
    }

    /// With an injected clock and sleep (tests advance time instead of waiting).
    pub fn with_clock(
        open: Opener,
        inner: Box<dyn FrameSource>,
        pace: Pace,
        looping: bool,
        sleep: Sleep,
        clock: Clock,
    ) -> Replay {
        Replay {
            open,
            inner,
            pace,
            looping,
            offset: FrameMeta::default(),
            last_inner: None,
            frames_this_pass: 0,
            base: None,
            sleep,
            clock,
            passes: 1,
        }
    }

    /// Starts the next pass; `false` when the last pass had no frames
    /// (looping over nothing would spin forever).
    fn next_pass(&mut self) -> Result<bool, CaptureError> {
        let Some(last) = self.last_inner.filter(|_| self.frames_this_pass > 0) else {
            return Ok(false);
        };
        // The gap to the next pass's first frame: the pass's mean interval.
        let gap = match self.frames_this_pass {
            n if n > 1 => last.timestamp_us / (n - 1),
            _ => 33_333,
        };
        self.offset = FrameMeta {
            seq: self.offset.seq + last.seq + 1,
            timestamp_us: self.offset.timestamp_us + last.timestamp_us + gap.max(1),
        };
        self.inner = (self.open)()?;
        self.last_inner = None;
        self.frames_this_pass = 0;
        self.passes += 1;
        Ok(true)
    }
}

impl FrameSource for Replay {
    fn describe(&self) -> String {
        let pace = match self.pace {
            Pace::Fast => "as fast as possible",
            Pace::File => "at the file's rate",
        };
        let looping = if self.looping { ", looping" } else { "" };
        format!("{} ({pace}{looping})", self.inner.describe())
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let mut frame = loop {
            match self.inner.next_frame()? {
                Some(f) => break f,
                None if self.looping && self.next_pass()? => continue,
                None => return Ok(None),
            }
        };
        self.last_inner = Some(frame.meta);
        self.frames_this_pass += 1;
        frame.meta.seq += self.offset.seq;
        frame.meta.timestamp_us += self.offset.timestamp_us;
        if self.pace == Pace::File {
            // Each frame is due at its timestamp after the first one's arrival;
            // a slow pipeline is not made slower by catching up with sleeps.
            let now = (self.clock)();
            let due = Duration::from_micros(frame.meta.timestamp_us);
            let base = *self.base.get_or_insert(now.saturating_sub(due));
            let wait = (base + due).saturating_sub(now);
            if !wait.is_zero() {
                (self.sleep)(wait);
            }
        }
        Ok(Some(frame))
    }

    fn recycle(&mut self, frame: Frame) {
        self.inner.recycle(frame);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::capture::synthetic::SyntheticSource;

    fn opener(frames: u64) -> Opener {
        Box::new(move || {
            Ok(Box::new(SyntheticSource::new(64, 48, 10, Some(frames))) as Box<dyn FrameSource>)
        })
    }

    /// A clock that only moves when slept on (plus `work` per reading).
    fn fake_clock(work: Duration) -> (Sleep, Clock, Arc<Mutex<Vec<Duration>>>) {
        let now = Arc::new(Mutex::new(Duration::ZERO));
        let slept = Arc::new(Mutex::new(Vec::new()));
        let (n1, n2, s1) = (now.clone(), now, slept.clone());
        let sleep = Box::new(move |d: Duration| {
            *n1.lock().unwrap() += d;
            s1.lock().unwrap().push(d);
        });
        let clock = Box::new(move || {
            let mut t = n2.lock().unwrap();
            *t += work;
            *t
        });
        (sleep, clock, slept)
    }

    fn replay(
        frames: u64,
        pace: Pace,
        looping: bool,
        work: Duration,
    ) -> (Replay, Arc<Mutex<Vec<Duration>>>) {
        let mut open = opener(frames);
        let inner = open().unwrap();
        let (sleep, clock, slept) = fake_clock(work);
        (
            Replay::with_clock(open, inner, pace, looping, sleep, clock),
            slept,
        )
    }

    #[test]
    fn file_pace_waits_for_each_timestamp() {
        let (mut r, slept) = replay(4, Pace::File, false, Duration::from_millis(30));
        let mut stamps = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            stamps.push(f.meta.timestamp_us);
        }
        // 10 fps: frames every 100 ms; 30 ms of work per frame leaves 70 ms to wait.
        assert_eq!(stamps, [0, 100_000, 200_000, 300_000]);
        assert_eq!(*slept.lock().unwrap(), vec![Duration::from_millis(70); 3]);
    }

    #[test]
    fn fast_pace_never_sleeps_and_slow_work_is_not_punished() {
        let (mut r, slept) = replay(4, Pace::Fast, false, Duration::ZERO);
        while r.next_frame().unwrap().is_some() {}
        assert!(slept.lock().unwrap().is_empty());
        // Work slower than the frame rate: no sleeps either.
        let (mut r, slept) = replay(4, Pace::File, false, Duration::from_millis(150));
        while r.next_frame().unwrap().is_some() {}
        assert!(slept.lock().unwrap().is_empty());
    }

    #[test]
    fn looping_continues_numbering_and_time() {
        let (mut r, _) = replay(3, Pace::Fast, true, Duration::ZERO);
        let metas: Vec<FrameMeta> = (0..7)
            .map(|_| r.next_frame().unwrap().unwrap().meta)
            .collect();
        let seqs: Vec<u64> = metas.iter().map(|m| m.seq).collect();
        let times: Vec<u64> = metas.iter().map(|m| m.timestamp_us).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(
            times,
            [0, 100_000, 200_000, 300_000, 400_000, 500_000, 600_000]
        );
        assert_eq!(r.passes, 3);
        assert!(r.describe().contains("looping"));
    }

    #[test]
    fn looping_over_nothing_ends() {
        let (mut r, _) = replay(0, Pace::Fast, true, Duration::ZERO);
        assert!(r.next_frame().unwrap().is_none());
    }
}
