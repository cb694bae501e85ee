//! Manifest parsing and validation on arbitrary text (seed corpus:
//! `models/*/manifest.toml`).
#![no_main]

use bedside::infer::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = Manifest::parse(std::path::Path::new("fuzz/manifest.toml"), text) {
            // Accessors a valid manifest promises not to panic in.
            let _ = (m.chain(), m.input_quant(), m.input_size());
        }
    }
});
