//! The display loop, on the calling thread: takes each event the capture
//! thread posts, shows every frame with the newest result, hands a frame
//! to the model thread whenever it is free, and accounts for every frame
//! in the summary and the log. [`Pipeline::run`](super::Pipeline::run)
//! drives it one step per frame; each step is a method here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::capture_thread::{CaptureThread, Flow, Item};
use super::infer_thread::{InferThread, Judged, NoOutcome, Outcome};
use super::log::{RunLog, outcome_line};
use super::screen::{ModelHealth, Results, StallChange};
use super::stats::{LostWarning, PeriodicReport, Shown};
use super::trigger::{Trigger, TriggerState};
use super::{
    DEFAULT_STABLE_FRAMES, DEFAULT_STALL_AFTER, Mode, Pipeline, PipelineError, RunOptions,
    RunSummary,
};
use crate::analyze::{AlarmReason, Verdict};
use crate::buttons::{Button, Presses};
use crate::capture::CaptureError;
use crate::display::colour::ColourPicture;
use crate::display::{FrameSink, Overlay, Picture, Recording, Status};
use crate::frame::{Frame, FrameMeta};
use crate::health::Notifier;
use crate::preprocess::ToGray;
use crate::record::{RecordSettings, Recorder};

/// What the display loop makes of one capture event.
pub(super) enum Event {
    /// A frame to show (and perhaps to judge), with when it was captured.
    Frame(Frame, Instant),
    /// Accounted for (and, for a lost signal or an idle folder, shown).
    Handled,
    /// The source failed for good: the run ends with this error.
    Failed(CaptureError),
}

/// The frame with the model, and how its picture was shown.
struct InFlight {
    submitted: Instant,
    shown: Option<Shown>,
}

/// What became of a frame offered to the model.
#[derive(Clone, Copy)]
pub(super) struct Offer {
    /// The trigger (X-ray) wanted it judged; always so in ultrasound mode.
    wanted: bool,
    /// It went to the model.
    submitted: bool,
}

/// Operator buttons and the press counts already acted on.
struct Buttons {
    presses: Arc<Presses>,
    freeze: u64,
    record: u64,
    mode: u64,
}

impl Buttons {
    /// Reads the counts so far: a press while the first frames arrive is a
    /// press (found under qemu, where the capture thread got two frames
    /// ahead before these were read), so this runs before capture starts.
    fn new(presses: Arc<Presses>) -> Buttons {
        Buttons {
            freeze: presses.count(Button::Freeze),
            record: presses.count(Button::Record),
            mode: presses.count(Button::Mode),
            presses,
        }
    }
}

/// Everything the loop owns while a run lasts. The inference thread is
/// declared (and so dropped) before the capture thread, as its frames go
/// back to the capture thread's pool.
pub(super) struct DisplayLoop {
    mode: Mode,
    infer: InferThread,
    capture: CaptureThread,
    overlay: Overlay,
    sink: Box<dyn FrameSink>,
    to_gray: ToGray,
    /// The live picture in colour, when the source has colour (ultrasound).
    colour: ColourPicture,
    results: Results,
    in_flight: Option<InFlight>,
    health: ModelHealth,
    /// The last frame's metadata, for screens drawn between frames.
    last_meta: FrameMeta,
    /// Capture has been asked to end; what it already posted is still handled.
    stopping: bool,
    /// A hot folder is waiting for files (said once per idle stretch).
    idle: bool,
    lossless: bool,
    trigger: Option<TriggerState>,
    buttons: Option<Buttons>,
    recorder: Option<Recorder>,
    recording: Option<RecordSettings>,
    switch_mode_to: Option<Mode>,
    labels: Vec<String>,
    log: RunLog,
    /// The alarm the log last said was raised: its reason and when it rose.
    alarm_logged: Option<(AlarmReason, u64)>,
    report: PeriodicReport,
    lost_warning: LostWarning,
    notifier: Notifier,
    progress: Option<Box<dyn FnMut(u64)>>,
    stop: Option<Arc<AtomicBool>>,
    duration: Option<Duration>,
    start: Instant,
    /// Pictures shown per second so far, as the screen last said.
    fps: f32,
    summary: RunSummary,
}

impl DisplayLoop {
    /// Starts the capture and model threads and readies every output.
    pub fn start(p: Pipeline, mut opts: RunOptions) -> Result<DisplayLoop, PipelineError> {
        let audit = opts.audit.take();
        let Pipeline {
            mode,
            source,
            analyst,
            precision,
            model_sha256,
            bundle,
            mut overlay,
            sink,
            ..
        } = p;
        overlay.set_rehearsal(opts.rehearsal);
        let lettering = *overlay.lettering();
        let screen_size = sink.size();
        if lettering.legible_at_1m() {
            tracing::info!("{}", lettering.describe(screen_size));
        } else {
            tracing::warn!("{}", lettering.describe(screen_size));
        }
        let mut summary = RunSummary::new(
            mode,
            source.describe(),
            sink.describe(),
            &bundle,
            analyst.pre.kernel_name(),
            precision,
            model_sha256,
        );
        tracing::info!(source = %summary.source, display = %summary.sink, model = %summary.model, "starting {} run", mode.name());
        let start = Instant::now();
        let valid_us = opts
            .result_valid
            .map_or(crate::display::RESULT_VALIDITY_US, |d| {
                d.as_micros().min(u128::from(u64::MAX)) as u64
            });
        let trigger = (mode == Mode::Xray).then(|| {
            TriggerState::new(
                opts.trigger.unwrap_or(Trigger::Every),
                opts.stable_frames.unwrap_or(DEFAULT_STABLE_FRAMES),
            )
        });
        let buttons = opts.buttons.map(Buttons::new);
        let capture = CaptureThread::start(source, opts.flow, opts.max_frames)
            .map_err(|e| PipelineError::Thread(e.to_string()))?;
        let infer = InferThread::start(analyst, capture.recycle.clone())
            .map_err(|e| PipelineError::Thread(e.to_string()))?;
        summary.times.reserve();
        let recorder = match (&opts.recording, opts.record_from_start) {
            (Some(settings), true) => Some(Recorder::start(settings)?),
            _ => None,
        };
        let mut me = DisplayLoop {
            mode,
            infer,
            capture,
            overlay,
            sink,
            to_gray: ToGray::default(),
            colour: ColourPicture::default(),
            results: Results::new(mode, valid_us),
            in_flight: None,
            health: ModelHealth::new(opts.stall_after.unwrap_or(DEFAULT_STALL_AFTER)),
            last_meta: FrameMeta::default(),
            stopping: false,
            idle: false,
            lossless: opts.flow == Flow::Lossless,
            trigger,
            buttons,
            recorder,
            recording: opts.recording,
            switch_mode_to: opts.switch_mode_to,
            labels: bundle.manifest.output.labels.clone(),
            log: RunLog::new(opts.jsonl, opts.jsonl_path, opts.rehearsal),
            alarm_logged: None,
            report: PeriodicReport::new(opts.report_every),
            lost_warning: LostWarning::default(),
            notifier: Notifier::from_env(),
            progress: opts.progress,
            stop: opts.stop,
            duration: opts.duration,
            start,
            fps: 0.0,
            summary,
        };
        // What ran, for the audit: the first record of every run.
        let s = &me.summary;
        let mut start_record = json!({
            "status": "run_start",
            "version": env!("CARGO_PKG_VERSION"),
            "mode": s.mode.name(),
            "source": s.source,
            "display": s.sink,
            "model": s.model,
            "model_sha256": s.model_sha256,
            "demonstration": s.demonstration,
            "precision": s.precision,
            "kernels": s.kernels,
            "panel": {
                "width": screen_size.0,
                "height": screen_size.1,
                "px_per_mm": lettering.px_per_mm,
                "size_known": lettering.measured,
                "alarm_cap_mm": lettering.cap_mm,
                "legible_at_1m": lettering.legible_at_1m(),
            },
        });
        if let (Some(obj), Some(serde_json::Value::Object(extra))) =
            (start_record.as_object_mut(), audit)
        {
            obj.extend(extra);
        }
        me.log.write(start_record)?;
        Ok(me)
    }

    /// The next event from the capture thread, after asking capture to end
    /// when a signal or the run's duration says so; `None` once capture has
    /// ended and everything it posted is handled.
    pub fn next_event(&mut self) -> Option<Item> {
        let signalled = self
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed));
        let timed_out = self.duration.is_some_and(|d| self.start.elapsed() >= d);
        if !self.stopping && (signalled || timed_out) {
            if signalled {
                tracing::info!("stopping: signal received");
            }
            self.capture.stop();
            self.stopping = true;
        }
        self.capture.mailbox.take()
    }

    /// Accounts for an event that is not a frame: drops, gaps and damaged
    /// buffers are counted and logged, a lost signal and an idle hot
    /// folder are also shown on screen.
    pub fn handle(&mut self, item: Item) -> Result<Event, PipelineError> {
        match item {
            Item::Frame(frame, at) => {
                self.idle = false;
                self.last_meta = frame.meta;
                return Ok(Event::Frame(frame, at));
            }
            Item::Dropped(meta) => {
                self.summary.dropped += 1;
                tracing::debug!(seq = meta.seq, "frame dropped: a newer one arrived first");
                self.log.event(
                    || json!({"seq": meta.seq, "timestamp_us": meta.timestamp_us, "status": "dropped", "reason": "a newer frame arrived before the screen was free"}),
                )?;
            }
            Item::Lost(n) => {
                self.summary.device_lost += n;
                self.lost_warning.add(n);
                self.log.event(
                    || json!({"status": "lost", "frames": n, "reason": "dropped by the device before bedside saw them (a gap in its sequence numbers)"}),
                )?;
            }
            Item::Damaged(n) => {
                self.summary.device_damaged += n;
                tracing::warn!("the device flagged {n} buffer(s) as damaged: skipped");
                self.log.event(
                    || json!({"status": "skipped", "frames": n, "reason": "the device flagged the buffer as damaged"}),
                )?;
            }
            Item::Skipped(e) => {
                self.summary.skipped += 1;
                tracing::warn!("frame skipped: {e}");
                self.log
                    .event(|| json!({"status": "skipped", "reason": e.to_string()}))?;
            }
            Item::NoSignal(e) => {
                // A live device went away; it reopens itself with backoff.
                self.summary.no_signal += 1;
                self.notifier.alive();
                self.notifier.status("no signal: reopening the camera");
                tracing::warn!("no signal: {e}");
                let canvas = self.overlay.render(
                    self.to_gray.image(),
                    Status::NoSignal(&e.to_string()),
                    None,
                );
                self.sink.show(canvas, &self.last_meta)?;
                self.log
                    .event(|| json!({"status": "no_signal", "reason": e.to_string()}))?;
            }
            Item::Idle(e) => {
                // A hot folder with nothing new: alive (READY=1 the first
                // time, then the watchdog), and the screen says so once per
                // idle stretch. The log is flushed, so a second signal (exit
                // 130 at once) loses no line.
                self.notifier.alive();
                if !self.idle {
                    self.idle = true;
                    self.notifier.status("waiting for images");
                    tracing::info!("{e}");
                    let canvas = self.overlay.render(
                        self.to_gray.image(),
                        Status::Waiting("waiting for images"),
                        None,
                    );
                    self.sink.show(canvas, &self.last_meta)?;
                    self.log.flush()?;
                }
            }
            Item::Failed(e) => return Ok(Event::Failed(e)),
        }
        Ok(Event::Handled)
    }

    /// Ends a run whose source failed: the model thread is given its grace
    /// period, and the error is the run's.
    pub fn fail(self, e: CaptureError) -> PipelineError {
        self.infer.finish(self.health.bound);
        e.into()
    }

    /// Converts the frame to the gray picture the screen shows; returns
    /// when that began and ended.
    pub fn convert(&mut self, frame: &Frame) -> [Instant; 2] {
        let taken = Instant::now();
        self.to_gray.run(frame);
        // Ultrasound shows a colour source in colour (Doppler); the model
        // still gets gray. A gray source costs nothing here.
        if self.mode == Mode::Ultrasound {
            self.colour.update(frame);
        }
        [taken, Instant::now()]
    }

    /// Live flow: takes an outcome that came in while this frame was on
    /// its way (a lossless run waits for each frame's own in
    /// [`wait_own_result`](Self::wait_own_result)).
    pub fn take_finished_outcome(&mut self) -> Result<(), PipelineError> {
        if self.lossless || self.in_flight.is_none() {
            return Ok(());
        }
        match self.infer.try_take() {
            Ok(o) => {
                let shown = self.in_flight.take().and_then(|f| f.shown);
                self.results
                    .apply(o, &mut self.overlay, &mut self.summary, &mut self.health);
                self.log_outcome(shown.as_ref())?;
            }
            Err(NoOutcome::Stopped) => self.model_stopped(),
            Err(NoOutcome::Pending) => {}
        }
        Ok(())
    }

    /// Acts on button presses since the last frame: MODE ends the run to
    /// switch modes, RECORD starts or ends a session, FREEZE (X-ray)
    /// classifies the picture on screen.
    pub fn read_buttons(&mut self, seq: u64) -> Result<(), PipelineError> {
        let Some(b) = self.buttons.as_mut() else {
            return Ok(());
        };
        // Each press is a record: what was pressed and what it did.
        let mut pressed: heapless::Vec<(&'static str, String), 3> = heapless::Vec::new();
        let n = b.presses.count(Button::Mode);
        if n != b.mode && !self.stopping {
            b.mode = n;
            match self.switch_mode_to {
                Some(next) => {
                    tracing::warn!("MODE pressed: switching to {} mode", next.name());
                    self.summary.switch_to = Some(next);
                    self.capture.stop();
                    self.stopping = true;
                    let _ = pressed.push(("mode", format!("switching to {} mode", next.name())));
                }
                None => {
                    tracing::warn!(
                        "MODE pressed: the board has no model for another mode ([models] in its profile); staying in {} mode",
                        self.mode.name()
                    );
                    let _ = pressed.push((
                        "mode",
                        format!(
                            "no model for another mode: staying in {} mode",
                            self.mode.name()
                        ),
                    ));
                }
            }
        }
        let n = b.presses.count(Button::Record);
        if n != b.record {
            b.record = n;
            let effect = toggle_recording(
                &mut self.recorder,
                self.recording.as_ref(),
                &mut self.summary,
            );
            let _ = pressed.push(("record", effect));
        }
        if let Some(t) = self.trigger.as_mut() {
            let n = b.presses.count(Button::Freeze);
            if n != b.freeze {
                b.freeze = n;
                tracing::info!(seq, "FREEZE: classifying this picture");
                t.press();
                let _ = pressed.push(("freeze", "classifying this picture".into()));
            }
        }
        for (button, effect) in pressed {
            self.log.event(
                || json!({"seq": seq, "status": "button", "button": button, "effect": effect}),
            )?;
            if button == "mode"
                && let Some(next) = self.summary.switch_to
            {
                let from = self.mode.name();
                self.log.event(|| {
                    json!({"seq": seq, "status": "mode_change", "from": from, "to": next.name()})
                })?;
            }
        }
        Ok(())
    }

    /// Hands the frame to the model if the trigger wants it judged and the
    /// model is free; otherwise the frame goes back to the capture pool.
    pub fn offer_to_model(&mut self, frame: Frame, captured: Instant) -> Offer {
        let wanted = match self.trigger.as_mut() {
            None => true,
            Some(t) => t.update(self.to_gray.image()),
        };
        let free = self.in_flight.is_none() && !self.health.stopped;
        if !(wanted && free) {
            if wanted && let Some(t) = self.trigger.as_mut() {
                t.defer();
            }
            let _ = self.capture.recycle.try_send(frame);
            return Offer {
                wanted,
                submitted: false,
            };
        }
        if self.mode == Mode::Xray {
            self.results.candidate.copy_from(self.to_gray.image());
        }
        match self.infer.submit(frame, captured) {
            Ok(()) => {
                self.in_flight = Some(InFlight {
                    submitted: Instant::now(),
                    shown: None,
                });
                Offer {
                    wanted,
                    submitted: true,
                }
            }
            Err(frame) => {
                self.health.stopped = true;
                let _ = self.capture.recycle.try_send(frame);
                Offer {
                    wanted,
                    submitted: false,
                }
            }
        }
    }

    /// A lossless run shows each frame with its own result: waits for it,
    /// saying AI UNAVAILABLE on screen while the model is stalled (and
    /// waiting on: a replay must not lose frames). Returns whether the
    /// frame's own result came in.
    pub fn wait_own_result(&mut self, meta: &FrameMeta) -> Result<bool, PipelineError> {
        let mut own = false;
        while self.lossless
            && let Some(f) = &self.in_flight
        {
            let submitted = f.submitted;
            match self.infer.wait(self.health.bound) {
                Ok(o) => {
                    self.in_flight = None;
                    self.results
                        .apply(o, &mut self.overlay, &mut self.summary, &mut self.health);
                    own = true;
                }
                Err(NoOutcome::Stopped) => self.model_stopped(),
                Err(NoOutcome::Pending) => {
                    self.health
                        .stall(submitted.elapsed(), &mut self.summary, &mut self.notifier);
                    let canvas = self.overlay.render(
                        self.to_gray.image(),
                        Status::AiUnavailable(self.health.why()),
                        None,
                    );
                    self.sink.show(canvas, meta)?;
                }
            }
        }
        Ok(own)
    }

    /// A frame with the model past the bound: the model has stalled.
    pub fn check_stall(&mut self) -> Result<(), PipelineError> {
        if let Some(f) = &self.in_flight
            && f.submitted.elapsed() >= self.health.bound
        {
            self.health
                .stall(f.submitted.elapsed(), &mut self.summary, &mut self.notifier);
        }
        self.log_stall_change()
    }

    /// A stall's start and end are records of their own.
    fn log_stall_change(&mut self) -> Result<(), PipelineError> {
        match self.health.take_change() {
            None => Ok(()),
            Some(StallChange::Began(waited)) => self.log.event(|| {
                json!({"status": "stall", "reason": "inference stalled: no result past the bound",
                    "waited_s": waited.as_secs_f64()})
            }),
            Some(StallChange::Ended(lasted)) => self.log.event(|| {
                json!({"status": "stall_ended", "reason": "inference resumed",
                    "duration_s": lasted.as_secs_f64()})
            }),
        }
    }

    /// Draws the overlay over the picture (the live one, or in X-ray mode
    /// the one classified) and shows it. Returns when each stage ended and
    /// the name of what the screen said.
    pub fn show(
        &mut self,
        meta: &FrameMeta,
        [taken, converted]: [Instant; 2],
        captured: Instant,
    ) -> Result<(Shown, &'static str), PipelineError> {
        let prompt = self
            .trigger
            .as_ref()
            .map_or("model starting", |t| t.policy().prompt());
        let (picture, status) = self.results.screen(
            self.to_gray.image(),
            meta.timestamp_us,
            &self.health,
            prompt,
        );
        let screen = status.name();
        let elapsed = self.start.elapsed().as_secs_f32().max(1e-6);
        self.fps = (self.summary.shown + 1) as f32 / elapsed;
        // The screen shows the previous picture's capture-to-display time.
        let timing = self
            .summary
            .times
            .last_total_us()
            .map(|us| (self.fps, us as f32 / 1000.0));
        self.overlay.set_recording(match &self.recorder {
            None => Recording::Off,
            Some(r) if r.failed() => Recording::Failed,
            Some(_) => Recording::On,
        });
        let shown_picture = if self.mode == Mode::Ultrasound && self.colour.is_colour {
            Picture::Colour(&self.colour)
        } else {
            Picture::Gray(picture)
        };
        let canvas = self.overlay.render_picture(shown_picture, status, timing);
        let drawn = Instant::now();
        if let Err(e) = self.sink.show(canvas, meta) {
            // The run ends here; the frame is still accounted for.
            self.log.event(
                || json!({"seq": meta.seq, "timestamp_us": meta.timestamp_us, "status": "display_failed", "reason": e.to_string()}),
            )?;
            return Err(e.into());
        }
        let shown = Shown {
            stamps: [taken, converted, drawn, Instant::now()],
            captured,
        };
        self.summary.times.push_shown(&shown);
        self.summary.shown += 1;
        if self.mode == Mode::Ultrasound
            && let Some(r) = self.recorder.as_mut()
        {
            r.picture(meta.seq, picture);
        }
        if !self.health.stalled() && !self.health.stopped {
            self.notifier.alive();
        }
        Ok((shown, screen))
    }

    /// Accounts for the frame just shown: with the model (its record is
    /// written when the outcome comes), judged (written now), or shown
    /// without a result of its own (counted, and logged with the reason).
    pub fn account(
        &mut self,
        meta: &FrameMeta,
        offer: Offer,
        own_result: bool,
        (shown, screen): (Shown, &'static str),
    ) -> Result<(), PipelineError> {
        if own_result {
            return self.log_outcome(Some(&shown));
        }
        if offer.submitted {
            if let Some(f) = self.in_flight.as_mut() {
                f.shown = Some(shown);
            }
            return Ok(());
        }
        self.summary.not_inferred += 1;
        let reason = match (self.mode, offer.wanted) {
            (Mode::Xray, false) => "no classification asked for this picture",
            _ => "the model was busy with an earlier frame",
        };
        let result_of = self.results.newest.as_ref().map(|o| o.meta.seq);
        self.log
            .shown_alone(meta, reason, screen, &shown, result_of)
    }

    /// The periodic fps and latency line, and the caller's progress.
    pub fn report(&mut self) {
        self.report.log_if_due(&mut self.summary, self.fps);
        if let Some(p) = self.progress.as_mut() {
            p(self.summary.shown);
        }
    }

    /// Ends the run: the outcome of the frame still with the model is
    /// logged if it comes in time, the log flushed, recording ended, both
    /// threads joined and the sink finished.
    pub fn finish(mut self) -> Result<RunSummary, PipelineError> {
        if self.in_flight.is_some()
            && !self.health.stopped
            && let Ok(o) = self.infer.wait(self.health.bound)
        {
            let shown = self.in_flight.take().and_then(|f| f.shown);
            self.results
                .apply(o, &mut self.overlay, &mut self.summary, &mut self.health);
            self.log_outcome(shown.as_ref())?;
        }
        let s = &self.summary;
        let end_record = json!({
            "status": "run_end",
            "frames": s.frames,
            "shown": s.shown,
            "skipped": s.skipped,
            "dropped": s.dropped,
            "no_signal": s.no_signal,
            "model_failures": s.model_failures,
            "refused": s.refused,
            "alarms": s.alarms.len(),
            "wall_s": self.start.elapsed().as_secs_f64(),
        });
        self.log.write(end_record)?;
        self.log.flush()?;
        if let Some(r) = self.recorder.take() {
            self.summary.recordings.push(r.finish());
        }
        self.notifier.stopping();
        if !self.infer.finish(self.health.bound) {
            tracing::error!("the inference thread did not end cleanly");
        }
        if !self.capture.join() {
            tracing::error!("the capture thread panicked");
        }
        let mut summary = self.summary;
        summary.last = match self.results.newest {
            Some(Outcome {
                judged: Judged::Verdict(v),
                ..
            }) => Some(v),
            _ => None,
        };
        summary.wall = self.start.elapsed();
        summary.files = self.sink.finish()?;
        Ok(summary)
    }

    fn model_stopped(&mut self) {
        self.in_flight = None;
        self.health.stopped = true;
    }

    /// Writes the record of the outcome just taken to the log and, while
    /// recording, to the session (with the classified image in X-ray mode).
    fn log_outcome(&mut self, shown: Option<&Shown>) -> Result<(), PipelineError> {
        self.log_stall_change()?;
        let Some(o) = self.results.logged() else {
            return Ok(());
        };
        if !self.log.is_on() && self.recorder.is_none() {
            return Ok(());
        }
        let line = outcome_line(o, shown, &self.labels);
        if let Some(r) = self.recorder.as_mut() {
            r.result(&line);
            if self.mode == Mode::Xray && self.results.skipped.is_none() && self.results.held_valid
            {
                r.picture(o.meta.seq, &self.results.held);
            }
        }
        self.log.write(line)?;
        // An alarm's rise and its end are records of their own, the end
        // with the reason it had and how long it was up (frame time), so an
        // audit need not replay every frame's state.
        if let Judged::Verdict(Verdict::Anomaly(a)) = &o.judged {
            let at = o.meta;
            match (a.alarm, self.alarm_logged) {
                (Some(r), None) => {
                    let since = a.alarm_since_us.unwrap_or(at.timestamp_us);
                    self.alarm_logged = Some((r, since));
                    self.log.event(|| {
                        json!({
                            "seq": at.seq,
                            "timestamp_us": at.timestamp_us,
                            "status": "alarm_raised",
                            "reason": r.text(),
                            "kind": signal_kind(r),
                            "priority": crate::display::alarm_signal::Signal::of_alarm(r)
                                .priority
                                .map(|p| p.name()),
                        })
                    })?;
                }
                (None, Some((r, since))) => {
                    self.alarm_logged = None;
                    self.log.event(|| {
                        json!({
                            "seq": at.seq,
                            "timestamp_us": at.timestamp_us,
                            "status": "alarm_cleared",
                            "reason": r.text(),
                            "duration_s": at.timestamp_us.saturating_sub(since) as f64 / 1e6,
                        })
                    })?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// RECORD: starts a session, or ends the one running. Without a
/// `[recording]` configuration nothing is written, and the log says so.
/// Returns what it did, for the `--jsonl` record of the press.
fn toggle_recording(
    recorder: &mut Option<Recorder>,
    settings: Option<&RecordSettings>,
    summary: &mut RunSummary,
) -> String {
    if let Some(r) = recorder.take() {
        summary.recordings.push(r.finish());
        return "recording ended".into();
    }
    match settings {
        None => {
            tracing::warn!(
                "RECORD pressed: recording is not configured ([recording] in the board profile, or run --record DIR); nothing is written"
            );
            "recording is not configured: nothing written".into()
        }
        Some(s) => match Recorder::start(s) {
            Ok(r) => {
                *recorder = Some(r);
                "recording started".into()
            }
            Err(e) => {
                tracing::error!("RECORD pressed, but {e}; not recording");
                format!("not recording: {e}")
            }
        },
    }
}

/// The alarm's kind in the log, as the screen presents it.
fn signal_kind(r: AlarmReason) -> &'static str {
    use crate::display::alarm_signal::{Kind, Signal};
    match Signal::of_alarm(r).kind {
        Kind::Alarm => "alarm",
        Kind::Technical => "technical",
        Kind::Information => "information",
    }
}
