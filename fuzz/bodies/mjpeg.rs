//! MJPEG frames as a V4L2 device delivers them, on arbitrary bytes: the
//! marker walk, the Huffman table splice and the decode to gray, then the
//! same bytes through the frame assembler as a device buffer (seed corpus:
//! `fuzz/corpus/mjpeg/`).
//! Shared by `fuzz_targets/mjpeg.rs` and `tests/integration/fuzz_regressions.rs`.

use bedside::capture::mjpeg::MjpegDecoder;
use bedside::capture::v4l2::CaptureFormat;
use bedside::capture::v4l2::assemble::{BufferInfo, FrameAssembler, Geometry};

pub fn run(data: &[u8]) {
    let mut out = Vec::new();
    let decoded = MjpegDecoder::new().decode_gray(data, &mut out);
    if let Ok((w, h)) = decoded {
        assert_eq!(out.len(), w as usize * h as usize);
    }
    let geometry = Geometry {
        format: CaptureFormat::Mjpeg,
        width: 64,
        height: 48,
        stride: 0,
    };
    if let Ok(mut a) = FrameAssembler::new(geometry) {
        let used = data
            .first()
            .map_or(0, |&b| data.len() * usize::from(b) / 255);
        let info = BufferInfo {
            bytesused: used as u32,
            sequence: data.len() as u32,
            ..BufferInfo::default()
        };
        let _ = a.assemble(data, info);
    }
}
