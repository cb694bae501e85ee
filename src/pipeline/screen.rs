//! What the screen says about the model's work: the newest result (with,
//! in X-ray mode, the picture it belongs to), a model failure, a stall, or
//! a prompt while nothing has come yet. The display loop draws whatever
//! [`Results::screen`] chooses over every picture.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::infer_thread::{Judged, Outcome};
use super::{Mode, RunSummary};
use crate::analyze::Verdict;
use crate::display::{Overlay, Status, result_status};
use crate::health::Notifier;
use crate::preprocess::GrayImage;

/// The model thread as the screen sees it: stalled (a frame with it past
/// the bound) or stopped altogether.
pub(super) struct ModelHealth {
    /// How long a frame may be with the model before the screen says AI
    /// UNAVAILABLE.
    pub bound: Duration,
    stalled_since: Option<Instant>,
    /// What the screen says during a stall (a reused buffer: a stall does
    /// not allocate per frame).
    why: String,
    /// The inference thread has ended: no frame goes to it again.
    pub stopped: bool,
    /// A stall that began or ended since the display loop last asked
    /// ([`ModelHealth::take_change`]), for the log.
    change: Option<StallChange>,
}

/// A stall began (how long the frame had been with the model) or ended
/// (how long it lasted).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum StallChange {
    Began(Duration),
    Ended(Duration),
}

impl ModelHealth {
    pub fn new(bound: Duration) -> ModelHealth {
        ModelHealth {
            bound,
            stalled_since: None,
            why: String::new(),
            stopped: false,
            change: None,
        }
    }

    pub fn stalled(&self) -> bool {
        self.stalled_since.is_some()
    }

    /// A frame has been with the model for `waited`, past the bound: the
    /// stall is counted and logged once, and the screen's text updated.
    pub fn stall(&mut self, waited: Duration, summary: &mut RunSummary, notifier: &mut Notifier) {
        if self.stalled_since.is_none() {
            self.stalled_since = Some(Instant::now());
            summary.inference_stalls += 1;
            self.change = Some(StallChange::Began(waited));
            tracing::error!(
                "AI unavailable: no result for {:.1} s (inference stalled); the picture goes on",
                self.bound.as_secs_f32()
            );
            notifier.status("AI unavailable: inference stalled");
        }
        self.why.clear();
        let _ = write!(
            self.why,
            "inference stalled for {:.1} s",
            waited.as_secs_f32()
        );
    }

    /// An outcome came in: a stall, if there was one, is over.
    fn resumed(&mut self) {
        if let Some(since) = self.stalled_since.take() {
            let lasted = since.elapsed();
            tracing::warn!(
                "inference resumed after a stall of {:.1} s",
                lasted.as_secs_f32()
            );
            self.change = Some(StallChange::Ended(lasted));
        }
    }

    /// The stall that began or ended since the last call, if any.
    pub fn take_change(&mut self) -> Option<StallChange> {
        self.change.take()
    }

    /// What the screen says while the model is unavailable.
    pub fn why(&self) -> &str {
        &self.why
    }
}

/// The model's outcomes as the screen shows them: the newest with a result
/// or a failure, and in X-ray mode the image it belongs to.
pub(super) struct Results {
    mode: Mode,
    /// How long a result may be drawn over newer pictures, in microseconds.
    valid_us: u64,
    pub newest: Option<Outcome>,
    /// X-ray: the image classified, shown with its result until the next one.
    pub held: GrayImage,
    pub held_valid: bool,
    /// X-ray: the picture handed to the model with the frame in flight.
    pub candidate: GrayImage,
    /// The last outcome, when it was a skipped frame (not shown, but logged).
    pub skipped: Option<Outcome>,
    alarm_up: bool,
}

impl Results {
    pub fn new(mode: Mode, valid_us: u64) -> Results {
        Results {
            mode,
            valid_us,
            newest: None,
            held: GrayImage::default(),
            held_valid: false,
            candidate: GrayImage::default(),
            skipped: None,
            alarm_up: false,
        }
    }

    /// Takes in an outcome: counts it, and makes it the one shown unless
    /// the frame was skipped.
    pub fn apply(
        &mut self,
        o: Outcome,
        overlay: &mut Overlay,
        summary: &mut RunSummary,
        health: &mut ModelHealth,
    ) {
        health.resumed();
        summary.times.push_judged(&o);
        match &o.judged {
            Judged::Skipped(e) => {
                summary.skipped += 1;
                tracing::warn!(seq = o.meta.seq, "frame skipped: {e}");
                // Logged, but the result on screen stays.
                self.skipped = Some(o);
                return;
            }
            Judged::Refused(r) => {
                summary.frames += 1;
                summary.refused += 1;
                // Once per run of refused frames, not per frame of a cine
                // (by reason: the pixel gate's score differs frame to frame).
                if !matches!(self.newest.as_ref().map(|o| &o.judged), Some(Judged::Refused(p)) if p.reason() == r.reason())
                {
                    tracing::warn!(seq = o.meta.seq, "not analyzed: {r}");
                }
                self.held_valid = false;
            }
            Judged::Failed(why) => {
                summary.frames += 1;
                summary.model_failures += 1;
                tracing::error!(seq = o.meta.seq, "AI unavailable: {why}");
                self.held_valid = false;
            }
            Judged::Verdict(v) => {
                summary.frames += 1;
                if self.mode == Mode::Xray {
                    std::mem::swap(&mut self.held, &mut self.candidate);
                    self.held_valid = true;
                }
                if let Verdict::Anomaly(a) = v {
                    overlay.record_score(a.score);
                    match (a.alarm, self.alarm_up) {
                        (Some(r), false) => {
                            summary.alarms.push(super::summary::AlarmSpan {
                                seq: o.meta.seq,
                                reason: r.text(),
                                since_us: a.alarm_since_us.unwrap_or(o.meta.timestamp_us),
                                cleared: None,
                            });
                            tracing::warn!(seq = o.meta.seq, "ALARM raised: {}", r.text());
                        }
                        (None, true) => {
                            tracing::info!(seq = o.meta.seq, "alarm cleared");
                            if let Some(last) = summary.alarms.last_mut() {
                                let up = o.meta.timestamp_us.saturating_sub(last.since_us);
                                last.cleared = Some((o.meta.seq, up as f64 / 1e6));
                            }
                        }
                        _ => {}
                    }
                    self.alarm_up = a.alarm.is_some();
                }
            }
        }
        self.skipped = None;
        self.newest = Some(o);
    }

    /// The outcome [`apply`](Self::apply) took last.
    pub fn logged(&self) -> Option<&Outcome> {
        self.skipped.as_ref().or(self.newest.as_ref())
    }

    /// The picture to show and what to say over it: `live` is the frame
    /// just converted (taken at `now_us`), `prompt` what the screen says
    /// before the first result.
    pub fn screen<'a>(
        &'a self,
        live: &'a GrayImage,
        now_us: u64,
        health: &'a ModelHealth,
        prompt: &'static str,
    ) -> (&'a GrayImage, Status<'a>) {
        if health.stopped {
            return (live, Status::AiUnavailable("the inference thread stopped"));
        }
        if health.stalled() {
            return (live, Status::AiUnavailable(health.why()));
        }
        match self.newest.as_ref().map(|o| (&o.judged, o.meta)) {
            Some((Judged::Verdict(v), at)) if self.mode == Mode::Xray && self.held_valid => (
                &self.held,
                result_status(v, at.timestamp_us, at.timestamp_us, self.valid_us),
            ),
            Some((Judged::Verdict(v), at)) if self.mode == Mode::Ultrasound => (
                live,
                result_status(v, at.timestamp_us, now_us, self.valid_us),
            ),
            Some((Judged::Failed(e), _)) => (live, Status::AiUnavailable(e)),
            Some((Judged::Refused(r), _)) => (live, Status::NotAnalyzed(r)),
            _ => (live, Status::Waiting(prompt)),
        }
    }
}
