//! Preprocessing, inference and analysis on a thread of their own, so the
//! screen never waits for the model.
//!
//! The display loop hands a frame over only when this thread is idle (one
//! job at a time: the newest frame wins by construction, older ones are
//! shown without a new result). The outcome comes back by channel with the
//! stage times; the frame goes back to the capture thread's pool from
//! here. Both channels are bounded, so nothing allocates per frame.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::analyze::anomaly::NativeView;
use crate::analyze::gate::{ImageFacts, Refusal};
use crate::analyze::{Analyzer, Evidence, Verdict};
use crate::frame::{Frame, FrameMeta};
use crate::infer::Model;
use crate::preprocess::Preprocessor;

/// What the model thread works with; moved onto the thread at start.
pub struct Analyst {
    pub pre: Preprocessor,
    pub model: Box<dyn Model>,
    /// The mode's analyzer: the classifier or the anomaly detector.
    pub analyzer: Box<dyn Analyzer>,
    /// What a frame's file must not say about itself before the model sees
    /// it (X-ray mode: [`crate::analyze::gate::chest_xray`]).
    pub gate: Option<Gate>,
    /// The bundle's pixel gate threshold (manifest `[gate]`; X-ray mode):
    /// a frame whose out-of-distribution score is over it is not analyzed.
    pub pixel_gate: Option<f32>,
}

/// A check of a frame's DICOM attributes.
pub type Gate = fn(&ImageFacts) -> Result<(), Refusal>;

/// What came of one frame.
#[derive(Debug)]
pub enum Judged {
    Verdict(Verdict),
    /// Preprocessing refused the frame (the reason).
    Skipped(String),
    /// The model failed or its output was not finite (the reason).
    Failed(String),
    /// The frame's file says it is not what the model is for: not analyzed.
    Refused(Refusal),
}

/// One frame's outcome and its stage times.
#[derive(Debug)]
pub struct Outcome {
    pub meta: FrameMeta,
    /// When the source delivered the frame.
    pub captured: Instant,
    /// Start of preprocessing, end of preprocessing, of inference, of analysis.
    pub stamps: [Instant; 4],
    pub judged: Judged,
}

impl Analyst {
    /// Preprocesses, runs the model and judges one frame.
    pub fn judge(&mut self, frame: &Frame) -> ([Instant; 4], Judged) {
        let t0 = Instant::now();
        if let (Some(gate), Some(facts)) = (self.gate, frame.facts.as_deref())
            && let Err(r) = gate(facts)
        {
            return ([t0; 4], Judged::Refused(r));
        }
        if let Err(e) = self.pre.process(frame) {
            let t = Instant::now();
            return ([t0, t, t, t], Judged::Skipped(e.to_string()));
        }
        let t1 = Instant::now();
        // The output stays in the model's own buffer: nothing copied per frame.
        let outcome = self.model.run_gated(self.pre.model_input());
        let t2 = Instant::now();
        let judged = match outcome {
            Err(e) => Judged::Failed(e.to_string()),
            Ok((output, score)) => match (self.pixel_gate, score) {
                (Some(_), None) => Judged::Failed("the model gave no gate score".into()),
                (Some(_), Some(s)) if !s.is_finite() => {
                    Judged::Failed("the model's gate score is not finite".into())
                }
                (Some(threshold), Some(s))
                    if let Err(refusal) = crate::analyze::gate::pixels(s, threshold) =>
                {
                    Judged::Refused(refusal)
                }
                _ => {
                    let evidence = Evidence {
                        meta: frame.meta,
                        input: self.pre.processed(),
                        native: NativeView::of(self.pre.display(), self.pre.active_area()),
                        output,
                    };
                    match self.analyzer.analyze(&evidence) {
                        Some(v) => Judged::Verdict(v),
                        None => Judged::Failed("model output is not finite".into()),
                    }
                }
            },
        };
        ([t0, t1, t2, Instant::now()], judged)
    }
}

/// The running model thread.
pub struct InferThread {
    jobs: Option<SyncSender<(Frame, Instant)>>,
    outcomes: Receiver<Outcome>,
    handle: Option<JoinHandle<()>>,
}

/// Why no outcome came.
#[derive(Debug, PartialEq, Eq)]
pub enum NoOutcome {
    /// Not yet.
    Pending,
    /// The thread is gone (it panicked): no more results this run.
    Stopped,
}

impl InferThread {
    /// Starts the thread; judged frames are sent back on `recycle`.
    pub fn start(mut analyst: Analyst, recycle: SyncSender<Frame>) -> std::io::Result<InferThread> {
        let (jobs, job_rx) = std::sync::mpsc::sync_channel::<(Frame, Instant)>(1);
        let (out_tx, outcomes) = std::sync::mpsc::sync_channel::<Outcome>(1);
        let handle = std::thread::Builder::new()
            .name("infer".into())
            .spawn(move || {
                for (frame, captured) in job_rx {
                    let (stamps, judged) = analyst.judge(&frame);
                    let meta = frame.meta;
                    let _ = recycle.try_send(frame);
                    let outcome = Outcome {
                        meta,
                        captured,
                        stamps,
                        judged,
                    };
                    if out_tx.send(outcome).is_err() {
                        break;
                    }
                }
            })?;
        Ok(InferThread {
            jobs: Some(jobs),
            outcomes,
            handle: Some(handle),
        })
    }

    /// Hands a frame over. The caller submits only when the last outcome
    /// came back, so this never waits; a thread that is gone hands it back.
    pub fn submit(&self, frame: Frame, captured: Instant) -> Result<(), Frame> {
        match &self.jobs {
            Some(j) => j.send((frame, captured)).map_err(|e| e.0.0),
            None => Err(frame),
        }
    }

    /// The next outcome if there is one.
    pub fn try_take(&self) -> Result<Outcome, NoOutcome> {
        self.outcomes.try_recv().map_err(|e| match e {
            TryRecvError::Empty => NoOutcome::Pending,
            TryRecvError::Disconnected => NoOutcome::Stopped,
        })
    }

    /// Waits up to `timeout` for the next outcome.
    pub fn wait(&self, timeout: Duration) -> Result<Outcome, NoOutcome> {
        self.outcomes.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => NoOutcome::Pending,
            RecvTimeoutError::Disconnected => NoOutcome::Stopped,
        })
    }

    /// Ends the thread, waiting up to `grace` for the job in hand. A model
    /// stuck in a call is left behind (the process is about to end) rather
    /// than hang the stop. Returns whether the thread ended cleanly.
    pub fn finish(mut self, grace: Duration) -> bool {
        self.jobs = None;
        let deadline = Instant::now() + grace;
        let Some(handle) = self.handle.take() else {
            return true;
        };
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                tracing::error!(
                    "the inference thread did not stop within {:.1} s: left running",
                    grace.as_secs_f32()
                );
                return false;
            }
            // An outcome still being posted must not block the thread's exit.
            while self.outcomes.try_recv().is_ok() {}
            std::thread::sleep(Duration::from_millis(5));
        }
        handle.join().is_ok()
    }
}
