//! The V4L2 device: open, negotiate, stream, reconnect (feature `v4l2`).
//!
//! Sharp edges of `v4l` 0.14 handled here: `next()` blocks forever without a
//! timeout, so one is always set; after a failed `next()` the stream's
//! queue state is unknown, so the stream is closed and set up again; its
//! `Drop` panics when STREAMOFF fails with anything but ENODEV, so we stop
//! the stream ourselves and never let that drop run on a failed stop; and
//! `query_caps` unwraps the driver's strings as UTF-8, so it runs under
//! `catch_unwind`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l::buffer::{Flags, Type};
use v4l::capability::Flags as CapFlags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Device, FourCC};

use super::assemble::{BufferInfo, CaptureCounts, FrameAssembler, Geometry};
use super::dv::{self, Signal, Timings};
use super::formats::{CaptureFormat, choose_format, fourcc_text};
use super::reconnect::{BY_ID, Backoff, stable_path};
use super::{DeviceInfo, FormatInfo, SizeInfo, fps_text};
use crate::capture::{CaptureError, FrameSource, SourceOptions};
use crate::frame::Frame;

/// How long `next_frame` waits for a frame before calling the device lost.
const TIMEOUT: Duration = Duration::from_millis(2000);
/// mmap buffers: enough to ride out a slow frame without the driver dropping.
const BUFFERS: u32 = 4;
const ENODEV: i32 = 19;

/// What we ask of the device.
#[derive(Clone, Debug)]
struct Request {
    formats: Vec<CaptureFormat>,
    size: (u32, u32),
    fps: u32,
}

/// A streaming device. Field order matters: the stream drops before the device.
struct Open {
    stream: Option<Stream<'static>>,
    /// The DV timings streamed on (HDMI/SDI inputs): checked after every frame.
    timings: Option<Timings>,
    fd: std::os::raw::c_int,
    _dev: Device,
}

impl Drop for Open {
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
                tracing::error!("STREAMOFF failed ({e}); leaking the stream's buffers");
                std::mem::forget(stream);
            }
        }
    }
}

/// Frames from a V4L2 capture device, reconnecting when it goes away.
pub struct V4l2Source {
    /// As given on the command line, for messages.
    device: PathBuf,
    /// What we reopen: the stable `/dev/v4l/by-id` name when there is one.
    reopen: PathBuf,
    request: Request,
    open: Option<Open>,
    assembler: FrameAssembler,
    backoff: Backoff,
    retry_at: Option<Instant>,
    last_frame: Instant,
}

impl V4l2Source {
    pub fn open(device: &Path, opts: &SourceOptions) -> Result<V4l2Source, CaptureError> {
        if !device.exists() {
            return Err(CaptureError::NotFound {
                path: device.to_path_buf(),
            });
        }
        let request = Request {
            formats: opts.capture_formats.clone(),
            size: opts.capture_size,
            fps: opts.capture_fps,
        };
        let (open, geometry) = open_stream(device, &request)?;
        let assembler = FrameAssembler::new(geometry).map_err(|e| CaptureError::Unsupported {
            path: device.to_path_buf(),
            what: "frame layout",
            detail: e.to_string(),
        })?;
        let reopen = stable_path(device, Path::new(BY_ID));
        if reopen != device {
            tracing::info!(device = %device.display(), "will reopen as {} after a disconnection", reopen.display());
        }
        Ok(V4l2Source {
            device: device.to_path_buf(),
            reopen,
            request,
            open: Some(open),
            assembler,
            backoff: Backoff::default(),
            retry_at: None,
            last_frame: Instant::now(),
        })
    }

    /// Frames delivered, dropped by the driver, skipped, and reconnections.
    pub fn counts(&self) -> CaptureCounts {
        self.assembler.counts
    }

    /// The stream failed: close it and schedule the first reopen. Whatever
    /// the error, the device is reopened, so the pipeline hears "no signal"
    /// (found on a real kernel: vivid's fatal streaming error, EIO on every
    /// call, used to end the run).
    fn lost(&mut self, error: CaptureError) -> CaptureError {
        self.open = None;
        let wait = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + wait);
        tracing::warn!(device = %self.device.display(), "{error}; reopening in {} ms", wait.as_millis());
        match error {
            e if e.is_no_signal() => e,
            CaptureError::Device { reason, .. } => CaptureError::StreamFailed {
                device: self.device.clone(),
                reason,
            },
            e => CaptureError::StreamFailed {
                device: self.device.clone(),
                reason: e.to_string(),
            },
        }
    }

    fn reconnect(&mut self) -> Result<(), CaptureError> {
        if let Some(at) = self.retry_at {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        let attempt = self.backoff.attempts;
        let opened = open_stream(&self.reopen, &self.request).and_then(|(open, geometry)| {
            let gap = micros(self.last_frame.elapsed());
            self.assembler
                .restart(geometry, gap)
                .map(|()| open)
                .map_err(|e| CaptureError::Unsupported {
                    path: self.reopen.clone(),
                    what: "frame layout",
                    detail: e.to_string(),
                })
        });
        match opened {
            Ok(open) => {
                tracing::info!(device = %self.reopen.display(), "reconnected after {attempt} attempt(s)");
                self.open = Some(open);
                self.retry_at = None;
                Ok(())
            }
            Err(e) => {
                let wait = self.backoff.next_delay();
                self.retry_at = Some(Instant::now() + wait);
                Err(CaptureError::Reconnecting {
                    device: self.reopen.clone(),
                    attempt,
                    reason: e.to_string(),
                })
            }
        }
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
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

/// The driver's identity and capability flags; `None` when the driver's
/// strings made the crate panic.
fn capabilities(dev: &Device) -> Result<v4l::Capabilities, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dev.query_caps())) {
        Ok(Ok(caps)) => Ok(caps),
        // ENOTTY: the node answers no V4L2 ioctl at all.
        Ok(Err(e)) if e.raw_os_error() == Some(25) => Err("not a V4L2 device".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the driver's name is not valid UTF-8".into()),
    }
}

/// Opens `path`, picks a format, sets size and rate and starts no stream
/// yet (the first `next()` starts it).
fn open_stream(path: &Path, req: &Request) -> Result<(Open, Geometry), CaptureError> {
    let dev_err = |e: std::io::Error| map_io(path, e);
    let unsupported = |what, detail: String| CaptureError::Unsupported {
        path: path.to_path_buf(),
        what,
        detail,
    };
    let dev = Device::with_path(path).map_err(dev_err)?;
    let caps = capabilities(&dev).map_err(|reason| CaptureError::Device {
        device: path.to_path_buf(),
        reason,
    })?;
    let flags = caps.capabilities;
    let fd = dev.handle().fd();
    if !flags.contains(CapFlags::VIDEO_CAPTURE) {
        return Err(unsupported(
            "device",
            format!(
                "{} ({}) is not a single-planar video capture node{}",
                caps.card,
                caps.driver,
                if flags.contains(CapFlags::VIDEO_CAPTURE_MPLANE) {
                    " (multi-planar capture is not supported by the v4l crate)"
                } else {
                    " (a UVC device's second node carries metadata: use the first)"
                }
            ),
        ));
    }
    if !flags.contains(CapFlags::STREAMING) {
        return Err(unsupported(
            "device",
            format!(
                "{} ({}) cannot stream (no mmap I/O)",
                caps.card, caps.driver
            ),
        ));
    }
    let offered: Vec<[u8; 4]> = dev
        .enum_formats()
        .map_err(dev_err)?
        .iter()
        .map(|d| d.fourcc.repr)
        .collect();
    let format = choose_format(&offered, &req.formats)
        .map_err(|detail| unsupported("capture format", detail))?;
    // An HDMI/SDI input captures what the source sends: lock on it first.
    let timings = lock_on_source(fd, path)?;
    let size = timings.map_or(req.size, |t| (t.width(), t.height()));
    let mut fmt = dev.format().map_err(dev_err)?;
    fmt.width = size.0;
    fmt.height = size.1;
    fmt.fourcc = FourCC::new(&format.fourcc());
    fmt.stride = 0;
    fmt.size = 0;
    let got = dev.set_format(&fmt).map_err(dev_err)?;
    if got.fourcc.repr != format.fourcc() {
        return Err(unsupported(
            "capture format",
            format!(
                "asked for {format}, the driver set {}",
                fourcc_text(got.fourcc.repr)
            ),
        ));
    }
    if (got.width, got.height) != req.size && timings.is_none() {
        tracing::warn!(device = %path.display(), "asked for {}x{}, the device gives {}x{}", req.size.0, req.size.1, got.width, got.height);
    }
    // Not every driver lets the rate be set; the stream still works.
    match dev.set_params(&Parameters::with_fps(req.fps)) {
        Ok(p) if p.interval.numerator > 0 => {
            let fps = fps_text(p.interval.numerator, p.interval.denominator);
            if fps != req.fps.to_string() {
                tracing::warn!(device = %path.display(), "asked for {} fps, the device runs at {fps}", req.fps);
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(device = %path.display(), "cannot set {} fps: {e}", req.fps),
    }
    let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, BUFFERS).map_err(dev_err)?;
    stream.set_timeout(TIMEOUT);
    tracing::info!(device = %path.display(), "capturing {}x{} {} (stride {}) from {} ({})", got.width, got.height, format, got.stride, caps.card, caps.driver);
    let geometry = Geometry {
        format,
        width: got.width,
        height: got.height,
        stride: got.stride as usize,
    };
    Ok((
        Open {
            stream: Some(stream),
            timings,
            fd,
            _dev: dev,
        },
        geometry,
    ))
}

/// For an input set by DV timings: what the receiver detects, set as the
/// input's timings (`None`: the input has a size of its own, a camera).
/// No signal is [`CaptureError::NoSignal`]: the source keeps asking.
fn lock_on_source(fd: std::os::raw::c_int, path: &Path) -> Result<Option<Timings>, CaptureError> {
    if !dv::input_uses_timings(fd) {
        return Ok(None);
    }
    let detected = match dv::query(fd) {
        Ok(Signal::Locked(t)) => t,
        Ok(Signal::Lost(reason)) => {
            return Err(CaptureError::NoSignal {
                device: path.to_path_buf(),
                reason,
            });
        }
        // The driver cannot detect (ENODATA, ENOTTY): capture as it is set.
        Err(e) if e.raw_os_error() != Some(ENODEV) => {
            tracing::info!(device = %path.display(), "the input cannot report its signal ({e}); capturing as it is set");
            return Ok(None);
        }
        Err(e) => return Err(map_io(path, e)),
    };
    if !dv::current(fd).is_ok_and(|t| t.same_as(&detected)) {
        dv::set(fd, &detected).map_err(|e| CaptureError::Device {
            device: path.to_path_buf(),
            reason: format!("cannot set the detected timings {detected}: {e}"),
        })?;
    }
    tracing::info!(device = %path.display(), "the input locked on {detected}");
    Ok(Some(detected))
}

/// After a frame from a DV-timings input: the signal is still the one the
/// stream was set up for (else the frame may be noise, or the wrong size).
fn check_signal(open: &Open, device: &Path) -> Result<(), CaptureError> {
    let Some(streaming) = open.timings else {
        return Ok(());
    };
    match dv::query(open.fd) {
        Ok(Signal::Locked(t)) if t.same_as(&streaming) => Ok(()),
        Ok(Signal::Locked(t)) => Err(CaptureError::SourceChanged {
            device: device.to_path_buf(),
            from: streaming.to_string(),
            to: t.to_string(),
        }),
        Ok(Signal::Lost(reason)) => Err(CaptureError::NoSignal {
            device: device.to_path_buf(),
            reason,
        }),
        Err(e) => Err(map_io(device, e)),
    }
}

impl FrameSource for V4l2Source {
    fn device_counts(&self) -> Option<super::assemble::CaptureCounts> {
        Some(self.counts())
    }

    fn describe(&self) -> String {
        let g = self.assembler.geometry();
        format!(
            "V4L2 {} {}x{} {}",
            self.device.display(),
            g.width,
            g.height,
            g.format
        )
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        loop {
            if self.open.is_none() {
                self.reconnect()?;
            }
            let Some(stream) = self.open.as_mut().and_then(|o| o.stream.as_mut()) else {
                continue;
            };
            let (buffer, meta) = match stream.next() {
                Ok(b) => b,
                Err(e) => {
                    let error = map_io(&self.device, e);
                    return Err(self.lost(error));
                }
            };
            let info = BufferInfo {
                bytesused: meta.bytesused,
                sequence: meta.sequence,
                error_flag: meta.flags.contains(Flags::ERROR),
                timestamp_us: (meta.timestamp.sec.max(0) as u64) * 1_000_000
                    + meta.timestamp.usec.max(0) as u64,
            };
            match self.assembler.assemble(buffer, info) {
                Ok(Some(frame)) => {
                    if let Some(Err(e)) = self.open.as_ref().map(|o| check_signal(o, &self.device))
                    {
                        // Captured after the signal went (noise) or changed: not shown.
                        self.assembler.recycle(frame);
                        return Err(self.lost(e));
                    }
                    self.backoff.reset();
                    self.last_frame = Instant::now();
                    return Ok(Some(frame));
                }
                Ok(None) => continue,
                Err(e) => {
                    return Err(CaptureError::BadBuffer {
                        device: self.device.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    fn recycle(&mut self, frame: Frame) {
        self.assembler.recycle(frame);
    }
}

/// Every `/dev/video*` node with what it offers.
pub fn list_devices() -> Result<Vec<DeviceInfo>, CaptureError> {
    let mut nodes: Vec<PathBuf> = match std::fs::read_dir("/dev") {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("video"))
            })
            .collect(),
        Err(e) => return Err(CaptureError::io(Path::new("/dev"), e)),
    };
    nodes.sort_by_key(|p| {
        let n = p.to_string_lossy();
        (n.len(), n.into_owned())
    });
    Ok(nodes.into_iter().map(|p| describe_device(&p)).collect())
}

fn describe_device(path: &Path) -> DeviceInfo {
    let mut info = DeviceInfo {
        path: path.to_path_buf(),
        stable_names: stable_names(path),
        ..DeviceInfo::default()
    };
    let dev = match Device::with_path(path) {
        Ok(d) => d,
        Err(e) => {
            info.error = Some(e.to_string());
            return info;
        }
    };
    match capabilities(&dev) {
        Ok(caps) => {
            info.driver = caps.driver;
            info.card = caps.card;
            info.bus = caps.bus;
            info.can_capture = caps.capabilities.contains(CapFlags::VIDEO_CAPTURE);
        }
        Err(e) => {
            info.error = Some(e);
            return info;
        }
    }
    if !info.can_capture {
        return info;
    }
    let formats = match dev.enum_formats() {
        Ok(f) => f,
        Err(e) => {
            info.error = Some(e.to_string());
            return info;
        }
    };
    for desc in formats {
        let code = desc.fourcc.repr;
        let mut f = FormatInfo {
            fourcc: fourcc_text(code),
            description: desc.description.clone(),
            supported: CaptureFormat::from_fourcc(code).is_some(),
            sizes: Vec::new(),
        };
        for size in dev.enum_framesizes(desc.fourcc).unwrap_or_default() {
            match size.size {
                FrameSizeEnum::Discrete(d) => f.sizes.push(SizeInfo {
                    size: format!("{}x{}", d.width, d.height),
                    fps: intervals(&dev, desc.fourcc, d.width, d.height),
                }),
                FrameSizeEnum::Stepwise(s) => f.sizes.push(SizeInfo {
                    size: format!(
                        "{}x{} - {}x{} step {}x{}",
                        s.min_width,
                        s.min_height,
                        s.max_width,
                        s.max_height,
                        s.step_width,
                        s.step_height
                    ),
                    fps: intervals(&dev, desc.fourcc, s.max_width, s.max_height),
                }),
            }
        }
        info.formats.push(f);
    }
    info
}

fn intervals(dev: &Device, fourcc: FourCC, width: u32, height: u32) -> Vec<String> {
    dev.enum_frameintervals(fourcc, width, height)
        .unwrap_or_default()
        .into_iter()
        .map(|i| match i.interval {
            FrameIntervalEnum::Discrete(f) => fps_text(f.numerator, f.denominator),
            // The slowest interval is the lowest rate.
            FrameIntervalEnum::Stepwise(s) => format!(
                "{} - {}",
                fps_text(s.max.numerator, s.max.denominator),
                fps_text(s.min.numerator, s.min.denominator)
            ),
        })
        .collect()
}

/// The `/dev/v4l/by-id` and `by-path` links that point at `node`.
fn stable_names(node: &Path) -> Vec<PathBuf> {
    let Ok(target) = node.canonicalize() else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = ["/dev/v4l/by-id", "/dev/v4l/by-path"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.canonicalize().is_ok_and(|t| t == target))
        .collect();
    names.sort();
    names
}
