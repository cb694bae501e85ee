//! QDQ models on int8 kernels (`src/infer/qdq.rs`). The fixtures in
//! `tests/qdq/` are each demonstration bundle's float graph quantized twice
//! by onnxruntime from one calibration (`tests/qdq/make.py`): QOperator and
//! QDQ, the same scales. After the rewrite the QDQ graph must run the same
//! integer operators on the same kernels and give the same bytes; without it
//! tract runs float kernels and only comes close.

use crate::common::{self, root};
use bedside::infer::qdq::{self, Folded};
use bedside::infer::{Bundle, Model, Precision, TractModel};
use tract_onnx::pb;
use tract_onnx::prelude::*;

struct Case {
    bundle: &'static str,
    stem: &'static str,
    folded: Folded,
}

const CASES: [Case; 2] = [
    Case {
        bundle: "xray-demo",
        stem: "xray",
        folded: Folded {
            conv: 6,
            matmul: 1,
            activations: 0,
        },
    },
    Case {
        bundle: "echo-ae-demo",
        stem: "echo",
        folded: Folded {
            conv: 8,
            matmul: 0,
            activations: 0,
        },
    },
];

fn fixture(stem: &str, format: &str) -> Vec<u8> {
    std::fs::read(root().join(format!("tests/qdq/{stem}.{format}.onnx"))).unwrap()
}

/// The bundle's manifest with `bytes` as its int8 model (hash made to
/// match; the declared operator list left out, as the formats differ).
fn bundle_with(name: &str, bytes: &[u8]) -> Bundle {
    let dir = root().join("models").join(name);
    let manifest = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
    let good = std::fs::read(dir.join("model.onnx")).unwrap();
    // The fixtures are the bare networks: no declared op set, and no pixel
    // gate output (the bundle's [gate] table goes too).
    let mut in_gate = false;
    let manifest: String = manifest
        .replace(&common::sha256_hex(&good), &common::sha256_hex(bytes))
        .lines()
        .filter(|l| {
            if l.starts_with('[') {
                in_gate = *l == "[gate]";
            }
            !in_gate && !l.starts_with("ops = ")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    Bundle::from_parts(name, &manifest, bytes).unwrap()
}

/// Inputs that reach every corner of the int8 range: constant black and
/// white, a ramp, and seeded noise.
fn inputs(n: usize) -> Vec<Vec<i8>> {
    vec![
        vec![-128; n],
        vec![127; n],
        (0..n).map(|i| (i % 256) as u8 as i8).collect(),
        common::noise(n, 7).into_iter().map(|b| b as i8).collect(),
    ]
}

fn proto(bytes: &[u8]) -> pb::ModelProto {
    tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .unwrap()
}

fn op_types(p: &pb::ModelProto) -> Vec<String> {
    let mut ops: Vec<String> = p
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type.clone())
        .collect();
    ops.sort();
    ops
}

#[test]
fn the_rewrite_leaves_no_float_convolution_or_product() {
    for c in &CASES {
        let mut p = proto(&fixture(c.stem, "qdq"));
        let before = op_types(&p);
        assert!(before.iter().any(|o| o == "Conv"), "{}: {before:?}", c.stem);
        let folded = qdq::fold(&mut p);
        assert_eq!(folded, c.folded, "{}", c.stem);
        let after = op_types(&p);
        for float in ["Conv", "MatMul", "Gemm"] {
            assert!(!after.iter().any(|o| o == float), "{}: {after:?}", c.stem);
        }
        let count = |ops: &[String], op: &str| ops.iter().filter(|o| *o == op).count();
        let qop = op_types(&proto(&fixture(c.stem, "qop")));
        for op in ["QLinearConv", "QLinearMatMul"] {
            assert_eq!(count(&after, op), count(&qop, op), "{}: {op}", c.stem);
        }
        // Folding again finds nothing: the rewrite is complete.
        assert_eq!(qdq::fold(&mut p), Folded::default(), "{}", c.stem);
    }
}

#[test]
fn folded_qdq_gives_the_qoperator_bytes_on_the_same_kernels() {
    for c in &CASES {
        let qop = bundle_with(c.bundle, &fixture(c.stem, "qop"));
        let qdq = bundle_with(c.bundle, &fixture(c.stem, "qdq"));
        let mut a = TractModel::load_precision(&qop, Precision::Int8).unwrap();
        let mut b = TractModel::load_precision(&qdq, Precision::Int8).unwrap();
        assert_eq!(a.matmul_kernels(), b.matmul_kernels(), "{}", c.stem);
        let n: usize = qop.manifest.input.shape.iter().product();
        for (k, x) in inputs(n).iter().enumerate() {
            let ya: Vec<u32> = a.run(x).unwrap().iter().map(|v| v.to_bits()).collect();
            let yb: Vec<u32> = b.run(x).unwrap().iter().map(|v| v.to_bits()).collect();
            assert_eq!(ya, yb, "{} input {k}", c.stem);
        }
    }
}

/// The unrewritten QDQ graph as tract runs it (float kernels) on `x`.
fn run_unfolded(bytes: &[u8], shape: &[usize], x: &[i8]) -> Vec<f32> {
    let model = tract_onnx::onnx()
        .model_for_proto_model(&proto(bytes))
        .unwrap()
        .with_input_fact(0, InferenceFact::dt_shape(i8::datum_type(), shape))
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = tract_ndarray::ArrayD::from_shape_vec(shape, x.to_vec()).unwrap();
    let out = model.run(tvec!(Tensor::from(input).into())).unwrap();
    let out = out[0].cast_to::<f32>().unwrap();
    out.try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}

/// The rewrite changes where rounding happens (int32 accumulation and one
/// requantization instead of float arithmetic), not what is computed: the
/// float run of the same graph stays within a few output steps.
#[test]
fn folded_qdq_stays_close_to_the_float_run_of_the_same_graph() {
    for c in &CASES {
        let bytes = fixture(c.stem, "qdq");
        let bundle = bundle_with(c.bundle, &bytes);
        let shape = bundle.manifest.input.shape.clone();
        let mut folded = TractModel::load_precision(&bundle, Precision::Int8).unwrap();
        for (k, x) in inputs(shape.iter().product()).iter().enumerate() {
            let exact = run_unfolded(&bytes, &shape, x);
            let ours = folded.run(x).unwrap();
            assert_eq!(exact.len(), ours.len());
            let range = exact.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            let worst = exact
                .iter()
                .zip(ours)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!(
                "{} input {k}: largest difference {worst} of {range}",
                c.stem
            );
            assert!(
                worst <= 0.1 * range,
                "{} input {k}: {worst} of {range}",
                c.stem
            );
        }
    }
}

proptest::proptest! {
    // Hostile QDQ graphs reach the rewrite (the manifest's operator list is
    // left out, so nothing refuses them before it): byte flips of the
    // fixtures load or fail with a reason, never panic. A fixed seed, as in
    // `model_loader.rs`; the fuzz target `model_loader` searches further.
    #![proptest_config(proptest::test_runner::Config {
        cases: 8,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_207),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    #[test]
    fn mutated_qdq_models_load_or_fail_cleanly(
        flips in proptest::collection::vec((0usize..1 << 20, 1u8..=255), 1..6),
        echo in proptest::arbitrary::any::<bool>(),
    ) {
        let c = &CASES[usize::from(echo)];
        let mut bytes = fixture(c.stem, "qdq");
        for (at, x) in flips {
            let i = at % bytes.len();
            bytes[i] ^= x;
        }
        let b = bundle_with(c.bundle, &bytes);
        if let Ok(mut model) = TractModel::load_precision(&b, Precision::Int8) {
            let n: usize = b.manifest.input.shape.iter().product();
            let _ = model.run(&vec![0i8; n]);
        }
    }
}
