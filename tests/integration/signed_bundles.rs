//! Signed bundles on a board that requires them (issue #12, point 2): an
//! unsigned bundle, one whose manifest changed after signing, one signed by
//! an untrusted key and one whose model file no longer matches its manifest
//! are refused with one clear line, the screen shows AI UNAVAILABLE with the
//! reason (not a picture, not a result), and `--jsonl` has one
//! `model_refused` record; the bundle signed by the trusted key runs.

use crate::common;
use std::path::Path;

use crate::common::{assert_clean_failure, copy_bundle, root, run};

/// The caution yellow of the AI UNAVAILABLE banner (display::overlay).
const CAUTION_YELLOW: [u8; 3] = [250, 200, 0];

fn keygen(path: &Path) -> String {
    let (code, public, err) = run(&["model", "keygen", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    public.trim().to_string()
}

fn sign(bundle: &Path, key: &Path) {
    let (code, _, err) = run(&[
        "model",
        "sign",
        bundle.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
}

/// Runs the board on `bundle` with a headless screen and a log; expects a
/// refusal naming `fragments`, a screen with the banner and no picture, and
/// one `model_refused` record carrying `screen`.
fn assert_refused(dir: &Path, board: &Path, bundle: &Path, fragments: &[&str], screen: &str) {
    let out = dir.join(format!(
        "screen-{}",
        bundle.file_name().unwrap().to_string_lossy()
    ));
    let log = out.with_extension("jsonl");
    let args = [
        "run",
        "--board",
        board.to_str().unwrap(),
        "--frames",
        "3",
        "--model",
        bundle.to_str().unwrap(),
        "--display",
        &format!("headless:{}", out.display()),
        "--jsonl",
        log.to_str().unwrap(),
    ];
    assert_clean_failure(&args, fragments);
    let png = image::open(out.join("frame_000000.png"))
        .unwrap_or_else(|e| panic!("{}: no refusal screen: {e}", bundle.display()))
        .to_rgb8();
    let yellow = png.pixels().filter(|p| p.0 == CAUTION_YELLOW).count();
    assert!(
        yellow > 1000,
        "{}: banner pixels {yellow}",
        bundle.display()
    );
    // Below the banner, the picture area is black: nothing drawn as if it ran.
    let (w, h) = png.dimensions();
    let picture_w = w - 210;
    let lit = (h / 4..h)
        .flat_map(|y| (0..picture_w).map(move |x| (x, y)))
        .filter(|&(x, y)| png.get_pixel(x, y).0 != [0, 0, 0])
        .count();
    assert_eq!(
        lit,
        0,
        "{}: picture drawn under a refusal",
        bundle.display()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{text}");
    assert_eq!(records[0]["status"], "model_refused");
    assert_eq!(records[0]["screen"], screen);
    for f in fragments {
        assert!(records[0]["reason"].as_str().unwrap().contains(f), "{text}");
    }
}

#[test]
fn a_board_requiring_signatures_refuses_on_screen_and_runs_the_signed_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let public = keygen(&d.join("signer.key"));
    let untrusted = d.join("untrusted.key");
    keygen(&untrusted);
    let board = d.join("board.toml");
    std::fs::write(
        &board,
        format!(
            "board = \"test\"\nmode = \"ultrasound\"\nsource = \"synthetic\"\ndisplay = \"none\"\n\
             [inference]\nrequire_signature = true\ntrusted_keys = [\"{public}\"]\n"
        ),
    )
    .unwrap();

    let unsigned = d.join("unsigned");
    copy_bundle(&root().join("models/echo-ae-demo"), &unsigned);
    assert_refused(
        d,
        &board,
        &unsigned,
        &["unsigned", "not signed"],
        "model refused: not signed",
    );

    let signed = d.join("signed");
    copy_bundle(&unsigned, &signed);
    sign(&signed, &d.join("signer.key"));

    let altered = d.join("altered");
    copy_bundle(&signed, &altered);
    common::edit_manifest(
        &altered,
        &[("anomaly_error = 0.0293", "anomaly_error = 0.5")],
    );
    assert_refused(
        d,
        &board,
        &altered,
        &["altered/manifest.sig", "bad signature"],
        "model refused: bad signature",
    );

    let foreign = d.join("foreign");
    copy_bundle(&unsigned, &foreign);
    sign(&foreign, &untrusted);
    assert_refused(
        d,
        &board,
        &foreign,
        &["foreign/manifest.sig", "bad signature"],
        "model refused: bad signature",
    );

    // The model file changed under a valid signature: the hash catches it.
    let swapped = d.join("swapped");
    copy_bundle(&signed, &swapped);
    let mut onnx = std::fs::read(swapped.join("model.onnx")).unwrap();
    let last = onnx.len() - 1;
    onnx[last] ^= 0x55;
    std::fs::write(swapped.join("model.onnx"), onnx).unwrap();
    assert_refused(
        d,
        &board,
        &swapped,
        &["swapped/model.onnx", "sha256 mismatch"],
        "model refused: hash mismatch",
    );

    // The embedded demonstration bundle is unsigned too.
    assert_clean_failure(
        &["run", "--board", board.to_str().unwrap(), "--frames", "1"],
        &["not signed"],
    );

    let log = d.join("signed.jsonl");
    let (code, out, err) = run(&[
        "run",
        "--board",
        board.to_str().unwrap(),
        "--frames",
        "3",
        "--model",
        signed.to_str().unwrap(),
        "--jsonl",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 frame(s)"), "{out}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(crate::common::records(&text).len(), 3, "{text}");
    assert!(!text.contains("model_refused"));
}
