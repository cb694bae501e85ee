//! The model loader on arbitrary bytes: the fuzzer's bytes become the int8
//! model of the real xray-demo bundle, and the manifest's sha256 is made to
//! match, so everything behind the hash check is reached: protobuf decoding,
//! the graph's facts against the manifest, tract's parse and optimization,
//! one run. Seed corpus: `models/*/model.onnx`.
//! Shared by `fuzz_targets/model_loader.rs` and `tests/integration/fuzz_regressions.rs`.

use bedside::infer::{Bundle, Model, Precision, TractModel};
use sha2::{Digest, Sha256};

const MANIFEST: &str = include_str!("../../models/xray-demo/manifest.toml");
const GOOD: &[u8] = include_bytes!("../../models/xray-demo/model.onnx");

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn run(data: &[u8]) {
    let manifest = MANIFEST.replace(&hex(GOOD), &hex(data));
    let Ok(bundle) = Bundle::from_parts("xray-demo", &manifest, data) else {
        return;
    };
    if let Ok(mut model) = TractModel::load_precision(&bundle, Precision::Int8) {
        let n: usize = bundle.manifest.input.shape.iter().product();
        let _ = model.run(&vec![0i8; n]);
    }
}
