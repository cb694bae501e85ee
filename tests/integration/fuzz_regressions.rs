//! The fuzz targets' bodies (`fuzz/bodies/`) on every committed input, in
//! every test tier (host and under QEMU): the seed corpora
//! (`fuzz/corpus/<target>/`) and every input a fuzzer ever crashed on
//! (`fuzz/regressions/<target>/`, named after what it found). A body panics
//! on a broken invariant, so an input that crashes again fails here.
//! libFuzzer itself runs the targets in `scripts/fuzz` (a step of
//! `scripts/test`).

use crate::common;
use std::path::Path;

#[path = "../../fuzz/bodies/board_profile.rs"]
mod board_profile;
#[path = "../../fuzz/bodies/chain.rs"]
mod chain;
#[path = "../../fuzz/bodies/dicom.rs"]
mod dicom;
#[path = "../../fuzz/bodies/frame.rs"]
mod frame;
#[path = "../../fuzz/bodies/manifest.rs"]
mod manifest;
#[path = "../../fuzz/bodies/mjpeg.rs"]
mod mjpeg;
#[path = "../../fuzz/bodies/model_loader.rs"]
mod model_loader;
#[path = "../../fuzz/bodies/specs.rs"]
mod specs;

/// Runs `body` on every file in fuzz/corpus/<target> and
/// fuzz/regressions/<target>; returns how many there were.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let mut n = 0;
    for kind in ["corpus", "regressions"] {
        let dir = common::root().join("fuzz").join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            let run = std::panic::catch_unwind(|| body(&bytes));
            assert!(
                run.is_ok(),
                "{target}: {} crashes the target again",
                f.display()
            );
            n += 1;
        }
    }
    n
}

#[test]
fn frame_inputs() {
    assert!(replay("frame", frame::run) > 0);
}

#[test]
fn chain_inputs() {
    assert!(replay("chain", chain::run) > 0);
}

#[test]
fn board_profile_inputs() {
    assert!(replay("board_profile", board_profile::run) > 0);
}

#[test]
fn specs_inputs() {
    assert!(replay("specs", specs::run) > 0);
}

#[test]
fn manifest_inputs() {
    assert!(replay("manifest", manifest::run) > 0);
}

#[test]
fn mjpeg_inputs() {
    assert!(replay("mjpeg", mjpeg::run) > 0);
}

#[test]
fn dicom_inputs() {
    replay("dicom", dicom::run);
    for f in ["echo_cine.dcm", "chest_cr.dcm"] {
        dicom::run(&std::fs::read(common::root().join("assets/demo").join(f)).unwrap());
    }
}

#[test]
fn model_loader_inputs() {
    replay("model_loader", model_loader::run);
    // The seeds scripts/fuzz uses (not copied into fuzz/corpus: they are in models/).
    for bundle in ["xray-demo", "echo-ae-demo"] {
        let onnx = common::root()
            .join("models")
            .join(bundle)
            .join("model.onnx");
        model_loader::run(&std::fs::read(Path::new(&onnx)).unwrap());
    }
}
