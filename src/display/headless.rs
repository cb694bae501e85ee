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

pub struct HeadlessSink {
    dir: PathBuf,
    size: (u32, u32),
    every: u64,
    shown: u64,
    written: Vec<PathBuf>,
    thumbs: Vec<RgbImage>,
}

impl HeadlessSink {
    /// Creates `dir` if needed; writes every `every`-th frame (1 = all).
    pub fn new(dir: &Path, size: (u32, u32), every: u64) -> Result<HeadlessSink, DisplayError> {
        crate::private_output::create_dir_all(dir).map_err(|e| DisplayError::io(dir, e))?;
        Ok(HeadlessSink {
            dir: dir.to_path_buf(),
            size,
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
            "headless PNG to {} (every {} frame(s))",
            self.dir.display(),
            self.every
        )
    }

    fn size(&self) -> (u32, u32) {
        self.size
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
