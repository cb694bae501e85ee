//! Display: the overlay draws the picture and the verdict into a [`Canvas`];
//! a [`FrameSink`] puts the canvas somewhere.
//!
//! - [`headless`]: PNG files (every Nth frame) and a contact sheet
//! - [`fbdev`]: a Linux framebuffer (`/dev/fbN`, HDMI on the boards), with
//!   [`console`] (text console in graphics mode while we draw)
//! - [`damage`]: which rectangles changed since the last frame; [`pixels`]:
//!   RGB888 to the screen's pixel format
//! - [`spi`]: an SPI LCD panel (ST7789, ILI9341) through mipidsi
//! - `none`: discard (benchmarks, log-only runs)
//!
//! [`alarm_signal`] decides how alarms and technical conditions look.

pub mod alarm_signal;
pub mod colour;
pub mod console;
pub mod damage;
pub mod fbdev;
pub mod headless;
pub mod overlay;
pub mod pixels;
pub mod refusal;
pub mod spi;

use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use overlay::{
    Canvas, Overlay, OverlayInfo, Picture, RESULT_VALIDITY_US, Recording, Status, result_status,
};

use crate::frame::FrameMeta;

#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    #[error("{}: cannot write PNG: {reason}", path.display())]
    Png { path: PathBuf, reason: String },
}

impl DisplayError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> DisplayError {
        DisplayError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where rendered frames go.
pub trait FrameSink: Send {
    fn describe(&self) -> String;
    /// The canvas size this sink wants.
    fn size(&self) -> (u32, u32);
    fn show(&mut self, canvas: &Canvas, meta: &FrameMeta) -> Result<(), DisplayError>;
    /// The panel's diagonal in inches, when this sink knows it (a headless
    /// preview's `?diagonal_in=`): it sizes the alarm banner's lettering.
    fn diagonal_in(&self) -> Option<f32> {
        None
    }
    /// Bytes sent to the screen so far (what change tracking saves).
    fn bytes_written(&self) -> u64 {
        0
    }
    /// Called once at the end; returns files written, if any.
    fn finish(&mut self) -> Result<Vec<PathBuf>, DisplayError> {
        Ok(Vec::new())
    }
}

/// Discards frames.
pub struct NoneSink;

impl FrameSink for NoneSink {
    fn describe(&self) -> String {
        "none".into()
    }
    fn size(&self) -> (u32, u32) {
        (640, 480)
    }
    fn show(&mut self, _: &Canvas, _: &FrameMeta) -> Result<(), DisplayError> {
        Ok(())
    }
}

/// A display as written on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisplaySpec {
    Fbdev(PathBuf),
    Spi(spi::SpiConfig),
    Headless(headless::HeadlessSpec),
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum BadDisplaySpec {
    #[error(
        "unknown display '{0}': expected fbdev:/dev/fbN, spi:/dev/spidevB.C?panel=..., headless:DIR[?size=WxH&diagonal_in=D] or none"
    )]
    Unknown(String),
    #[error("{0}")]
    Headless(String),
    #[error(transparent)]
    Spi(#[from] spi::BadSpiConfig),
}

impl FromStr for DisplaySpec {
    type Err = BadDisplaySpec;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadDisplaySpec::Unknown(s.to_string());
        match s.split_once(':') {
            Some(("fbdev", p)) if !p.is_empty() => Ok(DisplaySpec::Fbdev(p.into())),
            Some(("spi", p)) if !p.is_empty() => Ok(DisplaySpec::Spi(p.parse()?)),
            Some(("headless", p)) if !p.is_empty() => Ok(DisplaySpec::Headless(
                p.parse().map_err(BadDisplaySpec::Headless)?,
            )),
            None if s == "none" => Ok(DisplaySpec::None),
            _ => Err(bad()),
        }
    }
}

/// Opens the sink a spec names. `every` applies to headless output.
pub fn open(spec: &DisplaySpec, every: u64) -> Result<Box<dyn FrameSink>, DisplayError> {
    Ok(match spec {
        DisplaySpec::Fbdev(p) => Box::new(fbdev::FbdevSink::open(p)?),
        DisplaySpec::Headless(spec) => Box::new(headless::HeadlessSink::new(spec, every)?),
        DisplaySpec::None => Box::new(NoneSink),
        DisplaySpec::Spi(config) => Box::new(spi::SpiSink::open(config)?),
    })
}
