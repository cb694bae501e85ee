//! The `--jsonl` log: one JSON object per line, one line per frame the
//! source gave (judged, shown without a new result, dropped, skipped) and
//! per device event. Records are built only when there is a log, so a run
//! without one allocates nothing for it.
//!
//! Every record carries `utc`, the wall-clock time it was written (RFC
//! 3339, milliseconds, UTC), beside the frame's monotonic `timestamp_us`,
//! so an auditor can line the log up with the ward's clocks; and
//! `clock_synced` when the kernel knows whether its clock is disciplined
//! (NTP or PTP: `adjtimex`), since a board without a network or a real-time
//! clock can boot in 1970.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::PipelineError;
use super::infer_thread::{Judged, Outcome};
use super::stats::Shown;
use crate::analyze::Verdict;
use crate::analyze::anomaly::Check;
use crate::analyze::gate::Refusal;
use crate::frame::FrameMeta;

/// The run's log, if it has one, and where it goes (named in write errors).
pub(super) struct RunLog {
    out: Option<Box<dyn Write + Send>>,
    path: PathBuf,
    /// Every record of a rehearsal run says so.
    rehearsal: bool,
}

impl RunLog {
    pub fn new(
        out: Option<Box<dyn Write + Send>>,
        path: Option<PathBuf>,
        rehearsal: bool,
    ) -> RunLog {
        RunLog {
            out,
            path: path.unwrap_or_default(),
            rehearsal,
        }
    }

    pub fn is_on(&self) -> bool {
        self.out.is_some()
    }

    /// Writes one record, stamped with the wall-clock time.
    pub fn write(&mut self, mut line: serde_json::Value) -> Result<(), PipelineError> {
        let Some(w) = self.out.as_mut() else {
            return Ok(());
        };
        if let Some(obj) = line.as_object_mut() {
            obj.insert(
                "utc".into(),
                json!(rfc3339_utc(std::time::SystemTime::now())),
            );
            if let Some(synced) = clock_synced() {
                obj.insert("clock_synced".into(), json!(synced));
            }
            if self.rehearsal {
                obj.insert("rehearsal".into(), json!(true));
            }
        }
        writeln!(w, "{line}").map_err(|e| self.error(e))
    }

    /// Writes an event record; the record is built only when there is a log.
    pub fn event(&mut self, line: impl FnOnce() -> serde_json::Value) -> Result<(), PipelineError> {
        match self.out {
            Some(_) => self.write(line()),
            None => Ok(()),
        }
    }

    /// A picture shown without a result of its own: why, what the screen
    /// said, and which frame's result it showed.
    pub fn shown_alone(
        &mut self,
        meta: &FrameMeta,
        reason: &str,
        screen: &str,
        shown: &Shown,
        result_of_seq: Option<u64>,
    ) -> Result<(), PipelineError> {
        self.event(|| {
            let mut line = json!({
                "seq": meta.seq,
                "timestamp_us": meta.timestamp_us,
                "status": "shown",
                "reason": reason,
                "screen": screen,
                "latency_ms": shown_latency(shown),
            });
            if let (Some(seq), Some(obj)) = (result_of_seq, line.as_object_mut()) {
                obj.insert("result_of_seq".into(), json!(seq));
            }
            line
        })
    }

    /// Flushes what was written (at the end, and while a hot folder is
    /// idle, so a second signal loses no line).
    pub fn flush(&mut self) -> Result<(), PipelineError> {
        match self.out.as_mut() {
            Some(w) => w.flush().map_err(|e| self.error(e)),
            None => Ok(()),
        }
    }

    fn error(&self, source: std::io::Error) -> PipelineError {
        PipelineError::Log {
            path: self.path.clone(),
            source,
        }
    }
}

/// `t` as RFC 3339 in UTC with milliseconds, e.g.
/// `2026-12-07T10:42:05.123Z`; a time before 1970 (a clock set wrong) as
/// the epoch.
pub fn rfc3339_utc(t: std::time::SystemTime) -> String {
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Whether the kernel's clock is synchronized (NTP/PTP discipline), from
/// `adjtimex`; `None` when the call fails (not permitted, not Linux).
fn clock_synced() -> Option<bool> {
    // SAFETY: adjtimex with modes 0 only reads the kernel's clock state
    // into the zeroed struct it is given.
    #[allow(unsafe_code)]
    let state = unsafe {
        let mut t: libc::timex = std::mem::zeroed();
        libc::adjtimex(&mut t)
    };
    match state {
        s if s < 0 => None,
        libc::TIME_ERROR => Some(false),
        _ => Some(true),
    }
}

pub(super) fn verdict_json(v: &Verdict, labels: &[String]) -> serde_json::Value {
    match v {
        Verdict::Classification(c) => json!({
            "classification": {
                "top": labels.get(c.top),
                "confident": c.confident,
                "probabilities": labels.iter().zip(&c.probabilities).map(|(l, p)| (l.clone(), json!(p))).collect::<serde_json::Map<_, _>>(),
            }
        }),
        Verdict::Anomaly(a) => json!({
            "anomaly": {
                "score": a.score,
                "cause": a.cause.map(|r| r.text()),
                "warming_up": a.warming_up,
                "model_check_off": a.model_check_off,
                "alarm": a.alarm.map(|r| r.text()),
                "alarm_since_us": a.alarm_since_us,
                "features": {
                    "reconstruction_error": a.features.reconstruction_error,
                    "mean": a.features.mean,
                    "speckle_contrast": a.features.speckle_contrast,
                    "roughness": a.features.roughness,
                    "difference": a.features.difference,
                    "outside": a.features.outside,
                },
                "scores": Check::ALL.iter().zip(&a.scores).map(|(c, s)| (c.name().to_string(), json!(s))).collect::<serde_json::Map<_, _>>(),
            }
        }),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The display loop's stages of a shown picture, in milliseconds.
pub(super) fn shown_latency(s: &Shown) -> serde_json::Value {
    let [taken, converted, drawn, done] = s.stamps;
    json!({
        "capture": ms(taken - s.captured),
        "picture": ms(converted - taken),
        "overlay": ms(drawn - converted),
        "display": ms(done - drawn),
        "total": ms(done - s.captured),
    })
}

/// The log record of a frame the model judged; `shown` is how its own
/// picture reached the screen.
pub(super) fn outcome_line(
    o: &Outcome,
    shown: Option<&Shown>,
    labels: &[String],
) -> serde_json::Value {
    let mut lat = match shown {
        Some(s) => shown_latency(s),
        None => json!({}),
    };
    if let Some(obj) = lat.as_object_mut() {
        for (name, w) in ["preprocess", "infer", "analyze"]
            .iter()
            .zip(o.stamps.windows(2))
        {
            obj.insert(name.to_string(), json!(ms(w[1] - w[0])));
        }
        // From capture to the result being ready.
        obj.insert("result".into(), json!(ms(o.stamps[3] - o.captured)));
    }
    let refusal;
    let (status, reason) = match &o.judged {
        Judged::Verdict(_) => ("processed", None),
        Judged::Failed(why) => ("ai_unavailable", Some(why.as_str())),
        Judged::Skipped(why) => ("skipped", Some(why.as_str())),
        Judged::Refused(r) => {
            refusal = r.to_string();
            ("refused", Some(refusal.as_str()))
        }
    };
    let mut line = json!({
        "seq": o.meta.seq,
        "timestamp_us": o.meta.timestamp_us,
        "status": status,
        "latency_ms": lat,
    });
    if let Some(obj) = line.as_object_mut() {
        if let Judged::Verdict(v) = &o.judged
            && let Some(extra) = verdict_json(v, labels).as_object()
        {
            obj.extend(extra.clone());
        }
        if let Some(why) = reason {
            obj.insert("reason".into(), json!(why));
        }
        // The pixel gate's numbers, for the audit: how far off the picture was.
        if let Judged::Refused(Refusal::Unfamiliar { score, threshold }) = &o.judged {
            obj.insert("gate_score".into(), json!(score));
            obj.insert("gate_threshold".into(), json!(threshold));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::rfc3339_utc;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn wall_clock_times_are_rfc3339_utc() {
        let at = |s: u64, ms: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_millis(s * 1000 + ms));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_796_643_725, 123), "2026-12-07T11:42:05.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
