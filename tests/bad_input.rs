//! Bad input of every kind: one clear line naming the thing and the reason,
//! exit code 1, no panic.

mod common;

use common::{assert_clean_failure, copy_bundle, root};
use sha2::{Digest, Sha256};

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

    // Truncated, with a manifest that matches the truncated bytes: tract must refuse it.
    let cut = dir.path().join("cut");
    copy_bundle(&root().join("models/xray-demo"), &cut);
    let good = std::fs::read(cut.join("model.onnx")).unwrap();
    let short = &good[..good.len() / 3];
    std::fs::write(cut.join("model.onnx"), short).unwrap();
    let manifest = std::fs::read_to_string(cut.join("manifest.toml")).unwrap();
    let old = Sha256::digest(&good)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let new = Sha256::digest(short)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    std::fs::write(cut.join("manifest.toml"), manifest.replace(&old, &new)).unwrap();
    assert_clean_failure(
        &["model", "verify", cut.to_str().unwrap()],
        &["cut", "cannot load model"],
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
}
