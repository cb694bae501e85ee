//! Preprocessing speed on real frames: the chains of the two demo bundles, and
//! the gray conversion kernel in the dispatched table (NEON on aarch64) next to
//! its scalar twin. Comparisons with OpenCV will live in `benches/compare/`.
//!
//! `cargo bench --bench preprocess`

use std::hint::black_box;
use std::path::Path;

use bedside::capture::FrameSource;
use bedside::capture::dicom::DicomSource;
use bedside::frame::Frame;
use bedside::preprocess::kernels::{self, generic};
use bedside::preprocess::{InputQuant, Preprocessor};
use criterion::{Criterion, criterion_group, criterion_main};

fn first_frame(path: &str) -> Frame {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let mut src = DicomSource::open(&p).expect("demo asset");
    src.next_frame().expect("decodes").expect("has a frame")
}

fn chains(c: &mut Criterion) {
    let q = InputQuant {
        scale: 1.0 / 255.0,
        zero_point: -128,
        pixel_scale: 1.0 / 255.0,
    };
    let echo = first_frame("assets/demo/echo_cine.dcm");
    let chest = first_frame("assets/demo/chest_cr.dcm");
    let mut g = c.benchmark_group("chain");
    for (name, frame, spec) in [
        ("echo_rgb320x240_to_32x32", &echo, "resize=32x32,quantize"),
        (
            "chest_y16_460x488_to_32x32_equalize",
            &chest,
            "resize=32x32,equalize,quantize",
        ),
        (
            "echo_rgb320x240_to_224x224_equalize",
            &echo,
            "resize=224x224,equalize,quantize",
        ),
    ] {
        let mut pre = Preprocessor::new(spec.parse().expect("valid chain"), Some(q))
            .expect("quantized chain");
        g.bench_function(name, |b| {
            b.iter(|| pre.process(black_box(frame)).expect("fits"))
        });
    }
    g.finish();
}

fn gray_kernels(c: &mut Criterion) {
    let (w, h) = (640usize, 480usize);
    let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 31 % 251) as u8).collect();
    let mut out = vec![0u8; w * h];
    let mut g = c.benchmark_group("rgb24_to_gray_640x480");
    let k = kernels::kernels();
    g.bench_function(k.name, |b| {
        b.iter(|| (k.rgb24_to_gray)(black_box(&rgb), &mut out))
    });
    g.bench_function("generic", |b| {
        b.iter(|| generic::rgb24_to_gray(black_box(&rgb), &mut out))
    });
    g.finish();
}

criterion_group!(benches, chains, gray_kernels);
criterion_main!(benches);
