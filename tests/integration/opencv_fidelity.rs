//! Faithful to OpenCV: our equalization, CLAHE and area resize against OpenCV's
//! own outputs on real frames (goldens made by benches/compare/opencv_golden.py,
//! committed under tests/golden/opencv). Stated tolerance: max absolute
//! difference 1 level, and at least 99% of pixels identical.

use std::path::Path;

use bedside::frame::{Frame, FrameMeta, PixelFormat};
use bedside::preprocess::Preprocessor;

const MAX_ABS_DIFF: u8 = 1;
const MIN_IDENTICAL: f64 = 0.99;

fn gray(path: &Path) -> image::GrayImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_luma8()
}

fn check(name: &str, op: &str, chain: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/opencv");
    let input = gray(&dir.join(format!("{name}_input.png")));
    let golden = gray(&dir.join(format!("{name}_{op}.png")));
    let frame = Frame::packed(
        input.as_raw().clone(),
        PixelFormat::Gray8,
        input.width(),
        input.height(),
        FrameMeta::default(),
    )
    .unwrap();
    let mut pre = Preprocessor::new(chain.parse().unwrap(), None).unwrap();
    pre.process(&frame).unwrap();
    let ours = pre.processed();
    assert_eq!(
        (ours.width, ours.height),
        golden.dimensions(),
        "{name} {op}"
    );
    let diffs: Vec<u8> = ours
        .data
        .iter()
        .zip(golden.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    let max = diffs.iter().copied().max().unwrap_or(0);
    let identical = diffs.iter().filter(|&&d| d == 0).count() as f64 / diffs.len() as f64;
    eprintln!(
        "{name} {op}: max |diff| {max}, identical {:.2}%",
        identical * 100.0
    );
    assert!(max <= MAX_ABS_DIFF, "{name} {op}: max |diff| {max}");
    assert!(
        identical >= MIN_IDENTICAL,
        "{name} {op}: only {:.2}% identical",
        identical * 100.0
    );
}

#[test]
fn equalize_matches_opencv() {
    for name in ["chest", "echo"] {
        check(name, "equalize", "equalize");
    }
}

#[test]
fn clahe_matches_opencv() {
    for name in ["chest", "echo"] {
        check(name, "clahe_2.0_8x8", "clahe=2.0:8x8");
        check(name, "clahe_3.0_4x6", "clahe=3.0:4x6");
    }
}

#[test]
fn area_resize_matches_opencv() {
    for name in ["chest", "echo"] {
        check(name, "resize_area_224x224", "resize=224x224");
        check(name, "resize_area_97x61", "resize=97x61");
    }
}
