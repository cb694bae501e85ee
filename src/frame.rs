//! Frames as they leave a source: pixels, layout and timing, validated once.
//!
//! [`Frame::new_checked`] is the only way to build a frame: it checks the buffer
//! against width, height, stride and format, so every later stage can index rows
//! without re-checking (the smoltcp `new_checked` contract).

use std::fmt;

/// Largest accepted side in pixels; bigger frames are refused as hostile input.
pub const MAX_SIDE: u32 = 16_384;

/// Largest accepted frame buffer (a 16384 x 16384 XRGB8888 frame): a stride
/// or size that needs more is refused before anything is allocated for it.
pub const MAX_FRAME_BYTES: usize = 1 << 30;

/// Pixel layouts the runtime accepts from sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// 8-bit luma.
    Gray8,
    /// 16-bit luma, little-endian samples (medical pixel data; see [`Tone`]).
    Gray16,
    /// Packed 4:2:2, Y0 U Y1 V (V4L2 `YUYV`).
    Yuyv,
    /// Packed 4:2:2, U Y0 V Y1 (V4L2 `UYVY`).
    Uyvy,
    /// 4:2:0, a Y plane then an interleaved UV plane at half height, both
    /// with the frame's stride (V4L2 `NV12`, single buffer).
    Nv12,
    /// Packed 8-bit R, G, B.
    Rgb24,
    /// Packed 8-bit B, G, R.
    Bgr24,
    /// 32-bit little-endian X:R:G:B, bytes B, G, R, X (V4L2 `XR24`, DRM XRGB8888).
    Xrgb8888,
}

impl PixelFormat {
    /// Bytes per pixel of the first (or only) plane (YUYV/UYVY: 2, in pairs; NV12: 1 in the Y plane).
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Gray8 | PixelFormat::Nv12 => 1,
            PixelFormat::Gray16 | PixelFormat::Yuyv | PixelFormat::Uyvy => 2,
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => 3,
            PixelFormat::Xrgb8888 => 4,
        }
    }
}

impl PixelFormat {
    /// Bytes a `width` x `height` frame with rows every `stride` bytes needs
    /// (the last row unpadded); `usize::MAX` when that does not fit in a
    /// `usize` (a hostile stride: no buffer is that long).
    pub fn frame_len(self, width: u32, height: u32, stride: usize) -> usize {
        let row = width as usize * self.bytes_per_pixel();
        // NV12 carries a half-height chroma plane after the luma rows.
        let rows = if self == PixelFormat::Nv12 {
            height as usize * 3 / 2
        } else {
            height as usize
        };
        stride
            .saturating_mul(rows.saturating_sub(1))
            .saturating_add(row)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Gray8 => "GREY",
            PixelFormat::Gray16 => "Y16",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Uyvy => "UYVY",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Rgb24 => "RGB24",
            PixelFormat::Bgr24 => "BGR24",
            PixelFormat::Xrgb8888 => "XRGB8888",
        })
    }
}

/// Where and when a frame was captured. Analyzers take time from here, never
/// from the clock, so replays are deterministic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameMeta {
    /// Position in the source's sequence, from 0.
    pub seq: u64,
    /// Capture time in microseconds since the source started.
    pub timestamp_us: u64,
}

/// A DICOM VOI linear window (PS3.3 C.11.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VoiWindow {
    pub center: f64,
    pub width: f64,
}

/// How 16-bit samples become display gray.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tone {
    /// Window to apply; `None` stretches each frame's own min..max.
    pub window: Option<VoiWindow>,
    /// MONOCHROME1: low values are bright.
    pub invert: bool,
}

/// Why a buffer cannot be a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("empty frame ({width}x{height})")]
    Empty { width: u32, height: u32 },
    #[error("frame {width}x{height} exceeds the {MAX_SIDE}-pixel limit")]
    TooLarge { width: u32, height: u32 },
    #[error("{format} needs an even width, got {width}")]
    OddWidth { format: PixelFormat, width: u32 },
    #[error("{format} needs an even height, got {height}")]
    OddHeight { format: PixelFormat, height: u32 },
    #[error(
        "a {width}x{height} {format} frame with stride {stride} needs more than the {MAX_FRAME_BYTES}-byte limit"
    )]
    TooManyBytes {
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
    },
    #[error("stride {stride} bytes is shorter than a {format} row of {row} bytes")]
    StrideTooSmall {
        format: PixelFormat,
        stride: usize,
        row: usize,
    },
    #[error(
        "buffer holds {actual} bytes, a {width}x{height} {format} frame with stride {stride} needs {needed}"
    )]
    ShortBuffer {
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
        needed: usize,
        actual: usize,
    },
}

/// One picture from a source.
#[derive(Clone, Debug)]
pub struct Frame {
    data: Vec<u8>,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    /// Sequence and time.
    pub meta: FrameMeta,
    /// Tone mapping for [`PixelFormat::Gray16`]; ignored otherwise.
    pub tone: Tone,
    /// What the file the frame came from says it shows (DICOM attributes),
    /// shared by its frames; `None` for a camera, a PNG, a synthetic source.
    pub facts: Option<std::sync::Arc<crate::analyze::gate::ImageFacts>>,
}

impl Frame {
    /// Validates `data` as a `width` x `height` frame of `format` whose rows start
    /// every `stride` bytes. The last row need not be padded.
    pub fn new_checked(
        data: Vec<u8>,
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
        meta: FrameMeta,
    ) -> Result<Frame, FrameError> {
        let needed = Frame::check_geometry(format, width, height, stride)?;
        if data.len() < needed {
            return Err(FrameError::ShortBuffer {
                format,
                width,
                height,
                stride,
                needed,
                actual: data.len(),
            });
        }
        Ok(Frame {
            data,
            format,
            width,
            height,
            stride,
            meta,
            tone: Tone::default(),
            facts: None,
        })
    }

    /// Checks a layout without a buffer (what [`Frame::new_checked`] checks
    /// besides the buffer's length) and returns the bytes a buffer needs, at
    /// most [`MAX_FRAME_BYTES`]: a source can size its buffers from a
    /// driver's geometry without trusting it.
    pub fn check_geometry(
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
    ) -> Result<usize, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::Empty { width, height });
        }
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(FrameError::TooLarge { width, height });
        }
        let subsampled = matches!(
            format,
            PixelFormat::Yuyv | PixelFormat::Uyvy | PixelFormat::Nv12
        );
        if subsampled && !width.is_multiple_of(2) {
            return Err(FrameError::OddWidth { format, width });
        }
        if format == PixelFormat::Nv12 && !height.is_multiple_of(2) {
            return Err(FrameError::OddHeight { format, height });
        }
        let row = width as usize * format.bytes_per_pixel();
        if stride < row {
            return Err(FrameError::StrideTooSmall {
                format,
                stride,
                row,
            });
        }
        let needed = format.frame_len(width, height, stride);
        if needed > MAX_FRAME_BYTES {
            return Err(FrameError::TooManyBytes {
                format,
                width,
                height,
                stride,
            });
        }
        Ok(needed)
    }

    /// A tightly packed frame (stride = row length).
    pub fn packed(
        data: Vec<u8>,
        format: PixelFormat,
        width: u32,
        height: u32,
        meta: FrameMeta,
    ) -> Result<Frame, FrameError> {
        let stride = width as usize * format.bytes_per_pixel();
        Frame::new_checked(data, format, width, height, stride, meta)
    }

    /// The buffer and layout, for rebuilding a frame through
    /// [`Frame::new_checked`] (the fault injector cuts and corrupts frames so).
    pub fn into_parts(self) -> (Vec<u8>, PixelFormat, u32, u32, usize, FrameMeta, Tone) {
        (
            self.data,
            self.format,
            self.width,
            self.height,
            self.stride,
            self.meta,
            self.tone,
        )
    }

    pub fn with_tone(mut self, tone: Tone) -> Frame {
        self.tone = tone;
        self
    }

    pub fn with_facts(mut self, facts: std::sync::Arc<crate::analyze::gate::ImageFacts>) -> Frame {
        self.facts = Some(facts);
        self
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// The whole buffer, rows `stride` bytes apart.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The pixel bytes of every row in order (without padding; the Y plane
    /// for NV12). One slice per row, no per-row index arithmetic or bounds
    /// check: per-frame loops over a 480-row frame should cost the kernels.
    #[inline]
    pub fn rows(&self) -> impl Iterator<Item = &[u8]> {
        let len = self.width as usize * self.format.bytes_per_pixel();
        self.data
            .chunks(self.stride)
            .take(self.height as usize)
            .map(move |r| &r[..len])
    }

    /// The pixel bytes of row `y` (without padding; the Y row for NV12). Panics if `y >= height`,
    /// which callers iterating `0..height` never do.
    pub fn row(&self, y: u32) -> &[u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * self.format.bytes_per_pixel()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_padded_stride_without_padding_on_last_row() {
        let f = Frame::new_checked(
            vec![0; 10 * 2 + 6],
            PixelFormat::Rgb24,
            2,
            3,
            10,
            FrameMeta::default(),
        )
        .unwrap();
        assert_eq!(f.row(2).len(), 6);
    }

    /// Found by the `frame` fuzz target's body (fuzz/regressions/frame/):
    /// a stride near `usize::MAX` made `frame_len` overflow (a panic with
    /// overflow checks; without them a wrapped length let a 64-byte buffer
    /// pass as a 4x3 frame whose second row lay past its end).
    #[test]
    fn a_stride_whose_frame_length_overflows_is_refused() {
        let m = FrameMeta::default();
        let huge = usize::MAX - 3;
        assert_eq!(PixelFormat::Gray8.frame_len(4, 3, huge), usize::MAX);
        assert!(matches!(
            Frame::new_checked(vec![0; 64], PixelFormat::Gray8, 4, 3, huge, m),
            Err(FrameError::TooManyBytes { .. })
        ));
        // A driver's u32 stride times 16383 rows: refused before allocation.
        assert!(matches!(
            Frame::check_geometry(PixelFormat::Yuyv, 8192, 16_384, u32::MAX as usize),
            Err(FrameError::TooManyBytes { .. })
        ));
        assert_eq!(
            Frame::check_geometry(PixelFormat::Nv12, 4, 2, 8),
            Ok(8 * 2 + 4)
        );
    }

    #[test]
    fn rejects_bad_geometry() {
        let m = FrameMeta::default();
        assert!(matches!(
            Frame::packed(vec![], PixelFormat::Gray8, 0, 1, m),
            Err(FrameError::Empty { .. })
        ));
        assert!(matches!(
            Frame::packed(vec![0; 6], PixelFormat::Yuyv, 3, 1, m),
            Err(FrameError::OddWidth { .. })
        ));
        let nv12 = |len, h| Frame::packed(vec![0; len], PixelFormat::Nv12, 4, h, m);
        assert!(matches!(nv12(12, 3), Err(FrameError::OddHeight { .. })));
        assert!(matches!(nv12(8, 2), Err(FrameError::ShortBuffer { .. })));
        assert!(nv12(12, 2).is_ok());
        assert!(matches!(
            Frame::new_checked(vec![0; 100], PixelFormat::Gray16, 10, 2, 10, m),
            Err(FrameError::StrideTooSmall { .. })
        ));
        assert!(matches!(
            Frame::packed(vec![0; 5], PixelFormat::Gray8, 3, 2, m),
            Err(FrameError::ShortBuffer { .. })
        ));
        assert!(matches!(
            Frame::packed(vec![], PixelFormat::Gray8, MAX_SIDE + 1, 1, m),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
