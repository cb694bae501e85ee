//! Conversion of any source frame to 8-bit gray, the display copy.
//!
//! 16-bit medical data goes through a DICOM VOI linear window (PS3.3
//! C.11.2.1.2), inverted for MONOCHROME1, applied as a 65536-entry table built
//! once per window (float only while building the table).

use super::GrayImage;
use super::kernels::{Kernels, generic};
use crate::frame::{Frame, PixelFormat, Tone, VoiWindow};

/// Reusable state of the converter: the 16-bit window table.
#[derive(Default)]
pub struct Converter {
    lut16: Vec<u8>,
    lut_for: Option<(Tone, u16, u16)>,
}

/// Table for the linear VOI function over all 16-bit inputs.
fn window_table(w: VoiWindow, invert: bool, lut: &mut Vec<u8>) {
    lut.resize(65536, 0);
    let (c, width) = (w.center, w.width.max(1.0));
    for (x, out) in lut.iter_mut().enumerate() {
        let x = x as f64;
        let y = if x <= c - 0.5 - (width - 1.0) / 2.0 {
            0.0
        } else if x > c - 0.5 + (width - 1.0) / 2.0 {
            255.0
        } else {
            (((x - (c - 0.5)) / (width - 1.0).max(1.0)) + 0.5) * 255.0
        };
        let y = y.clamp(0.0, 255.0).round() as u8;
        *out = if invert { 255 - y } else { y };
    }
}

impl Converter {
    /// Writes `frame` as gray into `out` (resized to the frame).
    pub fn run(&mut self, k: &Kernels, frame: &Frame, out: &mut GrayImage) {
        out.reset(frame.width(), frame.height());
        let w = frame.width() as usize;
        if frame.format() == PixelFormat::Gray16 {
            self.prepare_window(frame);
        }
        for y in 0..frame.height() {
            let src = frame.row(y);
            let dst = &mut out.data[y as usize * w..(y as usize + 1) * w];
            match frame.format() {
                PixelFormat::Gray8 | PixelFormat::Nv12 => dst.copy_from_slice(src),
                PixelFormat::Rgb24 => (k.rgb24_to_gray)(src, dst),
                PixelFormat::Bgr24 => (k.bgr24_to_gray)(src, dst),
                PixelFormat::Xrgb8888 => (k.xrgb8888_to_gray)(src, dst),
                PixelFormat::Yuyv => (k.yuyv_to_gray)(src, dst),
                PixelFormat::Uyvy => (k.uyvy_to_gray)(src, dst),
                PixelFormat::Gray16 => generic::lut_u16(src, &self.lut16, dst),
            }
        }
    }

    fn prepare_window(&mut self, frame: &Frame) {
        let tone = frame.tone;
        let (lo, hi) = match tone.window {
            Some(_) => (0, 0),
            None => {
                // No window in the data: stretch this frame's own range.
                let (mut lo, mut hi) = (u16::MAX, 0u16);
                for y in 0..frame.height() {
                    for p in frame.row(y).chunks_exact(2) {
                        let v = u16::from_le_bytes([p[0], p[1]]);
                        lo = lo.min(v);
                        hi = hi.max(v);
                    }
                }
                (lo, hi)
            }
        };
        if self.lut_for == Some((tone, lo, hi)) {
            return;
        }
        let window = tone.window.unwrap_or(VoiWindow {
            center: (f64::from(lo) + f64::from(hi) + 1.0) / 2.0,
            width: f64::from(hi) - f64::from(lo) + 1.0,
        });
        window_table(window, tone.invert, &mut self.lut16);
        self.lut_for = Some((tone, lo, hi));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameMeta;
    use crate::preprocess::kernels::GENERIC;

    #[test]
    fn window_and_monochrome1() {
        let samples: Vec<u8> = [0u16, 100, 200, 300]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let tone = Tone {
            window: Some(VoiWindow {
                center: 150.0,
                width: 101.0,
            }),
            invert: false,
        };
        let f = Frame::packed(
            samples.clone(),
            PixelFormat::Gray16,
            4,
            1,
            FrameMeta::default(),
        )
        .unwrap()
        .with_tone(tone);
        let mut out = GrayImage::default();
        Converter::default().run(&GENERIC, &f, &mut out);
        assert_eq!(out.data, vec![0, 1, 255, 255]);
        let inv = Frame::packed(samples, PixelFormat::Gray16, 4, 1, FrameMeta::default())
            .unwrap()
            .with_tone(Tone {
                window: None,
                invert: true,
            });
        Converter::default().run(&GENERIC, &inv, &mut out);
        assert_eq!(out.data, vec![255, 170, 85, 0]);
    }
}
