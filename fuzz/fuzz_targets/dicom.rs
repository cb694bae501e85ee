//! libFuzzer entry point; the body is `fuzz/bodies/dicom.rs`, which
//! `tests/integration/fuzz_regressions.rs` also runs on every committed crash input.
#![no_main]

#[path = "../bodies/dicom.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
