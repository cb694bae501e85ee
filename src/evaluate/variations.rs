//! Normal changes of the picture, built from the real cine: what an
//! operator does all day and the detector must not alarm on (issue 28).
//! Each scenario replays the cine in a loop through the same preprocessing,
//! model and detector as `bedside run`, with the change drawn in, and
//! counts the alarms that rise after the first two seconds of scanning.
//!
//! Not simulated here: a switch to another acoustic window or patient (it
//! needs a second real sequence of the same size) and the probe sliding
//! (the content moves under a fixed sector, which a shift of the whole
//! frame does not reproduce).

use serde::Serialize;

use super::{EvalError, Runner};
use crate::analyze::anomaly::Check;
use crate::analyze::metrics::alarm_onsets;
use crate::frame::FrameMeta;
use crate::infer::Bundle;

/// Scanning time after which an alarm on a normal change is a false one.
pub const SETTLE_US: u64 = 2_000_000;

/// What one scenario did.
#[derive(Clone, Debug, Serialize)]
pub struct VariationReport {
    pub name: &'static str,
    pub description: &'static str,
    pub frames: u64,
    /// Alarms raised after [`SETTLE_US`] of frame time.
    pub alarms: usize,
    /// When the first of them rose, in seconds of frame time.
    pub first_alarm_s: Option<f64>,
    /// The reasons they gave, each with the check that scored highest on
    /// its frame, in order, without repeats.
    pub reasons: Vec<String>,
}

/// A change over time: from `start_s`, reaching its full size after
/// `ramp_s` and held after that.
#[derive(Clone, Copy)]
enum Change {
    None,
    /// Multiply the gray levels (saturating at 255).
    Gain {
        to: f32,
    },
    /// Time-gain compensation: multiply by 1 at the top row rising to `to`
    /// at the bottom (deeper echoes brighter).
    Tgc {
        to: f32,
    },
    /// Crop the middle to `1 / to` of each side and resize it back.
    Zoom {
        to: f32,
    },
}

struct Scenario {
    name: &'static str,
    description: &'static str,
    /// Frame interval; `None`: the cine's own.
    interval_us: Option<u64>,
    change: Change,
}

const START_S: f64 = 2.5;

fn scenarios() -> [Scenario; 8] {
    [
        Scenario {
            name: "loop",
            description: "the cine looped at its own rate, seam included",
            interval_us: None,
            change: Change::None,
        },
        Scenario {
            name: "gain+50%",
            description: "overall gain up 50% over 2 s from 2.5 s, then held",
            interval_us: None,
            change: Change::Gain { to: 1.5 },
        },
        Scenario {
            name: "gain-50%",
            description: "overall gain down 50% over 2 s from 2.5 s, then held",
            interval_us: None,
            change: Change::Gain { to: 0.5 },
        },
        Scenario {
            name: "TGC+50%",
            description: "time-gain compensation: deep rows up to +50% over 2 s from 2.5 s, held",
            interval_us: None,
            change: Change::Tgc { to: 1.5 },
        },
        Scenario {
            name: "zoom",
            description: "zoom to 1.33x over 0.5 s from 2.5 s (crop and resize), then held",
            interval_us: None,
            change: Change::Zoom { to: 4.0 / 3.0 },
        },
        Scenario {
            name: "5 fps",
            description: "the cine's frames 200 ms apart (content slower than time)",
            interval_us: Some(200_000),
            change: Change::None,
        },
        Scenario {
            name: "10 fps",
            description: "the cine's frames 100 ms apart",
            interval_us: Some(100_000),
            change: Change::None,
        },
        Scenario {
            name: "60 fps",
            description: "the cine's frames 16.7 ms apart (content faster than time)",
            interval_us: Some(16_667),
            change: Change::None,
        },
    ]
}

impl Change {
    fn ramp_s(self) -> f64 {
        match self {
            Change::None => 1.0,
            Change::Gain { .. } | Change::Tgc { .. } => 2.0,
            Change::Zoom { .. } => 0.5,
        }
    }

    /// `src` (w x h gray) with this change at fraction `f` (0..=1) into `out`.
    fn apply(self, f: f32, src: &[u8], w: usize, h: usize, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Change::None => out.extend_from_slice(src),
            Change::Gain { to } => {
                let g = 1.0 + f * (to - 1.0);
                out.extend(
                    src.iter()
                        .map(|&p| (f32::from(p) * g).round().min(255.0) as u8),
                );
            }
            Change::Tgc { to } => {
                for (y, row) in src.chunks_exact(w).take(h).enumerate() {
                    let g = 1.0 + f * (to - 1.0) * y as f32 / (h.max(2) - 1) as f32;
                    out.extend(
                        row.iter()
                            .map(|&p| (f32::from(p) * g).round().min(255.0) as u8),
                    );
                }
            }
            Change::Zoom { to } => {
                let z = 1.0 + f * (to - 1.0);
                let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
                for y in 0..h {
                    let sy = ((cy + (y as f32 + 0.5 - cy) / z) as usize).min(h - 1);
                    for x in 0..w {
                        let sx = ((cx + (x as f32 + 0.5 - cx) / z) as usize).min(w - 1);
                        out.push(src[sy * w + sx]);
                    }
                }
            }
        }
    }
}

/// Every scenario over `seconds` of frame time each, on the gray cine.
pub fn run(
    bundle: &Bundle,
    frames: &[Vec<u8>],
    w: u32,
    h: u32,
    cine_interval_us: u64,
    seconds: f64,
) -> Result<Vec<VariationReport>, EvalError> {
    let mut reports = Vec::new();
    let mut buffer = Vec::with_capacity((w * h) as usize);
    for s in scenarios() {
        let mut runner = Runner::new(bundle)?;
        let interval = s.interval_us.unwrap_or(cine_interval_us).max(1);
        let n = (seconds * 1e6 / interval as f64).round() as u64;
        let mut alarm = Vec::with_capacity(n as usize);
        let mut reasons: Vec<String> = Vec::new();
        for i in 0..n {
            let t = (i * interval) as f64 / 1e6;
            let f = ((t - START_S) / s.change.ramp_s()).clamp(0.0, 1.0) as f32;
            let clean = &frames[(i % frames.len() as u64) as usize];
            s.change
                .apply(f, clean, w as usize, h as usize, &mut buffer);
            let meta = FrameMeta {
                seq: i,
                timestamp_us: i * interval,
            };
            let (v, back) = runner.step(std::mem::take(&mut buffer), w, h, meta)?;
            buffer = back;
            let after = meta.timestamp_us >= SETTLE_US;
            alarm.push(after && v.alarm.is_some());
            if let (true, Some(r)) = (after, v.alarm) {
                // The reason, and the check that scored highest on this frame.
                let check = Check::ALL
                    .iter()
                    .zip(&v.scores)
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or("-", |(c, _)| c.name());
                let why = format!("{} ({check})", r.text());
                if reasons.last() != Some(&why) {
                    reasons.push(why);
                }
            }
        }
        let onsets = alarm_onsets(&alarm);
        let first = alarm.iter().position(|&a| a);
        reports.push(VariationReport {
            name: s.name,
            description: s.description,
            frames: n,
            alarms: onsets as usize,
            first_alarm_s: first.map(|i| (i as u64 * interval) as f64 / 1e6),
            reasons,
        });
    }
    Ok(reports)
}
