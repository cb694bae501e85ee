//! Manifest parsing and validation on arbitrary text (seed corpus:
//! `models/*/manifest.toml`).
//! Shared by `fuzz_targets/manifest.rs` and `tests/integration/fuzz_regressions.rs`.

use bedside::infer::Manifest;

pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(m) = Manifest::parse(std::path::Path::new("fuzz/manifest.toml"), text)
    {
        // Accessors a valid manifest promises not to panic in.
        let _ = (m.chain(), m.input_quant(), m.input_size());
    }
}
