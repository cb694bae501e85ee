//! Conversion of any source frame to 8-bit gray, the display copy.
//!
//! 16-bit medical data goes through a DICOM VOI linear window (PS3.3
//! C.11.2.1.2), inverted for MONOCHROME1, in fixed point
//! ([`generic::VoiFixed`]: float only while choosing its constants, once per
//! window). It replaced a 65536-entry table: a gather per sample has no SIMD
//! form, the arithmetic does, and 64 KiB of table thrashes a Pi's L1.

use super::GrayImage;
use super::kernels::generic::VoiFixed;
use super::kernels::{Kernels, RowToGray};
use crate::frame::{Frame, PixelFormat, Tone, VoiWindow};

/// Reusable state of the converter: the fixed-point window of the last
/// 16-bit frame, kept while its tone (and, without a window, its range) stays.
#[derive(Default)]
pub struct Converter {
    voi: Option<(Tone, u16, u16, VoiFixed)>,
}

impl Converter {
    /// Writes `frame` as gray into `out` (resized to the frame). The row
    /// kernel is chosen once per frame, not once per row.
    pub fn run(&mut self, k: &Kernels, frame: &Frame, out: &mut GrayImage) {
        out.reset(frame.width(), frame.height());
        let w = frame.width() as usize;
        let rows = frame.rows().zip(out.data.chunks_exact_mut(w));
        let to_gray: RowToGray = match frame.format() {
            PixelFormat::Gray8 | PixelFormat::Nv12 => copy_row,
            PixelFormat::Rgb24 => k.rgb24_to_gray,
            PixelFormat::Bgr24 => k.bgr24_to_gray,
            PixelFormat::Xrgb8888 => k.xrgb8888_to_gray,
            PixelFormat::Yuyv => k.yuyv_to_gray,
            PixelFormat::Uyvy => k.uyvy_to_gray,
            PixelFormat::Gray16 => {
                let voi = self.window_for(k, frame);
                for (src, dst) in rows {
                    (k.window_u16)(src, &voi, dst);
                }
                return;
            }
        };
        for (src, dst) in rows {
            to_gray(src, dst);
        }
    }

    /// The window of a 16-bit frame: its own, or without one a stretch of
    /// the frame's min..max.
    fn window_for(&mut self, k: &Kernels, frame: &Frame) -> VoiFixed {
        let tone = frame.tone;
        let (lo, hi) = match tone.window {
            Some(_) => (0, 0),
            None => frame
                .rows()
                .fold((u16::MAX, 0), |acc, row| (k.minmax_u16)(row, acc)),
        };
        if let Some((t, l, h, voi)) = self.voi
            && (t, l, h) == (tone, lo, hi)
        {
            return voi;
        }
        let window = tone.window.unwrap_or(VoiWindow {
            center: (f64::from(lo) + f64::from(hi) + 1.0) / 2.0,
            width: f64::from(hi) - f64::from(lo) + 1.0,
        });
        let voi = VoiFixed::new(window.center, window.width, tone.invert);
        self.voi = Some((tone, lo, hi, voi));
        voi
    }
}

/// The gray (and NV12 luma) row is already the answer.
fn copy_row(src: &[u8], dst: &mut [u8]) {
    dst.copy_from_slice(src);
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

    /// The DICOM linear VOI function in float (PS3.3 C.11.2.1.2), rounded.
    fn dicom_voi(x: f64, c: f64, w: f64) -> u8 {
        let y = if x <= c - 0.5 - (w - 1.0) / 2.0 {
            0.0
        } else if x > c - 0.5 + (w - 1.0) / 2.0 {
            255.0
        } else {
            ((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0
        };
        y.round() as u8
    }

    /// The fixed-point window against the standard's float definition over
    /// every 16-bit input, for windows of real data (CT, CR, MR, 10-bit
    /// ultrasound), fractional and out-of-range ones: at most one level apart,
    /// and only where the float value lies within 1/100 of a level of a
    /// rounding boundary.
    #[test]
    fn fixed_point_window_follows_the_standard() {
        let windows = [
            (40.0, 400.0),
            (-600.0, 1500.0),
            (2048.0, 4096.0),
            (511.5, 1024.0),
            (1000.3, 2000.7),
            (32768.0, 65536.0),
            (100.0, 2.0),
            (100.0, 3.0),
            (65535.0, 10.0),
            (70000.0, 100.0),
            (-5000.0, 100.0),
            (30000.0, 120000.0),
            (12345.678, 257.25),
        ];
        for (c, w) in windows {
            let voi = VoiFixed::new(c, w, false);
            let mut off = 0;
            for x in 0..=u16::MAX {
                let (got, want) = (voi.apply(x), dicom_voi(f64::from(x), c, w));
                if got != want {
                    let exact = ((f64::from(x) - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0;
                    let to_boundary = (exact - exact.floor() - 0.5).abs();
                    assert!(
                        got.abs_diff(want) <= 1 && to_boundary < 0.01,
                        "window {c}/{w} at {x}: fixed {got}, float {want} ({exact})"
                    );
                    off += 1;
                }
            }
            assert!(off <= 16, "window {c}/{w}: {off} inputs one level off");
        }
        // Thresholds (width 1) are exact.
        for c in [0.0, 0.5, 100.0, 100.3, 65535.0, 65536.0, 70000.0] {
            let voi = VoiFixed::new(c, 1.0, true);
            for x in 0..=u16::MAX {
                assert_eq!(
                    voi.apply(x),
                    255 - dicom_voi(f64::from(x), c, 1.0),
                    "{c} at {x}"
                );
            }
        }
    }
}
