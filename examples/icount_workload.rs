//! One frame of one workload, with instruction-count markers around each
//! stage (`bedside::marker`), for `scripts/icount` to run under
//! `qemu-aarch64` with the counting plugin (`tools/icount-plugin`).
//!
//! `icount_workload WORKLOAD` (`icount_workload list` names them). Every
//! workload runs on one thread (rayon's pool is this thread; the plugin
//! refuses counts from a process that started another) on the bundled data (and the full-size
//! radiograph from `scripts/fetch-data` for `chain-chest-y16`), first one
//! frame unmarked as warm-up, then one marked frame: counts under QEMU are
//! exact and repeat exactly, so one frame is the measurement. It prints one
//! JSON object: the workload, the kernel table, and in order every marked
//! region (stage and what it did), which the plugin's regions must match.
//!
//! Workloads:
//!
//! - `chain-yuyv640x480`, `chain-chest-y16`: the two preprocessing chains
//!   (`resize=224x224,clahe=2.0:8x8,quantize`, as `benches/preprocess.rs`):
//!   convert (the frame to the gray display copy), preprocess (the chain on
//!   that copy, as a gray frame);
//! - `xray-demo-int8`, `xray-demo-f32`, `echo-ae-demo-int8`,
//!   `echo-ae-demo-f32`: a whole frame through the bundle: convert,
//!   preprocess, infer (tract, 1 thread), analyze (classification, or the
//!   anomaly detector after its warm-up), overlay (640x480 screen drawn and
//!   converted to XRGB8888);
//! - `anomaly-features`: the anomaly detector alone at native 480x640 (as
//!   `benches/anomaly.rs`; the reconstruction is the input);
//! - `overlay-640x480`: the ultrasound screen drawn and converted to
//!   XRGB8888 (as `benches/display.rs`);
//! - `kernels`: each kernel of the table on its bench input, the NEON table
//!   then the scalar twin (on aarch64; elsewhere the scalar one only);
//! - `net-NAME-int8`, `net-NAME-f32` (not in `list`, so not in the budgets):
//!   one inference of a benchmark network (`models/bench/run` makes
//!   `mobilenetv2` and `resnet18` under `$BEDSIDE_BENCH_NETS`, default
//!   `$BEDSIDE_CACHE/bench-nets`) on a seeded input.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bedside::analyze::anomaly::{DetectorParams, NativeView};
use bedside::analyze::{AnomalyDetector, Verdict, classify};
use bedside::capture::FrameSource;
use bedside::capture::dicom::DicomSource;
use bedside::display::pixels::{ScreenFormat, convert_row};
use bedside::display::{Overlay, OverlayInfo, Status};
use bedside::frame::{Frame, FrameMeta, PixelFormat};
use bedside::infer::bundle::Task;
use bedside::infer::tract::{Precision, TractModel};
use bedside::infer::{Bundle, Model};
use bedside::marker::{self, ANALYZE, CONVERT, INFER, KERNEL, OVERLAY, PREPROCESS};
use bedside::preprocess::clahe::{Clahe, ClaheParams};
use bedside::preprocess::convert::Converter;
use bedside::preprocess::kernels::{self, GENERIC, Kernels};
use bedside::preprocess::resize::ResizePlan;
use bedside::preprocess::{GrayImage, InputQuant, Preprocessor};
use serde_json::{Value, json};

const WORKLOADS: &[&str] = &[
    "chain-yuyv640x480",
    "chain-chest-y16",
    "xray-demo-int8",
    "xray-demo-f32",
    "echo-ae-demo-int8",
    "echo-ae-demo-f32",
    "anomaly-features",
    "overlay-640x480",
    "overlay-1920x1080",
    "kernels",
];

/// The chain of both preprocessing workloads (issue #3's two chains).
const CHAIN: &str = "resize=224x224,clahe=2.0:8x8,quantize";
const SCREEN: (u32, u32) = (640, 480);

/// The checkout whose assets and models the workloads read: `BEDSIDE_ROOT`
/// (scripts/icount sets it) or the one this program was built in. Cargo keeps
/// a build fresh when the same sources sit in another checkout sharing the
/// target dir, so the compiled-in path alone can name a checkout that is gone.
fn root() -> PathBuf {
    std::env::var_os("BEDSIDE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// What the marked frame did, region by region, in order.
#[derive(Default)]
struct Report {
    regions: Vec<Value>,
    extra: serde_json::Map<String, Value>,
}

impl Report {
    fn region(&mut self, id: u16, detail: impl Into<String>) {
        self.regions.push(json!({
            "id": id,
            "stage": marker::stage_name(id),
            "detail": detail.into(),
        }));
    }
}

fn frames_of(path: &Path) -> Result<Vec<Frame>> {
    let mut src = DicomSource::open(path).with_context(|| path.display().to_string())?;
    let mut v = Vec::new();
    while let Some(f) = src.next_frame()? {
        v.push(f);
    }
    Ok(v)
}

fn first_frame(path: &Path) -> Result<Frame> {
    frames_of(path)?
        .into_iter()
        .next()
        .with_context(|| format!("{} has no frame", path.display()))
}

fn gray_of(frame: &Frame) -> GrayImage {
    let mut g = GrayImage::default();
    Converter::default().run(&GENERIC, frame, &mut g);
    g
}

fn gray_frame(g: &GrayImage) -> Result<Frame> {
    Ok(Frame::packed(
        g.data.clone(),
        PixelFormat::Gray8,
        g.width,
        g.height,
        FrameMeta::default(),
    )?)
}

fn echo_gray_640x480() -> Result<GrayImage> {
    let echo = gray_of(&first_frame(&root().join("assets/demo/echo_cine.dcm"))?);
    let mut big = GrayImage::default();
    big.reset(640, 480);
    ResizePlan::new((echo.width, echo.height), (640, 480)).run(&GENERIC, &echo.data, &mut big.data);
    Ok(big)
}

/// The real echo frame scaled to 640x480 as YUYV, neutral chroma (as the
/// preprocessing bench makes it).
fn echo_yuyv() -> Result<Frame> {
    let big = echo_gray_640x480()?;
    let yuyv: Vec<u8> = big.data.iter().flat_map(|&y| [y, 128]).collect();
    Ok(Frame::packed(
        yuyv,
        PixelFormat::Yuyv,
        640,
        480,
        FrameMeta::default(),
    )?)
}

fn chest_full() -> Result<Frame> {
    let data = std::env::var_os("BEDSIDE_DATA")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bedside/data")))
        .context("neither BEDSIDE_DATA nor HOME is set")?;
    let path = data.join("pydicom-data/data_store/data/RG1_UNCR.dcm");
    if !path.exists() {
        bail!("{} is missing (run scripts/fetch-data)", path.display());
    }
    first_frame(&path)
}

fn quant() -> InputQuant {
    InputQuant {
        scale: 1.0 / 255.0,
        zero_point: -128,
        pixel_scale: 1.0 / 255.0,
    }
}

/// A preprocessing chain on a captured frame: the conversion to the gray
/// display copy, then the chain on that copy.
fn chain(frame: &Frame, what: &str, r: &mut Report) -> Result<()> {
    let mut pre = Preprocessor::new(CHAIN.parse()?, Some(quant()))?;
    let mut conv = Converter::default();
    let mut gray = GrayImage::default();
    for marked in [false, true] {
        if marked {
            marker::begin::<CONVERT>();
        }
        conv.run(kernels::kernels(), frame, &mut gray);
        if marked {
            marker::end::<CONVERT>();
        }
        let g = gray_frame(&gray)?;
        if marked {
            marker::begin::<PREPROCESS>();
        }
        pre.process(black_box(&g))?;
        if marked {
            marker::end::<PREPROCESS>();
        }
    }
    black_box(pre.model_input());
    r.region(CONVERT, format!("{what} to gray"));
    r.region(PREPROCESS, format!("{CHAIN} on the gray copy"));
    Ok(())
}

fn to_screen(overlay: &Overlay, out: &mut [u8]) {
    let c = overlay.canvas();
    let row_in = c.width as usize * 3;
    let row_out = c.width as usize * ScreenFormat::Xrgb8888.bytes_per_pixel();
    for (src, dst) in c
        .rgb
        .chunks_exact(row_in)
        .zip(out.chunks_exact_mut(row_out))
    {
        convert_row(src, ScreenFormat::Xrgb8888, dst);
    }
}

/// Multiply-accumulates of one inference, from tract's cost model of the
/// decluttered float graph.
fn macs_of(bundle: &Bundle) -> Result<u64> {
    bedside::infer::tract::macs(bundle).context("the bundle has no f32 model tract can cost")
}

/// One frame through a bundle: convert, preprocess, infer, analyze, overlay.
fn bundle_frame(name: &str, precision: Precision, r: &mut Report) -> Result<()> {
    let bundle = Bundle::load(&root().join("models").join(name))?;
    let m = &bundle.manifest;
    let ultrasound = m.model.task == Task::Reconstruct;
    let frames = if ultrasound {
        frames_of(&root().join("assets/demo/echo_cine.dcm"))?
    } else {
        vec![first_frame(&root().join("assets/demo/chest_cr.dcm"))?]
    };
    let mut model = TractModel::load_with(&bundle, precision, 1)?;
    let mut pre = Preprocessor::new(m.chain(), Some(m.input_quant()))?;
    let mut conv = Converter::default();
    let mut gray = GrayImage::default();
    let mut det = AnomalyDetector::new(DetectorParams::new(
        m.thresholds.anomaly_error.unwrap_or(f32::INFINITY),
    ));
    let info = OverlayInfo {
        mode: if ultrasound { "ultrasound" } else { "xray" }.into(),
        model_line: format!(
            "{} {} {}",
            m.model.name,
            m.model.version,
            bundle.short_hash()
        ),
        demonstration: m.model.demonstration,
        labels: m.output.labels.clone(),
    };
    let mut overlay = Overlay::new(SCREEN, info);
    let mut screen = vec![0u8; (SCREEN.0 * SCREEN.1) as usize * 4];

    if ultrasound {
        // The detector's warm-up (its baseline): the cine's frames with
        // their real reconstructions, 64 updates as in the bench.
        let mut views = Vec::new();
        for f in &frames {
            pre.process(f)?;
            let recon = model.run(pre.model_input())?.to_vec();
            views.push((
                pre.processed().clone(),
                pre.display().clone(),
                pre.active_area(),
                recon,
            ));
        }
        for seq in 0..64u64 {
            let (view, native, area, recon) = &views[seq as usize % views.len()];
            det.update(
                FrameMeta {
                    seq,
                    timestamp_us: seq * 33_333,
                },
                view.width,
                &view.data,
                recon,
                m.input.pixel_scale,
                Some(NativeView::of(native, *area)),
            );
        }
        if !det.has_baseline() {
            bail!("the anomaly detector has no baseline after its warm-up");
        }
    }

    // Frames 64 (warm-up) and 65 (marked) continue the warm-up's sequence.
    for (seq, marked) in [(64u64, false), (65, true)] {
        let frame = &frames[seq as usize % frames.len()];
        if marked {
            marker::begin::<CONVERT>();
        }
        conv.run(kernels::kernels(), frame, &mut gray);
        if marked {
            marker::end::<CONVERT>();
        }
        // The chain runs on the converted copy (its own conversion is then
        // a row copy), so the stages do not count the conversion twice.
        let g = gray_frame(&gray)?;
        if marked {
            marker::begin::<PREPROCESS>();
        }
        pre.process(black_box(&g))?;
        if marked {
            marker::end::<PREPROCESS>();
            marker::begin::<INFER>();
        }
        let out = model.run(black_box(pre.model_input()))?;
        if marked {
            marker::end::<INFER>();
            marker::begin::<ANALYZE>();
        }
        let verdict = if ultrasound {
            Verdict::Anomaly(det.update(
                FrameMeta {
                    seq,
                    timestamp_us: seq * 33_333,
                },
                pre.processed().width,
                &pre.processed().data,
                out,
                m.input.pixel_scale,
                Some(NativeView::of(pre.display(), pre.active_area())),
            ))
        } else {
            match classify::classify(
                out,
                m.temperature(),
                m.thresholds.min_confidence.unwrap_or(0.0),
            ) {
                Some(c) => Verdict::Classification(c),
                None => bail!("the model's output could not be classified"),
            }
        };
        if marked {
            marker::end::<ANALYZE>();
            marker::begin::<OVERLAY>();
        }
        if let Verdict::Anomaly(a) = &verdict {
            overlay.record_score(a.score);
        }
        overlay.render(pre.display(), Status::Result(&verdict), Some((30.0, 20.0)));
        to_screen(&overlay, &mut screen);
        if marked {
            marker::end::<OVERLAY>();
        }
    }
    black_box(&screen);
    let (fw, fh) = (frames[0].width(), frames[0].height());
    let fmt = frames[0].format();
    r.region(CONVERT, format!("{fmt:?} {fw}x{fh} to gray"));
    r.region(PREPROCESS, format!("{} on the gray copy", m.chain()));
    r.region(
        INFER,
        format!("{} {}, tract, 1 thread", m.model.name, precision.name()),
    );
    r.region(
        ANALYZE,
        if ultrasound {
            "anomaly detector (features, checks, alarm), after warm-up"
        } else {
            "softmax and top class"
        },
    );
    r.region(
        OVERLAY,
        format!("{}x{} screen drawn, to XRGB8888", SCREEN.0, SCREEN.1),
    );
    r.extra.insert("macs".into(), json!(macs_of(&bundle)?));
    r.extra
        .insert("matmul_kernels".into(), json!(model.matmul_kernels()));
    Ok(())
}

/// Where `models/bench/run` put the benchmark networks.
fn bench_nets() -> PathBuf {
    if let Some(d) = std::env::var_os("BEDSIDE_BENCH_NETS") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("BEDSIDE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bedside")))
        .unwrap_or_else(|| PathBuf::from(".cache/bedside"));
    cache.join("bench-nets")
}

/// One inference of a benchmark network on a seeded input.
fn net_inference(name: &str, precision: Precision, r: &mut Report) -> Result<()> {
    let dir = bench_nets().join(name);
    let bundle = Bundle::load(&dir)
        .with_context(|| format!("{} (make it with models/bench/run)", dir.display()))?;
    let n: usize = bundle.manifest.input.shape.iter().product();
    let mut state = 0x2545_f491_u32;
    let input: Vec<i8> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8 as i8
        })
        .collect();
    let mut model = TractModel::load_with(&bundle, precision, 1)?;
    for marked in [false, true] {
        if marked {
            marker::begin::<INFER>();
        }
        black_box(model.run(black_box(&input))?);
        if marked {
            marker::end::<INFER>();
        }
    }
    r.region(
        INFER,
        format!("tract, 1 thread, {} {}", name, precision.name()),
    );
    r.extra.insert("macs".into(), json!(macs_of(&bundle)?));
    r.extra
        .insert("matmul_kernels".into(), json!(model.matmul_kernels()));
    Ok(())
}

/// The anomaly detector alone on the cine doubled to 480x640 (the full-size
/// cine's geometry), the reconstruction being the input itself.
fn anomaly_features(r: &mut Report) -> Result<()> {
    let mut pre = Preprocessor::new("crop=auto,resize=64x64".parse()?, None)?;
    let mut prepared = Vec::new();
    for f in frames_of(&root().join("assets/demo/echo_cine.dcm"))? {
        let g = gray_of(&f);
        let (w, h) = (g.width * 2, g.height * 2);
        let mut big = GrayImage::default();
        big.reset(w, h);
        ResizePlan::new((g.width, g.height), (w, h)).run(&GENERIC, &g.data, &mut big.data);
        pre.process(&gray_frame(&big)?)?;
        let view = pre.processed().data.clone();
        let recon: Vec<f32> = view.iter().map(|&p| f32::from(p) / 255.0).collect();
        prepared.push((view, recon, pre.display().clone(), pre.active_area()));
    }
    let mut det = AnomalyDetector::new(DetectorParams::new(0.0293));
    for seq in 0..66u64 {
        let (view, recon, native, area) = &prepared[seq as usize % prepared.len()];
        let marked = seq == 65;
        if marked {
            marker::begin::<ANALYZE>();
        }
        black_box(det.update(
            FrameMeta {
                seq,
                timestamp_us: seq * 33_333,
            },
            64,
            view,
            recon,
            1.0 / 255.0,
            Some(NativeView::of(native, *area)),
        ));
        if marked {
            marker::end::<ANALYZE>();
        }
    }
    if !det.has_baseline() {
        bail!("the anomaly detector has no baseline after its warm-up");
    }
    r.region(
        ANALYZE,
        "anomaly features and checks: 64x64 view, native 480x640",
    );
    Ok(())
}

fn overlay_only(size: (u32, u32), r: &mut Report) -> Result<()> {
    let frames: Vec<GrayImage> = frames_of(&root().join("assets/demo/echo_cine.dcm"))?
        .iter()
        .map(gray_of)
        .collect();
    let info = OverlayInfo {
        mode: "ultrasound".into(),
        model_line: "echo-ae-demo 0.2.0".into(),
        demonstration: true,
        labels: vec![],
    };
    let mut overlay = Overlay::new(size, info);
    let mut screen = vec![0u8; (size.0 * size.1) as usize * 4];
    for (i, marked) in [(0usize, false), (1, true)] {
        let v = Verdict::Anomaly(bedside::analyze::AnomalyVerdict {
            score: 0.5 + 0.1 * i as f32,
            ..Default::default()
        });
        if marked {
            marker::begin::<OVERLAY>();
        }
        overlay.record_score(0.5);
        overlay.render(
            &frames[i % frames.len()],
            Status::Result(&v),
            Some((30.0, 35.0)),
        );
        to_screen(&overlay, &mut screen);
        if marked {
            marker::end::<OVERLAY>();
        }
    }
    black_box(&screen);
    r.region(
        OVERLAY,
        format!("ultrasound screen {}x{} drawn, to XRGB8888", size.0, size.1),
    );
    Ok(())
}

/// The NEON table and its scalar twin.
#[cfg(target_arch = "aarch64")]
fn tables() -> Vec<&'static Kernels> {
    vec![&kernels::NEON, &GENERIC]
}

/// Only the scalar table exists off aarch64.
#[cfg(not(target_arch = "aarch64"))]
fn tables() -> Vec<&'static Kernels> {
    vec![&GENERIC]
}

/// The kernels whose NEON entry is a kernel of its own, not the scalar
/// twin: the pairs `scripts/icount --check` holds to a 1.25x gain.
#[cfg(target_arch = "aarch64")]
fn twins() -> Vec<&'static str> {
    kernels::NEON.differing_from(&GENERIC)
}

#[cfg(not(target_arch = "aarch64"))]
fn twins() -> Vec<&'static str> {
    Vec::new()
}

/// Each kernel on its bench input, once per table. A kernel the NEON table
/// takes from the scalar one is measured once, as generic; `twins` in the
/// report maps each kernel with a NEON twin to its region's name.
fn kernel_calls(r: &mut Report) -> Result<()> {
    let twins = twins();
    // Whether table `k` has a kernel of its own for `name`.
    let own = |k: &Kernels, name: &str| k.name != "neon" || twins.contains(&name);

    let echo = echo_gray_640x480()?;
    let rgb: Vec<u8> = echo.data.iter().flat_map(|&v| [v, v, v]).collect();
    let xrgb: Vec<u8> = echo.data.iter().flat_map(|&v| [v, v, v, 255]).collect();
    let yuyv: Vec<u8> = echo.data.iter().flat_map(|&y| [y, 128]).collect();
    let uyvy: Vec<u8> = echo.data.iter().flat_map(|&y| [128, y]).collect();
    let chest = first_frame(&root().join("assets/demo/chest_cr.dcm"))?;
    let (cw, ch) = (chest.width() as usize, chest.height() as usize);
    let y16: Vec<u8> = (0..chest.height())
        .flat_map(|y| chest.row(y)[..cw * 2].to_vec())
        .collect();
    let voi = bedside::preprocess::kernels::generic::VoiFixed::new(
        chest.tone.window.map_or(2048.0, |w| w.center),
        chest.tone.window.map_or(4096.0, |w| w.width),
        chest.tone.invert,
    );
    let mut small = GrayImage::default();
    small.reset(224, 224);
    ResizePlan::new((640, 480), (224, 224)).run(&GENERIC, &echo.data, &mut small.data);
    let q = quant().table();
    let lut: [u8; 256] = std::array::from_fn(|i| (255 - i) as u8);

    let tables = tables();
    let mut gray = vec![0u8; 640 * 480];
    let mut gray16 = vec![0u8; cw * ch];
    let mut input = vec![0i8; 224 * 224];
    let mut resized = vec![0u8; 224 * 224];
    let p = ClaheParams {
        clip_limit: 2.0,
        tiles_x: 8,
        tiles_y: 8,
    };
    for k in tables {
        let t = k.name;
        // Row kernels over whole frames; a warm-up call before each.
        let rows: [(&str, kernels::RowToGray, &[u8], usize); 5] = [
            ("rgb24_to_gray", k.rgb24_to_gray, &rgb, 3),
            ("bgr24_to_gray", k.bgr24_to_gray, &rgb, 3),
            ("xrgb8888_to_gray", k.xrgb8888_to_gray, &xrgb, 4),
            ("yuyv_to_gray", k.yuyv_to_gray, &yuyv, 2),
            ("uyvy_to_gray", k.uyvy_to_gray, &uyvy, 2),
        ];
        for (name, f, src, bpp) in rows {
            if !own(k, name) {
                continue;
            }
            for marked in [false, true] {
                if marked {
                    marker::begin::<KERNEL>();
                }
                for (s, d) in src.chunks_exact(640 * bpp).zip(gray.chunks_exact_mut(640)) {
                    f(black_box(s), d);
                }
                if marked {
                    marker::end::<KERNEL>();
                }
            }
            r.region(KERNEL, format!("{name} 640x480/{t}"));
        }
        if own(k, "window_u16") {
            for marked in [false, true] {
                if marked {
                    marker::begin::<KERNEL>();
                }
                for (s, d) in y16.chunks_exact(cw * 2).zip(gray16.chunks_exact_mut(cw)) {
                    (k.window_u16)(black_box(s), &voi, d);
                }
                if marked {
                    marker::end::<KERNEL>();
                }
            }
            r.region(KERNEL, format!("window_u16 {cw}x{ch}/{t}"));
        }
        let mut acc = (u16::MAX, 0);
        for marked in [false, true] {
            if marked {
                marker::begin::<KERNEL>();
            }
            for s in y16.chunks_exact(cw * 2) {
                acc = (k.minmax_u16)(black_box(s), acc);
            }
            if marked {
                marker::end::<KERNEL>();
            }
        }
        black_box(acc);
        r.region(KERNEL, format!("minmax_u16 {cw}x{ch}/{t}"));
        let mut img = echo.data.clone();
        for marked in [false, true] {
            if marked {
                marker::begin::<KERNEL>();
            }
            (k.lut_in_place)(black_box(&mut img), &lut);
            if marked {
                marker::end::<KERNEL>();
            }
        }
        r.region(KERNEL, format!("lut_in_place 640x480/{t}"));
        for marked in [false, true] {
            if marked {
                marker::begin::<KERNEL>();
            }
            (k.lut_to_i8)(black_box(&small.data), &q, &mut input);
            if marked {
                marker::end::<KERNEL>();
            }
        }
        r.region(KERNEL, format!("lut_to_i8 224x224/{t}"));
        for marked in [false, true] {
            let mut h = [0u32; 256];
            if marked {
                marker::begin::<KERNEL>();
            }
            (k.histogram_add)(black_box(&echo.data), &mut h);
            if marked {
                marker::end::<KERNEL>();
            }
            black_box(h);
        }
        r.region(KERNEL, format!("histogram_add 640x480/{t}"));
        let mut plan = ResizePlan::new((640, 480), (224, 224));
        for marked in [false, true] {
            if marked {
                marker::begin::<KERNEL>();
            }
            plan.run(k, black_box(&echo.data), &mut resized);
            if marked {
                marker::end::<KERNEL>();
            }
        }
        r.region(
            KERNEL,
            format!("resize 640x480 to 224x224 (both passes)/{t}"),
        );
        // The vertical pass alone: 224 output rows of 640 columns from three
        // taps each (a 480 to 224 downscale's widest), Q14 weights.
        let weights = [5461u32, 5462, 5461];
        let mut out16 = vec![0u16; 640];
        if own(k, "resize_vertical") {
            for marked in [false, true] {
                if marked {
                    marker::begin::<KERNEL>();
                }
                for y in 0..224 {
                    let top = (y * 480 / 224).min(477) * 640;
                    (k.resize_vertical)(black_box(&echo.data[top..]), 640, &weights, &mut out16);
                }
                if marked {
                    marker::end::<KERNEL>();
                }
            }
            black_box(&out16);
            r.region(
                KERNEL,
                format!("resize_vertical 640 columns x 3 taps x 224 rows/{t}"),
            );
        }
        // The horizontal pass alone: the overlay's letterbox row, 640 values
        // to 430 outputs (two or three taps each), 322 rows.
        let plan_taps = bedside::preprocess::resize::horizontal_taps(640, 430);
        let row16: Vec<u16> = echo.data[..640]
            .iter()
            .map(|&v| u16::from(v) << 8)
            .collect();
        let mut out8 = vec![0u8; 430];
        if own(k, "resize_horizontal") {
            for marked in [false, true] {
                if marked {
                    marker::begin::<KERNEL>();
                }
                for _ in 0..322 {
                    (k.resize_horizontal)(black_box(&row16), &plan_taps, &mut out8);
                }
                if marked {
                    marker::end::<KERNEL>();
                }
            }
            black_box(&out8);
            r.region(
                KERNEL,
                format!("resize_horizontal 640 to 430 x 322 rows/{t}"),
            );
        }
        // The canvas to a 32-bit framebuffer, 640x480.
        let mut screen = vec![0u8; 640 * 480 * 4];
        if own(k, "rgb_to_xrgb8888") {
            for marked in [false, true] {
                if marked {
                    marker::begin::<KERNEL>();
                }
                for (s, d) in rgb
                    .chunks_exact(640 * 3)
                    .zip(screen.chunks_exact_mut(640 * 4))
                {
                    (k.rgb_to_xrgb8888)(black_box(s), d);
                }
                if marked {
                    marker::end::<KERNEL>();
                }
            }
            black_box(&screen);
            r.region(KERNEL, format!("rgb_to_xrgb8888 640x480/{t}"));
        }
        let mut clahe = Clahe::default();
        let mut work = small.clone();
        for marked in [false, true] {
            work.data.copy_from_slice(&small.data);
            if marked {
                marker::begin::<KERNEL>();
            }
            clahe.apply(k, p, black_box(&mut work));
            if marked {
                marker::end::<KERNEL>();
            }
        }
        r.region(
            KERNEL,
            format!(
                "CLAHE 2.0 8x8 on 224x224 (scalar in both: tile histograms, tables, clahe_row)/{t}"
            ),
        );
    }
    let regions = [
        ("rgb24_to_gray", "rgb24_to_gray 640x480".to_string()),
        ("bgr24_to_gray", "bgr24_to_gray 640x480".into()),
        ("xrgb8888_to_gray", "xrgb8888_to_gray 640x480".into()),
        ("yuyv_to_gray", "yuyv_to_gray 640x480".into()),
        ("uyvy_to_gray", "uyvy_to_gray 640x480".into()),
        ("window_u16", format!("window_u16 {cw}x{ch}")),
        ("minmax_u16", format!("minmax_u16 {cw}x{ch}")),
        ("lut_in_place", "lut_in_place 640x480".into()),
        ("lut_to_i8", "lut_to_i8 224x224".into()),
        ("histogram_add", "histogram_add 640x480".into()),
        (
            "resize_vertical",
            "resize_vertical 640 columns x 3 taps x 224 rows".into(),
        ),
        (
            "resize_horizontal",
            "resize_horizontal 640 to 430 x 322 rows".into(),
        ),
        ("rgb_to_xrgb8888", "rgb_to_xrgb8888 640x480".into()),
    ];
    if let Some(t) = twins.iter().find(|t| !regions.iter().any(|(k, _)| k == *t)) {
        bail!("the NEON kernel {t} has no region here: measure it against its twin");
    }
    let twin_regions: serde_json::Map<String, Value> = regions
        .into_iter()
        .filter(|(k, _)| twins.contains(k))
        .map(|(k, region)| (k.to_string(), json!(region)))
        .collect();
    r.extra.insert("twins".into(), Value::Object(twin_regions));
    Ok(())
}

fn main() -> Result<()> {
    let Some(name) = std::env::args().nth(1) else {
        bail!("usage: icount_workload WORKLOAD (or `list`)");
    };
    if name == "list" {
        for w in WORKLOADS {
            println!("{w}");
        }
        return Ok(());
    }
    // The plugin counts every guest thread's instructions inside a region.
    // Decoding the cine's JPEG frames runs on rayon's global pool, whose idle
    // workers go on spinning (stealing) for a while after; with their own
    // threads that spinning landed in whichever region came next, +2% at
    // random on a 113k-instruction region. A pool made of this thread alone
    // runs the same jobs here, and no other thread exists.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build_global()
        .context("rayon's global pool on this thread")?;
    let mut r = Report::default();
    match name.as_str() {
        "chain-yuyv640x480" => chain(&echo_yuyv()?, "YUYV 640x480", &mut r)?,
        "chain-chest-y16" => {
            let f = chest_full()?;
            let what = format!("RG1_UNCR Y16 {}x{} (VOI window)", f.width(), f.height());
            chain(&f, &what, &mut r)?
        }
        "xray-demo-int8" => bundle_frame("xray-demo", Precision::Int8, &mut r)?,
        "xray-demo-f32" => bundle_frame("xray-demo", Precision::F32, &mut r)?,
        "echo-ae-demo-int8" => bundle_frame("echo-ae-demo", Precision::Int8, &mut r)?,
        "echo-ae-demo-f32" => bundle_frame("echo-ae-demo", Precision::F32, &mut r)?,
        "anomaly-features" => anomaly_features(&mut r)?,
        "overlay-640x480" => overlay_only((640, 480), &mut r)?,
        "overlay-1920x1080" => overlay_only((1920, 1080), &mut r)?,
        "kernels" => kernel_calls(&mut r)?,
        other => match other.strip_prefix("net-").and_then(|n| n.rsplit_once('-')) {
            Some((net, "int8")) => net_inference(net, Precision::Int8, &mut r)?,
            Some((net, "f32")) => net_inference(net, Precision::F32, &mut r)?,
            _ => bail!("unknown workload {other:?} (`icount_workload list` names them)"),
        },
    }
    let mut out = json!({
        "workload": name,
        "kernel_table": kernels::kernels().name,
        "regions": r.regions,
    });
    if let Some(o) = out.as_object_mut() {
        o.extend(r.extra);
    }
    println!("{out}");
    Ok(())
}
