//! Display speed on real frames (the demo echo cine), and what change
//! tracking saves on an SPI panel:
//!
//! - `overlay/render_640x480`: the ultrasound screen drawn (picture
//!   letterboxed, panel, score trace, banners);
//! - `convert/{xrgb8888,rgb565}_640x480`: a whole canvas to the screen's format;
//! - `display/overlay_and_{xrgb8888,rgb565}_640x480`: both, the budget of
//!   issue #7 (under 2 ms single-threaded on the x86 build machine);
//! - `spi/show_320x240`: a frame drawn and sent to an ST7789 through
//!   mipidsi, over an SPI device that only counts bytes.
//!
//! After the timings it prints the SPI bytes per frame over the 30 frames of
//! the cine, with change tracking and without (a whole frame each time).
//!
//! `cargo bench --bench display [-- FILTER]`

use std::hint::black_box;
use std::path::Path;

use bedside::analyze::{AnomalyVerdict, Verdict};
use bedside::capture::FrameSource;
use bedside::capture::dicom::DicomSource;
use bedside::display::pixels::{ScreenFormat, convert_row};
use bedside::display::spi::{SpiConfig, SpiPanel};
use bedside::display::{Canvas, Overlay, OverlayInfo, Status};
use bedside::preprocess::GrayImage;
use bedside::preprocess::convert::Converter;
use bedside::preprocess::kernels::kernels;
use criterion::{Criterion, criterion_group, criterion_main};

fn cine() -> Vec<GrayImage> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/echo_cine.dcm");
    let mut src = DicomSource::open(&path).expect("demo cine");
    let mut frames = Vec::new();
    while let Some(f) = src.next_frame().expect("decodes") {
        let mut g = GrayImage::default();
        Converter::default().run(kernels(), &f, &mut g);
        frames.push(g);
    }
    frames
}

fn info() -> OverlayInfo {
    OverlayInfo {
        mode: "ultrasound".into(),
        model_line: "echo-ae-demo 0.3.0 4f2a9c1e".into(),
        demonstration: true,
        labels: vec![],
    }
}

fn verdict(i: usize) -> Verdict {
    Verdict::Anomaly(AnomalyVerdict {
        score: 0.5 + 0.1 * (i % 7) as f32,
        warming_up: false,
        alarm: None,
        ..Default::default()
    })
}

fn convert(canvas: &Canvas, format: ScreenFormat, out: &mut [u8]) {
    let row_in = canvas.width as usize * 3;
    let row_out = canvas.width as usize * format.bytes_per_pixel();
    for (src, dst) in canvas
        .rgb
        .chunks_exact(row_in)
        .zip(out.chunks_exact_mut(row_out))
    {
        convert_row(src, format, dst);
    }
}

/// An SPI device and D/C line that only count what is sent.
struct CountingSpi(std::sync::Arc<std::sync::atomic::AtomicU64>);
struct NoPin;
struct NoDelay;

impl embedded_hal::spi::ErrorType for CountingSpi {
    type Error = core::convert::Infallible;
}
impl embedded_hal::spi::SpiDevice for CountingSpi {
    fn transaction(
        &mut self,
        ops: &mut [embedded_hal::spi::Operation<'_, u8>],
    ) -> Result<(), Self::Error> {
        for op in ops {
            if let embedded_hal::spi::Operation::Write(b) = op {
                self.0
                    .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
impl embedded_hal::digital::ErrorType for NoPin {
    type Error = core::convert::Infallible;
}
impl embedded_hal::digital::OutputPin for NoPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
impl embedded_hal::delay::DelayNs for NoDelay {
    fn delay_ns(&mut self, _: u32) {}
}

fn benches(c: &mut Criterion) {
    let frames = cine();
    let (w, h) = (640u32, 480u32);
    let mut overlay = Overlay::new((w, h), info());
    let mut i = 0;
    c.bench_function("overlay/render_640x480", |b| {
        b.iter(|| {
            i += 1;
            let v = verdict(i);
            black_box(overlay.render(
                &frames[i % frames.len()],
                Status::Result(&v),
                Some((30.0, 35.0)),
            ));
        })
    });
    let canvas = overlay.canvas().clone();
    for (name, format) in [
        ("xrgb8888", ScreenFormat::Xrgb8888),
        ("rgb565", ScreenFormat::Rgb565Le),
    ] {
        let mut out = vec![0u8; (w * h) as usize * format.bytes_per_pixel()];
        c.bench_function(&format!("convert/{name}_640x480"), |b| {
            b.iter(|| convert(black_box(&canvas), format, &mut out))
        });
        c.bench_function(&format!("display/overlay_and_{name}_640x480"), |b| {
            b.iter(|| {
                i += 1;
                let v = verdict(i);
                let canvas = overlay.render(
                    &frames[i % frames.len()],
                    Status::Result(&v),
                    Some((30.0, 35.0)),
                );
                convert(canvas, format, &mut out);
            })
        });
    }

    let config: SpiConfig = "/dev/spidev0.0?panel=st7789&dc=25&rotate=90"
        .parse()
        .expect("valid spec");
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; config.bufsiz].into_boxed_slice());
    let mut panel = SpiPanel::new(
        CountingSpi(sent.clone()),
        NoPin,
        None,
        None,
        &config,
        buffer,
        &mut NoDelay,
    )
    .expect("init");
    let size = panel.size();
    let mut small = Overlay::new(size, info());
    c.bench_function("spi/show_320x240", |b| {
        b.iter(|| {
            i += 1;
            let v = verdict(i);
            let canvas = small.render(
                &frames[i % frames.len()],
                Status::Result(&v),
                Some((30.0, 35.0)),
            );
            panel.show(canvas).expect("sent");
        })
    });
    // Bytes per frame over one pass of the cine, after a first full frame.
    let v = verdict(0);
    panel
        .show(small.render(&frames[0], Status::Result(&v), Some((30.0, 35.0))))
        .expect("sent");
    let before = sent.load(std::sync::atomic::Ordering::Relaxed);
    for (k, f) in frames.iter().enumerate() {
        let v = verdict(k);
        panel
            .show(small.render(f, Status::Result(&v), Some((30.0, 35.0))))
            .expect("sent");
    }
    let tracked = (sent.load(std::sync::atomic::Ordering::Relaxed) - before) / frames.len() as u64;
    let full = u64::from(size.0 * size.1) * 2 + 11;
    let bus_ms = |bytes: u64| bytes as f64 * 8.0 / f64::from(config.hz) * 1000.0;
    eprintln!(
        "spi bytes per frame ({}x{} RGB565, {} frames of the echo cine): {tracked} with change tracking, {full} without ({:.0}%); at {} MHz {:.1} ms against {:.1} ms of bus time",
        size.0,
        size.1,
        frames.len(),
        tracked as f64 * 100.0 / full as f64,
        config.hz / 1_000_000,
        bus_ms(tracked),
        bus_ms(full)
    );
}

criterion_group!(display, benches);
criterion_main!(display);
