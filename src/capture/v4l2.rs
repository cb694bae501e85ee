//! V4L2 capture devices (HDMI/SDI grabbers, cameras) through the `v4l` crate.
//!
//! Built only with the cargo feature `v4l2` (its bindings need libclang at build
//! time); without it, opening a device returns [`CaptureError::NotEnabled`].
//!
//! Sharp edges of `v4l` 0.14 handled here: `next()` blocks forever without a
//! timeout, so one is always set; it returns the whole mmap buffer, so frames are
//! cut to `bytesused`; and its stream `Drop` panics when STREAMOFF fails with
//! anything but ENODEV, so we stop the stream ourselves and never let that drop run
//! on a failed stop.

#[cfg(not(feature = "v4l2"))]
use std::path::Path;

#[cfg(not(feature = "v4l2"))]
use super::{CaptureError, FrameSource, SourceOptions};
#[cfg(feature = "v4l2")]
pub use imp::V4l2Source;

/// Without the `v4l2` feature there is no device support, only a clear error.
#[cfg(not(feature = "v4l2"))]
pub struct V4l2Source {
    _private: (),
}

#[cfg(not(feature = "v4l2"))]
impl V4l2Source {
    pub fn open(_device: &Path, _opts: &SourceOptions) -> Result<V4l2Source, CaptureError> {
        Err(CaptureError::NotEnabled {
            what: "V4L2 capture",
            feature: "v4l2",
        })
    }
}

#[cfg(not(feature = "v4l2"))]
impl FrameSource for V4l2Source {
    fn describe(&self) -> String {
        "V4L2 (not enabled)".into()
    }
    fn next_frame(&mut self) -> Result<Option<crate::frame::Frame>, CaptureError> {
        Err(CaptureError::NotEnabled {
            what: "V4L2 capture",
            feature: "v4l2",
        })
    }
}

#[cfg(feature = "v4l2")]
mod imp {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use v4l::buffer::{Flags, Type};
    use v4l::io::mmap::Stream;
    use v4l::io::traits::{CaptureStream, Stream as _};
    use v4l::video::Capture;
    use v4l::video::capture::Parameters;
    use v4l::{Device, FourCC};

    use super::super::{CaptureError, FrameSource, SourceOptions};
    use crate::frame::{Frame, FrameMeta, PixelFormat};

    /// How long `next_frame` waits before reporting [`CaptureError::Timeout`].
    const TIMEOUT: Duration = Duration::from_millis(2000);
    /// Formats we take, in order of preference.
    const FORMATS: &[(&[u8; 4], PixelFormat)] = &[
        (b"YUYV", PixelFormat::Yuyv),
        (b"UYVY", PixelFormat::Uyvy),
        (b"GREY", PixelFormat::Gray8),
        (b"NV12", PixelFormat::Nv12),
        (b"RGB3", PixelFormat::Rgb24),
        (b"BGR3", PixelFormat::Bgr24),
        (b"XR24", PixelFormat::Xrgb8888),
    ];
    const ENODEV: i32 = 19;

    pub struct V4l2Source {
        device: PathBuf,
        stream: Option<Stream<'static>>,
        _dev: Device,
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
        seq: u64,
        first_ts_us: Option<u64>,
        last_driver_seq: Option<u32>,
        /// Frames the driver skipped (sequence gaps).
        pub dropped: u64,
        /// Buffers flagged with V4L2_BUF_FLAG_ERROR, skipped.
        pub errored: u64,
    }

    impl V4l2Source {
        pub fn open(device: &Path, opts: &SourceOptions) -> Result<V4l2Source, CaptureError> {
            let dev_err = |e: std::io::Error| map_io(device, e);
            if !device.exists() {
                return Err(CaptureError::NotFound {
                    path: device.to_path_buf(),
                });
            }
            let dev = Device::with_path(device).map_err(dev_err)?;
            let mut chosen = None;
            for (fourcc, pf) in FORMATS {
                let mut fmt = dev.format().map_err(dev_err)?;
                fmt.width = opts.capture_size.0;
                fmt.height = opts.capture_size.1;
                fmt.fourcc = FourCC::new(fourcc);
                fmt.stride = 0;
                fmt.size = 0;
                let got = dev.set_format(&fmt).map_err(dev_err)?;
                if got.fourcc == FourCC::new(fourcc) {
                    chosen = Some((got, *pf));
                    break;
                }
            }
            let Some((fmt, format)) = chosen else {
                return Err(CaptureError::Unsupported {
                    path: device.to_path_buf(),
                    what: "capture format",
                    detail: "device offers none of YUYV, UYVY, GREY, NV12, RGB3, BGR3, XR24".into(),
                });
            };
            // Not every driver lets the rate be set; the stream still works.
            if let Err(e) = dev.set_params(&Parameters::with_fps(opts.capture_fps)) {
                tracing::warn!(device = %device.display(), "cannot set {} fps: {e}", opts.capture_fps);
            }
            let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, 4).map_err(dev_err)?;
            stream.set_timeout(TIMEOUT);
            tracing::info!(device = %device.display(), "capturing {}x{} {} (stride {})", fmt.width, fmt.height, fmt.fourcc, fmt.stride);
            Ok(V4l2Source {
                device: device.to_path_buf(),
                stream: Some(stream),
                _dev: dev,
                format,
                width: fmt.width,
                height: fmt.height,
                stride: fmt.stride as usize,
                seq: 0,
                first_ts_us: None,
                last_driver_seq: None,
                dropped: 0,
                errored: 0,
            })
        }
    }

    fn map_io(device: &Path, e: std::io::Error) -> CaptureError {
        match e.raw_os_error() {
            Some(ENODEV) => CaptureError::Disconnected {
                device: device.to_path_buf(),
            },
            _ if e.kind() == std::io::ErrorKind::TimedOut => CaptureError::Timeout {
                device: device.to_path_buf(),
                timeout_ms: TIMEOUT.as_millis() as u64,
            },
            _ => CaptureError::Device {
                device: device.to_path_buf(),
                reason: e.to_string(),
            },
        }
    }

    impl FrameSource for V4l2Source {
        fn describe(&self) -> String {
            format!(
                "V4L2 {} {}x{} {}",
                self.device.display(),
                self.width,
                self.height,
                self.format
            )
        }

        fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
            loop {
                let Some(stream) = self.stream.as_mut() else {
                    return Err(CaptureError::Disconnected {
                        device: self.device.clone(),
                    });
                };
                let (buf, meta) = stream.next().map_err(|e| map_io(&self.device, e))?;
                if meta.flags.contains(Flags::ERROR) {
                    self.errored += 1;
                    continue;
                }
                if let Some(last) = self.last_driver_seq {
                    self.dropped += u64::from(meta.sequence.wrapping_sub(last).saturating_sub(1));
                }
                self.last_driver_seq = Some(meta.sequence);
                let used = (meta.bytesused as usize).min(buf.len());
                let ts = meta.timestamp.sec as u64 * 1_000_000 + meta.timestamp.usec as u64;
                let first = *self.first_ts_us.get_or_insert(ts);
                let fmeta = FrameMeta {
                    seq: self.seq,
                    timestamp_us: ts.saturating_sub(first),
                };
                match Frame::new_checked(
                    buf[..used].to_vec(),
                    self.format,
                    self.width,
                    self.height,
                    self.stride,
                    fmeta,
                ) {
                    Ok(f) => {
                        self.seq += 1;
                        return Ok(Some(f));
                    }
                    Err(e) => {
                        // A short buffer from the driver: count it and wait for the next.
                        tracing::warn!(device = %self.device.display(), "skipping frame: {e}");
                        self.errored += 1;
                    }
                }
            }
        }
    }

    impl Drop for V4l2Source {
        fn drop(&mut self) {
            let Some(mut stream) = self.stream.take() else {
                return;
            };
            match stream.stop() {
                // After a successful stop (or ENODEV) the crate's Drop repeats STREAMOFF,
                // which succeeds again or reports ENODEV: it cannot panic.
                Ok(()) => drop(stream),
                Err(e) if e.raw_os_error() == Some(ENODEV) => drop(stream),
                Err(e) => {
                    // Leaking the mmap buffers beats a panic in Drop.
                    tracing::error!(device = %self.device.display(), "STREAMOFF failed ({e}); leaking stream buffers");
                    std::mem::forget(stream);
                }
            }
        }
    }
}
