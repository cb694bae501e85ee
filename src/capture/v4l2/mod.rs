//! V4L2 capture devices (HDMI/SDI grabbers, cameras) through the `v4l` crate.
//!
//! The device-free logic is always built and unit-tested: [`formats`] (which
//! format to ask for), [`assemble`] (buffers to frames: cutting, drops,
//! timing, MJPEG, buffer reuse) and [`reconnect`] (backoff, stable names).
//! The device itself ([`V4l2Source`]) needs the cargo feature `v4l2` (its
//! bindings need libclang at build time); without it, opening a device
//! returns [`CaptureError::NotEnabled`]. qemu-user has no V4L2, so the
//! device path is exercised by the full-system test (a real kernel with vivid).

pub mod assemble;
#[cfg(feature = "v4l2")]
pub mod dv;
pub mod formats;
pub mod reconnect;

#[cfg(feature = "v4l2")]
mod device;
#[cfg(feature = "v4l2")]
pub use device::{V4l2Source, list_devices};

pub use formats::CaptureFormat;

#[cfg(not(feature = "v4l2"))]
pub use disabled::{V4l2Source, list_devices};

/// One video device as `bedside devices` shows it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DeviceInfo {
    pub path: std::path::PathBuf,
    /// Stable names pointing at this node (`/dev/v4l/by-id/...`).
    pub stable_names: Vec<std::path::PathBuf>,
    pub driver: String,
    pub card: String,
    pub bus: String,
    /// False for metadata and output nodes (a UVC device's second node).
    pub can_capture: bool,
    pub formats: Vec<FormatInfo>,
    /// Why the device could not be queried, if it could not.
    pub error: Option<String>,
}

/// A format a device offers, with its sizes and frame rates.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FormatInfo {
    pub fourcc: String,
    pub description: String,
    /// Whether bedside can take this format.
    pub supported: bool,
    pub sizes: Vec<SizeInfo>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SizeInfo {
    /// "1920x1080", or "320x240 - 1920x1080 step 8x8" for stepwise sizes.
    pub size: String,
    /// Frame rates, e.g. "30", "29.97", or "1 - 60" for stepwise intervals.
    pub fps: Vec<String>,
}

/// Frames per second of a V4L2 frame interval (seconds per frame).
pub fn fps_text(numerator: u32, denominator: u32) -> String {
    if numerator == 0 {
        return "?".into();
    }
    let fps = f64::from(denominator) / f64::from(numerator);
    if (fps - fps.round()).abs() < 0.005 {
        format!("{}", fps.round())
    } else {
        format!("{fps:.2}")
    }
}

#[cfg(not(feature = "v4l2"))]
mod disabled {
    use std::path::Path;

    use super::DeviceInfo;
    use crate::capture::{CaptureError, FrameSource, SourceOptions};

    /// Without the `v4l2` feature there is no device support, only a clear error.
    pub struct V4l2Source {
        _private: (),
    }

    impl V4l2Source {
        pub fn open(_device: &Path, _opts: &SourceOptions) -> Result<V4l2Source, CaptureError> {
            Err(not_enabled())
        }
    }

    fn not_enabled() -> CaptureError {
        CaptureError::NotEnabled {
            what: "V4L2 capture",
            feature: "v4l2",
        }
    }

    /// Listing devices needs the V4L2 bindings too.
    pub fn list_devices() -> Result<Vec<DeviceInfo>, CaptureError> {
        Err(not_enabled())
    }

    impl FrameSource for V4l2Source {
        fn describe(&self) -> String {
            "V4L2 (not enabled)".into()
        }
        fn next_frame(&mut self) -> Result<Option<crate::frame::Frame>, CaptureError> {
            Err(not_enabled())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_read_as_people_write_them() {
        assert_eq!(fps_text(1, 30), "30");
        assert_eq!(fps_text(1001, 30000), "29.97");
        assert_eq!(fps_text(1, 5), "5");
        assert_eq!(fps_text(0, 30), "?");
    }
}
