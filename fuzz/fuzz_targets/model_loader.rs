//! libFuzzer entry point; the body is `fuzz/bodies/model_loader.rs`, which
//! `tests/integration/fuzz_regressions.rs` also runs on every committed crash input.
#![no_main]

#[path = "../bodies/model_loader.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
