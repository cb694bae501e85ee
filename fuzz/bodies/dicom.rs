//! DICOM parsing and frame decoding on arbitrary bytes (seed corpus: the
//! demo cine and radiograph, and the pydicom test files; see fuzz/README.md).
//! Any error is fine; a panic, hang or runaway allocation is a bug.
//! Shared by `fuzz_targets/dicom.rs` and `tests/integration/fuzz_regressions.rs`.

use bedside::capture::FrameSource;
use bedside::capture::dicom::DicomSource;

pub fn run(data: &[u8]) {
    if let Ok(mut src) = DicomSource::from_bytes(std::path::Path::new("fuzz.dcm"), data) {
        let _ = src.describe();
        // A few frames: enough to reach every decoder, bounded in time.
        for _ in 0..3 {
            match src.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}
