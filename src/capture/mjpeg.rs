//! Motion-JPEG frames from V4L2 devices (`MJPG`), decoded to 8-bit luma.
//!
//! Cheap USB HDMI grabbers deliver 1080p only as MJPEG, and many UVC devices
//! send "abbreviated" JPEGs without Huffman tables (the AVI MJPEG convention:
//! the tables are fixed, so they are left out). Decoders only fill them in when
//! the frame carries an `AVI1` marker, which these devices often omit too. So
//! before decoding we walk the markers up to the scan and, when no DHT segment
//! was seen, insert the standard tables of ITU T.81 Annex K.3 in front of it.
//!
//! Decoding is zune-jpeg (image's JPEG decoder) straight to luma: the
//! pipeline works on gray, and skipping chroma conversion halves the work.
//! A frame must end with its EOI marker: a frame cut short by a flaky USB
//! link is an error, not a half-gray picture.

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use crate::frame::MAX_SIDE;

/// Why an MJPEG frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MjpegError {
    #[error("not a JPEG frame (no start-of-image marker)")]
    NotJpeg,
    #[error("truncated JPEG frame: no end-of-image marker")]
    Truncated,
    #[error("malformed JPEG at byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("JPEG decode failed: {0}")]
    Decode(String),
    #[error(
        "frame is {width}x{height}, the stream was set up for {expected_width}x{expected_height}"
    )]
    WrongSize {
        width: usize,
        height: usize,
        expected_width: u32,
        expected_height: u32,
    },
}

/// Huffman tables of ITU T.81 Annex K.3 (tables K.3-K.6) as one DHT segment:
/// luma DC, chroma DC, luma AC, chroma AC. Generated from the tables zune-jpeg
/// fills for AVI1 frames; `default_tables_are_annex_k` checks the counts.
const DEFAULT_DHT: [u8; 420] = [
    0xFF, 0xC4, 0x01, 0xA2, 0x00, 0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A,
    0x0B, 0x01, 0x00, 0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x10, 0x00,
    0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7D, 0x01,
    0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22,
    0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0, 0x24,
    0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A,
    0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A,
    0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
    0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8,
    0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6,
    0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, 0xE3,
    0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9,
    0xFA, 0x11, 0x00, 0x02, 0x01, 0x02, 0x04, 0x04, 0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01,
    0x02, 0x77, 0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07,
    0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33,
    0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19,
    0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46,
    0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66,
    0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85,
    0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3,
    0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA,
    0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8,
    0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6,
    0xF7, 0xF8, 0xF9, 0xFA,
];

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DHT: u8 = 0xC4;

/// Where a frame's scan starts and whether it defines Huffman tables.
#[derive(Debug, PartialEq, Eq)]
struct Markers {
    /// Offset of the SOS marker's 0xFF.
    sos: usize,
    has_dht: bool,
}

/// Walks the marker segments from SOI to SOS (T.81 B.1.1.2).
fn scan_markers(jpeg: &[u8]) -> Result<Markers, MjpegError> {
    if jpeg.len() < 4 || jpeg[0] != 0xFF || jpeg[1] != SOI {
        return Err(MjpegError::NotJpeg);
    }
    let mut pos = 2;
    let mut has_dht = false;
    loop {
        let malformed = |what| MjpegError::Malformed { offset: pos, what };
        if jpeg.get(pos) != Some(&0xFF) {
            return Err(if pos >= jpeg.len() {
                MjpegError::Truncated
            } else {
                malformed("expected a marker")
            });
        }
        // Any number of 0xFF fill bytes may precede a marker code.
        let mut code_at = pos + 1;
        while jpeg.get(code_at) == Some(&0xFF) {
            code_at += 1;
        }
        let Some(&code) = jpeg.get(code_at) else {
            return Err(MjpegError::Truncated);
        };
        match code {
            SOS => {
                return Ok(Markers {
                    sos: code_at - 1,
                    has_dht,
                });
            }
            EOI => return Err(malformed("end of image before any scan")),
            0x00 | SOI | 0xD0..=0xD7 | 0x01 => {
                return Err(malformed("unexpected marker before the scan"));
            }
            _ => {}
        }
        has_dht |= code == DHT;
        let len = match jpeg.get(code_at + 1..code_at + 3) {
            Some(b) => usize::from(u16::from_be_bytes([b[0], b[1]])),
            None => return Err(MjpegError::Truncated),
        };
        if len < 2 {
            return Err(malformed("segment length below 2"));
        }
        pos = code_at + 1 + len;
    }
}

/// True when the frame ends in EOI, allowing the zero padding some
/// devices leave after it in the buffer.
pub(crate) fn ends_with_eoi(jpeg: &[u8]) -> bool {
    let end = jpeg.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    end >= 2 && jpeg[end - 2] == 0xFF && jpeg[end - 1] == EOI
}

/// Decodes MJPEG frames to gray, reusing its buffers from frame to frame.
pub struct MjpegDecoder {
    /// The frame with the default tables spliced in, when it needed them.
    patched: Vec<u8>,
    /// Frames must be exactly this size (the stream's), checked from the
    /// header before anything is allocated for the picture.
    expected: Option<(u32, u32)>,
}

impl Default for MjpegDecoder {
    fn default() -> Self {
        MjpegDecoder::new()
    }
}

impl MjpegDecoder {
    /// A decoder for frames of any size up to [`MAX_SIDE`].
    pub fn new() -> MjpegDecoder {
        MjpegDecoder {
            patched: Vec::new(),
            expected: None,
        }
    }

    /// A decoder for a stream of `width` x `height` frames: a frame whose
    /// header says otherwise is refused before its pixels are allocated
    /// (a corrupt header must not make a 16384x16384 buffer).
    pub fn for_size(width: u32, height: u32) -> MjpegDecoder {
        MjpegDecoder {
            patched: Vec::new(),
            expected: Some((width, height)),
        }
    }

    /// Decodes one frame into `out` as 8-bit luma, rows packed, and returns
    /// its width and height. `out` is resized; its capacity is reused.
    pub fn decode_gray(
        &mut self,
        jpeg: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(u32, u32), MjpegError> {
        let markers = scan_markers(jpeg)?;
        if !ends_with_eoi(jpeg) {
            return Err(MjpegError::Truncated);
        }
        let data = if markers.has_dht {
            jpeg
        } else {
            self.patched.clear();
            self.patched.extend_from_slice(&jpeg[..markers.sos]);
            self.patched.extend_from_slice(&DEFAULT_DHT);
            self.patched.extend_from_slice(&jpeg[markers.sos..]);
            &self.patched
        };
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::Luma)
            .set_max_width(MAX_SIDE as usize)
            .set_max_height(MAX_SIDE as usize);
        let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
        decoder
            .decode_headers()
            .map_err(|e| MjpegError::Decode(e.to_string()))?;
        let (w, h) = decoder
            .dimensions()
            .ok_or_else(|| MjpegError::Decode("no frame header".into()))?;
        if let Some((ew, eh)) = self.expected
            && (w, h) != (ew as usize, eh as usize)
        {
            return Err(MjpegError::WrongSize {
                width: w,
                height: h,
                expected_width: ew,
                expected_height: eh,
            });
        }
        let size = decoder
            .output_buffer_size()
            .ok_or_else(|| MjpegError::Decode("no frame header".into()))?;
        if w == 0 || h == 0 || size != w * h {
            return Err(MjpegError::Decode(format!(
                "unexpected output of {size} bytes for {w}x{h} luma"
            )));
        }
        out.resize(size, 0);
        decoder
            .decode_into(out)
            .map_err(|e| MjpegError::Decode(e.to_string()))?;
        Ok((w as u32, h as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real picture (the demo echo cine's first frame) as a baseline JPEG
    /// written by `image`, whose encoder uses the Annex K tables.
    fn sample_jpeg() -> (Vec<u8>, u32, u32) {
        use crate::capture::FrameSource;
        use crate::capture::dicom::DicomSource;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/echo_cine.dcm");
        let frame = DicomSource::open(path.as_ref())
            .unwrap()
            .next_frame()
            .unwrap()
            .unwrap();
        let (w, h) = (frame.width(), frame.height());
        let (data, ..) = frame.into_parts();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
            .encode(&data, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        (jpeg, w, h)
    }

    /// Removes every DHT segment, as abbreviated MJPEG devices send frames.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let sos = scan_markers(jpeg).unwrap().sos;
        let mut out = jpeg[..2].to_vec();
        let mut pos = 2;
        while pos < sos {
            let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if jpeg[pos + 1] != DHT {
                out.extend_from_slice(&jpeg[pos..pos + 2 + len]);
            }
            pos += 2 + len;
        }
        out.extend_from_slice(&jpeg[sos..]);
        out
    }

    #[test]
    fn default_tables_are_annex_k() {
        assert_eq!(&DEFAULT_DHT[..2], &[0xFF, DHT]);
        assert_eq!(
            usize::from(u16::from_be_bytes([DEFAULT_DHT[2], DEFAULT_DHT[3]])),
            418
        );
        let mut pos = 4;
        let mut classes = Vec::new();
        while pos < DEFAULT_DHT.len() {
            classes.push(DEFAULT_DHT[pos]);
            let count: usize = DEFAULT_DHT[pos + 1..pos + 17]
                .iter()
                .map(|&c| usize::from(c))
                .sum();
            pos += 17 + count;
        }
        assert_eq!(pos, DEFAULT_DHT.len());
        assert_eq!(classes, [0x00, 0x01, 0x10, 0x11]);
    }

    #[test]
    fn frames_without_huffman_tables_decode_like_full_ones() {
        let (jpeg, w, h) = sample_jpeg();
        let mut dec = MjpegDecoder::new();
        let mut full = Vec::new();
        assert_eq!(dec.decode_gray(&jpeg, &mut full).unwrap(), (w, h));
        let abbreviated = strip_dht(&jpeg);
        assert!(
            abbreviated.len() < jpeg.len() - 400,
            "the DHT segments were removed"
        );
        assert!(!scan_markers(&abbreviated).unwrap().has_dht);
        let mut patched = Vec::new();
        assert_eq!(dec.decode_gray(&abbreviated, &mut patched).unwrap(), (w, h));
        assert_eq!(patched, full);
        // The picture is the echo, not a flat field.
        let (lo, hi) = full
            .iter()
            .fold((255, 0), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!(lo < 10 && hi > 150, "range {lo}..{hi}");
    }

    #[test]
    fn truncated_and_foreign_frames_are_errors() {
        let (jpeg, ..) = sample_jpeg();
        let mut dec = MjpegDecoder::new();
        let mut out = Vec::new();
        for cut in [0, 1, 3, 10, 100, jpeg.len() / 2, jpeg.len() - 1] {
            assert!(
                dec.decode_gray(&jpeg[..cut], &mut out).is_err(),
                "cut at {cut}"
            );
        }
        assert_eq!(
            dec.decode_gray(&jpeg[..jpeg.len() / 2], &mut out),
            Err(MjpegError::Truncated)
        );
        assert_eq!(
            dec.decode_gray(b"\x89PNG\r\n\x1a\n....", &mut out),
            Err(MjpegError::NotJpeg)
        );
        // Zero padding after EOI, as some drivers leave in the buffer, is fine.
        let mut padded = jpeg.clone();
        padded.resize(jpeg.len() + 4096, 0);
        assert!(dec.decode_gray(&padded, &mut out).is_ok());
    }

    #[test]
    fn output_buffer_is_reused() {
        let (jpeg, w, h) = sample_jpeg();
        let mut dec = MjpegDecoder::new();
        let mut out = Vec::with_capacity((w * h) as usize);
        let before = out.as_ptr();
        dec.decode_gray(&jpeg, &mut out).unwrap();
        assert_eq!(out.as_ptr(), before);
    }
}
