//! Synthetic anomalies for evaluating the [`AnomalyDetector`](super::AnomalyDetector)
//! on a real, clean cine: what goes wrong at the bedside, drawn into frames
//! at seeded random times, so a score can be judged against known truth.
//!
//! An [`InjectionPlan`] says which frames are anomalous and how; an
//! [`Injector`] alters those frames in place. Both are deterministic given
//! their seeds, so a reported AUROC or delay can be reproduced exactly.
//!
//! To add a kind: a variant in [`AnomalyKind`] (with its name in `ALL`,
//! `name` and `description`), its per-segment parameters in
//! `Injector::begin_segment` and its drawing in [`Injector::apply`].

use crate::rng::SplitMix64;
use std::fmt;
use std::str::FromStr;

/// What goes wrong, as a sonographer would see it on the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    /// Probe lifted or no contact: the sector goes (nearly) black.
    Blank,
    /// The picture stops changing: a frozen image.
    Frozen,
    /// The gain knob jumps: the whole picture brightens and saturates.
    GainJump,
    /// Electrical interference: strong noise over the whole picture.
    NoiseBurst,
    /// A rib, gas or lifted edge of the probe: a dark band down the sector.
    Shadow,
    /// The input shows another modality (e.g. a chest radiograph).
    OtherModality,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 6] = [
        AnomalyKind::Blank,
        AnomalyKind::Frozen,
        AnomalyKind::GainJump,
        AnomalyKind::NoiseBurst,
        AnomalyKind::Shadow,
        AnomalyKind::OtherModality,
    ];

    /// The short name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::Blank => "blank",
            AnomalyKind::Frozen => "frozen",
            AnomalyKind::GainJump => "gain",
            AnomalyKind::NoiseBurst => "noise",
            AnomalyKind::Shadow => "shadow",
            AnomalyKind::OtherModality => "modality",
        }
    }

    /// One line on what the kind looks like at the bedside.
    pub fn description(self) -> &'static str {
        match self {
            AnomalyKind::Blank => "probe lifted / no contact: near-black picture",
            AnomalyKind::Frozen => "frozen image: the same frame repeated",
            AnomalyKind::GainJump => "gain jump: picture about twice as bright, saturating",
            AnomalyKind::NoiseBurst => "noise burst / interference over the whole picture",
            AnomalyKind::Shadow => "acoustic shadow or occlusion: dark band down the sector",
            AnomalyKind::OtherModality => "frames from another modality shown instead",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`AnomalyKind::ALL`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown anomaly kind '{0}': expected blank, frozen, gain, noise, shadow or modality")]
pub struct UnknownAnomalyKind(String);

impl FromStr for AnomalyKind {
    type Err = UnknownAnomalyKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AnomalyKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownAnomalyKind(s.to_string()))
    }
}

/// `len` anomalous frames of one kind from frame `start` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub kind: AnomalyKind,
    pub start: u64,
    pub len: u64,
}

impl Segment {
    /// The first frame after the segment.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }

    pub fn contains(&self, frame: u64) -> bool {
        (self.start..self.end()).contains(&frame)
    }
}

/// Which frames of a replay are anomalous: segments sorted by start, apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InjectionPlan {
    pub segments: Vec<Segment>,
}

impl InjectionPlan {
    /// Lays out segments over `total_frames` frames.
    ///
    /// Each segment is `min_len..=max_len` frames long and preceded by
    /// `min_gap..=2*min_gap` clean frames, so the first one starts after the
    /// detector's warm-up and each later one after it has had time to calm
    /// down. Kinds are dealt in rounds, each round a shuffle of `kinds`
    /// (duplicates ignored), so every kind appears equally often, give or
    /// take one. Segments are whole: the plan stops at the first one that
    /// would run past the end. Lengths of 0 count as 1; `max_len` below
    /// `min_len` counts as `min_len`.
    pub fn seeded(
        seed: u64,
        total_frames: u64,
        kinds: &[AnomalyKind],
        min_len: u64,
        max_len: u64,
        min_gap: u64,
    ) -> InjectionPlan {
        let mut deck: Vec<AnomalyKind> = AnomalyKind::ALL
            .into_iter()
            .filter(|k| kinds.contains(k))
            .collect();
        let mut segments = Vec::new();
        if deck.is_empty() {
            return InjectionPlan { segments };
        }
        let min_len = min_len.max(1);
        let max_len = max_len.max(min_len);
        let mut rng = SplitMix64(seed);
        let mut clean_from = 0u64;
        loop {
            let dealt = segments.len() % deck.len();
            if dealt == 0 {
                rng.shuffle(&mut deck);
            }
            let gap = min_gap.saturating_add(rng.below(min_gap.saturating_add(1)));
            let len = min_len + rng.below(max_len - min_len + 1);
            let Some((start, end)) = clean_from
                .checked_add(gap)
                .and_then(|start| Some((start, start.checked_add(len)?)))
                .filter(|&(_, end)| end <= total_frames)
            else {
                return InjectionPlan { segments };
            };
            segments.push(Segment {
                kind: deck[dealt],
                start,
                len,
            });
            clean_from = end;
        }
    }

    /// The segment that covers `frame`, if any.
    pub fn segment_at(&self, frame: u64) -> Option<&Segment> {
        let after = self.segments.partition_point(|s| s.start <= frame);
        let s = self.segments.get(after.checked_sub(1)?)?;
        s.contains(frame).then_some(s)
    }

    /// The kind injected at `frame`, or `None` for a clean frame.
    pub fn kind_at(&self, frame: u64) -> Option<AnomalyKind> {
        self.segment_at(frame).map(|s| s.kind)
    }
}

/// Why a frame could not be altered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InjectError {
    #[error("frame size {width}x{height} is empty or too large")]
    BadSize { width: u32, height: u32 },
    #[error("{what} has {got} pixels, expected {expected}")]
    WrongLength {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("no other-modality image was given (Injector::with_other_modality)")]
    NoOtherModality,
}

/// Draws anomalies into 8-bit gray frames of one size (packed rows).
///
/// Per-segment parameters (gain factor, noise strength, shadow position)
/// are drawn when a segment begins; per-frame noise is drawn every frame.
/// All buffers are allocated in [`Injector::new`] and
/// [`Injector::with_other_modality`], none per frame.
pub struct Injector {
    width: usize,
    rng: SplitMix64,
    /// The kind being drawn, to notice a new segment even if its first
    /// frame was skipped.
    current: Option<AnomalyKind>,
    held: Vec<u8>,
    other: Option<Vec<u8>>,
    /// Gain as Q8 (256 = 1.0).
    gain_q8: u16,
    noise_amplitude: i16,
    /// Shadow columns `shadow.0..shadow.1` and what is left of them, Q8.
    shadow: (usize, usize),
    shadow_q8: u16,
    /// Columns of the image sector; shadows fall inside it.
    sector: (usize, usize),
}

impl Injector {
    pub fn new(seed: u64, width: u32, height: u32) -> Result<Injector, InjectError> {
        let len = usize::try_from(u64::from(width) * u64::from(height))
            .ok()
            .filter(|&n| n > 0)
            .ok_or(InjectError::BadSize { width, height })?;
        Ok(Injector {
            width: width as usize,
            rng: SplitMix64(seed),
            current: None,
            held: vec![0; len],
            other: None,
            gain_q8: 512,
            noise_amplitude: 96,
            shadow: (0, 0),
            shadow_q8: 32,
            sector: (0, width as usize),
        })
    }

    /// Gives the picture [`AnomalyKind::OtherModality`] shows (already
    /// resized to the frame size, e.g. a chest radiograph).
    pub fn with_other_modality(mut self, other: Vec<u8>) -> Result<Injector, InjectError> {
        self.check("other-modality image", other.len())?;
        self.other = Some(other);
        Ok(self)
    }

    /// Columns `x0..x1` hold the image sector: a shadow is a band of 30-50 %
    /// of its width inside it (by default the whole frame width).
    pub fn with_sector_columns(mut self, x0: u32, x1: u32) -> Injector {
        let x1 = (x1 as usize).min(self.width);
        let x0 = (x0 as usize).min(x1.saturating_sub(1));
        self.sector = (x0, x1.max(x0 + 1));
        self
    }

    /// Alters `pixels` as frame `index_in_segment` of a `kind` segment.
    ///
    /// `previous` is the last clean frame before the segment; a frozen
    /// segment holds it from its first frame on (empty if there is none:
    /// then the segment's first frame is held). It is only read when a
    /// frozen segment begins. Calls for clean frames are not needed.
    pub fn apply(
        &mut self,
        kind: AnomalyKind,
        index_in_segment: u64,
        pixels: &mut [u8],
        previous: &[u8],
    ) -> Result<(), InjectError> {
        self.check("frame", pixels.len())?;
        if index_in_segment == 0 || self.current != Some(kind) {
            self.begin_segment(kind, pixels, previous)?;
        }
        match kind {
            AnomalyKind::Blank => self.noise_into(pixels, |_, r| r & 7),
            AnomalyKind::Frozen => pixels.copy_from_slice(&self.held),
            AnomalyKind::GainJump => {
                let g = u32::from(self.gain_q8);
                for p in pixels.iter_mut() {
                    *p = ((u32::from(*p) * g + 128) >> 8).min(255) as u8;
                }
            }
            AnomalyKind::NoiseBurst => {
                let a = self.noise_amplitude;
                self.noise_into(pixels, |p, r| {
                    // r in 0..=255 spread over -a..=a.
                    let n = ((i32::from(r) * (2 * i32::from(a) + 1)) >> 8) - i32::from(a);
                    (i32::from(p) + n).clamp(0, 255) as u8
                });
            }
            AnomalyKind::Shadow => {
                let (x0, x1, q) = (self.shadow.0, self.shadow.1, self.shadow_q8);
                for row in pixels.chunks_exact_mut(self.width) {
                    for p in &mut row[x0..x1] {
                        *p = ((u16::from(*p) * q) >> 8) as u8;
                    }
                }
            }
            AnomalyKind::OtherModality => {
                let other = self.other.as_ref().ok_or(InjectError::NoOtherModality)?;
                pixels.copy_from_slice(other);
            }
        }
        Ok(())
    }

    fn begin_segment(
        &mut self,
        kind: AnomalyKind,
        pixels: &[u8],
        previous: &[u8],
    ) -> Result<(), InjectError> {
        match kind {
            AnomalyKind::Frozen if previous.is_empty() => self.held.copy_from_slice(pixels),
            AnomalyKind::Frozen => {
                self.check("previous frame", previous.len())?;
                self.held.copy_from_slice(previous);
            }
            // 1.8..=2.5 as Q8.
            AnomalyKind::GainJump => self.gain_q8 = 461 + self.rng.below(180) as u16,
            AnomalyKind::NoiseBurst => self.noise_amplitude = 64 + self.rng.below(65) as i16,
            AnomalyKind::Shadow => {
                let (s0, s1) = (self.sector.0 as u64, self.sector.1 as u64);
                let w = s1 - s0;
                let cols = (w * (30 + self.rng.below(21)) / 100).clamp(1, w);
                let x0 = s0 + self.rng.below(w - cols + 1);
                self.shadow = (x0 as usize, (x0 + cols) as usize);
                // A shadow keeps some speckle: 6-16 % of the echo.
                self.shadow_q8 = 16 + self.rng.below(25) as u16;
            }
            AnomalyKind::Blank | AnomalyKind::OtherModality => {}
        }
        self.current = Some(kind);
        Ok(())
    }

    /// `pixels[i] = f(pixels[i], random byte)`, eight pixels per draw.
    fn noise_into(&mut self, pixels: &mut [u8], f: impl Fn(u8, u8) -> u8) {
        for chunk in pixels.chunks_mut(8) {
            let bytes = self.rng.next_u64().to_le_bytes();
            for (p, r) in chunk.iter_mut().zip(bytes) {
                *p = f(*p, r);
            }
        }
    }

    fn check(&self, what: &'static str, got: usize) -> Result<(), InjectError> {
        let expected = self.held.len();
        if got == expected {
            Ok(())
        } else {
            Err(InjectError::WrongLength {
                what,
                got,
                expected,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 40;
    const H: u32 = 30;

    /// An ultrasound-ish frame: mid-gray texture that changes with `t`.
    fn frame(t: u32) -> Vec<u8> {
        (0..W * H)
            .map(|i| (40 + (i * 7 + t * 13) % 90) as u8)
            .collect()
    }

    fn mean(px: &[u8]) -> f64 {
        px.iter().map(|&p| f64::from(p)).sum::<f64>() / px.len() as f64
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in AnomalyKind::ALL {
            assert_eq!(k.to_string().parse::<AnomalyKind>(), Ok(k));
            assert!(!k.description().is_empty());
        }
        assert_eq!("gain".parse(), Ok(AnomalyKind::GainJump));
        assert_eq!("modality".parse(), Ok(AnomalyKind::OtherModality));
        for bad in ["", "Blank", "gainjump", "shadow "] {
            assert!(bad.parse::<AnomalyKind>().is_err(), "{bad:?}");
        }
    }

    fn plan(seed: u64) -> InjectionPlan {
        InjectionPlan::seeded(seed, 20_000, &AnomalyKind::ALL, 10, 60, 100)
    }

    #[test]
    fn plan_segments_are_apart_and_inside() {
        for seed in 0..20 {
            let p = plan(seed);
            assert!(p.segments.len() > 50, "{}", p.segments.len());
            assert!(p.segments[0].start >= 100, "warm-up first");
            for s in &p.segments {
                assert!((10..=60).contains(&s.len));
                assert!(s.end() <= 20_000);
            }
            for w in p.segments.windows(2) {
                let gap = w[1].start - w[0].end();
                assert!((100..=200).contains(&gap), "gap {gap}");
            }
        }
    }

    #[test]
    fn plan_balances_kinds_within_one() {
        for (seed, kinds) in [
            (1, &AnomalyKind::ALL[..]),
            (2, &[AnomalyKind::Blank, AnomalyKind::Shadow][..]),
            (
                3,
                &[
                    AnomalyKind::Frozen,
                    AnomalyKind::Frozen,
                    AnomalyKind::GainJump,
                ][..],
            ),
        ] {
            let p = InjectionPlan::seeded(seed, 7_777, kinds, 5, 40, 50);
            let counts: Vec<usize> = AnomalyKind::ALL
                .iter()
                .filter(|k| kinds.contains(k))
                .map(|&k| p.segments.iter().filter(|s| s.kind == k).count())
                .collect();
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "{counts:?}");
            assert!(p.segments.iter().all(|s| kinds.contains(&s.kind)));
        }
    }

    #[test]
    fn plan_is_deterministic_by_seed() {
        assert_eq!(plan(7), plan(7));
        assert_ne!(plan(7), plan(8));
    }

    #[test]
    fn kind_at_agrees_with_a_linear_scan() {
        let p = InjectionPlan::seeded(5, 3_000, &AnomalyKind::ALL, 1, 30, 20);
        for f in 0..3_100 {
            let want = p.segments.iter().find(|s| s.contains(f)).map(|s| s.kind);
            assert_eq!(p.kind_at(f), want, "frame {f}");
        }
        // Touching segments (no gap) are told apart at the boundary.
        let p = InjectionPlan::seeded(9, 100, &AnomalyKind::ALL, 3, 3, 0);
        assert_eq!(p.segments.len(), 33);
        assert_eq!(p.segments[1].start, 3);
        for s in &p.segments {
            assert_eq!(p.kind_at(s.start), Some(s.kind));
            assert_eq!(p.kind_at(s.end() - 1), Some(s.kind));
        }
        assert_eq!(p.kind_at(99), None);
    }

    #[test]
    fn degenerate_plans_do_not_panic() {
        assert!(
            InjectionPlan::seeded(1, 1000, &[], 5, 10, 10)
                .segments
                .is_empty()
        );
        assert!(
            InjectionPlan::seeded(1, 50, &AnomalyKind::ALL, 10, 10, 100)
                .segments
                .is_empty()
        );
        let p = InjectionPlan::seeded(1, 10, &AnomalyKind::ALL, 0, 0, 0);
        assert_eq!(p.segments.len(), 10, "length 0 counts as 1");
        let p = InjectionPlan::seeded(1, u64::MAX, &AnomalyKind::ALL, u64::MAX, 0, u64::MAX);
        assert!(p.segments.is_empty());
        assert_eq!(InjectionPlan::default().kind_at(0), None);
    }

    fn injector(seed: u64) -> Injector {
        let radiograph: Vec<u8> = (0..W * H).map(|i| (i % 251) as u8).collect();
        Injector::new(seed, W, H)
            .unwrap()
            .with_other_modality(radiograph)
            .unwrap()
    }

    #[test]
    fn blank_is_near_black() {
        let mut inj = injector(1);
        for i in 0..5 {
            let mut px = vec![200; (W * H) as usize];
            inj.apply(AnomalyKind::Blank, i, &mut px, &[]).unwrap();
            assert!(mean(&px) < 8.0, "{}", mean(&px));
            assert!(px.iter().any(|&p| p > 0), "faint noise, not flat zero");
        }
    }

    #[test]
    fn gain_jump_brightens_by_about_two() {
        for seed in 0..10 {
            let mut inj = injector(seed);
            let clean = frame(3);
            let mut px = clean.clone();
            inj.apply(AnomalyKind::GainJump, 0, &mut px, &[]).unwrap();
            let ratio = mean(&px) / mean(&clean);
            assert!((1.6..=2.5).contains(&ratio), "{ratio}");
            assert!(px.iter().zip(&clean).all(|(&g, &c)| g >= c));
        }
        let mut inj = injector(1);
        let mut px = vec![250; (W * H) as usize];
        inj.apply(AnomalyKind::GainJump, 0, &mut px, &[]).unwrap();
        assert!(px.iter().all(|&p| p == 255), "saturates");
    }

    #[test]
    fn frozen_repeats_the_last_clean_frame_exactly() {
        let mut inj = injector(1);
        let last_clean = frame(0);
        for i in 0..10 {
            let mut px = frame(i as u32 + 1);
            inj.apply(AnomalyKind::Frozen, i, &mut px, &last_clean)
                .unwrap();
            assert_eq!(px, last_clean);
        }
        // Without a clean frame before it, the segment's first frame is held.
        let mut inj = injector(1);
        let first = frame(5);
        for i in 0..3 {
            let mut px = frame(5 + i as u32);
            inj.apply(AnomalyKind::Frozen, i, &mut px, &[]).unwrap();
            assert_eq!(px, first);
        }
    }

    #[test]
    fn noise_burst_is_strong() {
        let mut inj = injector(1);
        let clean = frame(2);
        let mut px = clean.clone();
        inj.apply(AnomalyKind::NoiseBurst, 0, &mut px, &[]).unwrap();
        let mad = px
            .iter()
            .zip(&clean)
            .map(|(&a, &b)| f64::from(a.abs_diff(b)))
            .sum::<f64>()
            / px.len() as f64;
        assert!(mad > 25.0, "{mad}");
    }

    #[test]
    fn shadow_darkens_one_band_only() {
        for seed in 0..10 {
            let mut inj = injector(seed);
            let clean = frame(1);
            let mut px = clean.clone();
            inj.apply(AnomalyKind::Shadow, 0, &mut px, &[]).unwrap();
            let (x0, x1) = inj.shadow;
            let cols = x1 - x0;
            assert!((12..=20).contains(&cols), "{cols} of {W} columns");
            for (y, (row, before)) in px
                .chunks(W as usize)
                .zip(clean.chunks(W as usize))
                .enumerate()
            {
                assert_eq!(row[..x0], before[..x0], "row {y}");
                assert_eq!(row[x1..], before[x1..], "row {y}");
                assert!(mean(&row[x0..x1]) < 0.2 * mean(&before[x0..x1]));
            }
            // The band stays put within a segment.
            let mut next = frame(2);
            inj.apply(AnomalyKind::Shadow, 1, &mut next, &[]).unwrap();
            assert_eq!(inj.shadow, (x0, x1));
        }
    }

    #[test]
    fn other_modality_shows_the_other_picture() {
        let mut inj = injector(1);
        let mut px = frame(0);
        inj.apply(AnomalyKind::OtherModality, 0, &mut px, &[])
            .unwrap();
        assert_eq!(px, inj.other.clone().unwrap());
        let mut bare = Injector::new(1, W, H).unwrap();
        assert_eq!(
            bare.apply(AnomalyKind::OtherModality, 0, &mut px, &[]),
            Err(InjectError::NoOtherModality)
        );
    }

    #[test]
    fn injection_is_deterministic_by_seed() {
        let run = |seed| {
            let mut inj = injector(seed);
            let mut out = Vec::new();
            for kind in AnomalyKind::ALL {
                for i in 0..3 {
                    let mut px = frame(i as u32);
                    inj.apply(kind, i, &mut px, &frame(99)).unwrap();
                    out.push(px);
                }
            }
            out
        };
        assert_eq!(run(4), run(4));
        assert_ne!(run(4), run(5));
    }

    #[test]
    fn bad_sizes_are_errors_not_panics() {
        assert!(matches!(
            Injector::new(1, 0, 10),
            Err(InjectError::BadSize { .. })
        ));
        assert!(matches!(
            Injector::new(1, W, H)
                .unwrap()
                .with_other_modality(vec![0; 3]),
            Err(InjectError::WrongLength { .. })
        ));
        let mut inj = injector(1);
        let mut short = vec![0u8; 10];
        for kind in AnomalyKind::ALL {
            assert!(inj.apply(kind, 0, &mut short, &[]).is_err());
        }
        let mut px = frame(0);
        assert!(matches!(
            inj.apply(AnomalyKind::Frozen, 0, &mut px, &[1, 2, 3]),
            Err(InjectError::WrongLength {
                what: "previous frame",
                ..
            })
        ));
    }
}
