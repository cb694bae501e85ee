//! Normal changes of the picture, built from the real cine: what an
//! operator does all day and the detector must not alarm on (issue 28).
//! Each scenario replays the cine in a loop through the same preprocessing,
//! model and detector as `bedside run`, with the change drawn in, and
//! counts the alarms that rise after the first two seconds of scanning.
//!
//! The sector (the fan the probe images) is found from the cine itself: the
//! pixels that change over it. Changes that move content (the probe
//! sliding, the console's left/right invert) move it inside that fixed
//! sector, as on a real screen, and leave the annotations around it alone.
//!
//! Given a second real sequence (`eval-anomaly --switch-to FILE`), one more
//! scenario switches to it and stays there: another view, another patient.
//! The real sequences the registries ship all come from different machines
//! (docs/EVALUATION.md), so that switch also changes the sector.

use serde::Serialize;

use super::{EvalError, GrayCine, Runner};
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
    pub description: String,
    pub frames: u64,
    /// Alarms raised after [`SETTLE_US`] of frame time.
    pub alarms: usize,
    /// When the first of them rose, in seconds of frame time.
    pub first_alarm_s: Option<f64>,
    /// The reasons they gave, each with the check that scored highest on
    /// its frame, in the order first seen, each once.
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
    /// The depth setting: the picture scaled by `to` about the sector's
    /// apex (top middle), at once, inside the same fan; below a shrunk
    /// picture, nothing.
    Depth {
        to: f32,
    },
    /// The probe sliding sideways: the content inside the sector moves by
    /// `to` of the sector's width (mirrored at its edges, so echo keeps
    /// coming in from the side).
    Slide {
        to: f32,
    },
    /// The console's left/right invert: another view of the same heart, at
    /// once, held.
    Invert,
}

struct Scenario {
    name: &'static str,
    description: &'static str,
    /// Frame interval; `None`: the cine's own.
    interval_us: Option<u64>,
    change: Change,
}

/// Per row, the first and last column of the sector (empty: `l > r`).
struct Sector {
    rows: Vec<(usize, usize)>,
}

impl Sector {
    /// The pixels whose level changes by more than `SECTOR_RANGE` over the
    /// cine (echo moves, annotations do not); per row, the span from the
    /// first to the last run of them (6 of 8 pixels: a lone flicker in the
    /// annotations is not the sector), made symmetric about the apex column
    /// (a sector is) and smoothed over 9 rows.
    fn of(frames: &[Vec<u8>], w: usize, h: usize) -> Sector {
        const SECTOR_RANGE: u8 = 12;
        const RUN: usize = 8;
        let mut lo = vec![u8::MAX; w * h];
        let mut hi = vec![0u8; w * h];
        for f in frames {
            for ((l, u), &p) in lo.iter_mut().zip(hi.iter_mut()).zip(f.iter()) {
                *l = (*l).min(p);
                *u = (*u).max(p);
            }
        }
        let spans: Vec<Option<(usize, usize)>> = (0..h)
            .map(|y| {
                let moving = |x: usize| hi[y * w + x] - lo[y * w + x] > SECTOR_RANGE;
                let run = |x: &usize| (*x..*x + RUN).filter(|&i| moving(i)).count() >= 6;
                let l = (0..w.saturating_sub(RUN)).find(run)?;
                let r = (0..w.saturating_sub(RUN)).rev().find(run)? + RUN - 1;
                Some((l, r))
            })
            .collect();
        let mut middles: Vec<usize> = spans.iter().flatten().map(|&(l, r)| (l + r) / 2).collect();
        middles.sort_unstable();
        let ax = middles.get(middles.len() / 2).copied().unwrap_or(w / 2);
        let half: Vec<usize> = spans
            .iter()
            .map(|s| s.map_or(0, |(l, r)| ax.saturating_sub(l).min(r.saturating_sub(ax))))
            .collect();
        let rows = (0..h)
            .map(|y| {
                let mut near: Vec<usize> = half[y.saturating_sub(4)..(y + 5).min(h)].to_vec();
                near.sort_unstable();
                let hw = near[near.len() / 2];
                if hw < 2 {
                    (1, 0)
                } else {
                    (ax - hw, (ax + hw).min(w - 1))
                }
            })
            .collect();
        Sector { rows }
    }

    /// The sector's top row with its middle column: the apex.
    fn apex(&self, w: usize) -> (f32, f32) {
        self.rows
            .iter()
            .position(|&(l, r)| l <= r)
            .map_or((w as f32 / 2.0, 0.0), |y| {
                let (l, r) = self.rows[y];
                ((l + r) as f32 / 2.0, y as f32)
            })
    }

    fn width(&self) -> usize {
        self.rows
            .iter()
            .filter(|&&(l, r)| l <= r)
            .map(|&(l, r)| r - l + 1)
            .max()
            .unwrap_or(0)
    }
}

/// A gray level multiplied by `g`, saturating at 255.
fn gained(p: u8, g: f32) -> u8 {
    (f32::from(p) * g).round().min(255.0) as u8
}

/// `x` folded back into `l..=r` by mirroring at its ends.
fn mirror(x: i64, l: i64, r: i64) -> usize {
    let span = r - l;
    if span <= 0 {
        return l.max(0) as usize;
    }
    let period = 2 * span;
    let m = (x - l).rem_euclid(period);
    (l + if m > span { period - m } else { m }) as usize
}

const START_S: f64 = 2.5;

fn scenarios() -> [Scenario; 12] {
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
            name: "depth+33%",
            description: "depth increased by a third at 2.5 s (picture shrunk to 0.75 about the apex), held",
            interval_us: None,
            change: Change::Depth { to: 0.75 },
        },
        Scenario {
            name: "depth-25%",
            description: "depth decreased by a quarter at 2.5 s (picture enlarged 1.33x about the apex), held",
            interval_us: None,
            change: Change::Depth { to: 4.0 / 3.0 },
        },
        Scenario {
            name: "probe slide",
            description: "content slides a quarter of the sector sideways over 1 s from 2.5 s, held",
            interval_us: None,
            change: Change::Slide { to: 0.25 },
        },
        Scenario {
            name: "L/R invert",
            description: "the console's left/right invert at 2.5 s (the view mirrored), held",
            interval_us: None,
            change: Change::Invert,
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
            Change::Slide { .. } => 1.0,
            // At once: any time after the start is the whole change.
            Change::Depth { .. } | Change::Invert => 1e-6,
        }
    }

    /// `src` (w x h gray) with this change at fraction `f` (0..=1) into `out`.
    fn apply(self, f: f32, src: &[u8], w: usize, h: usize, sector: &Sector, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Change::None => out.extend_from_slice(src),
            Change::Gain { to } => {
                let g = 1.0 + f * (to - 1.0);
                out.extend(src.iter().map(|&p| gained(p, g)));
            }
            Change::Tgc { to } => {
                for (y, row) in src.chunks_exact(w).take(h).enumerate() {
                    let g = 1.0 + f * (to - 1.0) * y as f32 / (h.max(2) - 1) as f32;
                    out.extend(row.iter().map(|&p| gained(p, g)));
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
            Change::Depth { to } => {
                let s = if f > 0.0 { to } else { 1.0 };
                let (ax, ay) = sector.apex(w);
                out.extend_from_slice(src);
                for (y, &(l, r)) in sector.rows.iter().enumerate() {
                    for x in l..=r.min(w - 1) {
                        let sx = ax + (x as f32 + 0.5 - ax) / s;
                        let sy = ay + (y as f32 + 0.5 - ay) / s;
                        let inside = sy < h as f32
                            && sector
                                .rows
                                .get(sy as usize)
                                .is_some_and(|&(l2, r2)| sx >= l2 as f32 && sx <= r2 as f32);
                        out[y * w + x] = if inside {
                            src[sy as usize * w + sx as usize]
                        } else {
                            0
                        };
                    }
                }
            }
            Change::Slide { to } => {
                let dx = (f * to * sector.width() as f32).round() as i64;
                out.extend_from_slice(src);
                for (y, &(l, r)) in sector.rows.iter().enumerate() {
                    for x in l..=r.min(w - 1) {
                        let sx = mirror(x as i64 + dx, l as i64, r as i64);
                        out[y * w + x] = src[y * w + sx];
                    }
                }
            }
            Change::Invert => {
                out.extend_from_slice(src);
                if f > 0.0 {
                    for (y, &(l, r)) in sector.rows.iter().enumerate() {
                        for x in l..=r.min(w - 1) {
                            out[y * w + x] = src[y * w + (l + r.min(w - 1) - x)];
                        }
                    }
                }
            }
        }
    }
}

/// Counts the alarms of one scenario that rise after [`SETTLE_US`].
struct Tally {
    alarm: Vec<bool>,
    first_us: Option<u64>,
    reasons: Vec<String>,
}

impl Tally {
    fn new(frames: u64) -> Tally {
        Tally {
            alarm: Vec::with_capacity(frames as usize),
            first_us: None,
            reasons: Vec::new(),
        }
    }

    fn add(&mut self, meta: FrameMeta, v: &crate::analyze::AnomalyVerdict) {
        let after = meta.timestamp_us >= SETTLE_US;
        self.alarm.push(after && v.alarm.is_some());
        if let (true, Some(r)) = (after, v.alarm) {
            self.first_us.get_or_insert(meta.timestamp_us);
            // The reason, and the check that scored highest on this frame.
            let check = Check::ALL
                .iter()
                .zip(&v.scores)
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or("-", |(c, _)| c.name());
            let why = format!("{} ({check})", r.text());
            if !self.reasons.contains(&why) {
                self.reasons.push(why);
            }
        }
    }

    fn report(self, name: &'static str, description: String) -> VariationReport {
        VariationReport {
            name,
            description,
            frames: self.alarm.len() as u64,
            alarms: alarm_onsets(&self.alarm) as usize,
            first_alarm_s: self.first_us.map(|t| t as f64 / 1e6),
            reasons: self.reasons,
        }
    }
}

/// Every scenario over `seconds` of frame time each, on the gray cine;
/// with `switch_to`, a switch to that sequence too.
pub fn run(
    bundle: &Bundle,
    model_check: bool,
    cine: &GrayCine,
    switch_to: Option<(&str, &GrayCine)>,
    seconds: f64,
) -> Result<Vec<VariationReport>, EvalError> {
    let (frames, w, h, cine_interval_us) = (&cine.0, cine.1, cine.2, cine.3);
    let mut reports = Vec::new();
    let mut buffer = Vec::with_capacity((w * h) as usize);
    let sector = Sector::of(frames, w as usize, h as usize);
    for s in scenarios() {
        let mut runner = Runner::new(bundle, model_check)?;
        let interval = s.interval_us.unwrap_or(cine_interval_us).max(1);
        let n = (seconds * 1e6 / interval as f64).round() as u64;
        let mut tally = Tally::new(n);
        for i in 0..n {
            let t = (i * interval) as f64 / 1e6;
            let f = ((t - START_S) / s.change.ramp_s()).clamp(0.0, 1.0) as f32;
            let clean = &frames[(i % frames.len() as u64) as usize];
            s.change
                .apply(f, clean, w as usize, h as usize, &sector, &mut buffer);
            let meta = FrameMeta {
                seq: i,
                timestamp_us: i * interval,
            };
            let (v, back) = runner.step(std::mem::take(&mut buffer), w, h, meta)?;
            buffer = back;
            tally.add(meta, &v);
        }
        reports.push(tally.report(s.name, s.description.to_string()));
    }
    if let Some((name, other)) = switch_to {
        reports.push(switch(bundle, model_check, cine, (name, other), seconds)?);
    }
    Ok(reports)
}

/// The cine until [`START_S`], then the `other` sequence in a loop, each
/// at its own frame rate and size, through one detector.
fn switch(
    bundle: &Bundle,
    model_check: bool,
    cine: &GrayCine,
    (name, other): (&str, &GrayCine),
    seconds: f64,
) -> Result<VariationReport, EvalError> {
    let mut runner = Runner::new(bundle, model_check)?;
    let start_us = (START_S * 1e6) as u64;
    let end_us = (seconds * 1e6) as u64;
    let mut tally = Tally::new(0);
    let mut buffer = Vec::new();
    let (mut t, mut i, mut j) = (0u64, 0u64, 0usize);
    while t < end_us {
        let (cine, k) = if t < start_us {
            (cine, i as usize)
        } else {
            (other, j)
        };
        let (frames, w, h, interval) = (&cine.0, cine.1, cine.2, cine.3.max(1));
        buffer.clear();
        buffer.extend_from_slice(&frames[k % frames.len()]);
        let meta = FrameMeta {
            seq: i,
            timestamp_us: t,
        };
        let (v, back) = runner.step(std::mem::take(&mut buffer), w, h, meta)?;
        buffer = back;
        tally.add(meta, &v);
        if t >= start_us {
            j += 1;
        }
        i += 1;
        t += interval;
    }
    Ok(tally.report(
        "switch",
        format!("at 2.5 s the picture switches to another real sequence ({name}), held"),
    ))
}
