//! Ultrasound anomaly detection over time: per-frame features measured
//! inside the sector, a baseline learned online, per-feature scores, a
//! combined score, and an alarm with hysteresis that carries its reason.
//!
//! How a frame is judged:
//!
//! 1. [`features::measure`]: reconstruction error of the model, mean and
//!    speckle contrast inside the sector, roughness (neighbour differences:
//!    noise), difference to the previous frame (frozen), brightness outside
//!    the sector and the echo left in its emptiest band of columns (shadow).
//! 2. Absolute checks that need no baseline, always on: a near-black sector
//!    (no contact), a picture identical to the previous one (frozen), a
//!    reconstruction error over the model's calibrated threshold (content
//!    the model does not know). Once a baseline is learned, the
//!    reconstruction error of a picture brighter than the baseline is scaled
//!    back to the baseline's level first: a mean absolute error grows with
//!    the level, and a gain turned up (or a zoom into the bright middle of
//!    the sector) is a change of the picture, not content the model does
//!    not know. A sudden level change is the Bright check's to judge.
//!    (`eval-anomaly` replays such normal changes: gain +50% over 2 s and
//!    a 1.33x zoom raised 6 and 7 "unexpected content" alarms before, none
//!    after; every injected kind is still caught.)
//!    Whether the model knows the picture at all is decided first: before
//!    the first baseline, frames that only the model calls abnormal are
//!    held (no alarm yet). A second of them in a row, on a picture with a
//!    black surround (a sector), is another machine's ultrasound, which a
//!    model trained on one machine cannot judge: its check goes off, the
//!    screen says so in yellow, and the model-free checks go on. Alarming
//!    all day instead would teach the operator to ignore the banner. A
//!    picture bright up to its corners (another modality) keeps the check,
//!    and its alarm follows the second of judging.
//! 3. The baseline: frames that pass the absolute checks, for `warmup_us`
//!    of frame time (a heartbeat at 60 per minute) and at least
//!    `warmup_frames` of them (an alarm during warm-up starts it over).
//!    From them the sector mask is learned and, per feature, the median and
//!    the median absolute deviation (MAD); per column, the darkest it was.
//!    After warm-up the baseline follows slow drift by an exponential
//!    average over normal frames (the column floor only downwards, from the
//!    darkest of each second). The sector's mean level follows 16 times
//!    faster (1/16 per frame): gain turned up by half over two seconds
//!    stays within the Bright tolerance, while a gain jump is abnormal
//!    from its first frame and abnormal frames are never followed.
//!    A changed sector is learned again, not judged by the old one: when
//!    the echo ends higher up in most column bins of both halves of the
//!    fan than it did in warm-up (still present there, not gone) while no
//!    check says the picture got worse (noise, content outside, brighter,
//!    frozen, unknown content, black), the depth or preset changed, and
//!    the warm-up starts over (the screen says "learning baseline"). A
//!    shadow, even one half the sector wide, empties a band of columns on
//!    one side or in the middle and is still an artefact. A fan that grew
//!    (a zoom) is learned again the same way: echo outside the learned
//!    sector, all of it within a fifth of the picture of the sector's edge;
//!    another picture shown instead fills the corners too and is
//!    "unexpected content".
//! 4. Relative checks against the baseline: each gives a score that is 1.0
//!    at its threshold, the distance `max(z * 1.4826 * MAD, rel * median,
//!    floor)` from the median in the abnormal direction: robust to a noisy
//!    baseline and never a hair trigger on a very steady one.
//! 5. The frame's score is the largest check score; the frame is abnormal
//!    when it reaches 1.0, and its reason is that of the first abnormal
//!    check in [`Check::ALL`] order (most specific first: a black sector
//!    is "no contact", not also "unexpected content").
//! 6. The alarm rises when `raise_k` of the last `window` frames are
//!    abnormal, carries the most common reason among them, and clears after
//!    `clear_m` calm frames in a row.
//!
//! Every buffer is allocated when the first frame (or a frame of a new
//! size) arrives and never grows; no allocation per frame afterwards. Time
//! comes only from [`FrameMeta`]: a repeated sequence number (a duplicated
//! delivery) or a gap over `max_gap_us` (the source stalled) is not taken
//! as a frozen picture.

pub mod features;

use crate::frame::FrameMeta;
pub use features::NativeView;
use features::{Features, MAX_COLUMNS, SectorMask, measure, native_roughness};

/// Why the alarm is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmReason {
    /// The sector went dark: no contact, probe lifted.
    NoContact,
    /// Consecutive frames are (nearly) identical: frozen image.
    Frozen,
    /// Noise, a gain jump or a shadow over part of the sector.
    Artefact,
    /// The picture does not look like the expected exam.
    UnexpectedContent,
}

impl AlarmReason {
    pub const ALL: [AlarmReason; 4] = [
        AlarmReason::NoContact,
        AlarmReason::Frozen,
        AlarmReason::Artefact,
        AlarmReason::UnexpectedContent,
    ];

    pub fn text(self) -> &'static str {
        match self {
            AlarmReason::NoContact => "no contact / probe lifted",
            AlarmReason::Frozen => "frozen image",
            AlarmReason::Artefact => "artefact or noise burst",
            AlarmReason::UnexpectedContent => "unexpected content",
        }
    }
}

/// One test a frame goes through, in the order reasons are given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Sector mean far below the baseline, or near black.
    Dark,
    /// Neighbour differences far above the baseline: noise (it also
    /// brightens the black around the sector, so it comes first).
    Noise,
    /// Bright pixels outside the sector: another picture.
    Outside,
    /// Difference to the previous frame far below the baseline, or zero.
    Frozen,
    /// Speckle contrast far above the baseline.
    Speckle,
    /// Sector mean far above the baseline: gain jump.
    Bright,
    /// A band of columns without echo from top to bottom: shadow, occlusion.
    Shadow,
    /// Reconstruction error above the model's threshold.
    Reconstruction,
}

impl Check {
    pub const ALL: [Check; 8] = [
        Check::Dark,
        Check::Noise,
        Check::Outside,
        Check::Frozen,
        Check::Speckle,
        Check::Bright,
        Check::Shadow,
        Check::Reconstruction,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::Dark => "dark",
            Check::Frozen => "frozen",
            Check::Noise => "noise",
            Check::Speckle => "speckle",
            Check::Outside => "outside",
            Check::Bright => "bright",
            Check::Shadow => "shadow",
            Check::Reconstruction => "reconstruction",
        }
    }

    pub fn reason(self) -> AlarmReason {
        match self {
            Check::Dark => AlarmReason::NoContact,
            Check::Frozen => AlarmReason::Frozen,
            Check::Noise | Check::Speckle | Check::Bright | Check::Shadow => AlarmReason::Artefact,
            Check::Outside | Check::Reconstruction => AlarmReason::UnexpectedContent,
        }
    }
}

/// Scores of every check for one frame, 1.0 = at threshold.
pub type CheckScores = [f32; Check::ALL.len()];

/// Detector output for one frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnomalyVerdict {
    /// The largest check score (1.0 = at threshold).
    pub score: f32,
    pub features: Features,
    /// Per check, in [`Check::ALL`] order.
    pub scores: CheckScores,
    /// Why this frame is abnormal, if it is.
    pub cause: Option<AlarmReason>,
    /// Still learning the baseline: only the absolute checks run.
    pub warming_up: bool,
    /// The model's check is off for this picture: for a whole warm-up it
    /// did not know a picture that was otherwise a good ultrasound sector
    /// (another machine's, say). The model-free checks go on.
    pub model_check_off: bool,
    pub alarm: Option<AlarmReason>,
    /// When the alarm rose, from the frame timestamps.
    pub alarm_since_us: Option<u64>,
}

/// How the picture changed as a whole, when the baseline is learned again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reframed {
    Shrank,
    Grew,
}

impl Reframed {
    fn text(self) -> &'static str {
        match self {
            Reframed::Shrank => "the fan shrank (depth or preset changed)",
            Reframed::Grew => "the fan grew (zoom or depth changed)",
        }
    }
}

/// Distance from the median at which a relative check reaches 1.0:
/// `max(z * 1.4826 * MAD, rel * |median|, floor)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub z: f32,
    pub rel: f32,
    pub floor: f32,
}

impl Tolerance {
    fn distance(self, s: Stat) -> f32 {
        (self.z * 1.4826 * s.mad)
            .max(self.rel * s.median.abs())
            .max(self.floor)
            .max(f32::EPSILON)
    }
}

/// Tuning of the detector. The defaults were chosen on the bundled 30-frame
/// echo cine (docs/EVALUATION.md, "Anomaly detection"); the full-size cine
/// was not used to choose them. Two changes were made after the three other
/// machines' cines had been run, and are reported as such there:
/// `level_follow`, and the grown fan (`sector_reach`, `sector_far`).
#[derive(Clone, Copy, Debug)]
pub struct DetectorParams {
    /// Reconstruction error at which a frame counts as unknown content
    /// (the bundle's `thresholds.anomaly_error`).
    pub error_threshold: f32,
    /// Frame time the baseline covers, and the fewest frames it takes
    /// (at most 64 are kept: a faster source covers less time). 32 frames:
    /// where content moves slower than frame time (a folder of an exported
    /// cine, a 5-10 fps source), 16 frames held half a cardiac cycle, and
    /// the other half then raised "artefact" alarms (`eval-anomaly`'s
    /// 5 fps and 10 fps replays); 32 hold the 30-frame cine whole.
    pub warmup_us: u64,
    pub warmup_frames: usize,
    /// Raise after this many abnormal frames among the last `window`.
    pub raise_k: usize,
    pub window: usize,
    /// Clear after this many calm frames in a row.
    pub clear_m: usize,
    /// Gray level from which a pixel counts as echo when learning the sector.
    pub sector_level: u8,
    /// Absolute checks: sector mean (0..255) at or below which it is black,
    /// and the frame difference at or below which two frames are identical.
    pub dark_level: f32,
    pub frozen_level: f32,
    /// Relative checks.
    pub dark: Tolerance,
    pub frozen: Tolerance,
    pub noise: Tolerance,
    pub speckle: Tolerance,
    pub outside: Tolerance,
    pub bright: Tolerance,
    pub shadow: Tolerance,
    /// A frame more than this long after the previous one is not compared with it.
    pub max_gap_us: u64,
    /// Weight of one calm frame in the baseline's drift tracking.
    pub drift: f32,
    /// Weight of one calm frame in following the sector's mean level.
    pub level_follow: f32,
    /// The sector changed (depth, zoom, another preset): the far edge of
    /// the echo moved up by at least `sector_shift` of the picture's rows
    /// in at least `sector_bins` of the column bins. The baseline is then
    /// learned again instead of judging the new picture by the old one.
    pub sector_shift: f32,
    pub sector_bins: f32,
    /// The fan grew (zoom, a shallower depth): echo outside the learned
    /// sector, at most `sector_far` of it farther than `sector_reach` of
    /// the picture's larger side from the sector's edge.
    pub sector_reach: f32,
    pub sector_far: f32,
    /// The model's check is turned off when, before the first baseline, a
    /// second of frames in a row is unknown to it but otherwise normal, and
    /// at least this fraction of the picture is black around a sector: an
    /// ultrasound picture from a machine the model was not trained on. A
    /// picture without a black surround (another modality shown) keeps
    /// the check, and the alarm.
    pub unknown_black: f32,
}

impl DetectorParams {
    pub fn new(error_threshold: f32) -> DetectorParams {
        DetectorParams {
            error_threshold,
            warmup_us: 1_000_000,
            warmup_frames: 32,
            raise_k: 3,
            window: 5,
            clear_m: 8,
            sector_level: 12,
            dark_level: 8.0,
            frozen_level: 0.05,
            dark: Tolerance {
                z: 6.0,
                rel: 0.45,
                floor: 2.0,
            },
            frozen: Tolerance {
                z: 0.0,
                rel: 0.8,
                floor: 0.05,
            },
            noise: Tolerance {
                z: 8.0,
                rel: 0.5,
                floor: 0.02,
            },
            speckle: Tolerance {
                z: 8.0,
                rel: 0.5,
                floor: 0.02,
            },
            outside: Tolerance {
                z: 8.0,
                rel: 0.0,
                floor: 20.0,
            },
            bright: Tolerance {
                z: 4.0,
                rel: 0.3,
                floor: 4.0,
            },
            shadow: Tolerance {
                z: 6.0,
                rel: 0.45,
                floor: 0.05,
            },
            max_gap_us: 1_000_000,
            drift: 1.0 / 256.0,
            level_follow: 1.0 / 16.0,
            sector_shift: 0.1,
            sector_bins: 0.6,
            sector_reach: 0.2,
            sector_far: 0.1,
            unknown_black: 0.15,
        }
    }
}

/// The longest alarm window a detector keeps.
pub const MAX_WINDOW: usize = 64;
const MAX_WARMUP: usize = 64;
/// Largest check score reported (a black or identical frame would be infinite).
const SCORE_CAP: f32 = 10.0;
/// Frames (besides a second of frame time) in a row that only the model
/// calls abnormal before its fit to the picture is decided.
const JUDGE_FRAMES: usize = 8;
/// Weight of one second's darkest columns in the column floor.
const FLOOR_FOLLOW: f32 = 1.0 / 16.0;

/// Median and MAD of one feature.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Stat {
    median: f32,
    mad: f32,
}

impl Stat {
    /// From `values` (reordered; NaN taken as absent).
    fn of(values: &mut [f32]) -> Stat {
        let n = partition_finite(values);
        let values = &mut values[..n];
        if values.is_empty() {
            return Stat::default();
        }
        let median = median_of(values);
        for v in values.iter_mut() {
            *v = (*v - median).abs();
        }
        Stat {
            median,
            mad: median_of(values),
        }
    }

    /// The median at `weight`, the MAD at the slower `spread_weight`.
    fn follow_level(&mut self, x: f32, weight: f32, spread_weight: f32) {
        if x.is_finite() {
            self.median += weight * (x - self.median);
            self.mad += spread_weight * ((x - self.median).abs() - self.mad);
        }
    }

    fn follow(&mut self, x: f32, weight: f32) {
        if x.is_finite() {
            self.median += weight * (x - self.median);
            self.mad += weight * ((x - self.median).abs() - self.mad);
        }
    }

    /// Score of `x` above (`up`) or below the median.
    fn score(self, x: f32, tol: Tolerance, up: bool) -> f32 {
        let d = if up { x - self.median } else { self.median - x };
        (d.max(0.0) / tol.distance(self)).min(SCORE_CAP)
    }
}

fn partition_finite(v: &mut [f32]) -> usize {
    let mut n = 0;
    for i in 0..v.len() {
        if v[i].is_finite() {
            v.swap(i, n);
            n += 1;
        }
    }
    n
}

fn median_of(v: &mut [f32]) -> f32 {
    v.sort_unstable_by(f32::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// What "normal" looks like, learned in warm-up.
#[derive(Clone, Debug)]
struct Baseline {
    mean: Stat,
    motion: Stat,
    roughness: Stat,
    speckle: Stat,
    outside: Stat,
    band_level: Stat,
    /// The darkest each column bin was during warm-up, then followed.
    column_floor: [f32; MAX_COLUMNS],
    /// The darkest each column bin was since `cycle_since_us`.
    cycle_min: [f32; MAX_COLUMNS],
    cycle_since_us: u64,
    /// Per column bin, the median row where the echo ended in warm-up.
    echo_depth: [f32; MAX_COLUMNS],
}

pub struct AnomalyDetector {
    params: DetectorParams,
    /// Pixels per frame the buffers are sized for (0: none yet).
    len: usize,
    width: usize,
    mask: SectorMask,
    /// Warm-up frames, packed; `warm_n` of them so far.
    warm: Vec<u8>,
    warm_n: usize,
    /// Roughness of each warm-up frame (native when `native`).
    warm_roughness: [f32; MAX_WARMUP],
    /// Whether roughness comes from the native frame.
    native: bool,
    warm_since_us: u64,
    warm_last_us: u64,
    baseline: Option<Baseline>,
    previous: Vec<u8>,
    previous_meta: Option<FrameMeta>,
    /// Column means of the frame being judged.
    columns: [f32; MAX_COLUMNS],
    /// Where the echo ends in each column bin of the frame being judged.
    depth: [u16; MAX_COLUMNS],
    last_difference: Option<f32>,
    recent: [Option<AlarmReason>; MAX_WINDOW],
    seen: usize,
    calm_run: usize,
    alarm: Option<AlarmReason>,
    alarm_since_us: Option<u64>,
    /// Frames in a row, from the start of warm-up, that only the model's
    /// check called abnormal, and when the first of them came.
    unknown_run: usize,
    unknown_since_us: u64,
    /// Whether the model's fit is decided: a baseline was learned with its
    /// check on, or [`Self::judge_the_model`] decided.
    model_judged: bool,
    model_check_off: bool,
}

impl AnomalyDetector {
    pub fn new(mut params: DetectorParams) -> AnomalyDetector {
        params.window = params.window.clamp(1, MAX_WINDOW);
        params.raise_k = params.raise_k.clamp(1, params.window);
        params.warmup_frames = params.warmup_frames.clamp(2, MAX_WARMUP);
        params.clear_m = params.clear_m.max(1);
        AnomalyDetector {
            params,
            len: 0,
            width: 1,
            mask: SectorMask::default(),
            warm: Vec::new(),
            warm_n: 0,
            warm_roughness: [0.0; MAX_WARMUP],
            native: false,
            warm_since_us: 0,
            warm_last_us: 0,
            baseline: None,
            previous: Vec::new(),
            previous_meta: None,
            columns: [0.0; MAX_COLUMNS],
            depth: [0; MAX_COLUMNS],
            last_difference: None,
            recent: [None; MAX_WINDOW],
            seen: 0,
            calm_run: 0,
            alarm: None,
            alarm_since_us: None,
            unknown_run: 0,
            unknown_since_us: 0,
            model_judged: false,
            model_check_off: false,
        }
    }

    pub fn params(&self) -> &DetectorParams {
        &self.params
    }

    /// Whether the baseline is learned.
    pub fn has_baseline(&self) -> bool {
        self.baseline.is_some()
    }

    /// Judges one frame: `pixels` is the model's input picture (8-bit, rows
    /// of `width`), `recon` the model's reconstruction in units of
    /// `pixel_scale`, `native` the frame before the resize (for noise). A
    /// frame of another size than the last starts over (new buffers, new
    /// warm-up), and so does a change between having `native` and not.
    pub fn update(
        &mut self,
        meta: FrameMeta,
        width: u32,
        pixels: &[u8],
        recon: &[f32],
        pixel_scale: f32,
        native: Option<NativeView>,
    ) -> AnomalyVerdict {
        let native_roughness = native.and_then(native_roughness);
        if native_roughness.is_some() != self.native {
            self.native = native_roughness.is_some();
            self.len = 0;
        }
        if pixels.len() != self.len || width as usize != self.width {
            self.resize(width as usize, pixels.len());
        }
        let comparable = self.previous_meta.is_some_and(|p| {
            p.seq != meta.seq
                && meta.timestamp_us >= p.timestamp_us
                && meta.timestamp_us - p.timestamp_us <= self.params.max_gap_us
        });
        let previous: &[u8] = if comparable { &self.previous } else { &[] };
        let floor = self.baseline.as_ref().map(|b| &b.column_floor);
        let mut f = measure(
            &self.mask,
            pixels,
            recon,
            pixel_scale,
            previous,
            floor,
            &mut self.columns,
        );
        if let Some(r) = native_roughness {
            f.roughness = r;
        }
        f.motion = f
            .difference
            .zip(self.last_difference)
            .map(|(a, b)| a.max(b));
        self.last_difference = f.difference;
        let mut scores = self.check_scores(&f);
        // Only a frame the old baseline would call abnormal needs the
        // question (and its pass over the pixels): a changed sector that
        // still passes every check changes nothing.
        let abnormal = scores.iter().any(|&s| s >= 1.0);
        if let Some(change) = abnormal
            .then(|| self.reframed(pixels, &f, &scores))
            .flatten()
        {
            tracing::info!("{}: learning the baseline again", change.text());
            self.baseline = None;
            self.mask = SectorMask::whole(self.width, self.len);
            self.warm_n = 0;
            scores = self.check_scores(&f);
        }
        let mut held = false;
        if !self.model_judged {
            held = self.judge_the_model(meta, pixels, &scores);
            if self.model_check_off {
                scores = self.check_scores(&f);
            }
        }
        let score = scores.iter().copied().fold(0.0, f32::max);
        let cause = Check::ALL
            .iter()
            .zip(&scores)
            .find(|(_, s)| **s >= 1.0)
            .map(|(c, _)| c.reason());

        match &mut self.baseline {
            // Abnormal frames are left out of the baseline; frames held
            // while the model's fit is decided go in (they are normal to
            // every other check), and out again if the model's check stays.
            None if cause.is_none() || held => {
                let n = self.warm_n;
                self.warm[n * self.len..(n + 1) * self.len].copy_from_slice(pixels);
                self.warm_roughness[n] = f.roughness;
                self.warm_n += 1;
                if self.warm_n == 1 {
                    self.warm_since_us = meta.timestamp_us;
                }
                let covered = meta.timestamp_us.saturating_sub(self.warm_since_us);
                self.warm_last_us = meta.timestamp_us;
                if self.warm_n == MAX_WARMUP
                    || (self.warm_n >= self.params.warmup_frames
                        && covered >= self.params.warmup_us)
                {
                    self.learn();
                }
            }
            None => {}
            // Every normal frame follows the drift: leaving out the merely
            // unusual ones (an earlier version took only scores under 0.5)
            // biases the baseline towards the middle of the cardiac cycle
            // until its extremes raise false alarms (measured: thousands
            // per clean hour).
            Some(b) if cause.is_none() => {
                let w = self.params.drift;
                // The level follows faster than the rest: a gain turned
                // up over a second or two is followed within the Bright
                // tolerance, while a jump is abnormal from its first frame
                // and never followed.
                b.mean.follow_level(f.mean, self.params.level_follow, w);
                if let Some(d) = f.motion {
                    b.motion.follow(d, w);
                }
                b.roughness.follow(f.roughness, w);
                b.speckle.follow(f.speckle_contrast, w);
                b.outside.follow(f.outside, w);
                b.band_level.follow(f.band_level, w);
                // The floor follows a picture that darkens for good (gain
                // turned down): towards the darkest of each second of calm
                // frames, slowly, and never up (which could only make a
                // normal frame look shadowed).
                for (m, &c) in b.cycle_min.iter_mut().zip(&self.columns) {
                    *m = m.min(c);
                }
                if meta.timestamp_us.saturating_sub(b.cycle_since_us) >= self.params.warmup_us {
                    for (fl, m) in b.column_floor.iter_mut().zip(b.cycle_min.iter_mut()) {
                        if *m < *fl {
                            *fl += FLOOR_FOLLOW * (*m - *fl);
                        }
                        *m = f32::INFINITY;
                    }
                    b.cycle_since_us = meta.timestamp_us;
                }
            }
            Some(_) => {}
        }
        self.previous.copy_from_slice(pixels);
        self.previous_meta = Some(meta);
        if !held {
            self.hysteresis(cause, meta);
        }
        if self.baseline.is_none() && self.alarm.is_some() {
            // Whatever was learned may be from before the trouble: start over.
            self.warm_n = 0;
        }
        AnomalyVerdict {
            score,
            features: f,
            scores,
            cause,
            warming_up: self.baseline.is_none(),
            model_check_off: self.model_check_off,
            alarm: self.alarm,
            alarm_since_us: self.alarm_since_us,
        }
    }

    /// Before the first baseline: whether the model knows this picture at
    /// all. A frame that only the model calls abnormal is held (no alarm
    /// yet; learned as warm-up, so deciding costs no time) until it is
    /// decided. A second of such frames in a
    /// row on a picture with a black surround (a sector) is another
    /// machine's ultrasound: the model's check goes off for good (until the
    /// frame size changes) and the warm-up goes on without it. Without the
    /// surround (another modality shown) the check stays, and the held
    /// frames' alarm follows. Returns whether this frame is held.
    fn judge_the_model(&mut self, meta: FrameMeta, pixels: &[u8], scores: &CheckScores) -> bool {
        let only_model = scores[Check::Reconstruction as usize] >= 1.0
            && Check::ALL
                .iter()
                .zip(scores)
                .all(|(&c, &s)| c == Check::Reconstruction || s < 1.0);
        if !only_model {
            self.unknown_run = 0;
            return false;
        }
        if self.unknown_run == 0 {
            self.unknown_since_us = meta.timestamp_us;
        }
        self.unknown_run += 1;
        let covered = meta.timestamp_us.saturating_sub(self.unknown_since_us);
        if self.unknown_run < JUDGE_FRAMES || covered < self.params.warmup_us {
            return true;
        }
        self.model_judged = true;
        let level = self.params.sector_level;
        let black = pixels.iter().filter(|&&p| p < level).count();
        if (black as f32) < self.params.unknown_black * pixels.len() as f32 {
            // Not a sector: the held frames are not a baseline.
            self.warm_n = 0;
            return false;
        }
        tracing::warn!(
            frames = self.unknown_run,
            "the model does not know this picture (another machine's?): its check is off, the other checks go on"
        );
        self.model_check_off = true;
        false
    }

    fn resize(&mut self, width: usize, len: usize) {
        self.len = len;
        self.width = width.max(1);
        self.mask = SectorMask::whole(self.width, len);
        self.warm = vec![0; len * MAX_WARMUP];
        self.warm_n = 0;
        self.baseline = None;
        self.previous = vec![0; len];
        self.previous_meta = None;
        self.last_difference = None;
        self.unknown_run = 0;
        self.model_judged = false;
        self.model_check_off = false;
    }

    fn check_scores(&self, f: &Features) -> CheckScores {
        let p = &self.params;
        let mut s = [0f32; Check::ALL.len()];
        let cap = |v: f32| {
            if v.is_finite() {
                v.min(SCORE_CAP)
            } else {
                SCORE_CAP
            }
        };
        // Absolute checks.
        s[Check::Dark as usize] = cap(p.dark_level / f.mean.max(f32::EPSILON));
        if let Some(d) = f.motion {
            s[Check::Frozen as usize] = cap(p.frozen_level / d.max(f32::EPSILON));
        }
        s[Check::Reconstruction as usize] =
            cap(f.reconstruction_error / p.error_threshold.max(f32::EPSILON));
        // Relative checks.
        if let Some(b) = &self.baseline {
            s[Check::Dark as usize] =
                s[Check::Dark as usize].max(b.mean.score(f.mean, p.dark, false));
            if let Some(d) = f.motion {
                s[Check::Frozen as usize] =
                    s[Check::Frozen as usize].max(b.motion.score(d, p.frozen, false));
            }
            s[Check::Noise as usize] = b.roughness.score(f.roughness, p.noise, true);
            s[Check::Speckle as usize] = b.speckle.score(f.speckle_contrast, p.speckle, true);
            s[Check::Outside as usize] = b.outside.score(f.outside, p.outside, true);
            s[Check::Bright as usize] = b.mean.score(f.mean, p.bright, true);
            s[Check::Shadow as usize] = b.band_level.score(f.band_level, p.shadow, false);
            // The reconstruction error is a mean absolute error: it grows
            // with the picture's level, so a picture the model knows, with
            // the gain turned up, would read as unknown content. Judged at
            // the baseline's level instead (the level itself is the Bright
            // check's): the picture changed is not the picture got worse.
            if f.mean > b.mean.median && b.mean.median > 0.0 {
                s[Check::Reconstruction as usize] = cap(f.reconstruction_error
                    * (b.mean.median / f.mean)
                    / p.error_threshold.max(f32::EPSILON));
            }
        }
        if self.model_check_off {
            s[Check::Reconstruction as usize] = 0.0;
        }
        s
    }

    /// Whether the picture changed as a whole under a picture that is still
    /// a good one, and how. Nothing may say it got worse (no noise, not
    /// brighter, not frozen, content the model knows, not black). Then:
    ///
    /// - the fan shrank: the echo still reaches down in most columns of
    ///   both halves of the fan, but ends higher up than in warm-up (a depth
    ///   increase; a shadow, even a wide one, darkens a band of columns on
    ///   one side or in the middle instead);
    /// - the fan grew: echo outside the learned sector, all of it close to
    ///   the sector's edge (a zoom, a shallower depth; another picture
    ///   shown instead fills the corners too).
    fn reframed(&mut self, pixels: &[u8], f: &Features, scores: &CheckScores) -> Option<Reframed> {
        let b = self.baseline.as_ref()?;
        let fires = |c: Check| scores[c as usize] >= 1.0;
        let worse = [
            Check::Noise,
            Check::Frozen,
            Check::Bright,
            Check::Reconstruction,
        ]
        .into_iter()
        .any(fires);
        if worse || f.mean <= self.params.dark_level {
            return None;
        }
        let level = self.params.sector_level;
        if fires(Check::Outside) {
            let (near, far) = self.mask.echo_outside(pixels, level);
            let grew = !fires(Check::Dark)
                && near > 0
                && far as f32 <= self.params.sector_far * (near + far) as f32;
            return grew.then_some(Reframed::Grew);
        }
        self.mask.echo_depth(pixels, level, &mut self.depth);
        let shift = self.params.sector_shift * self.mask.rows() as f32;
        // Per half of the fan (left, right): bins, and bins whose echo
        // still reaches down but ends higher up. A bin left without any
        // echo is a shadow's or a lifted probe's, not a smaller fan's.
        let total = self.mask.deep_bins().count();
        let half = total / 2;
        let mut moved = [0usize; 2];
        for (i, c) in self.mask.deep_bins().enumerate() {
            let d = f32::from(self.depth[c]);
            if d > 0.0 && d < b.echo_depth[c] - shift {
                moved[usize::from(i >= half)] += 1;
            }
        }
        let enough = |n: usize, of: usize| n as f32 >= self.params.sector_bins * of as f32;
        let shrank = half > 0 && enough(moved[0], half) && enough(moved[1], total - half);
        shrank.then_some(Reframed::Shrank)
    }

    /// Learns the sector and the baseline from the warm-up frames.
    fn learn(&mut self) {
        let n = self.warm_n;
        let frames = || self.warm[..n * self.len].chunks_exact(self.len);
        let rows = self.len / self.width;
        let reach = (self.params.sector_reach * rows.max(self.width) as f32).round() as usize;
        self.mask = SectorMask::learn(self.width, frames(), self.len, self.params.sector_level)
            .with_reach(reach);
        let none = vec![0f32; self.len];
        let mut floor = [f32::INFINITY; MAX_COLUMNS];
        let mut cols = [0f32; MAX_COLUMNS];
        for px in frames() {
            measure(&self.mask, px, &none, 1.0, &[], None, &mut cols);
            for (f, c) in floor.iter_mut().zip(cols) {
                *f = f.min(c);
            }
        }
        let mut all: Vec<Features> = frames()
            .enumerate()
            .map(|(i, px)| {
                let prev = if i == 0 {
                    &[][..]
                } else {
                    &self.warm[(i - 1) * self.len..i * self.len]
                };
                measure(&self.mask, px, &none, 1.0, prev, Some(&floor), &mut cols)
            })
            .collect();
        if self.native {
            for (f, &r) in all.iter_mut().zip(&self.warm_roughness) {
                f.roughness = r;
            }
        }
        for i in (2..all.len()).rev() {
            all[i].motion = all[i]
                .difference
                .zip(all[i - 1].difference)
                .map(|(a, b)| a.max(b));
        }
        let mut echo_depth = [0f32; MAX_COLUMNS];
        let mut per_frame: Vec<[u16; MAX_COLUMNS]> = Vec::with_capacity(n);
        for px in frames() {
            let mut d = [0u16; MAX_COLUMNS];
            self.mask.echo_depth(px, self.params.sector_level, &mut d);
            per_frame.push(d);
        }
        for (c, e) in echo_depth.iter_mut().enumerate() {
            let mut v: Vec<f32> = per_frame.iter().map(|d| f32::from(d[c])).collect();
            *e = Stat::of(&mut v).median;
        }
        let stat = |get: &dyn Fn(&Features) -> f32| {
            let mut v: Vec<f32> = all.iter().map(get).collect();
            Stat::of(&mut v)
        };
        self.baseline = Some(Baseline {
            mean: stat(&|f| f.mean),
            motion: stat(&|f| f.motion.unwrap_or(f32::NAN)),
            roughness: stat(&|f| f.roughness),
            speckle: stat(&|f| f.speckle_contrast),
            outside: stat(&|f| f.outside),
            band_level: stat(&|f| f.band_level),
            column_floor: floor,
            echo_depth,
            cycle_min: [f32::INFINITY; MAX_COLUMNS],
            cycle_since_us: self.warm_last_us,
        });
        self.model_judged = true;
        tracing::info!(
            frames = n,
            sector = format_args!("{:.0}%", self.mask.coverage() * 100.0),
            "anomaly baseline learned"
        );
    }

    fn hysteresis(&mut self, cause: Option<AlarmReason>, meta: FrameMeta) {
        let p = self.params;
        self.recent[self.seen % p.window] = cause;
        self.seen += 1;
        let window = &self.recent[..p.window.min(self.seen)];
        let abnormal = window.iter().filter(|r| r.is_some()).count();
        if cause.is_none() {
            self.calm_run += 1;
        } else {
            self.calm_run = 0;
        }
        if self.alarm.is_none() && abnormal >= p.raise_k {
            self.alarm_since_us = Some(meta.timestamp_us);
        } else if self.alarm.is_some() && self.calm_run >= p.clear_m {
            self.alarm = None;
            self.alarm_since_us = None;
            return;
        }
        if self.alarm_since_us.is_some() && abnormal > 0 {
            // The most common reason in the window; ties go to the first in ALL.
            self.alarm = AlarmReason::ALL.into_iter().max_by_key(|r| {
                let n = window.iter().filter(|w| **w == Some(*r)).count();
                (n, std::cmp::Reverse(*r as u8))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    const W: usize = 32;

    /// A 32x32 "sector": speckle in a wedge, black around it.
    fn frame(seed: u64) -> Vec<u8> {
        wedge(seed, |y| y / 2 + 2)
    }

    /// Speckle where `|x - 16| <= half_width(y)`, black elsewhere.
    fn wedge(seed: u64, half_width: impl Fn(i64) -> i64) -> Vec<u8> {
        let mut rng = SplitMix64(seed);
        (0..W * W)
            .map(|i| {
                let (x, y) = ((i % W) as i64 - 16, (i / W) as i64);
                if x.abs() <= half_width(y) {
                    (30 + rng.below(60)) as u8
                } else {
                    0
                }
            })
            .collect()
    }

    struct Run {
        det: AnomalyDetector,
        seq: u64,
    }

    impl Run {
        fn new() -> Run {
            Run {
                det: AnomalyDetector::new(DetectorParams::new(0.05)),
                seq: 0,
            }
        }

        fn step(&mut self, px: &[u8], recon_offset: f32) -> AnomalyVerdict {
            let recon: Vec<f32> = px
                .iter()
                .map(|&p| f32::from(p) / 255.0 + recon_offset)
                .collect();
            let meta = FrameMeta {
                seq: self.seq,
                timestamp_us: self.seq * 33_333,
            };
            self.seq += 1;
            self.det
                .update(meta, W as u32, px, &recon, 1.0 / 255.0, None)
        }

        fn warm(&mut self) {
            for s in 0..32 {
                let v = self.step(&frame(s), 0.0);
                assert_eq!(v.alarm, None, "frame {s}: {v:?}");
            }
            assert!(self.det.has_baseline());
        }

        /// The frame index at which the alarm first rose, and its reason.
        fn first_alarm(
            &mut self,
            frames: impl Iterator<Item = Vec<u8>>,
        ) -> Option<(usize, AlarmReason)> {
            frames
                .enumerate()
                .find_map(|(i, f)| self.step(&f, 0.0).alarm.map(|r| (i, r)))
        }
    }

    #[test]
    fn no_contact_raises_after_three_of_five_and_clears() {
        let mut r = Run::new();
        r.warm();
        let dark = (0..5).map(|_| vec![2u8; W * W]);
        assert_eq!(r.first_alarm(dark), Some((2, AlarmReason::NoContact)));
        let mut cleared = None;
        for i in 0..12 {
            if r.step(&frame(100 + i), 0.0).alarm.is_none() && cleared.is_none() {
                cleared = Some(i);
            }
        }
        assert_eq!(cleared, Some(7), "cleared after 8 calm frames");
    }

    #[test]
    fn frozen_picture_alarms() {
        let mut r = Run::new();
        r.warm();
        let still = frame(99);
        assert_eq!(
            r.first_alarm((0..6).map(|_| still.clone())).map(|a| a.1),
            Some(AlarmReason::Frozen)
        );
    }

    #[test]
    fn a_repeated_delivery_or_a_stall_is_not_a_frozen_picture() {
        let mut r = Run::new();
        r.warm();
        let still = frame(99);
        let recon: Vec<f32> = still.iter().map(|&p| f32::from(p) / 255.0).collect();
        for i in 0..6 {
            // The same frame delivered again (same sequence number) ...
            let meta = FrameMeta {
                seq: 500,
                timestamp_us: 20_000_000,
            };
            let v = r
                .det
                .update(meta, W as u32, &still, &recon, 1.0 / 255.0, None);
            assert!(v.features.difference.is_none(), "{i}");
            assert_eq!(v.alarm, None);
        }
        // ... or two seconds apart.
        let meta = FrameMeta {
            seq: 501,
            timestamp_us: 22_000_000,
        };
        let v = r
            .det
            .update(meta, W as u32, &still, &recon, 1.0 / 255.0, None);
        assert_eq!((v.features.difference, v.cause), (None, None));
    }

    #[test]
    fn noise_is_an_artefact_and_foreign_content_is_unexpected() {
        let mut r = Run::new();
        r.warm();
        let mut rng = SplitMix64(5);
        let noisy = (0..5).map(|s| {
            let mut f = frame(200 + s);
            for p in f.iter_mut().filter(|p| **p > 0) {
                *p = rng.below(256) as u8;
            }
            f
        });
        assert_eq!(
            r.first_alarm(noisy).map(|a| a.1),
            Some(AlarmReason::Artefact)
        );
        for s in 0..10 {
            r.step(&frame(300 + s), 0.0);
        }
        // Bright everywhere, also where the sector is black.
        let foreign = (0..5).map(|s| frame(400 + s).iter().map(|p| p / 2 + 100).collect());
        assert_eq!(
            r.first_alarm(foreign).map(|a| a.1),
            Some(AlarmReason::UnexpectedContent)
        );
    }

    #[test]
    fn shadow_and_gain_are_artefacts() {
        let mut r = Run::new();
        r.warm();
        let shaded = (0..5).map(|s| {
            let mut f = frame(500 + s);
            for row in f.chunks_mut(W) {
                row[6..12].iter_mut().for_each(|p| *p /= 10);
            }
            f
        });
        assert_eq!(
            r.first_alarm(shaded).map(|a| a.1),
            Some(AlarmReason::Artefact)
        );
        for s in 0..10 {
            r.step(&frame(600 + s), 0.0);
        }
        let bright = (0..5).map(|s| {
            frame(700 + s)
                .iter()
                .map(|&p| p.saturating_mul(2))
                .collect()
        });
        assert_eq!(
            r.first_alarm(bright).map(|a| a.1),
            Some(AlarmReason::Artefact)
        );
    }

    /// A depth increase shrinks the fan: the old picture's far rows go
    /// black in every column. That is learned again, not alarmed on; a
    /// shadow as wide as half the sector, which leaves the far rows of the
    /// other columns alone, is still an artefact.
    #[test]
    fn a_smaller_fan_is_learned_again_a_wide_shadow_is_not() {
        let shallower = |seed: u64| {
            let mut f = frame(seed);
            f[22 * W..].fill(0);
            f
        };
        let mut r = Run::new();
        r.warm();
        let v = r.step(&shallower(800), 0.0);
        assert!(v.warming_up, "{v:?}");
        for s in 1..80 {
            let v = r.step(&shallower(800 + s), 0.0);
            assert_eq!(v.alarm, None, "frame {s}: {v:?}");
        }
        assert!(r.det.has_baseline(), "the smaller fan is the new baseline");
        let mut r = Run::new();
        r.warm();
        let mut alarm = None;
        for s in 0..5 {
            let mut f = frame(900 + s);
            for row in f.chunks_mut(W) {
                row[8..24].iter_mut().for_each(|p| *p /= 4);
            }
            let v = r.step(&f, 0.0);
            assert!(!v.warming_up, "not taken as a new sector: {v:?}");
            alarm = alarm.or(v.alarm);
        }
        assert!(alarm.is_some());
    }

    /// Gain turned up by half over two seconds is followed; the same
    /// change at once is a gain jump.
    #[test]
    fn a_grown_fan_is_learned_again_a_picture_around_it_is_not() {
        // A zoom: the wedge wider, its new edge close to the old one.
        let wider = |seed: u64| wedge(seed, |y| y * 3 / 4 + 3);
        let mut r = Run::new();
        r.warm();
        // Outside the learned sector, so it is taken as a new one at once.
        let v = r.step(&wider(800), 0.0);
        assert!(v.warming_up && v.features.outside > 20.0, "{v:?}");
        for s in 1..80 {
            let v = r.step(&wider(800 + s), 0.0);
            assert_eq!(v.alarm, None, "frame {s}: {v:?}");
        }
        assert!(r.det.has_baseline(), "the grown fan is the new baseline");
        // The same sector, with content all around it up to the corners.
        let mut r = Run::new();
        r.warm();
        let framed = (0..5).map(|s| {
            frame(900 + s)
                .into_iter()
                .map(|p| if p == 0 { 60 } else { p })
                .collect()
        });
        assert_eq!(
            r.first_alarm(framed).map(|a| a.1),
            Some(AlarmReason::UnexpectedContent)
        );
        assert!(r.det.has_baseline(), "not taken as a new sector");
    }

    #[test]
    fn a_gain_ramp_is_followed_a_jump_is_not() {
        let gained = |seed: u64, g: f32| -> Vec<u8> {
            frame(seed)
                .iter()
                .map(|&p| (f32::from(p) * g).round().min(255.0) as u8)
                .collect()
        };
        let mut r = Run::new();
        r.warm();
        for s in 0..120u64 {
            let g = 1.0 + 0.5 * (s.min(60) as f32 / 60.0);
            let v = r.step(&gained(1000 + s, g), 0.0);
            assert_eq!(v.alarm, None, "frame {s} at gain {g}: {v:?}");
        }
        let mut r = Run::new();
        r.warm();
        let jumped = (0..5).map(|s| gained(1200 + s, 1.5));
        assert_eq!(
            r.first_alarm(jumped).map(|a| a.1),
            Some(AlarmReason::Artefact)
        );
    }

    #[test]
    fn a_sector_the_model_does_not_know_turns_its_check_off() {
        // From the start, a sector (black around it) that only the model
        // calls abnormal: another machine's picture. No alarm while that
        // is decided (a second and 8 frames); then the model's check is
        // off and the warm-up goes on without it.
        let mut r = Run::new();
        let mut off_at = None;
        for s in 0..100 {
            let v = r.step(&frame(s), 0.2);
            assert_eq!(v.alarm, None, "frame {s}: {v:?}");
            if v.model_check_off && off_at.is_none() {
                off_at = Some(s);
                assert_eq!(v.scores[Check::Reconstruction as usize], 0.0, "{v:?}");
            }
        }
        // Frame 31 is the first a second after frame 0 (33.333 ms apart).
        assert_eq!(off_at, Some(31));
        assert!(r.det.has_baseline());
        // The model-free checks go on.
        let black = (0..5).map(|_| vec![0u8; W * W]);
        assert_eq!(
            r.first_alarm(black).map(|a| a.1),
            Some(AlarmReason::NoContact)
        );
    }

    #[test]
    fn another_modality_from_the_start_is_unexpected_content() {
        // Unknown to the model and bright up to the corners: not a sector.
        // The check stays on; the alarm follows the second of judging.
        let mut r = Run::new();
        let first = (0..60).find_map(|s| {
            let foreign: Vec<u8> = frame(s).iter().map(|p| p / 2 + 100).collect();
            let v = r.step(&foreign, 0.2);
            assert!(!v.model_check_off, "{v:?}");
            v.alarm.map(|a| (s, a))
        });
        // Decided at frame 31 (as above); three abnormal frames from there.
        assert_eq!(first, Some((33, AlarmReason::UnexpectedContent)));
        // Once a baseline is learned with the model's check on, content it
        // does not know alarms within three frames.
        let mut r = Run::new();
        r.warm();
        let first = (0..5).find_map(|s| r.step(&frame(500 + s), 0.2).alarm.map(|a| (s, a)));
        assert_eq!(first, Some((2, AlarmReason::UnexpectedContent)));
    }

    #[test]
    fn warm_up_starts_over_after_an_abnormal_frame() {
        let mut r = Run::new();
        for s in 0..20 {
            r.step(&frame(s), 0.0);
        }
        // One black frame is left out; an alarm starts the warm-up over.
        r.step(&vec![0u8; W * W], 0.0);
        r.step(&frame(20), 0.0);
        for _ in 0..3 {
            r.step(&vec![0u8; W * W], 0.0);
        }
        assert!(r.det.alarm.is_some());
        // The warm-up counts again once the alarm has cleared (8 calm frames).
        let frames_to_baseline = (30..100).position(|s| {
            r.step(&frame(s), 0.0);
            r.det.has_baseline()
        });
        // 32 frames at 33.3 ms cover a second; the frame that clears the
        // alarm is the first of them.
        assert_eq!(frames_to_baseline, Some(7 + 32 - 1));
    }

    #[test]
    fn a_new_frame_size_starts_over() {
        let mut r = Run::new();
        r.warm();
        let small = vec![50u8; 16];
        let v = r.det.update(
            FrameMeta {
                seq: 900,
                timestamp_us: 0,
            },
            4,
            &small,
            &[50.0 / 255.0; 16],
            1.0 / 255.0,
            None,
        );
        assert!(v.warming_up);
    }

    #[test]
    fn roughness_comes_from_the_native_frame_when_given() {
        use crate::preprocess::Rect;
        let mut det = AnomalyDetector::new(DetectorParams::new(0.05));
        let px = frame(1);
        let recon: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
        let native: Vec<u8> = (0..64 * 64)
            .map(|i| if i % 2 == 0 { 10 } else { 30 })
            .collect();
        let area = Rect {
            x: 0,
            y: 0,
            width: 64,
            height: 64,
        };
        let view = NativeView {
            width: 64,
            pixels: &native,
            area,
        };
        let v = det.update(
            FrameMeta::default(),
            W as u32,
            &px,
            &recon,
            1.0 / 255.0,
            Some(view),
        );
        assert_eq!(Some(v.features.roughness), native_roughness(view));
        assert!((v.features.roughness - 20.0 * 63.0 / (20.0 * 64.0)).abs() < 1e-5);
    }

    #[test]
    fn checks_are_listed_in_declaration_order() {
        for (i, c) in Check::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn robust_statistics() {
        let mut v = [3.0, 1.0, f32::NAN, 2.0, 100.0];
        let s = Stat::of(&mut v);
        assert_eq!(
            s,
            Stat {
                median: 2.5,
                mad: 1.0
            }
        );
        let t = Tolerance {
            z: 2.0,
            rel: 0.0,
            floor: 0.0,
        };
        assert!((s.score(2.5 + 2.0 * 1.4826, t, true) - 1.0).abs() < 1e-5);
        assert_eq!(s.score(0.0, t, true), 0.0);
    }
}
