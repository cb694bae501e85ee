//! Headless output: PNG files of rendered frames (every Nth) and, at the end, a
//! contact sheet of up to 16 of them. Written only where the user asked.

use std::path::{Path, PathBuf};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{RgbImage, imageops};

use super::{Canvas, DisplayError, FrameSink};
use crate::frame::FrameMeta;

const THUMB: (u32, u32) = (320, 240);
const SHEET_COLS: u32 = 4;
const MAX_THUMBS: usize = 16;

/// Sizes a headless preview accepts: from a small SPI panel to 4K.
pub const MIN_SIZE: (u32, u32) = (240, 160);
pub const MAX_SIZE: (u32, u32) = (3840, 2160);

/// `headless:DIR[?size=WxH&diagonal_in=D]`: where the frames go, the panel
/// they preview (640x480 by default) and its diagonal in inches (sizes the
/// alarm lettering; unknown by default).
#[derive(Clone, Debug, PartialEq)]
pub struct HeadlessSpec {
    pub dir: PathBuf,
    pub size: (u32, u32),
    pub diagonal_in: Option<f32>,
}

impl HeadlessSpec {
    pub fn new(dir: impl Into<PathBuf>) -> HeadlessSpec {
        HeadlessSpec {
            dir: dir.into(),
            size: (640, 480),
            diagonal_in: None,
        }
    }
}

impl Eq for HeadlessSpec {}

impl std::str::FromStr for HeadlessSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (dir, query) = s.split_once('?').unwrap_or((s, ""));
        if dir.is_empty() {
            return Err(format!("headless:{s}: no folder"));
        }
        let mut spec = HeadlessSpec::new(dir);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "size" => spec.size = parse_size(value)?,
                "diagonal_in" => {
                    spec.diagonal_in = Some(
                        value
                            .parse::<f32>()
                            .ok()
                            .filter(|d| d.is_finite() && (0.5..=100.0).contains(d))
                            .ok_or_else(|| {
                                format!(
                                    "headless: diagonal_in '{value}' is not a size in inches (0.5 to 100)"
                                )
                            })?,
                    )
                }
                other => {
                    return Err(format!(
                        "headless: unknown option '{other}' (expected size=WxH or diagonal_in=D)"
                    ));
                }
            }
        }
        Ok(spec)
    }
}

/// `WxH` within [`MIN_SIZE`] and [`MAX_SIZE`].
fn parse_size(value: &str) -> Result<(u32, u32), String> {
    let bad = || format!("headless: size '{value}' is not WxH (e.g. 800x480)");
    let (w, h) = value.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if w < MIN_SIZE.0 || h < MIN_SIZE.1 || w > MAX_SIZE.0 || h > MAX_SIZE.1 {
        return Err(format!(
            "headless: size {w}x{h} is outside {}x{} to {}x{}",
            MIN_SIZE.0, MIN_SIZE.1, MAX_SIZE.0, MAX_SIZE.1
        ));
    }
    Ok((w, h))
}

pub struct HeadlessSink {
    dir: PathBuf,
    size: (u32, u32),
    diagonal_in: Option<f32>,
    every: u64,
    shown: u64,
    written: Vec<PathBuf>,
    thumbs: Vec<RgbImage>,
}

impl HeadlessSink {
    /// Creates the folder if needed; writes every `every`-th frame (1 = all).
    pub fn new(spec: &HeadlessSpec, every: u64) -> Result<HeadlessSink, DisplayError> {
        let dir = &spec.dir;
        crate::private_output::create_dir_all(dir).map_err(|e| DisplayError::io(dir, e))?;
        Ok(HeadlessSink {
            dir: dir.to_path_buf(),
            size: spec.size,
            diagonal_in: spec.diagonal_in,
            every: every.max(1),
            shown: 0,
            written: Vec::new(),
            thumbs: Vec::new(),
        })
    }

    /// Frames written so far.
    pub fn written(&self) -> &[PathBuf] {
        &self.written
    }
}

/// PNG with fast compression: these are inspection copies, written per frame.
fn write_png(img: &RgbImage, path: &Path) -> Result<(), DisplayError> {
    // 0600: a screen can carry burned-in patient data.
    let file = crate::private_output::open(path, false).map_err(|e| DisplayError::io(path, e))?;
    let encoder = PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        CompressionType::Fast,
        FilterType::Sub,
    );
    img.write_with_encoder(encoder).map_err(|e| match e {
        image::ImageError::IoError(io) => DisplayError::io(path, io),
        other => DisplayError::Png {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

fn to_image(canvas: &Canvas) -> Option<RgbImage> {
    RgbImage::from_raw(canvas.width, canvas.height, canvas.rgb.clone())
}

impl FrameSink for HeadlessSink {
    fn describe(&self) -> String {
        format!(
            "headless PNG to {} ({}x{}, every {} frame(s))",
            self.dir.display(),
            self.size.0,
            self.size.1,
            self.every
        )
    }

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn diagonal_in(&self) -> Option<f32> {
        self.diagonal_in
    }

    fn show(&mut self, canvas: &Canvas, meta: &FrameMeta) -> Result<(), DisplayError> {
        let n = self.shown;
        self.shown += 1;
        if !n.is_multiple_of(self.every) {
            return Ok(());
        }
        let path = self.dir.join(format!("frame_{:06}.png", meta.seq));
        let img = to_image(canvas).ok_or_else(|| DisplayError::Png {
            path: path.clone(),
            reason: "canvas size mismatch".into(),
        })?;
        write_png(&img, &path)?;
        // Keep an evenly spread set of thumbnails: when full, drop every other one.
        if self.thumbs.len() == 2 * MAX_THUMBS {
            let mut i = 0;
            self.thumbs.retain(|_| {
                i += 1;
                i % 2 == 1
            });
        }
        self.thumbs
            .push(imageops::thumbnail(&img, THUMB.0, THUMB.1));
        self.written.push(path);
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<PathBuf>, DisplayError> {
        let mut files = std::mem::take(&mut self.written);
        if self.thumbs.is_empty() {
            return Ok(files);
        }
        let step = self.thumbs.len().div_ceil(MAX_THUMBS);
        let picked: Vec<&RgbImage> = self.thumbs.iter().step_by(step).collect();
        let rows = (picked.len() as u32).div_ceil(SHEET_COLS);
        let cols = SHEET_COLS.min(picked.len() as u32);
        let mut sheet = RgbImage::new(cols * THUMB.0, rows * THUMB.1);
        for (i, t) in picked.iter().enumerate() {
            let (c, r) = (i as u32 % SHEET_COLS, i as u32 / SHEET_COLS);
            imageops::overlay(
                &mut sheet,
                *t,
                i64::from(c * THUMB.0),
                i64::from(r * THUMB.1),
            );
        }
        let path = self.dir.join("contact_sheet.png");
        write_png(&sheet, &path)?;
        files.push(path);
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_names_its_panel() {
        let s: HeadlessSpec = "/tmp/x?size=800x480&diagonal_in=7".parse().unwrap();
        assert_eq!(s.dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.size, (800, 480));
        assert_eq!(s.diagonal_in, Some(7.0));
        let s: HeadlessSpec = "out".parse().unwrap();
        assert_eq!((s.size, s.diagonal_in), ((640, 480), None));
        assert_eq!(
            "o?size=1920X1080".parse::<HeadlessSpec>().unwrap().size,
            (1920, 1080)
        );
    }

    #[test]
    fn a_bad_preview_option_says_what_is_wrong() {
        for (spec, says) in [
            ("o?size=800", "not WxH"),
            ("o?size=axb", "not WxH"),
            ("o?size=100x100", "outside 240x160"),
            ("o?size=8000x4000", "outside"),
            ("o?diagonal_in=-3", "not a size in inches"),
            ("o?diagonal_in=inf", "not a size in inches"),
            ("o?colour=1", "unknown option 'colour'"),
            ("?size=800x480", "no folder"),
        ] {
            let e = spec.parse::<HeadlessSpec>().unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
        }
    }
}
