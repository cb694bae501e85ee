//! Frame sources: where pictures come from.
//!
//! Every source implements [`FrameSource`]; the pipeline never sees a `v4l` or
//! `dicom` type. To add a source, write a module with a struct implementing the
//! trait, map its failures onto [`CaptureError`], and add a [`SourceSpec`] form.
//!
//! - [`dicom`]: single and multi-frame DICOM (cines replay at their Frame Time)
//! - [`fault`]: a seeded fault injector around any source (drop, duplicate,
//!   corrupt, truncate, stall)
//! - [`images`]: a still image or a folder of PNG/JPEG/TIFF/DICOM files
//! - [`mjpeg`]: Motion-JPEG frames of V4L2 devices, decoded to gray
//! - [`replay`]: recorded sources at their own rate or as fast as possible, looped
//! - [`watch`]: a hot folder; new files are processed once each as they complete
//! - [`synthetic`]: a deterministic ultrasound-like test pattern
//! - [`v4l2`]: a V4L2 capture device (cargo feature `v4l2`)

pub mod dicom;
pub mod fault;
pub mod images;
pub mod mjpeg;
pub mod rehearse;
pub mod replay;
pub mod synthetic;
pub mod v4l2;
pub mod watch;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::frame::{Frame, FrameError};

/// A producer of frames. `Ok(None)` means the source has ended (a file replay);
/// live sources only end with an error.
pub trait FrameSource: Send {
    /// What this source is, for logs. Never includes patient attributes.
    fn describe(&self) -> String;
    /// The next frame, blocking until it is there.
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError>;
    /// Hands a finished frame back so its buffer can carry a later one
    /// (live sources keep a small pool; the default just drops it).
    fn recycle(&mut self, frame: Frame) {
        drop(frame);
    }
    /// What a live device did to frames before they reached bedside
    /// (dropped by the driver, flagged as damaged); `None` for sources
    /// that cannot lose frames.
    fn device_counts(&self) -> Option<v4l2::assemble::CaptureCounts> {
        None
    }
}

/// Why a source could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{}: no such file or directory", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a readable image ({reason})", path.display())]
    NotAnImage { path: PathBuf, reason: String },
    #[error("{}: not a readable DICOM file ({reason})", path.display())]
    Dicom { path: PathBuf, reason: String },
    #[error("{}: unsupported {what}: {detail}", path.display())]
    Unsupported {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    /// The file claims more memory than the decode budget allows.
    #[error("{}: {source}", path.display())]
    OverBudget {
        path: PathBuf,
        source: crate::budget::OverBudget,
    },
    /// The file is not a regular file within its size limit, or could not be read.
    #[error(transparent)]
    Read(#[from] crate::safe_read::ReadError),
    /// A hot folder has nothing new yet (not an error: the pipeline shows
    /// that it is waiting and asks again).
    #[error("{}: waiting for new images", path.display())]
    Idle { path: PathBuf },
    #[error("{}: no PNG, JPEG, TIFF or DICOM files in this folder", path.display())]
    EmptyFolder { path: PathBuf },
    #[error("{}: skipped: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("{}: bad frame: {source}", path.display())]
    BadFrame { path: PathBuf, source: FrameError },
    #[error("{}: {reason}", device.display())]
    Device { device: PathBuf, reason: String },
    #[error("{}: no frame within {timeout_ms} ms", device.display())]
    Timeout { device: PathBuf, timeout_ms: u64 },
    #[error("{}: device disconnected", device.display())]
    Disconnected { device: PathBuf },
    #[error("{}: bad buffer skipped: {reason}", device.display())]
    BadBuffer { device: PathBuf, reason: String },
    /// A stream error the device may recover from by reopening (vivid's
    /// "fatal streaming error" is EIO on every call until the stream is
    /// recreated): no signal, not the end of the run.
    #[error("{}: the stream failed ({reason}); reopening it", device.display())]
    StreamFailed { device: PathBuf, reason: String },
    /// An HDMI/SDI input reports no signal (no cable, no lock, out of
    /// range): frames may still come, as noise, and are not used.
    #[error("{}: {reason}", device.display())]
    NoSignal {
        device: PathBuf,
        reason: &'static str,
    },
    /// The source switched timings (another resolution or rate): the stream
    /// is set up again on the new ones.
    #[error("{}: the source changed from {from} to {to}; restarting capture", device.display())]
    SourceChanged {
        device: PathBuf,
        from: String,
        to: String,
    },
    #[error("{}: no signal, reopen attempt {attempt} failed: {reason}", device.display())]
    Reconnecting {
        device: PathBuf,
        attempt: u32,
        reason: String,
    },
    #[error("{what} applies to recorded sources (dicom:, images:, synthetic), not to live ones")]
    NotReplayable { what: &'static str },
    #[error("{what} is not enabled in this build (rebuild with `--features {feature}`)")]
    NotEnabled {
        what: &'static str,
        feature: &'static str,
    },
}

impl CaptureError {
    /// True when only this frame is bad and the source can go on (the
    /// pipeline skips and counts it); false when the source itself failed.
    pub fn is_frame_local(&self) -> bool {
        matches!(
            self,
            CaptureError::BadFrame { .. }
                | CaptureError::BadFile { .. }
                | CaptureError::BadBuffer { .. }
        )
    }

    /// True when a live device has no signal for now and is being reopened
    /// (with backoff): the pipeline shows NO SIGNAL and keeps asking.
    pub fn is_no_signal(&self) -> bool {
        matches!(
            self,
            CaptureError::Timeout { .. }
                | CaptureError::Disconnected { .. }
                | CaptureError::Reconnecting { .. }
                | CaptureError::StreamFailed { .. }
                | CaptureError::NoSignal { .. }
                | CaptureError::SourceChanged { .. }
        )
    }

    /// `e`, which happened reading `path`, as a skipped file of a folder
    /// (the reason without the path `e` already names).
    pub fn skipped_file(path: &Path, e: CaptureError) -> CaptureError {
        let text = e.to_string();
        let prefix = format!("{}: ", path.display());
        CaptureError::BadFile {
            path: path.to_path_buf(),
            reason: text.strip_prefix(&prefix).unwrap_or(&text).to_string(),
        }
    }

    /// True when a source that waits for files has none yet.
    pub fn is_idle(&self) -> bool {
        matches!(self, CaptureError::Idle { .. })
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> CaptureError {
        if source.kind() == std::io::ErrorKind::NotFound {
            CaptureError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            CaptureError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// A source as written on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    V4l2(PathBuf),
    Dicom(PathBuf),
    /// A folder of pictures (or one picture). `interval_us`, from
    /// `images:DIR?fps=N`, spaces its frames in time; without it the run's
    /// default applies ([`SourceOptions::still_interval_us`]).
    Images {
        path: PathBuf,
        interval_us: Option<u64>,
    },
    Watch(PathBuf),
    Synthetic,
}

impl SourceSpec {
    /// `images:` of `path`, at the run's default spacing.
    pub fn images(path: impl Into<PathBuf>) -> SourceSpec {
        SourceSpec::Images {
            path: path.into(),
            interval_us: None,
        }
    }
}

/// The frame rates `?fps=` accepts: a folder played slower than one frame a
/// minute or faster than a thousand a second is a typo.
pub const FOLDER_FPS: std::ops::RangeInclusive<f64> = (1.0 / 60.0)..=1000.0;

/// A source string that names no known source kind, or a bad option of one.
#[derive(Debug, thiserror::Error)]
pub enum BadSourceSpec {
    #[error(
        "unknown source '{0}': expected v4l2:/dev/videoN, dicom:FILE, images:DIR[?fps=N], watch:DIR or synthetic"
    )]
    Unknown(String),
    #[error("source '{spec}': {reason}")]
    BadOption { spec: String, reason: String },
}

/// `fps=N` as a frame interval in microseconds.
fn interval_from_fps(spec: &str, option: &str) -> Result<u64, BadSourceSpec> {
    let bad = |reason: String| BadSourceSpec::BadOption {
        spec: spec.to_string(),
        reason,
    };
    let value = option
        .strip_prefix("fps=")
        .ok_or_else(|| bad(format!("unknown option '{option}' (images: takes ?fps=N)")))?;
    let fps: f64 = value
        .parse()
        .map_err(|_| bad(format!("fps '{value}' is not a number")))?;
    if !FOLDER_FPS.contains(&fps) {
        return Err(bad(format!(
            "fps {fps} is outside {:.4}..={}",
            FOLDER_FPS.start(),
            FOLDER_FPS.end()
        )));
    }
    Ok((1e6 / fps).round() as u64)
}

impl FromStr for SourceSpec {
    type Err = BadSourceSpec;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let path = |p: &str| {
            if p.is_empty() {
                Err(BadSourceSpec::Unknown(s.to_string()))
            } else {
                Ok(PathBuf::from(p))
            }
        };
        match s.split_once(':') {
            Some(("v4l2", p)) => Ok(SourceSpec::V4l2(path(p)?)),
            Some(("dicom", p)) => Ok(SourceSpec::Dicom(path(p)?)),
            Some(("images", p)) => match p.rsplit_once('?') {
                Some((dir, option)) => Ok(SourceSpec::Images {
                    path: path(dir)?,
                    interval_us: Some(interval_from_fps(s, option)?),
                }),
                None => Ok(SourceSpec::images(path(p)?)),
            },
            Some(("watch", p)) => Ok(SourceSpec::Watch(path(p)?)),
            None if s == "synthetic" => Ok(SourceSpec::Synthetic),
            _ => Err(BadSourceSpec::Unknown(s.to_string())),
        }
    }
}

/// Settings a source may need beyond its spec.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// Frame interval for sources without their own timing (stills,
    /// folders) unless the spec gives one (`images:DIR?fps=N`): 1 s by
    /// default, 1/30 s in ultrasound mode ([`ULTRASOUND_FOLDER_INTERVAL_US`]).
    pub still_interval_us: u64,
    /// Requested capture size for live devices.
    pub capture_size: (u32, u32),
    /// Requested frame rate for live devices.
    pub capture_fps: u32,
    /// Formats a live device may deliver, most wanted first.
    pub capture_formats: Vec<v4l2::CaptureFormat>,
    /// Stop a synthetic source after this many frames.
    pub synthetic_frames: Option<u64>,
    /// What one file may cost to read and decode (`crate::budget`).
    pub decode_budget: crate::budget::DecodeBudget,
}

/// A folder played in ultrasound mode is an exported cine, not a pile of
/// stills: without `?fps=`, its frames are 1/30 s apart (the common cine
/// rate), so the detector's time-based settings mean what they say.
pub const ULTRASOUND_FOLDER_INTERVAL_US: u64 = 33_333;

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            still_interval_us: 1_000_000,
            capture_size: (640, 480),
            capture_fps: 30,
            capture_formats: v4l2::CaptureFormat::DEFAULT_PREFERENCE.to_vec(),
            synthetic_frames: None,
            decode_budget: crate::budget::DecodeBudget::default(),
        }
    }
}

/// Opens the source a spec names.
pub fn open(spec: &SourceSpec, opts: &SourceOptions) -> Result<Box<dyn FrameSource>, CaptureError> {
    Ok(match spec {
        SourceSpec::V4l2(dev) => Box::new(v4l2::V4l2Source::open(dev, opts)?),
        SourceSpec::Dicom(path) => {
            Box::new(dicom::DicomSource::open_within(path, opts.decode_budget)?)
        }
        SourceSpec::Images { path, interval_us } => Box::new(images::ImagesSource::open(
            path,
            interval_us.unwrap_or(opts.still_interval_us),
            opts.decode_budget,
        )?),
        SourceSpec::Watch(dir) => Box::new(watch::WatchSource::open(
            dir,
            watch::WatchOptions {
                budget: opts.decode_budget,
                ..watch::WatchOptions::default()
            },
        )?),
        SourceSpec::Synthetic => Box::new(synthetic::SyntheticSource::new(
            640,
            480,
            30,
            opts.synthetic_frames,
        )),
    })
}

/// Opens the source a spec names, paced and looped as asked. Pacing and
/// looping apply to recordings only: a live device or hot folder has its
/// own rate and no end.
pub fn open_replay(
    spec: &SourceSpec,
    opts: &SourceOptions,
    pace: replay::Pace,
    looping: bool,
) -> Result<Box<dyn FrameSource>, CaptureError> {
    let recorded = matches!(
        spec,
        SourceSpec::Dicom(_) | SourceSpec::Images { .. } | SourceSpec::Synthetic
    );
    if !recorded && (looping || pace != replay::Pace::Fast) {
        return Err(CaptureError::NotReplayable {
            what: if looping { "--loop" } else { "--pace" },
        });
    }
    if pace == replay::Pace::Fast && !looping {
        return open(spec, opts);
    }
    let (spec, opts) = (spec.clone(), opts.clone());
    let opener: replay::Opener = Box::new(move || open(&spec, &opts));
    Ok(Box::new(replay::Replay::new(opener, pace, looping)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_the_source_reopens_is_no_signal_not_the_end() {
        let e = CaptureError::StreamFailed {
            device: "/dev/video0".into(),
            reason: "Input/output error".into(),
        };
        assert!(e.is_no_signal() && !e.is_frame_local());
        assert_eq!(
            e.to_string(),
            "/dev/video0: the stream failed (Input/output error); reopening it"
        );
    }

    #[test]
    fn parses_specs() {
        assert_eq!(
            "v4l2:/dev/video0".parse::<SourceSpec>().unwrap(),
            SourceSpec::V4l2("/dev/video0".into())
        );
        assert_eq!(
            "images:dir".parse::<SourceSpec>().unwrap(),
            SourceSpec::images("dir")
        );
        assert_eq!(
            "images:cine/frames?fps=25".parse::<SourceSpec>().unwrap(),
            SourceSpec::Images {
                path: "cine/frames".into(),
                interval_us: Some(40_000)
            }
        );
        assert_eq!(
            "images:a?b?fps=0.5".parse::<SourceSpec>().unwrap(),
            SourceSpec::Images {
                path: "a?b".into(),
                interval_us: Some(2_000_000)
            }
        );
        for (bad, says) in [
            ("images:dir?fps=0", "outside"),
            ("images:dir?fps=NaN", "outside"),
            ("images:dir?fps=5000", "outside"),
            ("images:dir?fps=fast", "not a number"),
            ("images:dir?rate=30", "unknown option 'rate=30'"),
            ("images:?fps=30", "unknown source"),
        ] {
            let e = bad.parse::<SourceSpec>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert_eq!(
            "watch:/srv/export".parse::<SourceSpec>().unwrap(),
            SourceSpec::Watch("/srv/export".into())
        );
        assert_eq!(
            "synthetic".parse::<SourceSpec>().unwrap(),
            SourceSpec::Synthetic
        );
        for bad in [
            "",
            "dicom:",
            "camera:/dev/video0",
            "synthetic:x",
            "/dev/video0",
        ] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad}");
        }
    }
}
