//! The capture formats we take from V4L2 devices, and which one to ask for.

use std::fmt;
use std::str::FromStr;

use crate::frame::PixelFormat;

/// A V4L2 pixel format this runtime can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptureFormat {
    Yuyv,
    Uyvy,
    Grey,
    Nv12,
    Rgb24,
    Bgr24,
    Xrgb8888,
    /// Motion-JPEG, decoded to gray on arrival.
    Mjpeg,
}

impl CaptureFormat {
    pub const ALL: [CaptureFormat; 8] = [
        CaptureFormat::Yuyv,
        CaptureFormat::Uyvy,
        CaptureFormat::Grey,
        CaptureFormat::Nv12,
        CaptureFormat::Rgb24,
        CaptureFormat::Bgr24,
        CaptureFormat::Xrgb8888,
        CaptureFormat::Mjpeg,
    ];

    /// The order used when a board profile names none: uncompressed 4:2:2
    /// first (what HDMI grabbers and cameras send natively, no decode cost
    /// and no compression artefacts), then the other raw layouts, and MJPEG
    /// last (a USB 2 grabber's only way to 1080p at full rate: such a board
    /// lists `MJPG` first in its profile).
    pub const DEFAULT_PREFERENCE: [CaptureFormat; 8] = [
        CaptureFormat::Yuyv,
        CaptureFormat::Uyvy,
        CaptureFormat::Nv12,
        CaptureFormat::Grey,
        CaptureFormat::Rgb24,
        CaptureFormat::Bgr24,
        CaptureFormat::Xrgb8888,
        CaptureFormat::Mjpeg,
    ];

    /// The V4L2 FourCC code.
    pub fn fourcc(self) -> [u8; 4] {
        *match self {
            CaptureFormat::Yuyv => b"YUYV",
            CaptureFormat::Uyvy => b"UYVY",
            CaptureFormat::Grey => b"GREY",
            CaptureFormat::Nv12 => b"NV12",
            CaptureFormat::Rgb24 => b"RGB3",
            CaptureFormat::Bgr24 => b"BGR3",
            CaptureFormat::Xrgb8888 => b"XR24",
            CaptureFormat::Mjpeg => b"MJPG",
        }
    }

    pub fn from_fourcc(code: [u8; 4]) -> Option<CaptureFormat> {
        CaptureFormat::ALL.into_iter().find(|f| f.fourcc() == code)
    }

    /// The frame layout buffers of this format arrive in; `None` for MJPEG,
    /// whose frames are decoded (to [`PixelFormat::Gray8`]).
    pub fn raw_layout(self) -> Option<PixelFormat> {
        Some(match self {
            CaptureFormat::Yuyv => PixelFormat::Yuyv,
            CaptureFormat::Uyvy => PixelFormat::Uyvy,
            CaptureFormat::Grey => PixelFormat::Gray8,
            CaptureFormat::Nv12 => PixelFormat::Nv12,
            CaptureFormat::Rgb24 => PixelFormat::Rgb24,
            CaptureFormat::Bgr24 => PixelFormat::Bgr24,
            CaptureFormat::Xrgb8888 => PixelFormat::Xrgb8888,
            CaptureFormat::Mjpeg => return None,
        })
    }
}

impl fmt::Display for CaptureFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fourcc_text(self.fourcc()))
    }
}

/// A FourCC as text, with anything unprintable shown as `?`.
pub fn fourcc_text(code: [u8; 4]) -> String {
    code.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// A format name that is not one of ours.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown capture format '{0}': expected one of YUYV, UYVY, GREY, NV12, RGB3, BGR3, XR24, MJPG"
)]
pub struct UnknownFormat(pub String);

impl FromStr for CaptureFormat {
    type Err = UnknownFormat;
    /// FourCCs as V4L2 writes them, plus the common long names
    /// (`RGB24`, `BGR24`, `XRGB8888`, `MJPEG`), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "YUYV" => CaptureFormat::Yuyv,
            "UYVY" => CaptureFormat::Uyvy,
            "GREY" | "GRAY" => CaptureFormat::Grey,
            "NV12" => CaptureFormat::Nv12,
            "RGB3" | "RGB24" => CaptureFormat::Rgb24,
            "BGR3" | "BGR24" => CaptureFormat::Bgr24,
            "XR24" | "XRGB8888" => CaptureFormat::Xrgb8888,
            "MJPG" | "MJPEG" => CaptureFormat::Mjpeg,
            _ => return Err(UnknownFormat(s.to_string())),
        })
    }
}

/// The first format of `preference` that the device offers, or a message
/// listing both sides when none is.
pub fn choose_format(
    offered: &[[u8; 4]],
    preference: &[CaptureFormat],
) -> Result<CaptureFormat, String> {
    preference
        .iter()
        .copied()
        .find(|f| offered.contains(&f.fourcc()))
        .ok_or_else(|| {
            let list = |it: &mut dyn Iterator<Item = String>| it.collect::<Vec<_>>().join(", ");
            format!(
                "the device offers {} and the profile accepts {}",
                if offered.is_empty() {
                    "no formats".to_string()
                } else {
                    list(&mut offered.iter().map(|c| fourcc_text(*c)))
                },
                list(&mut preference.iter().map(|f| f.to_string()))
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_order_decides() {
        let offered = [*b"MJPG", *b"YUYV", *b"H264"];
        assert_eq!(
            choose_format(&offered, &CaptureFormat::DEFAULT_PREFERENCE),
            Ok(CaptureFormat::Yuyv)
        );
        let grabber = [CaptureFormat::Mjpeg, CaptureFormat::Yuyv];
        assert_eq!(choose_format(&offered, &grabber), Ok(CaptureFormat::Mjpeg));
        // A format the device offers but the profile leaves out is not taken.
        let only_nv12 = [CaptureFormat::Nv12];
        let err = choose_format(&offered, &only_nv12).unwrap_err();
        assert_eq!(
            err,
            "the device offers MJPG, YUYV, H264 and the profile accepts NV12"
        );
        assert!(
            choose_format(&[], &grabber)
                .unwrap_err()
                .contains("no formats")
        );
    }

    #[test]
    fn names_round_trip() {
        for f in CaptureFormat::ALL {
            assert_eq!(CaptureFormat::from_fourcc(f.fourcc()), Some(f));
            assert_eq!(f.to_string().parse::<CaptureFormat>(), Ok(f));
            assert_eq!(f.raw_layout().is_none(), f == CaptureFormat::Mjpeg);
        }
        assert_eq!("mjpeg".parse::<CaptureFormat>(), Ok(CaptureFormat::Mjpeg));
        assert_eq!("rgb24".parse::<CaptureFormat>(), Ok(CaptureFormat::Rgb24));
        assert!("H264".parse::<CaptureFormat>().is_err());
        assert_eq!(CaptureFormat::from_fourcc(*b"H264"), None);
        assert_eq!(fourcc_text([b'A', 0, 0xFF, b'1']), "A??1");
    }
}
