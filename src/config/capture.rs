//! `[capture]`: what a live device is asked for.

use serde::Deserialize;

use crate::capture::v4l2::CaptureFormat;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCapture {
    width: u32,
    height: u32,
    fps: u32,
    /// FourCCs the device may deliver, most wanted first (default: raw
    /// 4:2:2 first, MJPEG last; see `CaptureFormat::DEFAULT_PREFERENCE`).
    #[serde(default)]
    formats: Option<Vec<String>>,
}

/// `[capture]`: what a live device is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub formats: Vec<CaptureFormat>,
}

impl RawCapture {
    pub(super) fn check(self) -> Result<CaptureSettings, String> {
        let c = self;
        if !(16..=7680).contains(&c.width)
            || !(16..=4320).contains(&c.height)
            || !(1..=240).contains(&c.fps)
        {
            return Err(format!(
                "capture {}x{} at {} fps is out of range",
                c.width, c.height, c.fps
            ));
        }
        let formats = match c.formats {
            None => CaptureFormat::DEFAULT_PREFERENCE.to_vec(),
            Some(names) if names.is_empty() => {
                return Err("capture formats: the list is empty".into());
            }
            Some(names) => names
                .iter()
                .map(|n| n.parse::<CaptureFormat>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("capture formats: {e}"))?,
        };
        Ok(CaptureSettings {
            width: c.width,
            height: c.height,
            fps: c.fps,
            formats,
        })
    }
}
