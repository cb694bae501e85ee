//! Bad input of every kind: one clear line naming the thing and the reason,
//! exit code 1, no panic.

use crate::common;
use crate::common::{assert_clean_failure, copy_bundle, root};

#[test]
fn missing_files() {
    let xray = root().join("models/xray-demo");
    let xray = xray.to_str().unwrap();
    assert_clean_failure(
        &["classify", "--model", xray, "/no/such/film.png"],
        &["/no/such/film.png", "no such file"],
    );
    assert_clean_failure(
        &["preprocess", "/no/such/frame.dcm", "--out", "/tmp/x.png"],
        &["/no/such/frame.dcm", "no such file"],
    );
    assert_clean_failure(
        &["model", "info", "/no/such/bundle"],
        &["/no/such/bundle", "no such file"],
    );
    assert_clean_failure(
        &["run", "--source", "dicom:/no/such/cine.dcm"],
        &["/no/such/cine.dcm", "no such file"],
    );
    assert_clean_failure(
        &["run", "--source", "images:/no/such/dir"],
        &["/no/such/dir", "no such file"],
    );
}

#[test]
fn files_that_are_not_images() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "patient list, not a picture\n").unwrap();
    let out = dir.path().join("out.png");
    assert_clean_failure(
        &[
            "preprocess",
            text.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["notes.png", "not a readable image"],
    );

    let truncated = dir.path().join("cut.png");
    let mut png = Vec::new();
    image::GrayImage::from_pixel(64, 64, image::Luma([9]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(&truncated, &png[..png.len() / 2]).unwrap();
    assert_clean_failure(
        &[
            "preprocess",
            truncated.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["cut.png", "not a readable image"],
    );

    let dcm = dir.path().join("broken.dcm");
    let real = std::fs::read(root().join("assets/demo/chest_cr.dcm")).unwrap();
    std::fs::write(&dcm, &real[..4000]).unwrap();
    assert_clean_failure(
        &[
            "run",
            "--source",
            &format!("dicom:{}", dcm.display()),
            "--mode",
            "xray",
        ],
        &["broken.dcm"],
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_clean_failure(
        &["run", "--source", &format!("images:{}", empty.display())],
        &["empty", "no PNG, JPEG, TIFF or DICOM"],
    );
}

#[test]
fn corrupt_models() {
    let dir = tempfile::tempdir().unwrap();
    let film = root().join("assets/demo/chest_cr.dcm");
    let film = film.to_str().unwrap();

    // One flipped bit: the hash no longer matches.
    let flipped = dir.path().join("flipped");
    copy_bundle(&root().join("models/xray-demo"), &flipped);
    let model = flipped.join("model.onnx");
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&model, &bytes).unwrap();
    assert_clean_failure(
        &["classify", "--model", flipped.to_str().unwrap(), film],
        &["model.onnx", "sha256 mismatch"],
    );

    // Truncated, with a manifest that matches the truncated bytes: refused
    // before tract builds anything.
    let cut = dir.path().join("cut");
    copy_bundle(&root().join("models/xray-demo"), &cut);
    let good = std::fs::read(cut.join("model.onnx")).unwrap();
    common::replace_model(&cut, "model.onnx", &good[..good.len() / 3]);
    assert_clean_failure(
        &["model", "verify", cut.to_str().unwrap()],
        &["cut/model.onnx", "not an ONNX model"],
    );

    // A manifest that lost a field.
    let bad_manifest = dir.path().join("nomanifest");
    copy_bundle(&root().join("models/xray-demo"), &bad_manifest);
    let m = std::fs::read_to_string(bad_manifest.join("manifest.toml")).unwrap();
    std::fs::write(
        bad_manifest.join("manifest.toml"),
        m.replace("zero_point = -128\n", ""),
    )
    .unwrap();
    assert_clean_failure(
        &["model", "info", bad_manifest.to_str().unwrap()],
        &["manifest.toml", "invalid manifest", "zero_point"],
    );

    // The wrong kind of model for the mode.
    let echo = root().join("models/echo-ae-demo");
    assert_clean_failure(
        &[
            "run",
            "--source",
            "synthetic",
            "--frames",
            "1",
            "--mode",
            "xray",
            "--model",
            echo.to_str().unwrap(),
        ],
        &["cannot serve xray mode"],
    );
}

#[test]
fn bad_specs_and_devices() {
    assert_clean_failure(&["run", "--source", "webcam"], &["unknown source 'webcam'"]);
    assert_clean_failure(
        &["run", "--source", "watch:/no/such/export"],
        &["/no/such/export", "no such file or directory"],
    );
    assert_clean_failure(
        &["run", "--source", "synthetic", "--display", "hdmi"],
        &["unknown display 'hdmi'"],
    );
    assert_clean_failure(
        &[
            "preprocess",
            "x.png",
            "--out",
            "y.png",
            "--chain",
            "resize=0x3",
        ],
        &["--chain", "resize"],
    );
    // A V4L2 device that is not there (or a build without V4L2): one clear line either way.
    let (code, _, err) = common::run(&["run", "--source", "v4l2:/dev/video99"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/dev/video99") || err.contains("not enabled in this build"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    // SPI panels: a spec without its required options, and a bus that is not there.
    assert_clean_failure(
        &[
            "run",
            "--source",
            "synthetic",
            "--display",
            "spi:/dev/spidev0.0?dc=25",
        ],
        &["panel= is required"],
    );
    assert_clean_failure(
        &[
            "run",
            "--source",
            "synthetic",
            "--display",
            "spi:/dev/spidev9.9?panel=st7789&dc=25",
        ],
        &["/dev/spidev9.9"],
    );
    // A framebuffer that is not there.
    assert_clean_failure(
        &[
            "run",
            "--source",
            "synthetic",
            "--display",
            "fbdev:/dev/fb9",
        ],
        &["fb9"],
    );
    // Something that exists but is no V4L2 device: a regular file, /dev/null.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("video0");
    std::fs::write(&file, b"not a device").unwrap();
    for path in [file.to_str().unwrap(), "/dev/null"] {
        let (code, _, err) = common::run(&["run", "--source", &format!("v4l2:{path}")]);
        assert_eq!(code, 1, "{path}: {err}");
        assert!(
            err.contains(path) || err.contains("not enabled in this build"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Each way a model can be bad is refused with its own reason, before
/// anything runs: random bytes, an operator tract lacks, an input of the
/// wrong shape or quantization, a declared op set that is not the graph's.
#[test]
fn bad_models_are_refused_with_their_reason() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let film = root().join("assets/demo/chest_cr.dcm");
    let film = film.to_str().unwrap();
    let xray = root().join("models/xray-demo");
    let echo = root().join("models/echo-ae-demo");

    // Random bytes, with a manifest hash that matches them.
    let random = dir.path().join("random");
    copy_bundle(&xray, &random);
    common::replace_model(&random, "model.onnx", &common::noise(40_000, 11));
    assert_clean_failure(
        &["model", "verify", random.to_str().unwrap()],
        &["random/model.onnx", "not an ONNX model"],
    );

    // An operator tract cannot run (onnxruntime's QLinearAdd, the
    // Microsoft-only op its default QOperator export emits).
    let foreign = dir.path().join("foreign");
    copy_bundle(&xray, &foreign);
    let bytes = std::fs::read(foreign.join("model.onnx")).unwrap();
    let mut proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
    let node = proto
        .graph
        .as_mut()
        .unwrap()
        .node
        .iter_mut()
        .find(|n| n.op_type == "Add")
        .expect("the xray graph has an Add");
    node.op_type = "QLinearAdd".into();
    node.domain = "com.microsoft".into();
    common::replace_model(&foreign, "model.onnx", &proto.encode_to_vec());
    assert_clean_failure(
        &["classify", "--model", foreign.to_str().unwrap(), film],
        &[
            "foreign/model.onnx",
            "operators tract cannot run",
            "com.microsoft:QLinearAdd (1 node)",
        ],
    );

    // The manifest promises a 96x96 input; the graph takes 64x64.
    let shape = dir.path().join("shape");
    copy_bundle(&echo, &shape);
    common::edit_manifest(
        &shape,
        &[
            ("shape = [1, 1, 64, 64]", "shape = [1, 1, 96, 96]"),
            ("resize=64x64", "resize=96x96"),
        ],
    );
    assert_clean_failure(
        &["model", "verify", shape.to_str().unwrap()],
        &[
            "shape/model.onnx",
            "does not match its manifest",
            "[1, 1, 64, 64]",
            "[1, 1, 96, 96]",
        ],
    );

    // The manifest's zero point is not the one the graph was quantized with:
    // the preprocessor would feed it shifted pixels.
    let quant = dir.path().join("quant");
    copy_bundle(&xray, &quant);
    common::edit_manifest(&quant, &[("zero_point = -128", "zero_point = 0")]);
    assert_clean_failure(
        &["classify", "--model", quant.to_str().unwrap(), film],
        &["quant/model.onnx", "zero point -128", "zero point 0"],
    );

    // The declared op set is not the graph's.
    let ops = dir.path().join("ops");
    copy_bundle(&xray, &ops);
    common::edit_manifest(&ops, &[("\"Reshape\", ", "\"Reshape\", \"Softmax\", ")]);
    assert_clean_failure(
        &["model", "verify", ops.to_str().unwrap()],
        &["ops/model.onnx", "the manifest declares", "Softmax"],
    );

    // A broken f32 variant is caught by verify (hash) like the int8 one.
    let f32_cut = dir.path().join("f32cut");
    copy_bundle(&xray, &f32_cut);
    let good = std::fs::read(f32_cut.join("model_f32.onnx")).unwrap();
    common::replace_model(&f32_cut, "model_f32.onnx", &good[..good.len() / 2]);
    assert_clean_failure(
        &["model", "verify", f32_cut.to_str().unwrap()],
        &["f32cut/model_f32.onnx"],
    );
}

/// Signing and the signature policy, through the command line.
#[test]
fn signatures_are_made_checked_and_required() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signer.key");
    let key = key.to_str().unwrap();
    let (code, public, err) = common::run(&["model", "keygen", key]);
    assert_eq!(code, 0, "{err}");
    let public = public.trim().to_string();
    assert_eq!(public.len(), 64, "{public}");
    assert_clean_failure(&["model", "keygen", key], &["signer.key", "already exists"]);
    assert_clean_failure(
        &[
            "model",
            "sign",
            root().join("models/echo-ae-demo").to_str().unwrap(),
            "--key",
            "/no/such.key",
        ],
        &["/no/such.key: no such file or directory"],
    );

    let signed = dir.path().join("signed");
    copy_bundle(&root().join("models/echo-ae-demo"), &signed);
    let signed_s = signed.to_str().unwrap();
    let (code, _, err) = common::run(&["model", "sign", signed_s, "--key", key]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = common::run(&["model", "verify", signed_s, "--trusted-key", &public]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("signed by trusted key"), "{out}");

    // Another signer's key does not verify it.
    let other = dir.path().join("other.key");
    let (_, other_public, _) = common::run(&["model", "keygen", other.to_str().unwrap()]);
    assert_clean_failure(
        &[
            "model",
            "verify",
            signed_s,
            "--trusted-key",
            other_public.trim(),
        ],
        &["manifest.sig", "bad signature"],
    );

    // A manifest changed after signing (a looser threshold) fails.
    let altered = dir.path().join("altered");
    copy_bundle(&signed, &altered);
    common::edit_manifest(
        &altered,
        &[("anomaly_error = 0.0293", "anomaly_error = 0.5")],
    );
    assert_clean_failure(
        &[
            "model",
            "verify",
            altered.to_str().unwrap(),
            "--trusted-key",
            &public,
        ],
        &["altered/manifest.sig", "bad signature"],
    );

    // A garbled signature file.
    let garbled = dir.path().join("garbled");
    copy_bundle(&signed, &garbled);
    std::fs::write(garbled.join("manifest.sig"), "not a signature\n").unwrap();
    assert_clean_failure(
        &["model", "info", garbled.to_str().unwrap()],
        &["garbled/manifest.sig", "bad signature"],
    );

    // A board that requires signatures refuses an unsigned bundle (and the
    // embedded demo one), and runs the signed one.
    let board = dir.path().join("board.toml");
    std::fs::write(
        &board,
        format!(
            "board = \"test\"\nmode = \"ultrasound\"\nsource = \"synthetic\"\ndisplay = \"none\"\n\
             [inference]\nrequire_signature = true\ntrusted_keys = [\"{public}\"]\n"
        ),
    )
    .unwrap();
    let board = board.to_str().unwrap();
    let unsigned = root().join("models/echo-ae-demo");
    assert_clean_failure(
        &[
            "run",
            "--board",
            board,
            "--frames",
            "1",
            "--model",
            unsigned.to_str().unwrap(),
        ],
        &["echo-ae-demo", "not signed"],
    );
    assert_clean_failure(&["run", "--board", board, "--frames", "1"], &["not signed"]);
    let (code, out, err) = common::run(&[
        "run", "--board", board, "--frames", "2", "--model", signed_s,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 frame(s)"), "{out}");
}

/// Output cut short by the reader (`bedside ... | head -1`) ends the process
/// quietly; it is not a panic.
#[test]
fn closed_stdout_is_not_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = common::bedside()
        .args([
            "model",
            "info",
            root().join("models/xray-demo").to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
}
