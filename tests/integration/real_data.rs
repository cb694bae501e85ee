//! Real data through the library: the bundled DICOM derivatives, and tract's
//! outputs against onnxruntime's golden outputs for each bundle.

use crate::common::root;
use bedside::capture::FrameSource;
use bedside::capture::dicom::DicomSource;
use bedside::frame::PixelFormat;
use bedside::infer::{Bundle, Model, TractModel};

#[test]
fn echo_cine_decodes_every_frame_with_its_timing() {
    let mut src = DicomSource::open(&root().join("assets/demo/echo_cine.dcm")).unwrap();
    assert_eq!(src.frame_count(), 30);
    assert_eq!(src.interval_us(), 33_333);
    let mut n = 0;
    while let Some(f) = src.next_frame().unwrap() {
        assert_eq!(
            (f.format(), f.width(), f.height()),
            (PixelFormat::Rgb24, 320, 240)
        );
        assert_eq!(f.meta.seq, n);
        assert_eq!(f.meta.timestamp_us, n * 33_333);
        n += 1;
    }
    assert_eq!(n, 30);
}

#[test]
fn chest_radiograph_is_16_bit_monochrome1_with_its_window() {
    let mut src = DicomSource::open(&root().join("assets/demo/chest_cr.dcm")).unwrap();
    let f = src.next_frame().unwrap().unwrap();
    assert_eq!(
        (f.format(), f.width(), f.height()),
        (PixelFormat::Gray16, 460, 488)
    );
    assert!(f.tone.invert, "MONOCHROME1");
    let w = f.tone.window.unwrap();
    assert_eq!((w.center, w.width), (15000.0, 30000.0));
    assert!(src.next_frame().unwrap().is_none());
}

#[derive(serde::Deserialize)]
struct Golden {
    runtime: String,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    input: Vec<i8>,
    output: Vec<f32>,
    /// A DICOM file of the repository the input was prepared from in Python.
    source: Option<Source>,
}

#[derive(serde::Deserialize)]
struct Source {
    file: String,
    frame: u32,
}

/// tract and onnxruntime agree on the int8 models up to float rounding of the
/// final dequantize + bias add. Stated tolerance: 1e-5 absolute.
const GOLDEN_TOLERANCE: f32 = 1e-5;

fn check_golden(bundle: &str) {
    let dir = root().join("models").join(bundle);
    let b = Bundle::load(&dir).unwrap();
    let mut m = TractModel::load(&b).unwrap();
    let golden: Golden =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    assert!(!golden.cases.is_empty());
    for case in &golden.cases {
        let out = m.run(&case.input).unwrap();
        assert_eq!(out.len(), case.output.len(), "{bundle}/{}", case.name);
        let worst = out
            .iter()
            .zip(&case.output)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= GOLDEN_TOLERANCE,
            "{bundle}/{}: max |tract - {}| = {worst}",
            case.name,
            golden.runtime
        );
    }
}

#[test]
fn xray_bundle_matches_onnxruntime() {
    check_golden("xray-demo");
}

#[test]
fn echo_bundle_matches_onnxruntime() {
    check_golden("echo-ae-demo");
}

/// Train/serve skew: the runtime's chain (from the manifest) on the source of
/// each golden case that has one must reproduce the input the training script
/// prepared in Python (pydicom's decoder, OpenCV's resize and CLAHE, the
/// Python port of crop=auto). Stated tolerance: at least 97% of the int8
/// inputs identical and none more than 3 steps apart (JPEG decoders and
/// OpenCV's float CLAHE differ from the runtime by a level here and there).
fn check_chain_reproduces_training_input(bundle: &str) {
    use bedside::capture::FrameSource;
    use bedside::preprocess::Preprocessor;
    let dir = root().join("models").join(bundle);
    let b = Bundle::load(&dir).unwrap();
    let golden: Golden =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    let mut checked = 0;
    for case in &golden.cases {
        let Some(src) = &case.source else { continue };
        let mut dicom = DicomSource::open(&root().join(&src.file)).unwrap();
        let mut frame = dicom.next_frame().unwrap().unwrap();
        for _ in 0..src.frame {
            frame = dicom.next_frame().unwrap().unwrap();
        }
        let mut pre =
            Preprocessor::new(b.manifest.chain(), Some(b.manifest.input_quant())).unwrap();
        pre.process(&frame).unwrap();
        let ours = pre.model_input();
        assert_eq!(ours.len(), case.input.len(), "{bundle}/{}", case.name);
        let same = ours.iter().zip(&case.input).filter(|(a, b)| a == b).count();
        let worst = ours
            .iter()
            .zip(&case.input)
            .map(|(&a, &b)| (i16::from(a) - i16::from(b)).abs())
            .max()
            .unwrap_or(0);
        let share = same as f64 / ours.len() as f64;
        eprintln!(
            "{bundle}/{}: {:.2}% identical, max {worst} steps",
            case.name,
            share * 100.0
        );
        assert!(
            share >= 0.97 && worst <= 3,
            "{bundle}/{}: runtime chain vs training input: {:.2}% identical, max {worst} steps",
            case.name,
            share * 100.0
        );
        checked += 1;
    }
    assert!(checked > 0, "{bundle}: no golden case names its source");
}

#[test]
fn xray_chain_reproduces_training_input() {
    check_chain_reproduces_training_input("xray-demo");
}

#[test]
fn echo_chain_reproduces_training_input() {
    check_chain_reproduces_training_input("echo-ae-demo");
}

/// The f32 variant of each bundle runs on the same int8 input (dequantized)
/// and agrees with the int8 model: the same top class for the classifier on
/// every golden case; reconstructions of echo frames within 1% of full scale
/// on average (5% for other content).
#[test]
fn f32_variant_agrees_with_int8() {
    use bedside::infer::Precision;
    for bundle in ["xray-demo", "echo-ae-demo"] {
        let dir = root().join("models").join(bundle);
        let b = Bundle::load(&dir).unwrap();
        let mut q = TractModel::load(&b).unwrap();
        let mut f = TractModel::load_precision(&b, Precision::F32).unwrap();
        let golden: Golden =
            serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap())
                .unwrap();
        for case in &golden.cases {
            let a = q.run(&case.input).unwrap().to_vec();
            let b = f.run(&case.input).unwrap();
            if bundle == "xray-demo" {
                let top = |v: &[f32]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap();
                assert_eq!(top(&a), top(b), "{bundle}/{}: {a:?} vs {b:?}", case.name);
            } else {
                // Echo frames lie inside the calibration range; other
                // content (the radiograph) drives activations past it, where
                // int8 clips: a looser bound there.
                let bound = if case.name.contains("echo") {
                    0.01
                } else {
                    0.05
                };
                let mean =
                    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
                eprintln!("{bundle}/{}: mean |int8 - f32| = {mean}", case.name);
                assert!(
                    mean < bound,
                    "{bundle}/{}: mean |int8 - f32| = {mean}, bound {bound}",
                    case.name
                );
            }
        }
    }
}

#[test]
fn embedded_bundle_has_no_f32_variant() {
    use bedside::infer::Precision;
    let dir = root().join("models/xray-demo");
    let manifest = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
    let model = std::fs::read(dir.join("model.onnx")).unwrap();
    let b = Bundle::from_parts("xray-demo", &manifest, &model).unwrap();
    let e = TractModel::load_precision(&b, Precision::F32)
        .err()
        .unwrap();
    assert!(e.to_string().contains("no f32 model"), "{e}");
}

#[test]
fn golden_tolerance_is_tight_enough_to_fail() {
    // A small change of the int8 input must move the output past the tolerance,
    // or the golden test could not catch a wrong kernel.
    let dir = root().join("models/xray-demo");
    let b = Bundle::load(&dir).unwrap();
    let mut m = TractModel::load(&b).unwrap();
    let golden: Golden =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    let mut input = golden.cases[0].input.clone();
    // Eight steps brighter everywhere: a change that any working kernel
    // carries to the logits (a patch in a corner may vanish in int8).
    for v in input.iter_mut() {
        *v = v.saturating_add(8);
    }
    let out = m.run(&input).unwrap();
    let worst = out
        .iter()
        .zip(&golden.cases[0].output)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst > GOLDEN_TOLERANCE, "{worst}");
}

#[test]
fn auto_crop_keeps_the_echo_sector_and_drops_burned_in_text() {
    use bedside::preprocess::{Preprocessor, crop::detect_active_area};
    let mut src = DicomSource::open(&root().join("assets/demo/echo_cine.dcm")).unwrap();
    let mut pre = Preprocessor::new("crop=auto".parse().unwrap(), None).unwrap();
    let frame = src.next_frame().unwrap().unwrap();
    pre.process(&frame).unwrap();
    let r = detect_active_area(pre.display());
    // In this 320x240 frame: mode text at x < 45, labels at x > 290, a UI bar at y > 220.
    assert!(
        r.x > 45 && r.x + r.width < 290 && r.y + r.height < 220,
        "{r:?}"
    );
    // The sector itself: the middle of the heart and most of the fan.
    assert!(
        r.x < 160 && r.x + r.width > 160 && r.y < 120 && r.y + r.height > 120,
        "{r:?}"
    );
    assert!(r.width >= 120 && r.height >= 150, "{r:?}");
    assert_eq!(
        (pre.processed().width, pre.processed().height),
        (r.width, r.height)
    );
}

/// The int8 kernels tract picks for our bundles follow the CPU: on aarch64,
/// SDOT (`..._i32_8x8_dot`) where FEAT_DotProd exists (Cortex-A76, Pi 5) and
/// the SMLAL 8x8 kernel otherwise (Cortex-A72, Pi 4) for the convolutions,
/// with no other int8 kernel but the 64x1 matrix-vector one; the test command runs
/// this under QEMU as both, and checks the emulated CPU is the one it asked for.
#[test]
fn int8_kernels_follow_the_cpu() {
    for bundle in ["xray-demo", "echo-ae-demo"] {
        let b = Bundle::load(&root().join("models").join(bundle)).unwrap();
        let kernels = TractModel::load(&b).unwrap().matmul_kernels();
        eprintln!("{bundle}: {kernels:?}");
        let i32_kernels: Vec<&String> = kernels.iter().filter(|k| k.contains("i32")).collect();
        assert!(
            !i32_kernels.is_empty(),
            "{bundle}: no int8 (i32-accumulating) kernel in {kernels:?}"
        );
        // The boards' cores only: other aarch64 CPUs (QEMU's default
        // `max`, with SVE) get other kernels, which is right for them.
        #[cfg(target_arch = "aarch64")]
        if let Ok(cpu @ ("cortex-a72" | "cortex-a76")) = std::env::var("QEMU_CPU").as_deref() {
            let dot = std::arch::is_aarch64_feature_detected!("dotprod");
            assert_eq!(
                dot,
                cpu == "cortex-a76",
                "{cpu}: FEAT_DotProd detected: {dot}"
            );
            // Convolutions run on the 8x8 tile (SDOT or SMLAL); a dense
            // layer of batch 1 may run on tract's 64x1 matrix-vector kernel,
            // which has no SDOT form in tract 0.23.9.
            let tiles: Vec<&&String> = i32_kernels.iter().filter(|k| k.contains("8x8")).collect();
            assert!(
                !tiles.is_empty(),
                "{bundle}: no 8x8 int8 tile kernel in {kernels:?}"
            );
            let want = if dot {
                "arm64simd_mmm_i32_8x8_dot"
            } else {
                "arm64simd_mmm_i32_8x8"
            };
            for k in &i32_kernels {
                assert!(
                    k.as_str() == want || k.as_str() == "arm64simd_mmm_i32_64x1",
                    "{bundle}: {k} with dotprod {dot}, want {want}"
                );
            }
        }
    }
}

/// Two threads for the matrix products give the same outputs as one, on
/// every golden case of both bundles.
#[test]
fn threads_do_not_change_outputs() {
    use bedside::infer::Precision;
    for bundle in ["xray-demo", "echo-ae-demo"] {
        let dir = root().join("models").join(bundle);
        let b = Bundle::load(&dir).unwrap();
        let mut one = TractModel::load_with(&b, Precision::Int8, 1).unwrap();
        let mut two = TractModel::load_with(&b, Precision::Int8, 2).unwrap();
        assert_eq!(two.threads(), 2);
        let golden: Golden =
            serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap())
                .unwrap();
        for case in &golden.cases {
            let a = one.run(&case.input).unwrap().to_vec();
            assert_eq!(a, two.run(&case.input).unwrap(), "{bundle}/{}", case.name);
        }
    }
    let b = Bundle::load(&root().join("models/xray-demo")).unwrap();
    let e = TractModel::load_with(&b, Precision::Int8, 0).err().unwrap();
    assert!(e.to_string().contains("threads"), "{e}");
}

/// `precision = auto` times both variants and keeps the faster; a bundle
/// without an f32 model runs int8 and says why; forced choices are kept.
#[test]
fn auto_precision_keeps_the_faster_variant() {
    use bedside::infer::{InferOptions, Precision, PrecisionPolicy, tract::select};
    let b = Bundle::load(&root().join("models/echo-ae-demo")).unwrap();
    let (m, s) = select(&b, &InferOptions::default()).unwrap();
    assert_eq!(s.timings.len(), 2, "{s:?}");
    let fastest = s.timings.iter().min_by_key(|(_, t)| *t).unwrap().0;
    // Ties go to int8.
    let expected = if s.timings[0].1 == s.timings[1].1 {
        Precision::Int8
    } else {
        fastest
    };
    assert_eq!(s.chosen, expected, "{s:?}");
    assert_eq!(m.precision(), s.chosen);
    assert!(s.describe().contains("auto: int8"), "{}", s.describe());

    let forced = InferOptions {
        precision: PrecisionPolicy::F32,
        threads: 1,
    };
    let (m, s) = select(&b, &forced).unwrap();
    assert_eq!((m.precision(), s.chosen), (Precision::F32, Precision::F32));
    assert!(s.timings.is_empty());

    let dir = root().join("models/echo-ae-demo");
    let embedded = Bundle::from_parts(
        "echo-ae-demo",
        &std::fs::read_to_string(dir.join("manifest.toml")).unwrap(),
        &std::fs::read(dir.join("model.onnx")).unwrap(),
    )
    .unwrap();
    let (m, s) = select(&embedded, &InferOptions::default()).unwrap();
    assert_eq!(m.precision(), Precision::Int8);
    assert!(s.reason.contains("no f32 model"), "{}", s.reason);
}
