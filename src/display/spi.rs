//! SPI LCD panels (ST7789, ILI9341) on the board's header, through mipidsi
//! over linux-embedded-hal (`/dev/spidevB.C` and GPIO character devices).
//!
//! Written as `spi:/dev/spidev0.0?panel=st7789&dc=25&rst=27&bl=18&rotate=90`
//! (see [`SpiConfig`]). Only the rectangles that changed since the last frame
//! are sent ([`super::damage`]): at 40 MHz a whole 320x240 RGB565 frame is
//! 31 ms of bus time, most frames change a few percent of it. Transfers are
//! at most `bufsiz` bytes (default 4096, the spidev driver's own limit; raise
//! it with `spidev.bufsiz=` on the kernel command line and `bufsiz=` here).
//!
//! The panel logic is generic over embedded-hal's `SpiDevice` and
//! `OutputPin`, so tests drive it with a virtual panel that decodes the MIPI
//! DCS stream (`tests` below).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use embedded_graphics::pixelcolor::Rgb565;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::spi::SpiDevice;
use mipidsi::interface::SpiInterface;
use mipidsi::models::{ILI9341Rgb565, Model, ST7789};
use mipidsi::options::{ColorInversion, ColorOrder, Orientation, Rotation};
use mipidsi::{Builder, Display, NoResetPin};

use super::damage::DamageTracker;
use super::{Canvas, DisplayError, FrameSink};
use crate::frame::FrameMeta;

/// Panel controllers we drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanelModel {
    St7789,
    Ili9341,
}

/// An SPI panel as the display spec describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpiConfig {
    pub device: PathBuf,
    pub panel: PanelModel,
    /// Native (portrait) size of the glass.
    pub width: u16,
    pub height: u16,
    /// Clockwise degrees: 0, 90, 180 or 270.
    pub rotate: u16,
    /// GPIO line numbers on `gpiochip`.
    pub dc: u32,
    pub reset: Option<u32>,
    pub backlight: Option<u32>,
    pub gpiochip: PathBuf,
    pub hz: u32,
    /// Largest single SPI transfer in bytes.
    pub bufsiz: usize,
    /// Most ST7789 modules need inverted colours, most ILI9341 ones do not.
    pub invert: bool,
    pub bgr: bool,
}

impl SpiConfig {
    /// The canvas size after rotation.
    pub fn logical_size(&self) -> (u32, u32) {
        let (w, h) = (u32::from(self.width), u32::from(self.height));
        if self.rotate % 180 == 90 {
            (h, w)
        } else {
            (w, h)
        }
    }
}

/// Why a display spec's SPI options are wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("spi display: {0}")]
pub struct BadSpiConfig(pub String);

impl FromStr for SpiConfig {
    type Err = BadSpiConfig;
    /// `/dev/spidevB.C?panel=st7789|ili9341&dc=N[&rst=N][&bl=N][&rotate=0|90|180|270]
    /// [&size=WxH][&hz=N][&bufsiz=N][&invert=0|1][&bgr=0|1][&gpiochip=/dev/gpiochipN]`
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |m: String| BadSpiConfig(m);
        let (device, query) = s.split_once('?').unwrap_or((s, ""));
        if device.is_empty() {
            return Err(bad(
                "no device (expected spi:/dev/spidevB.C?panel=...&dc=N)".into(),
            ));
        }
        let mut panel = None;
        let mut c = SpiConfig {
            device: device.into(),
            panel: PanelModel::St7789,
            width: 240,
            height: 320,
            rotate: 0,
            dc: u32::MAX,
            reset: None,
            backlight: None,
            gpiochip: "/dev/gpiochip0".into(),
            hz: 32_000_000,
            bufsiz: 4096,
            invert: true,
            bgr: false,
        };
        let mut invert = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("'{pair}' is not key=value")))?;
            let num = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| bad(format!("{k}={v}: not a number")))
            };
            let flag = |v: &str| match v {
                "1" | "true" => Ok(true),
                "0" | "false" => Ok(false),
                _ => Err(bad(format!("{k}={v}: expected 0 or 1"))),
            };
            match k {
                "panel" => {
                    panel = Some(match v {
                        "st7789" => PanelModel::St7789,
                        "ili9341" => PanelModel::Ili9341,
                        _ => return Err(bad(format!("panel '{v}': expected st7789 or ili9341"))),
                    })
                }
                "dc" => c.dc = num(v)?,
                "rst" => c.reset = Some(num(v)?),
                "bl" => c.backlight = Some(num(v)?),
                "rotate" => {
                    c.rotate = match num(v)? {
                        r @ (0 | 90 | 180 | 270) => r as u16,
                        r => return Err(bad(format!("rotate={r}: expected 0, 90, 180 or 270"))),
                    }
                }
                "size" => {
                    let (w, h) = v
                        .split_once('x')
                        .ok_or_else(|| bad(format!("size={v}: expected WxH")))?;
                    let side = |x: &str| match x.parse::<u16>() {
                        Ok(n) if (16..=320).contains(&n) => Ok(n),
                        _ => Err(bad(format!("size={v}: sides must be 16..320"))),
                    };
                    (c.width, c.height) = (side(w)?, side(h)?);
                }
                "hz" => match num(v)? {
                    hz @ 100_000..=100_000_000 => c.hz = hz,
                    hz => return Err(bad(format!("hz={hz}: expected 100000..100000000"))),
                },
                "bufsiz" => match num(v)? {
                    n @ 64..=65536 => c.bufsiz = n as usize,
                    n => return Err(bad(format!("bufsiz={n}: expected 64..65536"))),
                },
                "invert" => invert = Some(flag(v)?),
                "bgr" => c.bgr = flag(v)?,
                "gpiochip" => c.gpiochip = v.into(),
                _ => return Err(bad(format!("unknown option '{k}'"))),
            }
        }
        c.panel = panel.ok_or_else(|| bad("panel= is required (st7789 or ili9341)".into()))?;
        if c.dc == u32::MAX {
            return Err(bad("dc= (the data/command GPIO line) is required".into()));
        }
        c.invert = invert.unwrap_or(c.panel == PanelModel::St7789);
        Ok(c)
    }
}

type Interface<S, P> = SpiInterface<'static, S, P>;

/// The two controllers behind one type.
enum Panel<S: SpiDevice, P: OutputPin> {
    St7789(Display<Interface<S, P>, ST7789, NoResetPin>),
    Ili9341(Display<Interface<S, P>, ILI9341Rgb565, NoResetPin>),
}

/// A panel showing canvases, sending only what changed.
pub struct SpiPanel<S: SpiDevice, P: OutputPin> {
    panel: Panel<S, P>,
    size: (u32, u32),
    damage: DamageTracker,
    /// Pixel bytes plus the 11 command bytes (CASET, RASET, RAMWR) per rectangle.
    bytes_written: u64,
    _backlight: Option<P>,
}

/// What both controllers are set up with.
struct PanelOptions {
    width: u16,
    height: u16,
    orientation: Orientation,
    inversion: ColorInversion,
    order: ColorOrder,
}

/// Initializes a controller of `model` (the same steps for every model).
fn build<S: SpiDevice, P: OutputPin, M: Model<ColorFormat = Rgb565>>(
    model: M,
    di: Interface<S, P>,
    o: &PanelOptions,
    delay: &mut impl DelayNs,
    name: &str,
) -> Result<Display<Interface<S, P>, M, NoResetPin>, String> {
    Builder::new(model, di)
        .display_size(o.width, o.height)
        .orientation(o.orientation)
        .invert_colors(o.inversion)
        .color_order(o.order)
        .init(delay)
        .map_err(|e| init_error(&format!("{name} init"), e))
}

fn init_error(what: &str, e: impl std::fmt::Debug) -> String {
    format!("{what}: {e:?}")
}

impl<S: SpiDevice, P: OutputPin> SpiPanel<S, P> {
    /// Resets (when a reset line is wired) and initializes the controller.
    /// `buffer` is the transfer buffer (its length is the largest transfer).
    pub fn new(
        spi: S,
        dc: P,
        reset: Option<P>,
        backlight: Option<P>,
        config: &SpiConfig,
        buffer: &'static mut [u8],
        delay: &mut impl DelayNs,
    ) -> Result<SpiPanel<S, P>, String> {
        if let Some(mut rst) = reset {
            rst.set_low().map_err(|e| init_error("reset line", e))?;
            delay.delay_us(20);
            rst.set_high().map_err(|e| init_error("reset line", e))?;
            delay.delay_ms(120);
        }
        let di = SpiInterface::new(spi, dc, buffer);
        let rotation = match config.rotate {
            90 => Rotation::Deg90,
            180 => Rotation::Deg180,
            270 => Rotation::Deg270,
            _ => Rotation::Deg0,
        };
        let orientation = Orientation::new().rotate(rotation);
        let inversion = if config.invert {
            ColorInversion::Inverted
        } else {
            ColorInversion::Normal
        };
        let order = if config.bgr {
            ColorOrder::Bgr
        } else {
            ColorOrder::Rgb
        };
        let options = PanelOptions {
            width: config.width,
            height: config.height,
            orientation,
            inversion,
            order,
        };
        let panel = match config.panel {
            PanelModel::St7789 => Panel::St7789(build(ST7789, di, &options, delay, "ST7789")?),
            PanelModel::Ili9341 => {
                Panel::Ili9341(build(ILI9341Rgb565, di, &options, delay, "ILI9341")?)
            }
        };
        let mut backlight = backlight;
        if let Some(bl) = backlight.as_mut() {
            bl.set_high().map_err(|e| init_error("backlight line", e))?;
        }
        let size = config.logical_size();
        Ok(SpiPanel {
            panel,
            size,
            damage: DamageTracker::new(size.0, size.1),
            bytes_written: 0,
            _backlight: backlight,
        })
    }

    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Sends the parts of `canvas` that changed.
    pub fn show(&mut self, canvas: &Canvas) -> Result<(), String> {
        let (w, h) = self.size;
        for r in self.damage.update(canvas) {
            if r.x >= w || r.y >= h {
                continue;
            }
            let (x1, y1) = ((r.x + r.width).min(w) - 1, (r.y + r.height).min(h) - 1);
            let cw = canvas.width as usize;
            let pixels = (r.y..=y1).flat_map(|y| {
                let row = &canvas.rgb
                    [(y as usize * cw + r.x as usize) * 3..(y as usize * cw + x1 as usize + 1) * 3];
                row.chunks_exact(3)
                    .map(|p| Rgb565::new(p[0] >> 3, p[1] >> 2, p[2] >> 3))
            });
            let (x0, y0) = (r.x as u16, r.y as u16);
            let sent = match &mut self.panel {
                Panel::St7789(d) => d.set_pixels(x0, y0, x1 as u16, y1 as u16, pixels),
                Panel::Ili9341(d) => d.set_pixels(x0, y0, x1 as u16, y1 as u16, pixels),
            };
            sent.map_err(|e| format!("SPI write: {e:?}"))?;
            self.bytes_written += u64::from(x1 - r.x + 1) * u64::from(y1 - r.y + 1) * 2 + 11;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    use std::io::Write;

    use embedded_hal::spi::{ErrorType, Operation};
    use linux_embedded_hal::spidev::{SpiModeFlags, Spidev, SpidevOptions};
    use linux_embedded_hal::{CdevPin, Delay, SPIError};

    use super::*;

    /// spidev driven with one `write(2)` per transfer. linux-embedded-hal's
    /// `SpidevDevice` builds a `Vec` of transfers for every transaction (an
    /// allocation per SPI write); mipidsi only ever writes, and a write on a
    /// spidev node is one half-duplex transfer of at most `bufsiz` bytes.
    pub struct SpidevWriter(Spidev);

    impl ErrorType for SpidevWriter {
        type Error = SPIError;
    }

    impl SpiDevice for SpidevWriter {
        fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), SPIError> {
            for op in operations {
                match op {
                    Operation::Write([]) => {}
                    Operation::Write(bytes) => self.0.write_all(bytes)?,
                    _ => return Err(std::io::Error::from(std::io::ErrorKind::Unsupported).into()),
                }
            }
            Ok(())
        }
    }

    /// An SPI panel on this board's spidev and GPIO lines.
    pub struct SpiSink {
        config: SpiConfig,
        panel: SpiPanel<SpidevWriter, CdevPin>,
    }

    fn io(path: &Path, e: impl std::fmt::Display) -> DisplayError {
        DisplayError::Unsupported {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }

    fn output(
        chip: &mut Chip,
        path: &Path,
        line: u32,
        what: &str,
        initial: u8,
    ) -> Result<CdevPin, DisplayError> {
        let handle = chip
            .get_line(line)
            .and_then(|l| l.request(LineRequestFlags::OUTPUT, initial, "bedside"))
            .map_err(|e| io(path, format!("GPIO line {line} ({what}): {e}")))?;
        CdevPin::new(handle).map_err(|e| io(path, format!("GPIO line {line} ({what}): {e}")))
    }

    impl SpiSink {
        pub fn open(config: &SpiConfig) -> Result<SpiSink, DisplayError> {
            let dev = &config.device;
            if !dev.exists() {
                return Err(DisplayError::io(
                    dev,
                    std::io::Error::from_raw_os_error(libc::ENOENT),
                ));
            }
            let mut spi = Spidev::open(dev).map_err(|e| io(dev, e))?;
            let options = SpidevOptions::new()
                .bits_per_word(8)
                .max_speed_hz(config.hz)
                .mode(SpiModeFlags::SPI_MODE_0)
                .build();
            spi.configure(&options)
                .map_err(|e| io(dev, format!("configure: {e}")))?;
            let chip_path = &config.gpiochip;
            let mut chip = Chip::new(chip_path).map_err(|e| io(chip_path, e))?;
            let dc = output(&mut chip, chip_path, config.dc, "dc", 0)?;
            let reset = config
                .reset
                .map(|l| output(&mut chip, chip_path, l, "reset", 1))
                .transpose()?;
            let backlight = config
                .backlight
                .map(|l| output(&mut chip, chip_path, l, "backlight", 0))
                .transpose()?;
            // The transfer buffer lives as long as the panel, which is the
            // rest of the run: leaked once rather than made self-referential.
            let buffer: &'static mut [u8] = Box::leak(vec![0u8; config.bufsiz].into_boxed_slice());
            let panel = SpiPanel::new(
                SpidevWriter(spi),
                dc,
                reset,
                backlight,
                config,
                buffer,
                &mut Delay,
            )
            .map_err(|e| io(dev, e))?;
            tracing::info!(device = %dev.display(), "{:?} panel {}x{} at {} Hz", config.panel, panel.size().0, panel.size().1, config.hz);
            Ok(SpiSink {
                config: config.clone(),
                panel,
            })
        }
    }

    impl FrameSink for SpiSink {
        fn describe(&self) -> String {
            let (w, h) = self.panel.size();
            format!(
                "SPI {:?} {} {w}x{h}",
                self.config.panel,
                self.config.device.display()
            )
        }
        fn size(&self) -> (u32, u32) {
            self.panel.size()
        }
        fn show(&mut self, canvas: &Canvas, _: &FrameMeta) -> Result<(), DisplayError> {
            self.panel
                .show(canvas)
                .map_err(|e| io(&self.config.device, e))
        }
        fn bytes_written(&self) -> u64 {
            self.panel.bytes_written()
        }
    }
}

#[cfg(target_os = "linux")]
pub use linux::SpiSink;

#[cfg(test)]
pub(crate) mod virtual_panel;

#[cfg(test)]
mod tests {
    use super::virtual_panel::{VirtualPanel, delay};
    use super::*;

    fn config(spec: &str) -> SpiConfig {
        spec.parse().unwrap()
    }

    #[test]
    fn specs_parse_with_defaults_and_clear_errors() {
        let c = config("/dev/spidev0.0?panel=ili9341&dc=25&rst=27&rotate=90");
        assert_eq!(
            (c.panel, c.dc, c.reset, c.rotate, c.invert),
            (PanelModel::Ili9341, 25, Some(27), 90, false)
        );
        assert_eq!(c.logical_size(), (320, 240));
        assert!(config("/dev/spidev0.0?panel=st7789&dc=9").invert);
        for (bad, says) in [
            ("/dev/spidev0.0?dc=25", "panel= is required"),
            ("/dev/spidev0.0?panel=st7789", "dc="),
            ("/dev/spidev0.0?panel=ssd1306&dc=1", "ssd1306"),
            ("/dev/spidev0.0?panel=st7789&dc=1&rotate=45", "rotate=45"),
            ("/dev/spidev0.0?panel=st7789&dc=1&size=999x10", "size"),
            (
                "/dev/spidev0.0?panel=st7789&dc=1&speed=3",
                "unknown option 'speed'",
            ),
            ("?panel=st7789&dc=1", "no device"),
        ] {
            let e = bad.parse::<SpiConfig>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// A canvas with something in every corner, so that a wrong window,
    /// order or rotation shows.
    fn picture(w: u32, h: u32, t: u8) -> Canvas {
        let mut c = Canvas::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let i = ((y * w + x) * 3) as usize;
                c.rgb[i..i + 3].copy_from_slice(&[
                    (x * 255 / w) as u8,
                    (y * 255 / h) as u8,
                    t.wrapping_add((x ^ y) as u8),
                ]);
            }
        }
        c
    }

    fn check(spec: &str) {
        let cfg = config(spec);
        let (panel, spi, dc) = VirtualPanel::new(cfg.bufsiz);
        let buffer: &'static mut [u8] = Box::leak(vec![0u8; cfg.bufsiz].into_boxed_slice());
        let mut sink = SpiPanel::new(spi, dc, None, None, &cfg, buffer, &mut delay()).unwrap();
        let (w, h) = sink.size();
        assert_eq!((w, h), cfg.logical_size());
        let mut c = picture(w, h, 0);
        sink.show(&c).unwrap();
        assert_eq!(
            panel.logical_rgb565(w, h),
            expected(&c),
            "{spec}: first frame"
        );
        let full = sink.bytes_written();
        // A small change: a 10x4 block.
        for y in 50..54 {
            for x in 100..110 {
                let i = ((y * w + x) * 3) as usize;
                c.rgb[i..i + 3].copy_from_slice(&[255, 0, 0]);
            }
        }
        sink.show(&c).unwrap();
        assert_eq!(
            panel.logical_rgb565(w, h),
            expected(&c),
            "{spec}: after a change"
        );
        let delta = sink.bytes_written() - full;
        assert_eq!(delta, 10 * 4 * 2 + 11, "{spec}: only the change is sent");
        assert!(
            panel.largest_transfer() <= cfg.bufsiz,
            "{spec}: transfers within bufsiz"
        );
        assert_eq!(
            panel.madctl_swaps_axes(),
            cfg.rotate % 180 == 90,
            "{spec}: MADCTL exchange bit"
        );
    }

    fn expected(c: &Canvas) -> Vec<u16> {
        c.rgb
            .chunks_exact(3)
            .map(|p| super::super::pixels::rgb565(p[0], p[1], p[2]))
            .collect()
    }

    #[test]
    fn st7789_and_ili9341_show_the_canvas_in_every_rotation() {
        for panel in ["st7789", "ili9341"] {
            for rotate in [0, 90, 180, 270] {
                check(&format!(
                    "/dev/spidev0.0?panel={panel}&dc=25&rotate={rotate}&bufsiz=1024"
                ));
            }
        }
    }
}
