//! Turning dequeued V4L2 buffers into frames, without a device.
//!
//! Everything here is plain data in, frame out, so it is unit-tested on any
//! machine: cutting each buffer to `bytesused`, skipping error-flagged
//! buffers, counting sequence gaps as drops, keeping timestamps monotonic
//! across reconnects, and decoding MJPEG. Frame buffers come from a small
//! pool that the pipeline hands back ([`FrameAssembler::recycle`]), so the
//! steady state allocates nothing per frame for raw formats.

use crate::capture::mjpeg::{MjpegDecoder, MjpegError};
use crate::frame::{Frame, FrameError, FrameMeta, PixelFormat};

use super::formats::CaptureFormat;

/// Buffers kept for reuse; the pipeline holds one or two frames at a time.
const POOL: usize = 4;

/// What the device agreed to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub format: CaptureFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes per row as the driver reports it (0 for MJPEG).
    pub stride: usize,
}

/// The facts of one dequeued buffer the assembler needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct BufferInfo {
    pub bytesused: u32,
    /// The driver's frame counter (`v4l2_buffer.sequence`).
    pub sequence: u32,
    /// `V4L2_BUF_FLAG_ERROR`: the driver says the data is damaged.
    pub error_flag: bool,
    /// The driver's capture time in microseconds (any epoch).
    pub timestamp_us: u64,
}

/// Running counts for logs and the run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureCounts {
    /// Frames delivered.
    pub frames: u64,
    /// Frames the driver skipped (gaps in its sequence numbers).
    pub dropped: u64,
    /// Buffers flagged as damaged by the driver, skipped.
    pub errored: u64,
    /// Buffers that were short or did not decode, skipped.
    pub bad: u64,
    /// Times the stream was set up again after a disconnection.
    pub reconnects: u64,
}

/// Why one buffer did not become a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BufferError {
    #[error("driver reports {bytesused} bytes used in a {len}-byte buffer")]
    BytesUsedBeyondBuffer { bytesused: u32, len: usize },
    #[error("empty buffer")]
    Empty,
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("MJPEG: {0}")]
    Mjpeg(#[from] MjpegError),
}

/// Counts frames the driver dropped from its sequence numbers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SequenceTracker {
    last: Option<u32>,
}

impl SequenceTracker {
    /// Frames missing between the previous buffer and this one. The counter
    /// wraps at 2^32; a jump backwards (a driver restart) counts nothing.
    pub fn observe(&mut self, sequence: u32) -> u64 {
        let gap = match self.last {
            Some(last) => {
                let step = sequence.wrapping_sub(last);
                if step == 0 || step > u32::MAX / 2 {
                    0
                } else {
                    u64::from(step - 1)
                }
            }
            None => 0,
        };
        self.last = Some(sequence);
        gap
    }

    /// A new stream numbers from scratch.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// Frame times from driver timestamps: 0 at the first frame, never going
/// back, continuing across reconnects (whose clocks restart).
#[derive(Clone, Copy, Debug, Default)]
struct Timeline {
    first: Option<u64>,
    base: u64,
    last: u64,
}

impl Timeline {
    fn stamp(&mut self, driver_us: u64) -> u64 {
        let first = *self.first.get_or_insert(driver_us);
        let t = (self.base + driver_us.saturating_sub(first)).max(self.last);
        self.last = t;
        t
    }

    /// The next stream's first frame comes `gap_us` after the last one.
    fn restart(&mut self, gap_us: u64) {
        self.first = None;
        self.base = self.last + gap_us;
    }
}

/// Builds frames from the buffers of one device.
pub struct FrameAssembler {
    geometry: Geometry,
    /// Bytes of a raw frame; `None` for MJPEG.
    raw_len: Option<usize>,
    pool: Vec<Vec<u8>>,
    mjpeg: MjpegDecoder,
    sequence: SequenceTracker,
    timeline: Timeline,
    next_seq: u64,
    pub counts: CaptureCounts,
}

impl FrameAssembler {
    /// Checks the geometry once (a driver may report a stride shorter than a
    /// row, or a size we refuse) so that per-buffer work cannot fail on it.
    pub fn new(geometry: Geometry) -> Result<FrameAssembler, FrameError> {
        // A stride of 0 (or below a row) from the driver means packed rows.
        let (stride, raw_len) = match geometry.format.raw_layout() {
            Some(layout) => {
                let stride = geometry
                    .stride
                    .max(geometry.width as usize * layout.bytes_per_pixel());
                // Checked without allocating: a driver's stride can ask for terabytes.
                let len = Frame::check_geometry(layout, geometry.width, geometry.height, stride)?;
                (stride, Some(len))
            }
            None => (0, None),
        };
        Ok(FrameAssembler {
            geometry: Geometry { stride, ..geometry },
            raw_len,
            pool: Vec::with_capacity(POOL),
            mjpeg: MjpegDecoder::for_size(geometry.width, geometry.height),
            sequence: SequenceTracker::default(),
            timeline: Timeline::default(),
            next_seq: 0,
            counts: CaptureCounts::default(),
        })
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The frame in `buffer` (the whole mmap buffer), `Ok(None)` when the
    /// driver flagged it as damaged. Errors are about this buffer only.
    pub fn assemble(
        &mut self,
        buffer: &[u8],
        info: BufferInfo,
    ) -> Result<Option<Frame>, BufferError> {
        self.counts.dropped += self.sequence.observe(info.sequence);
        if info.error_flag {
            self.counts.errored += 1;
            return Ok(None);
        }
        let result = self.build(buffer, info);
        match result {
            Ok(frame) => {
                self.counts.frames += 1;
                Ok(Some(frame))
            }
            Err(e) => {
                self.counts.bad += 1;
                Err(e)
            }
        }
    }

    fn build(&mut self, buffer: &[u8], info: BufferInfo) -> Result<Frame, BufferError> {
        let used = info.bytesused as usize;
        if used > buffer.len() {
            return Err(BufferError::BytesUsedBeyondBuffer {
                bytesused: info.bytesused,
                len: buffer.len(),
            });
        }
        if used == 0 {
            return Err(BufferError::Empty);
        }
        let mut data = self.pool.pop().unwrap_or_default();
        let g = self.geometry;
        let built = match (g.format.raw_layout(), self.raw_len) {
            (Some(layout), Some(len)) => {
                // Only the frame: drivers may pad past it, never short of it.
                data.clear();
                data.extend_from_slice(&buffer[..used.min(len)]);
                Ok(layout)
            }
            _ => match self.mjpeg.decode_gray(&buffer[..used], &mut data) {
                Ok(_) => Ok(PixelFormat::Gray8),
                Err(e) => Err(e.into()),
            },
        };
        let layout = match built {
            Ok(layout) => layout,
            Err(e) => {
                self.pool.push(data);
                return Err(e);
            }
        };
        let stride = if layout == PixelFormat::Gray8 && g.format == CaptureFormat::Mjpeg {
            g.width as usize
        } else {
            g.stride
        };
        let meta = FrameMeta {
            seq: self.next_seq,
            timestamp_us: self.timeline.stamp(info.timestamp_us),
        };
        match Frame::new_checked(data, layout, g.width, g.height, stride, meta) {
            Ok(frame) => {
                self.next_seq += 1;
                Ok(frame)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Takes a finished frame's buffer back for reuse.
    pub fn recycle(&mut self, frame: Frame) {
        if self.pool.len() < POOL {
            self.pool.push(frame.into_parts().0);
        }
    }

    /// The device was set up again (after a disconnection) with `geometry`;
    /// numbering and time go on from where they were.
    pub fn restart(&mut self, geometry: Geometry, gap_us: u64) -> Result<(), FrameError> {
        let counts = self.counts;
        let (next_seq, mut timeline) = (self.next_seq, self.timeline);
        let pool = std::mem::take(&mut self.pool);
        *self = FrameAssembler::new(geometry)?;
        timeline.restart(gap_us);
        self.timeline = timeline;
        self.next_seq = next_seq;
        self.counts = CaptureCounts {
            reconnects: counts.reconnects + 1,
            ..counts
        };
        self.pool = pool;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yuyv(width: u32, height: u32, stride: usize) -> FrameAssembler {
        FrameAssembler::new(Geometry {
            format: CaptureFormat::Yuyv,
            width,
            height,
            stride,
        })
        .unwrap()
    }

    fn info(bytesused: usize, sequence: u32, timestamp_us: u64) -> BufferInfo {
        BufferInfo {
            bytesused: bytesused as u32,
            sequence,
            error_flag: false,
            timestamp_us,
        }
    }

    #[test]
    fn frames_are_cut_to_the_frame_not_the_buffer() {
        let mut a = yuyv(4, 2, 8);
        // The mmap buffer is a page; the driver used 16 bytes plus padding.
        let mut buffer = vec![0xAA; 4096];
        buffer[..16].copy_from_slice(&[1; 16]);
        let frame = a.assemble(&buffer, info(20, 0, 0)).unwrap().unwrap();
        assert_eq!(frame.data().len(), 16);
        assert!(frame.data().iter().all(|&b| b == 1));
        assert_eq!(
            (frame.width(), frame.height(), frame.format()),
            (4, 2, PixelFormat::Yuyv)
        );
    }

    #[test]
    fn short_empty_and_overlong_buffers_are_errors_and_counted() {
        let mut a = yuyv(4, 2, 8);
        let buffer = vec![0; 64];
        assert!(matches!(
            a.assemble(&buffer, info(15, 0, 0)),
            Err(BufferError::Frame(FrameError::ShortBuffer {
                needed: 16,
                actual: 15,
                ..
            }))
        ));
        assert_eq!(
            a.assemble(&buffer, info(0, 1, 0)).unwrap_err(),
            BufferError::Empty
        );
        assert_eq!(
            a.assemble(&buffer, info(65, 2, 0)).unwrap_err(),
            BufferError::BytesUsedBeyondBuffer {
                bytesused: 65,
                len: 64
            }
        );
        assert_eq!(a.counts.bad, 3);
        assert_eq!(a.counts.frames, 0);
        // The next good buffer is frame 0: skipped buffers take no number.
        let f = a.assemble(&buffer, info(16, 3, 0)).unwrap().unwrap();
        assert_eq!(f.meta.seq, 0);
    }

    #[test]
    fn flagged_buffers_are_skipped_and_gaps_counted_as_drops() {
        let mut a = yuyv(4, 2, 8);
        let buffer = vec![0; 16];
        let mut flagged = info(16, 1, 0);
        flagged.error_flag = true;
        assert!(a.assemble(&buffer, info(16, 0, 0)).unwrap().is_some());
        assert!(a.assemble(&buffer, flagged).unwrap().is_none());
        // Sequence 2 follows 1: no drop. Then 2 -> 6 loses 3 frames.
        assert!(a.assemble(&buffer, info(16, 2, 0)).unwrap().is_some());
        assert!(a.assemble(&buffer, info(16, 6, 0)).unwrap().is_some());
        assert_eq!(
            a.counts,
            CaptureCounts {
                frames: 3,
                dropped: 3,
                errored: 1,
                bad: 0,
                reconnects: 0
            }
        );
    }

    #[test]
    fn sequence_wraps_and_restarts_without_phantom_drops() {
        let mut s = SequenceTracker::default();
        assert_eq!(s.observe(u32::MAX - 1), 0);
        assert_eq!(s.observe(u32::MAX), 0);
        assert_eq!(s.observe(0), 0);
        assert_eq!(s.observe(3), 2);
        // A driver that restarts from 0 is not 4 billion lost frames.
        assert_eq!(s.observe(0), 0);
        assert_eq!(s.observe(0), 0, "a repeated number is not a drop");
        s.reset();
        assert_eq!(s.observe(1000), 0);
    }

    #[test]
    fn time_starts_at_zero_and_continues_across_a_reconnect() {
        let mut a = yuyv(4, 2, 8);
        let buffer = vec![0; 16];
        let t = |a: &mut FrameAssembler, seq, us| {
            a.assemble(&buffer, info(16, seq, us))
                .unwrap()
                .unwrap()
                .meta
        };
        assert_eq!(t(&mut a, 7, 5_000_000).timestamp_us, 0);
        assert_eq!(t(&mut a, 8, 5_033_333).timestamp_us, 33_333);
        // A clock stepping back never makes time go backwards.
        assert_eq!(t(&mut a, 9, 5_000_000).timestamp_us, 33_333);
        a.restart(a.geometry(), 1_000_000).unwrap();
        let m = t(&mut a, 0, 12);
        assert_eq!((m.seq, m.timestamp_us), (3, 1_033_333));
        assert_eq!(a.counts.reconnects, 1);
        assert_eq!(
            a.counts.dropped, 0,
            "the new stream's numbering is not a gap"
        );
    }

    #[test]
    fn stride_padding_is_kept_and_bad_geometry_refused() {
        // 1-pixel padding per YUYV row: stride 10 for 4 pixels.
        let mut a = yuyv(4, 2, 10);
        let buffer = vec![0; 18];
        let f = a.assemble(&buffer, info(18, 0, 0)).unwrap().unwrap();
        assert_eq!(f.data().len(), 18);
        assert!(
            FrameAssembler::new(Geometry {
                format: CaptureFormat::Yuyv,
                width: 3,
                height: 2,
                stride: 6
            })
            .is_err()
        );
        assert!(
            FrameAssembler::new(Geometry {
                format: CaptureFormat::Nv12,
                width: 4,
                height: 3,
                stride: 4
            })
            .is_err()
        );
        assert!(
            FrameAssembler::new(Geometry {
                format: CaptureFormat::Grey,
                width: 0,
                height: 2,
                stride: 0
            })
            .is_err()
        );
        // A stride of 0 (some drivers) means packed rows.
        let mut g = FrameAssembler::new(Geometry {
            format: CaptureFormat::Grey,
            width: 4,
            height: 2,
            stride: 0,
        })
        .unwrap();
        assert_eq!(g.geometry().stride, 4);
        assert!(g.assemble(&[9; 8], info(8, 0, 0)).unwrap().is_some());
    }

    #[test]
    fn recycled_buffers_are_reused() {
        let mut a = yuyv(4, 2, 8);
        let buffer = vec![0; 16];
        let f = a.assemble(&buffer, info(16, 0, 0)).unwrap().unwrap();
        let ptr = f.data().as_ptr();
        a.recycle(f);
        let g = a.assemble(&buffer, info(16, 1, 0)).unwrap().unwrap();
        assert_eq!(g.data().as_ptr(), ptr);
    }

    #[test]
    fn mjpeg_frames_decode_to_gray_and_bad_ones_are_errors() {
        let mut img = vec![0u8; 64 * 32];
        for (i, v) in img.iter_mut().enumerate() {
            *v = (i % 64 * 4) as u8;
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode(&img, 64, 32, image::ExtendedColorType::L8)
            .unwrap();
        let mut a = FrameAssembler::new(Geometry {
            format: CaptureFormat::Mjpeg,
            width: 64,
            height: 32,
            stride: 0,
        })
        .unwrap();
        let mut buffer = jpeg.clone();
        buffer.resize(jpeg.len() + 1000, 0);
        let f = a
            .assemble(&buffer, info(jpeg.len(), 0, 0))
            .unwrap()
            .unwrap();
        assert_eq!(
            (f.format(), f.width(), f.height()),
            (PixelFormat::Gray8, 64, 32)
        );
        let worst = f
            .data()
            .iter()
            .zip(&img)
            .map(|(&a, &b)| a.abs_diff(b))
            .max()
            .unwrap();
        assert!(worst <= 8, "decoded within JPEG error, worst {worst}");
        assert!(matches!(
            a.assemble(&buffer, info(jpeg.len() / 2, 1, 0)),
            Err(BufferError::Mjpeg(MjpegError::Truncated))
        ));
        // A frame of another size than the stream was set up for.
        let mut other = FrameAssembler::new(Geometry {
            format: CaptureFormat::Mjpeg,
            width: 32,
            height: 32,
            stride: 0,
        })
        .unwrap();
        assert!(matches!(
            other.assemble(&buffer, info(jpeg.len(), 0, 0)),
            Err(BufferError::Mjpeg(MjpegError::WrongSize {
                width: 64,
                height: 32,
                ..
            }))
        ));
        assert_eq!(a.counts.bad, 1);
    }
}
