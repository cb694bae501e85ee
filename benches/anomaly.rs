//! What the ultrasound anomaly detector costs per frame, without the model
//! (issue #8: everything except the model under 1 ms on the build machine).
//!
//! - `anomaly/update_64x64_native_240x320`: one frame of the bundled echo
//!   cine judged after warm-up: the features in the model's 64x64 input,
//!   roughness in the native 240x320 frame, check scores, hysteresis;
//! - `anomaly/update_64x64_native_480x640`: the same frames doubled in size
//!   (the full-size echo cine's geometry), for the native roughness pass.
//!
//! The reconstruction is the input itself (the model's cost is in
//! `benches/infer.rs`).
//!
//! `cargo bench --bench anomaly`

use std::hint::black_box;
use std::path::Path;

use bedside::analyze::AnomalyDetector;
use bedside::analyze::anomaly::{DetectorParams, NativeView};
use bedside::capture::FrameSource;
use bedside::capture::dicom::DicomSource;
use bedside::frame::{Frame, FrameMeta, PixelFormat};
use bedside::preprocess::convert::Converter;
use bedside::preprocess::kernels::kernels;
use bedside::preprocess::resize::ResizePlan;
use bedside::preprocess::{GrayImage, Preprocessor, Rect};
use criterion::{Criterion, criterion_group, criterion_main};

struct Prepared {
    view: Vec<u8>,
    recon: Vec<f32>,
    native: GrayImage,
    area: Rect,
}

fn prepare(scale: u32) -> Vec<Prepared> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/echo_cine.dcm");
    let mut src = DicomSource::open(&path).expect("demo cine");
    let mut pre = Preprocessor::new("crop=auto,resize=64x64".parse().unwrap(), None).unwrap();
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().expect("decodes") {
        let mut g = GrayImage::default();
        Converter::default().run(kernels(), &f, &mut g);
        let (w, h) = (g.width * scale, g.height * scale);
        let mut big = vec![0u8; (w * h) as usize];
        ResizePlan::new((g.width, g.height), (w, h)).run(kernels(), &g.data, &mut big);
        let frame = Frame::packed(big, PixelFormat::Gray8, w, h, FrameMeta::default()).unwrap();
        pre.process(&frame).unwrap();
        let view = pre.processed().data.clone();
        out.push(Prepared {
            recon: view.iter().map(|&p| f32::from(p) / 255.0).collect(),
            view,
            native: pre.display().clone(),
            area: pre.active_area(),
        });
    }
    out
}

fn bench(c: &mut Criterion) {
    for (scale, name) in [
        (1, "update_64x64_native_240x320"),
        (2, "update_64x64_native_480x640"),
    ] {
        let frames = prepare(scale);
        let mut det = AnomalyDetector::new(DetectorParams::new(0.0293));
        let mut seq = 0u64;
        let mut step = |det: &mut AnomalyDetector| {
            let f = &frames[(seq % frames.len() as u64) as usize];
            let meta = FrameMeta {
                seq,
                timestamp_us: seq * 33_333,
            };
            seq += 1;
            det.update(
                meta,
                64,
                &f.view,
                &f.recon,
                1.0 / 255.0,
                Some(NativeView::of(&f.native, f.area)),
            )
        };
        for _ in 0..64 {
            step(&mut det);
        }
        assert!(det.has_baseline(), "warm-up done before timing");
        c.bench_function(&format!("anomaly/{name}"), |b| {
            b.iter(|| black_box(step(&mut det)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
