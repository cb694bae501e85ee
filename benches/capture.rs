//! Capture speed on real pictures:
//!
//! - `mjpeg/1280x720_to_gray`: the real echo frame scaled to 1280x720 and
//!   encoded as a baseline JPEG at quality 85 (what a USB HDMI grabber sends
//!   for 720p), decoded to luma; `.../no_huffman_tables` is the same frame
//!   abbreviated as many UVC devices send it (Annex K tables spliced in).
//! - `dicom/echo_cine_frame`: one frame of the demo echo cine (JPEG
//!   baseline, YBR, 320x240), decoded to a frame as the replay does it.
//! - `dicom/us_cine_480x640_frame`: one frame of the full-size real echo
//!   cine `color3d_jpeg_baseline.dcm` (120 frames, from `scripts/fetch-data`;
//!   skipped with a note when it is missing).
//! - `v4l2/assemble_yuyv_1280x720`: a dequeued buffer to a frame (cut,
//!   sequence and time accounting, copy into a pooled buffer).
//!
//! `cargo bench --bench capture [-- FILTER]`

use std::hint::black_box;
use std::path::{Path, PathBuf};

use bedside::capture::FrameSource;
use bedside::capture::dicom::DicomSource;
use bedside::capture::mjpeg::MjpegDecoder;
use bedside::capture::v4l2::CaptureFormat;
use bedside::capture::v4l2::assemble::{BufferInfo, FrameAssembler, Geometry};
use bedside::preprocess::GrayImage;
use bedside::preprocess::convert::Converter;
use bedside::preprocess::kernels::GENERIC;
use bedside::preprocess::resize::ResizePlan;
use criterion::{Criterion, criterion_group, criterion_main};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The real echo frame as 1280x720 gray.
fn echo_720p() -> Vec<u8> {
    let frame = DicomSource::open(&root().join("assets/demo/echo_cine.dcm"))
        .expect("demo cine")
        .next_frame()
        .expect("decodes")
        .expect("a frame");
    let mut g = GrayImage::default();
    Converter::default().run(&GENERIC, &frame, &mut g);
    let mut big = vec![0u8; 1280 * 720];
    ResizePlan::new((g.width, g.height), (1280, 720)).run(&GENERIC, &g.data, &mut big);
    big
}

/// Removes the DHT segments (an abbreviated MJPEG frame).
fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut pos = 2;
    while jpeg[pos + 1] != 0xDA {
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        if jpeg[pos + 1] != 0xC4 {
            out.extend_from_slice(&jpeg[pos..pos + 2 + len]);
        }
        pos += 2 + len;
    }
    out.extend_from_slice(&jpeg[pos..]);
    out
}

fn mjpeg(c: &mut Criterion) {
    let gray = echo_720p();
    // Colour as a grabber sends it: the gray picture in all three channels.
    let rgb: Vec<u8> = gray.iter().flat_map(|&v| [v, v, v]).collect();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode(&rgb, 1280, 720, image::ExtendedColorType::Rgb8)
        .expect("encodes");
    let abbreviated = strip_dht(&jpeg);
    let mut decoder = MjpegDecoder::new();
    let mut out = Vec::new();
    let mut g = c.benchmark_group("mjpeg");
    g.bench_function("1280x720_to_gray", |b| {
        b.iter(|| {
            decoder
                .decode_gray(black_box(&jpeg), &mut out)
                .expect("decodes")
        })
    });
    g.bench_function("1280x720_to_gray/no_huffman_tables", |b| {
        b.iter(|| {
            decoder
                .decode_gray(black_box(&abbreviated), &mut out)
                .expect("decodes")
        })
    });
    g.finish();
}

fn data_file(name: &str) -> Option<PathBuf> {
    let data = std::env::var_os("BEDSIDE_DATA")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bedside/data"))
        })?;
    let path = data.join("pydicom-data/data_store/data").join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "note: {} is missing (run scripts/fetch-data); skipped",
            path.display()
        );
        None
    }
}

/// Decodes frames of a cine in turn, starting again at its end.
fn cine_frames(c: &mut Criterion, name: &str, path: &Path) {
    let bytes = std::fs::read(path).expect("readable");
    let mut src = DicomSource::from_bytes(path, &bytes).expect("parses");
    c.bench_function(name, |b| {
        b.iter(|| match src.next_frame().expect("decodes") {
            Some(f) => black_box(f),
            None => {
                src = DicomSource::from_bytes(path, &bytes).expect("parses");
                src.next_frame().expect("decodes").expect("a frame")
            }
        })
    });
}

fn dicom(c: &mut Criterion) {
    cine_frames(
        c,
        "dicom/echo_cine_frame",
        &root().join("assets/demo/echo_cine.dcm"),
    );
    if let Some(path) = data_file("color3d_jpeg_baseline.dcm") {
        cine_frames(c, "dicom/us_cine_480x640_frame", &path);
    }
}

fn v4l2(c: &mut Criterion) {
    let (w, h) = (1280u32, 720u32);
    let mut a = FrameAssembler::new(Geometry {
        format: CaptureFormat::Yuyv,
        width: w,
        height: h,
        stride: w as usize * 2,
    })
    .expect("valid geometry");
    let buffer: Vec<u8> = (0..(w * h * 2) as usize + 4096)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut seq = 0u32;
    c.bench_function("v4l2/assemble_yuyv_1280x720", |b| {
        b.iter(|| {
            let info = BufferInfo {
                bytesused: w * h * 2,
                sequence: seq,
                error_flag: false,
                timestamp_us: u64::from(seq) * 16_667,
            };
            seq = seq.wrapping_add(1);
            let frame = a
                .assemble(black_box(&buffer), info)
                .expect("fits")
                .expect("not flagged");
            a.recycle(frame);
        })
    });
}

criterion_group!(benches, mjpeg, dicom, v4l2);
criterion_main!(benches);
