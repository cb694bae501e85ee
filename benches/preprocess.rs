//! Preprocessing speed on real frames: each step on its own (dispatched kernel
//! table, NEON on aarch64, next to the scalar twins where they differ), and
//! the two full chains of issue #3:
//!
//! - `full/yuyv640x480_to_224_clahe`: a 640x480 YUYV frame (the real echo
//!   frame, scaled up, chroma neutral) -> 224x224 int8 with CLAHE;
//! - `full/chest_y16_1841x1955_to_224_clahe`: the full-size 16-bit chest
//!   radiograph RG1_UNCR (1841 wide, 1955 high) (MONOCHROME1, its VOI window) -> 224x224 int8 with
//!   CLAHE. It comes from `scripts/fetch-data` (not in the repository); when
//!   it is missing the chain is skipped with a note on stderr.
//!
//! `benches/compare/compare.py` runs this bench and OpenCV on the same inputs
//! (written by this bench to `$BEDSIDE_BENCH_DUMP` when set) and prints ratios.
//!
//! `cargo bench --bench preprocess [-- FILTER]`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bedside::capture::FrameSource;
use bedside::capture::dicom::DicomSource;
use bedside::frame::{Frame, FrameMeta, PixelFormat};
use bedside::preprocess::clahe::{Clahe, ClaheParams};
use bedside::preprocess::convert::Converter;
use bedside::preprocess::kernels::{self, GENERIC, Kernels};
use bedside::preprocess::resize::ResizePlan;
use bedside::preprocess::{GrayImage, InputQuant, Preprocessor};
use criterion::{Criterion, criterion_group, criterion_main};

/// The chain both full benchmarks run (and `compare.py` mirrors in OpenCV).
const FULL_CHAIN: &str = "resize=224x224,clahe=2.0:8x8,quantize";

fn quant() -> InputQuant {
    InputQuant {
        scale: 1.0 / 255.0,
        zero_point: -128,
        pixel_scale: 1.0 / 255.0,
    }
}

fn first_frame(path: &Path) -> Frame {
    let mut src = DicomSource::open(path).expect("readable DICOM");
    src.next_frame().expect("decodes").expect("has a frame")
}

fn gray(frame: &Frame) -> GrayImage {
    let mut g = GrayImage::default();
    Converter::default().run(&GENERIC, frame, &mut g);
    g
}

/// The real echo frame (320x240) scaled to 640x480 and packed as YUYV with
/// neutral chroma: the size and layout a V4L2 capture card delivers.
fn echo_yuyv() -> Frame {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let echo = gray(&first_frame(&root.join("assets/demo/echo_cine.dcm")));
    let mut big = vec![0u8; 640 * 480];
    ResizePlan::new((echo.width, echo.height), (640, 480)).run(&GENERIC, &echo.data, &mut big);
    let yuyv: Vec<u8> = big.iter().flat_map(|&y| [y, 128]).collect();
    Frame::packed(yuyv, PixelFormat::Yuyv, 640, 480, FrameMeta::default()).expect("sized")
}

/// The full-size radiograph from the data cache, if fetched.
fn chest_full() -> Option<Frame> {
    let data = std::env::var_os("BEDSIDE_DATA")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bedside/data"))
        })?;
    let path = data.join("pydicom-data/data_store/data/RG1_UNCR.dcm");
    if !path.exists() {
        eprintln!(
            "note: {} is missing (run scripts/fetch-data); skipping the radiograph chain",
            path.display()
        );
        return None;
    }
    Some(first_frame(&path))
}

/// The frame's pixel rows, packed.
fn packed_rows(f: &Frame) -> Vec<u8> {
    (0..f.height()).flat_map(|y| f.row(y).to_vec()).collect()
}

/// Writes the inputs for `compare.py` when `BEDSIDE_BENCH_DUMP` names a
/// directory (never otherwise: nothing goes to disk unasked).
fn dump_inputs(yuyv: &Frame, chest: Option<&Frame>) {
    let Some(dir) = std::env::var_os("BEDSIDE_BENCH_DUMP").map(PathBuf::from) else {
        return;
    };
    std::fs::create_dir_all(&dir).expect("dump dir");
    std::fs::write(dir.join("yuyv_640x480.raw"), packed_rows(yuyv)).expect("write");
    let mut meta = serde_json::json!({
        "chain": FULL_CHAIN,
        "yuyv": {"file": "yuyv_640x480.raw", "width": 640, "height": 480},
    });
    if let Some(c) = chest {
        std::fs::write(dir.join("chest_y16.raw"), packed_rows(c)).expect("write");
        let w = c.tone.window.expect("RG1_UNCR has a VOI window");
        meta["chest"] = serde_json::json!({
            "file": "chest_y16.raw",
            "width": c.width(),
            "height": c.height(),
            "center": w.center,
            "window": w.width,
            "invert": c.tone.invert,
        });
    }
    std::fs::write(dir.join("inputs.json"), meta.to_string()).expect("write");
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn full_chains(c: &mut Criterion) {
    let yuyv = echo_yuyv();
    let chest = chest_full();
    dump_inputs(&yuyv, chest.as_ref());
    let mut g = c.benchmark_group("full");
    let mut cases = vec![("yuyv640x480_to_224_clahe".to_string(), &yuyv)];
    if let Some(chest) = &chest {
        let name = format!(
            "chest_y16_{}x{}_to_224_clahe",
            chest.width(),
            chest.height()
        );
        cases.push((name, chest));
    }
    for (name, frame) in cases {
        let mut pre = Preprocessor::new(FULL_CHAIN.parse().expect("valid"), Some(quant()))
            .expect("quantized chain");
        g.bench_function(name, |b| {
            b.iter(|| pre.process(black_box(frame)).expect("fits"))
        });
    }
    g.finish();
}

/// Each step alone, with the dispatched table and (where a SIMD twin exists
/// on this machine) the scalar one.
fn steps(c: &mut Criterion) {
    let yuyv = echo_yuyv();
    let echo640 = gray(&yuyv);
    let chest = chest_full().unwrap_or_else(|| {
        first_frame(&Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/chest_cr.dcm"))
    });
    let chest_gray = gray(&chest);
    let mut small = GrayImage::default();
    small.reset(224, 224);
    ResizePlan::new((640, 480), (224, 224)).run(&GENERIC, &echo640.data, &mut small.data);

    let mut tables: Vec<&'static Kernels> = vec![kernels::kernels()];
    if kernels::kernels().name != GENERIC.name {
        tables.push(&GENERIC);
    }
    let mut g = c.benchmark_group("step");
    for k in tables {
        let n = k.name;
        let mut out = GrayImage::default();
        let mut conv = Converter::default();
        g.bench_function(format!("convert_yuyv640x480/{n}"), |b| {
            b.iter(|| conv.run(k, black_box(&yuyv), &mut out))
        });
        let label = format!("convert_y16_{}x{}/{n}", chest.width(), chest.height());
        g.bench_function(label, |b| {
            b.iter(|| conv.run(k, black_box(&chest), &mut out))
        });
        let mut dst = vec![0u8; 224 * 224];
        for (name, img) in [("640x480", &echo640), ("chest", &chest_gray)] {
            let mut plan = ResizePlan::new((img.width, img.height), (224, 224));
            g.bench_function(format!("resize_area_{name}_to_224/{n}"), |b| {
                b.iter(|| plan.run(k, black_box(&img.data), &mut dst))
            });
        }
        let mut clahe = Clahe::default();
        let p = ClaheParams {
            clip_limit: 2.0,
            tiles_x: 8,
            tiles_y: 8,
        };
        let mut work = small.clone();
        g.bench_function(format!("clahe_2.0_8x8_224/{n}"), |b| {
            b.iter(|| {
                work.data.copy_from_slice(&small.data);
                clahe.apply(k, p, black_box(&mut work))
            })
        });
        g.bench_function(format!("histogram_640x480/{n}"), |b| {
            b.iter(|| {
                let mut h = [0u32; 256];
                (k.histogram_add)(black_box(&echo640.data), &mut h);
                h
            })
        });
        let lut: [u8; 256] = std::array::from_fn(|i| (255 - i) as u8);
        let mut img = echo640.data.clone();
        g.bench_function(format!("lut_640x480/{n}"), |b| {
            b.iter(|| (k.lut_in_place)(black_box(&mut img), &lut))
        });
        let q = quant().table();
        let mut input = vec![0i8; 224 * 224];
        g.bench_function(format!("quantize_224/{n}"), |b| {
            b.iter(|| (k.lut_to_i8)(black_box(&small.data), &q, &mut input))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = full_chains, steps
}
criterion_main!(benches);
