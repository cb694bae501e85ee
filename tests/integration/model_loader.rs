//! The model loader on hostile bytes: truncations, bit flips and spliced
//! noise of the real bundles, each with a manifest hash that matches, so every
//! check behind the hash is exercised. Whatever the bytes, loading returns a
//! model or an error; it never panics or hangs. (`fuzz/` runs the same entry
//! point under libFuzzer, coverage-guided; this is the seeded part that runs
//! in every test tier, under QEMU too.)

use crate::common;
use crate::common::root;
use bedside::infer::{Bundle, Model, Precision, TractModel};
use proptest::prelude::*;

/// A bundle whose int8 model is `bytes` (manifest hash made to match).
fn bundle_with(name: &str, bytes: &[u8]) -> Bundle {
    let dir = root().join("models").join(name);
    let manifest = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
    let good = std::fs::read(dir.join("model.onnx")).unwrap();
    let manifest = manifest.replace(&common::sha256_hex(&good), &common::sha256_hex(bytes));
    Bundle::from_parts(name, &manifest, bytes).unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(Vec<(usize, u8)>),
    Splice(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0usize..1 << 20).prop_map(Mutation::Truncate),
        prop::collection::vec((0usize..1 << 20, 1u8..=255), 1..8).prop_map(Mutation::Flip),
        ((0usize..1 << 20), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, b)| Mutation::Splice(at, b)),
    ]
}

fn apply(good: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = good.to_vec();
    match m {
        Mutation::Truncate(at) => b.truncate(at % good.len()),
        Mutation::Flip(flips) => {
            for (at, x) in flips {
                let i = at % b.len();
                b[i] ^= x;
            }
        }
        Mutation::Splice(at, noise) => {
            let i = at % b.len();
            let end = (i + noise.len()).min(b.len());
            b[i..end].copy_from_slice(&noise[..end - i]);
        }
    }
    b
}

proptest! {
    // A fixed seed: every tier and every run tries the same 24 mutations
    // (the fuzz targets are where new ones are searched for).
    #![proptest_config(ProptestConfig {
        cases: 24,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_201),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_models_load_or_fail_cleanly(m in mutation(), echo in any::<bool>()) {
        let name = if echo { "echo-ae-demo" } else { "xray-demo" };
        let good = std::fs::read(root().join("models").join(name).join("model.onnx")).unwrap();
        let b = bundle_with(name, &apply(&good, &m));
        // A model that still loads (flipped weights) must also run cleanly.
        if let Ok(mut model) = TractModel::load_precision(&b, Precision::Int8) {
            let n: usize = b.manifest.input.shape.iter().product();
            let _ = model.run(&vec![0i8; n]);
        }
    }
}

#[test]
fn random_bytes_are_not_a_model() {
    for (seed, len) in [(1u64, 0usize), (2, 1), (3, 17), (4, 4096), (5, 100_000)] {
        let b = bundle_with("xray-demo", &common::noise(len, seed));
        let e = TractModel::load(&b).err().expect("random bytes refused");
        assert!(
            e.to_string().contains("not an ONNX model"),
            "{len} bytes: {e}"
        );
    }
}
