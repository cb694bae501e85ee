//! `bedside model import` (`src/infer/import.rs`, `normalize.rs`) on what
//! onnxruntime's `quantize_static` writes by default: a small network with
//! a stride-2 and a depthwise convolution, a residual add, pooling and a
//! dense head, in QOperator and QDQ, int8 and uint8 activations, per-tensor
//! and per-channel weights (`tests/import/make.py`). Each import must load
//! and agree with onnxruntime's outputs on the same int8 inputs, recorded
//! at generation time so the aarch64 tiers need no Python.

use std::path::{Path, PathBuf};

use crate::common::{assert_clean_failure, root, run};
use bedside::infer::import::{ImportError, ImportOptions, import};
use bedside::infer::normalize::NormalizeError;
use bedside::infer::{Bundle, Model, Precision, Task, TractModel};
use prost::Message;
use tract_onnx::pb;

fn fixtures() -> PathBuf {
    root().join("tests/import")
}

fn options(int8: PathBuf, out: PathBuf) -> ImportOptions {
    ImportOptions {
        int8,
        f32: Some(fixtures().join("tiny.f32.onnx")),
        task: Task::Classify,
        labels: ["a", "b", "c", "d"].map(String::from).to_vec(),
        chain: None,
        name: "tiny".into(),
        version: "1.0.0".into(),
        description: String::new(),
        demonstration: true,
        trained_on: "random weights (tests/import/make.py)".into(),
        licence: "MIT OR Apache-2.0".into(),
        pixel_scale: 1.0 / 255.0,
        min_confidence: None,
        anomaly_error: None,
        out,
        gray_from_rgb: false,
        reference: None,
    }
}

fn int8s(v: &serde_json::Value) -> Vec<i8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() as i8)
        .collect()
}

fn references() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("references.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The float model runs the same float arithmetic in another order.
const F32_TOLERANCE: f32 = 1e-4;
/// How far onnxruntime's own x86 result may be from the exact integer
/// arithmetic where its kernels saturate (below): 0.25, 20 output quanta.
const ORT_SATURATION: f32 = 0.25;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// Imports every export, checks what the import reports, and returns
/// tract's int8 outputs per export and case (the f32 variant is checked
/// here against onnxruntime's float outputs).
fn import_all(
    dir: &Path,
    refs: &serde_json::Value,
) -> std::collections::BTreeMap<String, Vec<Vec<f32>>> {
    let mut outputs = std::collections::BTreeMap::new();
    for (file, expected) in refs["variants"].as_object().unwrap() {
        let out = dir.join(file);
        let done = import(&options(fixtures().join(file), out.clone()))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let n = &done.normalized;
        assert!(n.input_quantize_removed, "{file}");
        assert_eq!(
            n.input_zero_point,
            expected["input_zero_point"].as_i64().unwrap() as i32,
            "{file}"
        );
        assert!(
            (n.input_scale - expected["input_scale"].as_f64().unwrap() as f32).abs() < 1e-9,
            "{file}"
        );
        assert_eq!(n.shifted_to_int8 > 0, file.contains("-u8-"), "{file}");
        if file.starts_with("tiny.qop") {
            let expanded: Vec<&str> = n.expanded.keys().map(String::as_str).collect();
            assert_eq!(
                expanded,
                ["QGemm", "QLinearAdd", "QLinearGlobalAveragePool"],
                "{file}"
            );
        } else {
            assert!(n.expanded.is_empty(), "{file}");
        }
        assert_eq!(done.ran, ["int8", "f32"], "{file}");
        let bundle = Bundle::load(&out).unwrap();
        assert!(
            bundle.manifest.provenance.made_by.contains(file.as_str()),
            "{file}: provenance names the source"
        );
        let mut int8 = TractModel::load_precision(&bundle, Precision::Int8).unwrap();
        let mut f32 = TractModel::load_precision(&bundle, Precision::F32).unwrap();
        let mut got = Vec::new();
        for (k, case) in expected["cases"].as_array().unwrap().iter().enumerate() {
            let input = int8s(&case["input"]);
            let diff = max_diff(f32.run(&input).unwrap(), &floats(&case["f32_output"]));
            assert!(diff <= F32_TOLERANCE, "{file} case {k}: f32 off by {diff}");
            got.push(int8.run(&input).unwrap().to_vec());
        }
        outputs.insert(file.clone(), got);
    }
    outputs
}

/// What onnxruntime computed for `file`, case by case.
fn ort(refs: &serde_json::Value, file: &str) -> Vec<Vec<f32>> {
    refs["variants"][file]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| floats(&c["output"]))
        .collect()
}

/// Every export imports, and tract's int8 outputs are the exact integer
/// arithmetic of the quantized graph:
///
/// - where onnxruntime computes that exactly on this x86 machine (int8
///   activations in QOperator form, and QDQ per-tensor), tract's outputs
///   are onnxruntime's to the last bit;
/// - a uint8 export is the int8 export shifted by 128 (onnxruntime's
///   calibration gives the same scales, and zero points 128 apart), so
///   after the import's shift tract gives the int8 export's exact outputs;
/// - onnxruntime itself runs uint8 activations, and QDQ int8 per-channel
///   (which it converts to uint8 on x86), on its U8S8 kernels, whose AVX2
///   `vpmaddubsw` saturates pairs of products at 16 bits on a CPU without
///   VNNI (this one): its outputs there are up to 0.23 off the exact ones,
///   within ORT_SATURATION, and the same saturated numbers for the
///   QOperator and QDQ forms.
#[test]
fn every_default_export_imports_and_agrees_with_onnxruntime() {
    let refs = references();
    assert_eq!(
        refs["variants"].as_object().unwrap().len(),
        8,
        "qop/qdq x s8/u8 x per-tensor/per-channel"
    );
    let dir = tempfile::tempdir().unwrap();
    let tract = import_all(dir.path(), &refs);
    for exact in [
        "tiny.qop-s8-pt.onnx",
        "tiny.qop-s8-pc.onnx",
        "tiny.qdq-s8-pt.onnx",
    ] {
        for (k, (a, b)) in tract[exact].iter().zip(ort(&refs, exact)).enumerate() {
            assert_eq!(a, &b, "{exact} case {k}: tract against onnxruntime");
        }
    }
    for (file, twin) in [
        ("tiny.qop-u8-pt.onnx", "tiny.qop-s8-pt.onnx"),
        ("tiny.qop-u8-pc.onnx", "tiny.qop-s8-pc.onnx"),
        ("tiny.qdq-u8-pt.onnx", "tiny.qdq-s8-pt.onnx"),
        ("tiny.qdq-u8-pc.onnx", "tiny.qdq-s8-pc.onnx"),
        ("tiny.qdq-s8-pc.onnx", "tiny.qop-s8-pc.onnx"),
    ] {
        assert_eq!(tract[file], tract[twin], "{file} runs as {twin}");
        for (k, (a, b)) in tract[file].iter().zip(ort(&refs, file)).enumerate() {
            let diff = max_diff(a, &b);
            assert!(
                diff <= ORT_SATURATION,
                "{file} case {k}: {diff} from onnxruntime's saturating result: {a:?} vs {b:?}"
            );
        }
    }
}

#[test]
fn the_projects_own_int8_graphs_import_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("xray");
    let mut o = options(root().join("tests/qdq/xray.qop.onnx"), out.clone());
    o.f32 = Some(root().join("models/xray-demo/model_f32.onnx"));
    let done = import(&o).unwrap();
    assert!(!done.normalized.input_quantize_removed);
    let demo = Bundle::load(&root().join("models/xray-demo")).unwrap();
    assert_eq!(done.manifest.input.shape, demo.manifest.input.shape);
    assert_eq!(
        done.manifest.input.zero_point,
        demo.manifest.input.zero_point
    );
    assert_eq!(done.manifest.input.preprocess, "resize=128x128,quantize");
}

/// The tiny float graph, decoded, for tests that break it on purpose.
fn tiny(which: &str) -> pb::ModelProto {
    let bytes = std::fs::read(fixtures().join(which)).unwrap();
    pb::ModelProto::decode(bytes.as_slice()).unwrap()
}

fn write(dir: &Path, name: &str, m: &pb::ModelProto) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    p
}

fn set_input_dims(m: &mut pb::ModelProto, dims: &[Option<i64>]) {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let g = m.graph.as_mut().unwrap();
    let Some(pb::type_proto::Value::TensorType(t)) =
        g.input[0].r#type.as_mut().and_then(|t| t.value.as_mut())
    else {
        panic!("tensor input")
    };
    t.shape.as_mut().unwrap().dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => Value::DimValue(*v),
                None => Value::DimParam("batch".into()),
            }),
            ..Default::default()
        })
        .collect();
}

fn set_output_type(m: &mut pb::ModelProto, elem_type: i32) {
    let g = m.graph.as_mut().unwrap();
    if let Some(pb::type_proto::Value::TensorType(t)) =
        g.output[0].r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.elem_type = elem_type;
    }
}

fn refused(int8: PathBuf, dir: &Path) -> ImportError {
    import(&options(int8, dir.join("out"))).expect_err("refused")
}

#[test]
fn what_cannot_be_imported_is_refused_with_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A float model given as the int8 one.
    let e = refused(fixtures().join("tiny.f32.onnx"), d);
    assert!(
        matches!(
            e,
            ImportError::Normalize {
                source: NormalizeError::NotQuantized { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("quantize_static"), "{e}");

    // A dynamic batch.
    let mut m = tiny("tiny.qop-s8-pt.onnx");
    set_input_dims(&mut m, &[None, Some(1), Some(32), Some(32)]);
    let e = refused(write(d, "dynamic.onnx", &m), d);
    assert!(
        e.to_string().contains("[?, 1, 32, 32]") && e.to_string().contains("fixed"),
        "{e}"
    );

    // Three channels without --gray-from-rgb.
    let mut m = tiny("tiny.qop-s8-pt.onnx");
    set_input_dims(&mut m, &[Some(1), Some(3), Some(32), Some(32)]);
    let e = refused(write(d, "rgb.onnx", &m), d);
    assert!(e.to_string().contains("3 channels"), "{e}");

    // Two inputs.
    let mut m = tiny("tiny.qop-s8-pt.onnx");
    let g = m.graph.as_mut().unwrap();
    let mut second = g.input[0].clone();
    second.name = "second".into();
    g.input.push(second);
    let e = refused(write(d, "two.onnx", &m), d);
    assert!(e.to_string().contains("2 inputs"), "{e}");

    // An onnxruntime extension bedside does not expand.
    let mut m = tiny("tiny.qop-s8-pt.onnx");
    let g = m.graph.as_mut().unwrap();
    let at = g
        .node
        .iter()
        .position(|n| n.op_type == "QLinearAdd")
        .unwrap();
    g.node[at].op_type = "QLinearWhere".into();
    let e = refused(write(d, "where.onnx", &m), d);
    assert!(
        e.to_string().contains("com.microsoft:QLinearWhere")
            && e.to_string().contains("op_types_to_quantize"),
        "{e}"
    );

    // Labels that do not match the outputs.
    let mut o = options(fixtures().join("tiny.qop-s8-pt.onnx"), d.join("labels"));
    o.labels.pop();
    let e = import(&o).expect_err("three labels for four outputs");
    assert!(e.to_string().contains("give --labels with 4 names"), "{e}");

    // An output that is not float.
    let mut m = tiny("tiny.qop-s8-pt.onnx");
    set_output_type(&mut m, 2);
    let e = refused(write(d, "u8out.onnx", &m), d);
    assert!(
        e.to_string().contains("output 'logits' is u8")
            && e.to_string().contains("DequantizeLinear"),
        "{e}"
    );

    // The float input also read by a float operator.
    let mut m = tiny("tiny.qop-s8-pt.onnx");
    let g = m.graph.as_mut().unwrap();
    let mut extra = g.node[0].clone();
    extra.op_type = "Relu".into();
    extra.domain = String::new();
    extra.input = vec!["image".into()];
    extra.output = vec!["side".into()];
    extra.attribute.clear();
    extra.name = "side".into();
    g.node.push(extra);
    let e = refused(write(d, "float-reader.onnx", &m), d);
    assert!(
        e.to_string()
            .contains("read by 1 operators besides its QuantizeLinear"),
        "{e}"
    );

    // A standard-looking operator tract does not know.
    let mut m = tiny("tiny.qop-s8-pt.onnx");
    let g = m.graph.as_mut().unwrap();
    let at = g.node.iter().position(|n| n.op_type == "MaxPool").unwrap();
    g.node[at].op_type = "MaxPoolish".into();
    let e = refused(write(d, "unknown.onnx", &m), d);
    assert!(
        e.to_string().contains("tract cannot run: MaxPoolish"),
        "{e}"
    );

    // A float model that does not match the int8 one.
    let mut o = options(fixtures().join("tiny.qop-s8-pt.onnx"), d.join("mismatch"));
    o.f32 = Some(fixtures().join("tiny_rgb.f32.onnx"));
    let e = import(&o).expect_err("3-channel float beside a gray int8 model");
    assert!(
        e.to_string().contains("tiny_rgb.f32.onnx") && e.to_string().contains("[1, 3, 32, 32]"),
        "{e}"
    );

    // A reconstruction task on a classifier, and without its threshold.
    let mut o = options(fixtures().join("tiny.qop-s8-pt.onnx"), d.join("recon"));
    o.task = Task::Reconstruct;
    let e = import(&o).expect_err("4 outputs are no 32x32 reconstruction");
    assert!(e.to_string().contains("one value per input pixel"), "{e}");

    // Reference pictures: an empty folder.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut o = options(fixtures().join("tiny.qop-s8-pt.onnx"), d.join("refs"));
    o.reference = Some(empty);
    let e = import(&o).expect_err("no pictures");
    assert!(e.to_string().contains("holds no pictures"), "{e}");
    assert!(
        !d.join("refs").exists(),
        "a failed import leaves nothing behind"
    );

    // A folder that is not empty is left alone.
    let busy = d.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), b"mine").unwrap();
    let e = import(&options(
        fixtures().join("tiny.qop-s8-pt.onnx"),
        busy.clone(),
    ))
    .expect_err("not empty");
    assert!(e.to_string().contains("not empty"), "{e}");
    assert_eq!(std::fs::read(busy.join("keep.txt")).unwrap(), b"mine");
}

#[test]
fn the_command_line_imports_and_refuses_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let int8 = fixtures().join("tiny.qop-u8-pc.onnx");
    let f32 = fixtures().join("tiny.f32.onnx");
    let (code, stdout, stderr) = run(&[
        "model",
        "import",
        int8.to_str().unwrap(),
        "--f32",
        f32.to_str().unwrap(),
        "--task",
        "classify",
        "--labels",
        "a,b,c,d",
        "--name",
        "tiny",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("tract loads and runs int8 and f32"),
        "{stdout}"
    );
    assert!(stdout.contains("com.microsoft:QLinearAdd x"), "{stdout}");
    assert!(stdout.contains("uint8 made int8"), "{stdout}");
    let (code, stdout, _) = run(&["model", "verify", out.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("OK"), "{stdout}");

    assert_clean_failure(
        &[
            "model",
            "import",
            f32.to_str().unwrap(),
            "--task",
            "classify",
            "--name",
            "x",
            "--out",
            dir.path().join("x").to_str().unwrap(),
        ],
        &["tiny.f32.onnx", "quantize_static"],
    );
}

/// `--gray-from-rgb` on a colour network (3 input channels): the float
/// model folded is the colour model on gray pictures to float rounding;
/// the int8 one is onnxruntime's int8 colour model on gray pictures up to
/// the requantization of the summed first-layer weights.
#[test]
fn a_colour_network_takes_gray_after_folding() {
    let refs = references();
    let dir = tempfile::tempdir().unwrap();
    for (file, expected) in refs["rgb_variants"].as_object().unwrap() {
        let out = dir.path().join(file);
        let mut o = options(fixtures().join(file), out.clone());
        o.f32 = Some(fixtures().join("tiny_rgb.f32.onnx"));
        o.gray_from_rgb = true;
        let done = import(&o).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (folded, check) = done.rgb.clone().expect("folded");
        eprintln!("{file}: {folded:?}, float check {check:?}");
        assert!(check.is_some_and(|d| d <= 1e-4), "{file}: {check:?}");
        assert_eq!(done.manifest.input.shape, [1, 1, 32, 32]);
        let bundle = Bundle::load(&out).unwrap();
        let mut int8 = TractModel::load_precision(&bundle, Precision::Int8).unwrap();
        let mut f32 = TractModel::load_precision(&bundle, Precision::F32).unwrap();
        for (k, case) in expected["cases"].as_array().unwrap().iter().enumerate() {
            let input = int8s(&case["input"]);
            let d32 = max_diff(f32.run(&input).unwrap(), &floats(&case["f32_output"]));
            let d8 = max_diff(int8.run(&input).unwrap(), &floats(&case["output"]));
            eprintln!("{file} case {k}: f32 {d32}, int8 {d8}");
            assert!(d32 <= F32_TOLERANCE, "{file} case {k}: f32 off by {d32}");
            assert!(d8 <= RGB_TOLERANCE, "{file} case {k}: int8 off by {d8}");
        }
    }
    // A gray network is refused with --gray-from-rgb's own reason.
    let mut o = options(
        fixtures().join("tiny.qop-s8-pt.onnx"),
        dir.path().join("gray"),
    );
    o.gray_from_rgb = true;
    let done = import(&o).unwrap();
    assert!(done.rgb.is_none(), "a gray network is left as it is");
}

/// The int8 folded model against onnxruntime's int8 colour model: the
/// summed weights are requantized once more where they leave int8 (4 and 7
/// of 8 output channels here), which moved outputs by at most 0.0127, two
/// quanta of the output (2026-12-07); five are allowed.
const RGB_TOLERANCE: f32 = 0.032;

/// `--reference DIR` writes the bundle's own model inputs for each picture;
/// `model info` says the bundle is not verified until outputs are there;
/// `model verify` then compares tract with them and fails when they
/// disagree beyond the tolerance.
#[test]
fn reference_outputs_travel_with_the_bundle_and_are_checked() {
    use bedside::infer::reference::{self, Verdict};
    let dir = tempfile::tempdir().unwrap();
    let pictures = dir.path().join("pictures");
    std::fs::create_dir_all(&pictures).unwrap();
    for name in ["chest_cr.dcm", "echo_cine.dcm"] {
        std::fs::copy(root().join("assets/demo").join(name), pictures.join(name)).unwrap();
    }
    let out = dir.path().join("bundle");
    let mut o = options(fixtures().join("tiny.qop-s8-pt.onnx"), out.clone());
    o.reference = Some(pictures.clone());
    let done = import(&o).unwrap();
    assert_eq!(done.reference_inputs, 2);
    let bundle = Bundle::load(&out).unwrap();
    let golden = out.join(reference::REFERENCE_FILE);
    let mut refs = reference::read(&golden).unwrap();
    assert_eq!(refs.cases.len(), 2);
    // The inputs are what the pipeline feeds: the bundle's chain, quantized.
    let mut pre = bedside::preprocess::Preprocessor::new(
        bundle.manifest.chain(),
        Some(bundle.manifest.input_quant()),
    )
    .unwrap();
    let frame = {
        use bedside::capture::FrameSource;
        let mut src =
            bedside::capture::dicom::DicomSource::open(&pictures.join("chest_cr.dcm")).unwrap();
        src.next_frame().unwrap().unwrap()
    };
    pre.process(&frame).unwrap();
    assert_eq!(refs.cases[0].input, pre.model_input());
    assert_eq!(
        reference::check(&bundle).unwrap(),
        Verdict::NoOutputs { cases: 2 }
    );
    let (code, stdout, _) = run(&["model", "info", out.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("NOT verified: golden.json has 2 inputs but no outputs"),
        "{stdout}"
    );

    // Outputs as another runtime would give them (tract's own here, with
    // one value moved by 0.001): agreement within the default tolerance.
    let mut model = TractModel::load_precision(&bundle, Precision::Int8).unwrap();
    for case in &mut refs.cases {
        case.output = model.run(&case.input).unwrap().to_vec();
    }
    refs.cases[1].output[0] += 0.001;
    refs.runtime = "test".into();
    std::fs::write(&golden, serde_json::to_string(&refs).unwrap()).unwrap();
    let verdict = reference::check(&bundle).unwrap();
    assert!(verdict.agrees(), "{}", verdict.describe());
    let (code, stdout, stderr) = run(&["model", "verify", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("int8 agrees on 2 reference cases"),
        "{stdout}"
    );
    let (_, stdout, _) = run(&["model", "info", out.to_str().unwrap()]);
    assert!(stdout.contains("  verified: int8 agrees"), "{stdout}");

    // One output far off: verify fails in one line, info says so.
    refs.cases[1].output[0] += 5.0;
    std::fs::write(&golden, serde_json::to_string(&refs).unwrap()).unwrap();
    assert!(!reference::check(&bundle).unwrap().agrees());
    assert_clean_failure(
        &["model", "verify", out.to_str().unwrap()],
        &["bundle", "int8 DISAGREES on 2 reference cases"],
    );
    let (code, stdout, _) = run(&["model", "info", out.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("NOT verified: int8 DISAGREES"), "{stdout}");

    // A reference file that is not one: one line naming it.
    std::fs::write(&golden, b"{\"cases\": 3}").unwrap();
    assert_clean_failure(
        &["model", "verify", out.to_str().unwrap()],
        &["golden.json", "not a reference file"],
    );
}
