//! Frames built from raw buffers of any size, stride and format, as capture
//! builds them: `Frame::new_checked` (the one constructor), every row of an
//! accepted frame, its conversion to gray (what the screen shows), and the
//! V4L2 frame assembler with a driver-reported geometry of any size and
//! stride fed the same bytes as a dequeued buffer.
//!
//! Input: 12 header bytes (format, width, height, stride, how the stride is
//! read, bytesused, tone), then the buffer. Shared by `fuzz_targets/frame.rs`
//! and the regression tests (`tests/integration/fuzz_regressions.rs`).

use bedside::capture::v4l2::CaptureFormat;
use bedside::capture::v4l2::assemble::{BufferInfo, FrameAssembler, Geometry};
use bedside::frame::{Frame, FrameMeta, PixelFormat, Tone, VoiWindow};
use bedside::preprocess::ToGray;

const FORMATS: [PixelFormat; 8] = [
    PixelFormat::Gray8,
    PixelFormat::Gray16,
    PixelFormat::Yuyv,
    PixelFormat::Uyvy,
    PixelFormat::Nv12,
    PixelFormat::Rgb24,
    PixelFormat::Bgr24,
    PixelFormat::Xrgb8888,
];

pub fn run(data: &[u8]) {
    if data.len() < 12 {
        return;
    }
    let (head, buffer) = data.split_at(12);
    let format = FORMATS[usize::from(head[0]) % FORMATS.len()];
    // Up to 65535 on a side: past MAX_SIDE too.
    let width = u32::from(u16::from_le_bytes([head[1], head[2]]));
    let height = u32::from(u16::from_le_bytes([head[3], head[4]]));
    let raw = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
    let row = width as usize * format.bytes_per_pixel();
    // Mostly a row plus a little padding; also any u32 and near usize::MAX.
    let stride = match head[9] % 4 {
        0 => row + (raw as usize % 64),
        1 => raw as usize,
        2 => usize::MAX - raw as usize,
        _ => row,
    };
    let tone = Tone {
        window: (head[11] & 1 == 1).then(|| VoiWindow {
            center: f64::from(head[10]) * 256.0,
            width: f64::from(head[11] >> 1) * 512.0,
        }),
        invert: head[11] & 2 == 2,
    };
    let meta = FrameMeta::default();
    if let Ok(frame) = Frame::new_checked(buffer.to_vec(), format, width, height, stride, meta) {
        let frame = frame.with_tone(tone);
        for y in 0..frame.height() {
            assert_eq!(frame.row(y).len(), row);
        }
        let mut gray = ToGray::default();
        let image = gray.run(&frame);
        assert_eq!(image.data.len(), width as usize * height as usize);
    }

    // The same bytes as a V4L2 buffer, with the geometry a driver reported.
    let capture = CaptureFormat::ALL[usize::from(head[0]) % CaptureFormat::ALL.len()];
    let geometry = Geometry {
        format: capture,
        width,
        height,
        stride: raw as usize,
    };
    if let Ok(mut assembler) = FrameAssembler::new(geometry) {
        let used = u32::from(u16::from_le_bytes([head[9], head[10]]));
        for sequence in 0..2 {
            let info = BufferInfo {
                bytesused: used,
                sequence,
                error_flag: head[11] & 4 == 4,
                timestamp_us: u64::from(sequence) * 33_333,
            };
            if let Ok(Some(frame)) = assembler.assemble(buffer, info) {
                for y in 0..frame.height() {
                    let _ = frame.row(y);
                }
                ToGray::default().run(&frame);
                assembler.recycle(frame);
            }
        }
    }
}
