//! A deterministic ultrasound-like test pattern: a sector of speckle with a
//! moving bright wall. Needs no files or hardware; the same seed and size give
//! the same frames on every machine.

use super::{CaptureError, FrameSource};
use crate::frame::{Frame, FrameMeta, PixelFormat};

pub struct SyntheticSource {
    width: u32,
    height: u32,
    interval_us: u64,
    limit: Option<u64>,
    seq: u64,
}

impl SyntheticSource {
    /// `limit` ends the source after that many frames (`None`: endless).
    pub fn new(width: u32, height: u32, fps: u32, limit: Option<u64>) -> SyntheticSource {
        SyntheticSource {
            width,
            height,
            interval_us: 1_000_000 / u64::from(fps.max(1)),
            limit,
            seq: 0,
        }
    }

    fn render(&self) -> Vec<u8> {
        let (w, h) = (self.width as i64, self.height as i64);
        let mut data = vec![0u8; (w * h) as usize];
        let apex_x = w / 2;
        let depth = h * 15 / 16;
        // Wall position oscillates with a 1 s period, in integer steps of time.
        let phase = (self.seq % 30) as i64;
        let wall = depth / 3 + (depth / 8) * (phase - 15).abs() / 15;
        for y in 0..h {
            for x in 0..w {
                let dx = x - apex_x;
                let r2 = dx * dx + y * y;
                // Inside a 90-degree sector: |dx| <= y, and within the depth.
                if dx.abs() > y || r2 > depth * depth {
                    continue;
                }
                let r = (r2 as f64).sqrt() as i64;
                let speckle = (hash(x as u64 / 2, y as u64 / 2, self.seq / 2) % 90) as i64;
                let echo = if (r - wall).abs() < 6 { 120 } else { 0 };
                let attenuation = 60 * r / depth.max(1);
                data[(y * w + x) as usize] =
                    (40 + speckle + echo - attenuation).clamp(0, 255) as u8;
            }
        }
        data
    }
}

fn hash(x: u64, y: u64, t: u64) -> u64 {
    let mut v = x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ y.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ t.wrapping_mul(0x1656_67B1_9E37_79F9);
    v ^= v >> 31;
    v = v.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    v ^ (v >> 29)
}

impl FrameSource for SyntheticSource {
    fn describe(&self) -> String {
        format!("synthetic {}x{} sector pattern", self.width, self.height)
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.limit.is_some_and(|n| self.seq >= n) {
            return Ok(None);
        }
        let meta = FrameMeta {
            seq: self.seq,
            timestamp_us: self.seq * self.interval_us,
        };
        let frame = Frame::packed(
            self.render(),
            PixelFormat::Gray8,
            self.width,
            self.height,
            meta,
        )
        .map_err(|e| CaptureError::BadFrame {
            path: "synthetic".into(),
            source: e,
        })?;
        self.seq += 1;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_bounded() {
        let mut a = SyntheticSource::new(64, 48, 30, Some(2));
        let mut b = SyntheticSource::new(64, 48, 30, Some(2));
        let fa = a.next_frame().unwrap().unwrap();
        assert_eq!(fa.row(30), b.next_frame().unwrap().unwrap().row(30));
        assert!(fa.row(30).iter().any(|&v| v > 0), "sector has content");
        assert!(a.next_frame().unwrap().is_some());
        assert!(a.next_frame().unwrap().is_none());
    }
}
