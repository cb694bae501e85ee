//! `bedside run --inject frozen@60+30,...`: anomalies drawn into a source's
//! frames at given frame numbers, to rehearse the ultrasound alarm on real
//! frames (a clinical engineer checking a cart, our end-to-end tests).
//!
//! Frames leave as 8-bit gray (what the detector sees anyway). The kinds
//! and their drawing are [`crate::analyze::inject`]'s, the same as
//! `eval-anomaly` uses; "another modality" is the bundled chest radiograph.

use std::str::FromStr;

use super::{CaptureError, FrameSource};
use crate::analyze::inject::{Injector, Segment, UnknownAnomalyKind};
use crate::frame::{Frame, PixelFormat};
use crate::preprocess::GrayImage;
use crate::preprocess::convert::Converter;
use crate::preprocess::kernels::kernels;

/// Segments to inject, by the source's own frame count (from 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rehearsal {
    pub segments: Vec<Segment>,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RehearsalError {
    #[error("'{0}': expected KIND@START+LEN (e.g. frozen@60+30) or seed=N")]
    Syntax(String),
    #[error(transparent)]
    Kind(#[from] UnknownAnomalyKind),
    #[error("segments {0} and {1} overlap")]
    Overlap(String, String),
}

impl FromStr for Rehearsal {
    type Err = RehearsalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut segments = Vec::new();
        let mut seed = 1;
        for part in s.split(',').map(str::trim) {
            let syntax = || RehearsalError::Syntax(part.to_string());
            if let Some(v) = part.strip_prefix("seed=") {
                seed = v.parse().map_err(|_| syntax())?;
                continue;
            }
            let (kind, at) = part.split_once('@').ok_or_else(syntax)?;
            let (start, len) = at.split_once('+').ok_or_else(syntax)?;
            let (start, len): (u64, u64) = (
                start.parse().map_err(|_| syntax())?,
                len.parse().map_err(|_| syntax())?,
            );
            if len == 0 || start.checked_add(len).is_none() {
                return Err(syntax());
            }
            segments.push(Segment {
                kind: kind.parse()?,
                start,
                len,
            });
        }
        segments.sort_by_key(|s| s.start);
        for w in segments.windows(2) {
            if w[1].start < w[0].end() {
                let name = |s: &Segment| format!("{}@{}+{}", s.kind, s.start, s.len);
                return Err(RehearsalError::Overlap(name(&w[0]), name(&w[1])));
            }
        }
        Ok(Rehearsal { segments, seed })
    }
}

fn inject_error(detail: String) -> CaptureError {
    CaptureError::Unsupported {
        path: "--inject".into(),
        what: "frame for anomaly injection",
        detail,
    }
}

/// A source with anomalies drawn into it.
pub struct RehearsalSource {
    inner: Box<dyn FrameSource>,
    plan: Rehearsal,
    /// Built on the first frame, for its size.
    injector: Option<Injector>,
    size: (u32, u32),
    gray: GrayImage,
    converter: Converter,
    /// The last frame before the current segment (what "frozen" holds).
    previous: Vec<u8>,
    spare: Vec<u8>,
    index: u64,
}

impl RehearsalSource {
    pub fn new(inner: Box<dyn FrameSource>, plan: Rehearsal) -> RehearsalSource {
        RehearsalSource {
            inner,
            plan,
            injector: None,
            size: (0, 0),
            gray: GrayImage::default(),
            converter: Converter::default(),
            previous: Vec::new(),
            spare: Vec::new(),
            index: 0,
        }
    }

    /// The injector for frames of `w` x `h`, made on the first frame and
    /// again when the size changes.
    fn injector(&mut self, w: u32, h: u32) -> Result<&mut Injector, CaptureError> {
        if self.injector.is_none() || self.size != (w, h) {
            let bad = |e: crate::analyze::inject::InjectError| inject_error(e.to_string());
            let other = crate::demo::other_modality_picture(w, h)?;
            let area = crate::preprocess::crop::detect_active_area(&self.gray);
            let inj = Injector::new(self.plan.seed, w, h)
                .map_err(bad)?
                .with_other_modality(other)
                .map_err(bad)?
                .with_sector_columns(area.x, area.x + area.width);
            self.injector = Some(inj);
            self.size = (w, h);
        }
        // Set just above; the error only keeps this free of a panic path.
        self.injector
            .as_mut()
            .ok_or_else(|| inject_error("no injector".into()))
    }
}

impl FrameSource for RehearsalSource {
    fn device_counts(&self) -> Option<super::v4l2::assemble::CaptureCounts> {
        self.inner.device_counts()
    }

    fn describe(&self) -> String {
        format!("{} with rehearsed anomalies", self.inner.describe())
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let Some(frame) = self.inner.next_frame()? else {
            return Ok(None);
        };
        let meta = frame.meta;
        self.converter.run(kernels(), &frame, &mut self.gray);
        self.inner.recycle(frame);
        let (w, h) = (self.gray.width, self.gray.height);
        let i = self.index;
        self.index += 1;
        let segment = self.plan.segments.iter().find(|s| s.contains(i)).copied();
        let mut out = std::mem::take(&mut self.spare);
        out.clear();
        out.extend_from_slice(&self.gray.data);
        match segment {
            Some(s) => {
                let previous = std::mem::take(&mut self.previous);
                let result = self.injector(w, h).and_then(|inj| {
                    inj.apply(s.kind, i - s.start, &mut out, &previous)
                        .map_err(|e| inject_error(e.to_string()))
                });
                self.previous = previous;
                result?;
            }
            None => {
                self.previous.clear();
                self.previous.extend_from_slice(&self.gray.data);
            }
        }
        Frame::packed(out, PixelFormat::Gray8, w, h, meta)
            .map(Some)
            .map_err(|e| inject_error(e.to_string()))
    }

    fn recycle(&mut self, frame: Frame) {
        self.spare = frame.into_parts().0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::inject::AnomalyKind;

    #[test]
    fn specs_parse_sorted_and_refuse_overlaps() {
        let r: Rehearsal = "blank@100+10, frozen@40+20,seed=9".parse().unwrap();
        assert_eq!(r.seed, 9);
        assert_eq!(r.segments[0].kind, AnomalyKind::Frozen);
        assert_eq!((r.segments[1].start, r.segments[1].len), (100, 10));
        for bad in [
            "frozen",
            "frozen@1",
            "frozen@x+2",
            "frozen@1+0",
            "seed=-1",
            "",
        ] {
            assert!(
                matches!(bad.parse::<Rehearsal>(), Err(RehearsalError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "quake@1+2".parse::<Rehearsal>(),
            Err(RehearsalError::Kind(_))
        ));
        assert_eq!(
            "noise@10+10,gain@15+3".parse::<Rehearsal>(),
            Err(RehearsalError::Overlap(
                "noise@10+10".into(),
                "gain@15+3".into()
            ))
        );
    }
}
