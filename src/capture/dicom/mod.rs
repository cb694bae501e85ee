//! DICOM files: single images and multi-frame cines, decoded one frame at a time.
//!
//! dicom-object parses the file, after `scan_encoding` has checked that every
//! element length fits in the file (the parser zero-fills a buffer of the
//! stated length before reading it). Native, deflated and RLE pixel data are
//! unpacked here rather than by dicom-pixeldata, whose paths index without
//! checking (a short RLE segment panics) and cannot honour Bits Stored or the
//! colour model: here each offset is checked against the image attributes once
//! and a frame costs one allocation. JPEG goes through dicom-pixeldata
//! (jpeg-decoder) once the frame header matches Rows, Columns and Samples per
//! Pixel, because its adapter copies the decoded image unchecked. jpeg-decoder
//! applies the YCbCr transform itself, so its colour output is RGB; where its
//! guess contradicts the file (an RGB stream without JFIF or Adobe marker), the
//! frame is decoded raw with zune-jpeg instead.
//!
//! Output is Gray8, Gray16 with its [`Tone`] (the window mapped through the
//! rescale into stored values), or Rgb24 for RGB, YBR_FULL, YBR_FULL_422 and
//! PALETTE COLOR. Patient attributes are never read, and text from the DICOM
//! crates is cut before anything that could be a printed value, so neither
//! [`FrameSource::describe`] nor an error can carry a name.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::{tags, uids};
use dicom_object::{
    DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions, Tag,
};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::{CaptureError, FrameSource};
use crate::frame::{Frame, FrameMeta, MAX_SIDE, PixelFormat, Tone, VoiWindow};

/// Frame interval used when a multi-frame object states no Frame Time.
const DEFAULT_FRAME_US: u64 = 33_333;
/// More frames than any cine holds; a larger Number of Frames is corrupt or hostile.
const MAX_FRAMES: i64 = 100_000;
/// PackBits turns two bytes into at most 128 (PS3.5 G.3.1).
const RLE_MAX_EXPANSION: usize = 64;
const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;
/// Retired in 2004 (so deprecated in dicom-dictionary-std), still written by old carts.
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// YBR_FULL to RGB (PS3.3 C.7.6.3.1.2, the JFIF equations), coefficients in
/// Q16: `R = Y + 1.402 Cr'`, `G = Y - 0.344136 Cb' - 0.714136 Cr'`,
/// `B = Y + 1.772 Cb'` with `Cb' = Cb - 128`, rounded half up.
const Q16_ONE_HALF: i32 = 1 << 15;
const CR_TO_R_Q16: i32 = 91_881;
const CB_TO_G_Q16: i32 = 22_554;
const CR_TO_G_Q16: i32 = 46_802;
const CB_TO_B_Q16: i32 = 116_130;

/// Replays the frames of one DICOM object.
pub struct DicomSource {
    path: PathBuf,
    obj: DefaultDicomObject,
    codec: Codec,
    layout: Layout,
    palette: Option<Palette>,
    tone: Tone,
    frames: u32,
    next: u32,
    interval_us: u64,
    first_seq: u64,
    first_us: u64,
}

impl DicomSource {
    /// Opens a DICOM file (with or without the 128-byte preamble, or a bare
    /// data set without file meta).
    pub fn open(path: &Path) -> Result<DicomSource, CaptureError> {
        let bytes = std::fs::read(path).map_err(|e| CaptureError::io(path, e))?;
        DicomSource::from_bytes(path, &bytes)
    }

    /// Parses DICOM from memory; `name` is used in messages only.
    pub fn from_bytes(name: &Path, bytes: &[u8]) -> Result<DicomSource, CaptureError> {
        DicomSource::build(name, bytes).map_err(|f| f.at(name))
    }

    fn build(name: &Path, bytes: &[u8]) -> Result<DicomSource, Fault> {
        let ts_uid = scan_encoding(bytes)?;
        let codec = match TransferSyntaxRegistry.get(&ts_uid) {
            None => {
                return Err(Fault::Unsupported(
                    "transfer syntax",
                    format!("unknown UID {}", printable_uid(&ts_uid)),
                ));
            }
            Some(ts) => match Codec::for_uid(&ts_uid) {
                Some(codec) if ts.can_decode_all() => codec,
                _ => {
                    return Err(Fault::Unsupported(
                        "transfer syntax",
                        format!("{} ({ts_uid}) has no decoder in this build", ts.name()),
                    ));
                }
            },
        };
        let obj = parse(bytes, &ts_uid)?;
        let pixel = obj
            .element(tags::PIXEL_DATA)
            .map_err(|_| Fault::from("no Pixel Data element"))?;
        let layout = Layout::read(&obj, codec)?;
        let frames = number_of_frames(&obj)?;
        // Against the data present, so a huge Number of Frames fails here.
        match codec {
            Codec::Native => {
                let have = pixel
                    .to_bytes()
                    .map_err(|_| {
                        Fault::from("encapsulated pixel data in a native transfer syntax")
                    })?
                    .len();
                let need = layout.frame_len().checked_mul(frames as usize);
                if need.is_none_or(|need| need > have) {
                    return Err(Fault::Bad(format!(
                        "pixel data holds {have} bytes, less than {frames} frame(s) of {} bytes",
                        layout.frame_len()
                    )));
                }
            }
            Codec::Rle | Codec::Jpeg => {
                let have = pixel.value().fragments().map_or(0, <[_]>::len);
                if have < frames as usize {
                    return Err(Fault::Bad(format!(
                        "{frames} frame(s) declared, {have} pixel data fragment(s) present"
                    )));
                }
            }
        }
        let palette = match layout.colour {
            Colour::Palette => Some(Palette::read(&obj, layout.bits.signed)?),
            _ => None,
        };
        let tone = tone(&obj, &layout);
        let frame_ms = obj
            .element(tags::FRAME_TIME)
            .ok()
            .and_then(|e| e.to_float64().ok());
        let interval_us = match frame_ms {
            Some(ms) if ms.is_finite() && ms > 0.0 && ms < 60_000.0 => (ms * 1000.0).round() as u64,
            _ => DEFAULT_FRAME_US,
        };
        let source = DicomSource {
            path: name.to_path_buf(),
            obj,
            codec,
            layout,
            palette,
            tone,
            frames,
            next: 0,
            interval_us,
            first_seq: 0,
            first_us: 0,
        };
        if codec == Codec::Jpeg {
            // An unsupported JPEG process fails at open, like an unsupported syntax.
            source.jpeg_plan(0)?;
        }
        Ok(source)
    }

    /// Continue numbering after another source (used by folder replay).
    pub(crate) fn continue_from(&mut self, seq: u64, timestamp_us: u64) {
        self.first_seq = seq;
        self.first_us = timestamp_us;
    }

    /// Number of frames in the object.
    pub fn frame_count(&self) -> u32 {
        self.frames
    }

    /// Interval between frames (Frame Time, or 33.3 ms when absent).
    pub fn interval_us(&self) -> u64 {
        self.interval_us
    }

    fn decode(&self, index: u32) -> Result<Frame, CaptureError> {
        let (layout, stored) = self
            .stored_frame(index)
            .map_err(|f| f.in_frame(index).at(&self.path))?;
        let data = render(&layout, stored, self.palette.as_ref())
            .map_err(|r| Fault::Bad(r).in_frame(index).at(&self.path))?;
        let meta = FrameMeta {
            seq: self.first_seq + u64::from(index),
            timestamp_us: self.first_us + u64::from(index) * self.interval_us,
        };
        let format = layout.output();
        let frame =
            Frame::packed(data, format, layout.width, layout.height, meta).map_err(|e| {
                CaptureError::BadFrame {
                    path: self.path.clone(),
                    source: e,
                }
            })?;
        Ok(match format {
            PixelFormat::Gray16 => frame.with_tone(self.tone),
            _ => frame,
        })
    }

    /// One frame's samples as stored (native) or as its decoder left them,
    /// with the layout that describes them.
    fn stored_frame(&self, index: u32) -> Result<(Layout, Cow<'_, [u8]>), Fault> {
        match self.codec {
            Codec::Native => Ok((self.layout, self.native_frame(index)?)),
            Codec::Rle => {
                let layout = self.layout.decoded();
                let parts = self.frame_fragments(index)?;
                let [fragment] = parts else {
                    return Err(Fault::Bad(format!(
                        "RLE frame spans {} fragments, one expected",
                        parts.len()
                    )));
                };
                Ok((layout, Cow::Owned(rle_frame(fragment, &layout)?)))
            }
            Codec::Jpeg => {
                let (layout, raw) = self.jpeg_plan(index)?;
                if raw {
                    let parts = self.frame_fragments(index)?;
                    let bytes: Cow<'_, [u8]> = match parts {
                        [one] => Cow::Borrowed(one.as_slice()),
                        _ => Cow::Owned(parts.concat()),
                    };
                    return Ok((layout, Cow::Owned(zune_raw(&bytes, &layout)?)));
                }
                let px = self
                    .obj
                    .decode_pixel_data_frame(index)
                    .map_err(|e| Fault::Bad(one_line(&e)))?;
                Ok((layout, Cow::Owned(px.into_data())))
            }
        }
    }

    fn native_frame(&self, index: u32) -> Result<Cow<'_, [u8]>, String> {
        let bytes = self
            .obj
            .element(tags::PIXEL_DATA)
            .ok()
            .and_then(|e| e.to_bytes().ok())
            .ok_or("pixel data is not readable")?;
        let len = self.layout.frame_len();
        let start = len.checked_mul(index as usize);
        let range = start.and_then(|s| Some(s..s.checked_add(len)?));
        let short = || format!("pixel data ends before frame {index}");
        match bytes {
            Cow::Borrowed(all) => range
                .and_then(|r| all.get(r))
                .map(Cow::Borrowed)
                .ok_or_else(short),
            Cow::Owned(all) => range
                .and_then(|r| all.get(r))
                .map(|s| Cow::Owned(s.to_vec()))
                .ok_or_else(short),
        }
    }

    /// The fragments holding frame `index`, chosen as dicom-pixeldata's JPEG
    /// adapter chooses them (one fragment per frame, else the Basic Offset
    /// Table), so the header checked is the one it will decode.
    fn frame_fragments(&self, index: u32) -> Result<&[Vec<u8>], String> {
        let value = self
            .obj
            .element(tags::PIXEL_DATA)
            .map_err(|_| "no Pixel Data element")?
            .value();
        let fragments = value.fragments().ok_or("pixel data is not encapsulated")?;
        let missing = || format!("no fragment for frame {index}");
        let i = index as usize;
        if fragments.len() == 1 || fragments.len() == self.frames as usize {
            return fragments.get(i..i + 1).ok_or_else(missing);
        }
        let table = value.offset_table().unwrap_or_default();
        let base = match table.get(i) {
            Some(&b) => b as usize,
            None if index == 0 => 0,
            None => return Err(missing()),
        };
        let next = table.get(i + 1).map(|&n| n as usize);
        let (mut first, mut end, mut offset) = (None, fragments.len(), 0usize);
        for (k, f) in fragments.iter().enumerate() {
            if first.is_none() && offset >= base {
                first = Some(k);
            }
            offset = offset.saturating_add(f.len().saturating_add(8));
            if next.is_some_and(|n| offset >= n) {
                end = k + 1;
                break;
            }
        }
        let first = first.unwrap_or(end);
        match fragments.get(first..end.max(first)) {
            Some(parts) if !parts.is_empty() => Ok(parts),
            _ => Err(missing()),
        }
    }

    /// Checks frame `index`'s JPEG header against the image and decides how its
    /// colour comes out: the layout of the decoded samples, and whether it must
    /// be decoded raw (zune-jpeg) because jpeg-decoder would transform it wrongly.
    fn jpeg_plan(&self, index: u32) -> Result<(Layout, bool), Fault> {
        let parts = self.frame_fragments(index)?;
        let head = jpeg_header(parts.iter().map(Vec::as_slice))?;
        let l = &self.layout;
        let unsupported = |detail: String| Fault::Unsupported("JPEG", detail);
        match head.sof {
            0xC0..=0xC3 => {}
            0xC5..=0xC7 => {
                return Err(unsupported(
                    "hierarchical JPEG has no decoder in this build".into(),
                ));
            }
            _ => {
                return Err(unsupported(
                    "arithmetic-coded JPEG has no decoder in this build".into(),
                ));
            }
        }
        let lossless = head.sof == 0xC3;
        if !lossless && head.precision != 8 {
            return Err(unsupported(format!(
                "{}-bit lossy JPEG (JPEG Extended, process 4) has no decoder in this build",
                head.precision
            )));
        }
        if !(2..=16).contains(&head.precision) {
            return Err(Fault::Bad(format!(
                "JPEG sample precision {}",
                head.precision
            )));
        }
        if (u32::from(head.width), u32::from(head.height)) != (l.width, l.height)
            || usize::from(head.components) != l.samples
        {
            return Err(Fault::Bad(format!(
                "JPEG frame is {}x{} with {} component(s), the image {}x{} with {} sample(s)",
                head.width, head.height, head.components, l.width, l.height, l.samples
            )));
        }
        // jpeg-decoder emits two bytes per sample for any precision but 8.
        let bytes = if head.precision == 8 { 1 } else { 2 };
        if bytes != l.bytes {
            return Err(unsupported(format!(
                "{}-bit JPEG samples in {}-bit pixel data",
                head.precision,
                l.bytes * 8
            )));
        }
        let mut out = l.decoded();
        let mut raw = false;
        if l.samples == 3 {
            let ycbcr = head.stream_is_ycbcr(l.colour);
            if lossless {
                // jpeg-decoder never transforms lossless components.
                out.colour = if ycbcr { Colour::YbrFull } else { Colour::Rgb };
            } else {
                // jpeg-decoder's output is RGB when its transform matches the
                // file's; otherwise decode the components raw and convert here.
                raw = head.jpeg_decoder_converts()? != ycbcr;
                out.colour = if raw && ycbcr {
                    Colour::YbrFull
                } else {
                    Colour::Rgb
                };
            }
        }
        Ok((out, raw))
    }
}

impl FrameSource for DicomSource {
    fn describe(&self) -> String {
        format!(
            "DICOM {} ({} frame(s), {:.1} ms/frame)",
            self.path.display(),
            self.frames,
            self.interval_us as f64 / 1000.0
        )
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.next >= self.frames {
            return Ok(None);
        }
        let f = self.decode(self.next)?;
        self.next += 1;
        Ok(Some(f))
    }
}

/// A failure before the file name is attached.
#[derive(Debug)]
enum Fault {
    Bad(String),
    Unsupported(&'static str, String),
}

impl Fault {
    fn at(self, path: &Path) -> CaptureError {
        match self {
            Fault::Bad(reason) => CaptureError::Dicom {
                path: path.to_path_buf(),
                reason,
            },
            Fault::Unsupported(what, detail) => CaptureError::Unsupported {
                path: path.to_path_buf(),
                what,
                detail,
            },
        }
    }

    fn in_frame(self, index: u32) -> Fault {
        match self {
            Fault::Bad(r) => Fault::Bad(format!("frame {index}: {r}")),
            Fault::Unsupported(what, d) => Fault::Unsupported(what, format!("frame {index}: {d}")),
        }
    }
}

impl From<String> for Fault {
    fn from(reason: String) -> Fault {
        Fault::Bad(reason)
    }
}

impl From<&str> for Fault {
    fn from(reason: &str) -> Fault {
        Fault::Bad(reason.to_string())
    }
}

/// How the pixel data is encoded, as far as this module is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    /// Implicit/explicit VR little endian, explicit big endian, deflated.
    Native,
    Rle,
    /// Baseline, extended (8-bit) and lossless JPEG.
    Jpeg,
}

impl Codec {
    fn for_uid(uid: &str) -> Option<Codec> {
        match uid {
            uids::IMPLICIT_VR_LITTLE_ENDIAN
            | uids::EXPLICIT_VR_LITTLE_ENDIAN
            | EXPLICIT_VR_BIG_ENDIAN
            | uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => Some(Codec::Native),
            uids::RLE_LOSSLESS => Some(Codec::Rle),
            uids::JPEG_BASELINE8_BIT
            | uids::JPEG_EXTENDED12_BIT
            | uids::JPEG_LOSSLESS
            | uids::JPEG_LOSSLESS_SV1 => Some(Codec::Jpeg),
            _ => None,
        }
    }
}

/// Photometric interpretations we decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Colour {
    Mono1,
    Mono2,
    Rgb,
    YbrFull,
    YbrFull422,
    Palette,
}

/// Where a frame's samples sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arrangement {
    /// Samples of a pixel together (Planar Configuration 0, and decoder output).
    Interleaved,
    /// One plane per sample (Planar Configuration 1).
    Planar,
    /// Native YBR_FULL_422: `Y0 Y1 Cb Cr` for each pair of pixels.
    Ybr422,
}

/// Stored values in their container (PS3.5 8.1.1): `stored` bits, `shift`
/// above bit 0, two's complement when signed. Bits above the High Bit (e.g.
/// overlays in 12-bit data) are not pixel data and are masked off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bits {
    stored: u32,
    shift: u32,
    signed: bool,
}

impl Bits {
    fn value(self, raw: u32) -> i32 {
        let v = (raw >> self.shift) & ((1u32 << self.stored) - 1);
        if self.signed && v >> (self.stored - 1) == 1 {
            v as i32 - (1i32 << self.stored)
        } else {
            v as i32
        }
    }

    /// An unsigned level from 0: signed values shifted up by half their range.
    fn level(self, raw: u32) -> u32 {
        let v = self.value(raw);
        (if self.signed {
            v + (1 << (self.stored - 1))
        } else {
            v
        }) as u32
    }

    /// The level in 8 bits: the high byte of the stored bits, or the stored
    /// bits shifted up when there are fewer than 8.
    fn to_u8(self, raw: u32) -> u8 {
        let l = self.level(raw);
        if self.stored >= 8 {
            (l >> (self.stored - 8)) as u8
        } else {
            (l << (8 - self.stored)) as u8
        }
    }

    /// 16-bit output: the value, offset by 32768 when signed, so that one
    /// unsigned path (and [`Tone`]) serves both.
    fn to_u16(self, raw: u32) -> u16 {
        let v = self.value(raw);
        if self.signed {
            (v + 32_768) as u16
        } else {
            v as u16
        }
    }

    /// True when stored values are the container's bits as they are.
    fn is_plain(self, container_bits: u32) -> bool {
        self.stored == container_bits && self.shift == 0 && !self.signed
    }
}

/// The layout shared by every frame of an object, validated once at open so
/// that sizes below cannot overflow (sides are at most [`MAX_SIDE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    width: u32,
    height: u32,
    colour: Colour,
    samples: usize,
    /// Bytes per sample container: 1 or 2.
    bytes: usize,
    bits: Bits,
    arrangement: Arrangement,
}

impl Layout {
    fn read(obj: &DefaultDicomObject, codec: Codec) -> Result<Layout, Fault> {
        let rows = u16_attr(obj, tags::ROWS, "Rows")?.ok_or("no Rows")?;
        let cols = u16_attr(obj, tags::COLUMNS, "Columns")?.ok_or("no Columns")?;
        let spp = u16_attr(obj, tags::SAMPLES_PER_PIXEL, "Samples per Pixel")?.unwrap_or(1);
        let allocated =
            u16_attr(obj, tags::BITS_ALLOCATED, "Bits Allocated")?.ok_or("no Bits Allocated")?;
        let stored = u16_attr(obj, tags::BITS_STORED, "Bits Stored")?.unwrap_or(allocated);
        let high = u16_attr(obj, tags::HIGH_BIT, "High Bit")?.unwrap_or(stored.saturating_sub(1));
        let signed = match u16_attr(obj, tags::PIXEL_REPRESENTATION, "Pixel Representation")? {
            None | Some(0) => false,
            Some(1) => true,
            Some(v) => return Err(Fault::Bad(format!("Pixel Representation {v}"))),
        };
        let planar = match u16_attr(obj, tags::PLANAR_CONFIGURATION, "Planar Configuration")? {
            None | Some(0) => false,
            Some(1) => true,
            Some(v) => return Err(Fault::Bad(format!("Planar Configuration {v}"))),
        };
        let pi = obj
            .element(tags::PHOTOMETRIC_INTERPRETATION)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_matches([' ', '\0']).to_string())
            .filter(|s| !s.is_empty());
        let pi = match pi {
            Some(pi) => pi,
            None if spp == 1 => "MONOCHROME2".to_string(),
            None => return Err(Fault::from("no Photometric Interpretation")),
        };
        let unsupported = |why: &str| {
            let layout = format!(
                "{spp} sample(s) of {allocated} bits, photometric interpretation {}",
                printable_pi(&pi)
            );
            Fault::Unsupported(
                "pixel layout",
                if why.is_empty() {
                    layout
                } else {
                    format!("{layout} ({why})")
                },
            )
        };
        if rows == 0 || cols == 0 {
            return Err(Fault::Bad(format!("empty image ({cols}x{rows})")));
        }
        if u32::from(rows) > MAX_SIDE || u32::from(cols) > MAX_SIDE {
            return Err(Fault::Unsupported(
                "image size",
                format!("{cols}x{rows} exceeds the {MAX_SIDE}-pixel limit"),
            ));
        }
        let colour = match pi.as_str() {
            "MONOCHROME1" => Colour::Mono1,
            "MONOCHROME2" => Colour::Mono2,
            "RGB" => Colour::Rgb,
            "YBR_FULL" => Colour::YbrFull,
            "YBR_FULL_422" => Colour::YbrFull422,
            "PALETTE COLOR" => Colour::Palette,
            _ => return Err(unsupported("")),
        };
        let bytes = match allocated {
            8 => 1,
            16 => 2,
            _ => return Err(unsupported("")),
        };
        let samples = match colour {
            Colour::Mono1 | Colour::Mono2 | Colour::Palette => 1,
            _ => 3,
        };
        if usize::from(spp) != samples {
            return Err(unsupported(""));
        }
        let (stored, high) = (u32::from(stored), u32::from(high));
        if stored == 0
            || stored > u32::from(allocated)
            || high >= u32::from(allocated)
            || high + 1 < stored
        {
            return Err(Fault::Bad(format!(
                "Bits Stored {stored} and High Bit {high} do not fit Bits Allocated {allocated}"
            )));
        }
        let ybr = matches!(colour, Colour::YbrFull | Colour::YbrFull422);
        if samples == 3 && signed {
            return Err(unsupported("signed colour samples"));
        }
        if ybr && bytes != 1 {
            return Err(unsupported(""));
        }
        let arrangement = match (codec, colour) {
            (Codec::Native, Colour::YbrFull422) if planar => {
                return Err(unsupported("planar YBR_FULL_422"));
            }
            (Codec::Native, Colour::YbrFull422) if !cols.is_multiple_of(2) => {
                return Err(unsupported("odd Columns in YBR_FULL_422"));
            }
            (Codec::Native, Colour::YbrFull422) => Arrangement::Ybr422,
            (Codec::Rle, Colour::YbrFull422) => return Err(unsupported("YBR_FULL_422 in RLE")),
            (Codec::Native, _) if planar && samples == 3 => Arrangement::Planar,
            _ => Arrangement::Interleaved,
        };
        Ok(Layout {
            width: u32::from(cols),
            height: u32::from(rows),
            colour,
            samples,
            bytes,
            bits: Bits {
                stored,
                shift: high + 1 - stored,
                signed,
            },
            arrangement,
        })
    }

    fn pixels(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Bytes of one frame in this layout.
    fn frame_len(&self) -> usize {
        match self.arrangement {
            Arrangement::Ybr422 => self.pixels() * 2,
            _ => self.pixels() * self.samples * self.bytes,
        }
    }

    /// The layout a decoder (RLE, JPEG) produces: interleaved, full resolution.
    fn decoded(self) -> Layout {
        Layout {
            arrangement: Arrangement::Interleaved,
            ..self
        }
    }

    fn output(&self) -> PixelFormat {
        match (self.colour, self.bytes) {
            (Colour::Mono1 | Colour::Mono2, 1) => PixelFormat::Gray8,
            (Colour::Mono1 | Colour::Mono2, _) => PixelFormat::Gray16,
            _ => PixelFormat::Rgb24,
        }
    }
}

/// The first value of an integer attribute; `None` when absent or empty.
fn int_attr(obj: &DefaultDicomObject, tag: Tag, name: &str) -> Result<Option<i64>, String> {
    let Ok(e) = obj.element(tag) else {
        return Ok(None);
    };
    match e.to_int::<i64>() {
        Ok(v) => Ok(Some(v)),
        Err(_)
            if e.to_str()
                .is_ok_and(|s| s.trim_matches([' ', '\0']).is_empty()) =>
        {
            Ok(None)
        }
        Err(_) => Err(format!("{name} is not a number")),
    }
}

fn u16_attr(obj: &DefaultDicomObject, tag: Tag, name: &str) -> Result<Option<u16>, String> {
    int_attr(obj, tag, name)?
        .map(|v| u16::try_from(v).map_err(|_| format!("{name} {v} is out of range")))
        .transpose()
}

fn number_of_frames(obj: &DefaultDicomObject) -> Result<u32, String> {
    match int_attr(obj, tags::NUMBER_OF_FRAMES, "Number of Frames")? {
        None => Ok(1),
        Some(n) if (1..=MAX_FRAMES).contains(&n) => Ok(n as u32),
        Some(n) => Err(format!("implausible Number of Frames {n}")),
    }
}

/// The first VOI window, mapped through Rescale Slope/Intercept into stored
/// values (and the +32768 offset of signed data), since that is what the
/// frame's samples are.
fn tone(obj: &DefaultDicomObject, layout: &Layout) -> Tone {
    let first = |tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_multi_float64().ok())
            .and_then(|v| v.first().copied())
    };
    let slope = first(tags::RESCALE_SLOPE).unwrap_or(1.0);
    let intercept = first(tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    let offset = if layout.bits.signed { 32_768.0 } else { 0.0 };
    let window = match (first(tags::WINDOW_CENTER), first(tags::WINDOW_WIDTH)) {
        (Some(c), Some(w)) if slope.is_finite() && slope > 0.0 && intercept.is_finite() => {
            let (center, width) = ((c - intercept) / slope + offset, w / slope);
            (center.is_finite() && width.is_finite() && width >= 1.0)
                .then_some(VoiWindow { center, width })
        }
        _ => None,
    };
    Tone {
        window,
        invert: layout.colour == Colour::Mono1,
    }
}

/// Turns one frame's stored samples into output pixels. Same-size conversions
/// run in place, so a decoder's buffer is reused and native data copied once.
fn render(l: &Layout, stored: Cow<'_, [u8]>, palette: Option<&Palette>) -> Result<Vec<u8>, String> {
    let len = l.frame_len();
    if stored.len() < len {
        return Err(format!(
            "pixel data has {} bytes, {len} expected",
            stored.len()
        ));
    }
    let in_place = match (l.colour, l.arrangement) {
        (Colour::Mono1 | Colour::Mono2, _) => true,
        (Colour::Rgb | Colour::YbrFull, Arrangement::Interleaved) => l.bytes == 1,
        _ => false,
    };
    if in_place {
        let mut buf = match stored {
            Cow::Owned(mut v) => {
                v.truncate(len);
                v
            }
            Cow::Borrowed(s) => s.get(..len).unwrap_or_default().to_vec(),
        };
        convert_in_place(l, &mut buf);
        return Ok(buf);
    }
    let src = stored.get(..len).unwrap_or_default();
    let mut out = vec![0u8; l.pixels() * 3];
    let b = l.bits;
    let sample = |c: &[u8]| b.to_u8(container(c));
    match (l.colour, l.arrangement) {
        (Colour::Palette, _) => {
            let p = palette.ok_or("no palette")?;
            for (c, o) in src.chunks_exact(l.bytes).zip(out.chunks_exact_mut(3)) {
                o.copy_from_slice(&p.lookup(b.value(container(c))));
            }
        }
        (Colour::YbrFull422, Arrangement::Ybr422) => {
            for (q, o) in src.chunks_exact(4).zip(out.chunks_exact_mut(6)) {
                if let &[y0, y1, cb, cr] = q {
                    let (cb, cr) = (b.to_u8(cb.into()), b.to_u8(cr.into()));
                    let [r0, g0, b0] = ybr_to_rgb(b.to_u8(y0.into()), cb, cr);
                    let [r1, g1, b1] = ybr_to_rgb(b.to_u8(y1.into()), cb, cr);
                    o.copy_from_slice(&[r0, g0, b0, r1, g1, b1]);
                }
            }
        }
        (Colour::Rgb | Colour::YbrFull, Arrangement::Interleaved) => {
            for (px, o) in src.chunks_exact(3 * l.bytes).zip(out.chunks_exact_mut(3)) {
                let mut s = px.chunks_exact(l.bytes).map(sample);
                let v = [
                    s.next().unwrap_or(0),
                    s.next().unwrap_or(0),
                    s.next().unwrap_or(0),
                ];
                o.copy_from_slice(&colour_pixel(l.colour, v));
            }
        }
        (Colour::Rgb | Colour::YbrFull, Arrangement::Planar) => {
            let plane = l.pixels() * l.bytes;
            let (Some(p0), Some(p1), Some(p2)) = (
                src.get(..plane),
                src.get(plane..2 * plane),
                src.get(2 * plane..3 * plane),
            ) else {
                return Err("planes cut short".into());
            };
            let planes = p0
                .chunks_exact(l.bytes)
                .zip(p1.chunks_exact(l.bytes))
                .zip(p2.chunks_exact(l.bytes));
            for (((a, bb), c), o) in planes.zip(out.chunks_exact_mut(3)) {
                o.copy_from_slice(&colour_pixel(l.colour, [sample(a), sample(bb), sample(c)]));
            }
        }
        _ => return Err("no conversion for this pixel layout".into()),
    }
    Ok(out)
}

/// Conversions whose output is the size of their input (gray, 8-bit colour).
fn convert_in_place(l: &Layout, buf: &mut [u8]) {
    let b = l.bits;
    match (l.colour, l.bytes) {
        (Colour::Mono1 | Colour::Mono2, 1) => {
            let invert = l.colour == Colour::Mono1;
            if b.is_plain(8) && !invert {
                return;
            }
            for v in buf.iter_mut() {
                let g = b.to_u8(u32::from(*v));
                *v = if invert { 255 - g } else { g };
            }
        }
        (Colour::Mono1 | Colour::Mono2, _) => {
            if b.is_plain(16) {
                return;
            }
            for s in buf.chunks_exact_mut(2) {
                let v = b.to_u16(container(s));
                s.copy_from_slice(&v.to_le_bytes());
            }
        }
        (Colour::Rgb, _) if !b.is_plain(8) => {
            for v in buf.iter_mut() {
                *v = b.to_u8(u32::from(*v));
            }
        }
        (Colour::YbrFull, _) => {
            for px in buf.chunks_exact_mut(3) {
                if let &mut [y, cb, cr] = px {
                    let rgb = ybr_to_rgb(b.to_u8(y.into()), b.to_u8(cb.into()), b.to_u8(cr.into()));
                    px.copy_from_slice(&rgb);
                }
            }
        }
        _ => {}
    }
}

/// A little-endian sample container of one or two bytes.
fn container(c: &[u8]) -> u32 {
    match *c {
        [v] => u32::from(v),
        [lo, hi] => u32::from(u16::from_le_bytes([lo, hi])),
        _ => 0,
    }
}

fn colour_pixel(colour: Colour, [a, b, c]: [u8; 3]) -> [u8; 3] {
    match colour {
        Colour::YbrFull => ybr_to_rgb(a, b, c),
        _ => [a, b, c],
    }
}

/// Full-range YCbCr to RGB in Q16 fixed point (see [`CR_TO_R_Q16`]).
fn ybr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let y = i32::from(y) << 16;
    let (cb, cr) = (i32::from(cb) - 128, i32::from(cr) - 128);
    let clamp = |v: i32| ((v + Q16_ONE_HALF) >> 16).clamp(0, 255) as u8;
    [
        clamp(y + CR_TO_R_Q16 * cr),
        clamp(y - CB_TO_G_Q16 * cb - CR_TO_G_Q16 * cr),
        clamp(y + CB_TO_B_Q16 * cb),
    ]
}

/// A PALETTE COLOR lookup table (PS3.3 C.7.6.3.1.5-6, C.7.9) as 8-bit RGB
/// entries; 16-bit entries keep their high byte.
#[derive(Debug)]
struct Palette {
    first: i32,
    rgb: Vec<[u8; 3]>,
}

impl Palette {
    fn read(obj: &DefaultDicomObject, signed: bool) -> Result<Palette, Fault> {
        let channels = [
            (
                "Red",
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
            (
                "Green",
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
            (
                "Blue",
                tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
        ];
        let mut palette = Palette {
            first: 0,
            rgb: Vec::new(),
        };
        for (k, (name, descriptor, data, segmented)) in channels.into_iter().enumerate() {
            let d = obj
                .element(descriptor)
                .ok()
                .and_then(|e| e.to_multi_int::<i32>().ok())
                .filter(|d| d.len() == 3)
                .ok_or_else(|| format!("no valid {name} Palette Color Lookup Table Descriptor"))?;
            let (count, first, bits) = match d.as_slice() {
                &[c, f, b] => (c, f, b),
                _ => (0, 0, 0),
            };
            // 0 stands for 2^16 entries; the first mapped value is signed with the pixels.
            let entries = match count & 0xFFFF {
                0 => 65_536,
                n => n as usize,
            };
            let first = if signed && first > 0x7FFF {
                first - 0x1_0000
            } else {
                first
            };
            if bits != 8 && bits != 16 {
                return Err(Fault::Bad(format!(
                    "{name} palette has {bits}-bit entries, 8 or 16 expected"
                )));
            }
            let values = if let Ok(e) = obj.element(data) {
                let bytes = e
                    .to_bytes()
                    .map_err(|_| format!("{name} palette is not data"))?;
                lut_entries(&bytes, entries, bits)
                    .ok_or_else(|| format!("{name} palette holds fewer than {entries} entries"))?
            } else if let Ok(e) = obj.element(segmented) {
                let bytes = e
                    .to_bytes()
                    .map_err(|_| format!("{name} palette is not data"))?;
                let words: Vec<u32> = if bits == 16 {
                    bytes.chunks_exact(2).map(container).collect()
                } else {
                    bytes.iter().map(|&b| u32::from(b)).collect()
                };
                let lut = expand_segmented(&words, entries, bits == 16)
                    .map_err(|r| format!("{name} segmented palette: {r}"))?;
                lut.into_iter().map(|v| entry_u8(v, bits)).collect()
            } else {
                return Err(Fault::Bad(format!("no {name} palette data")));
            };
            if k == 0 {
                palette.first = first;
                palette.rgb = vec![[0; 3]; entries];
            } else if entries != palette.rgb.len() {
                return Err(Fault::from("palette channels differ in length"));
            }
            for (e, v) in palette.rgb.iter_mut().zip(values) {
                if let Some(slot) = e.get_mut(k) {
                    *slot = v;
                }
            }
        }
        Ok(palette)
    }

    /// Values below the first mapped one take the first entry, values past
    /// the end the last (PS3.3 C.7.6.3.1.5).
    fn lookup(&self, value: i32) -> [u8; 3] {
        let last = self.rgb.len().saturating_sub(1);
        let i = (i64::from(value) - i64::from(self.first)).clamp(0, last as i64) as usize;
        self.rgb.get(i).copied().unwrap_or_default()
    }
}

/// Table entries as 8 bits. Data of two bytes per entry are 16-bit words
/// (8-bit values in them when the descriptor says 8); one byte per entry is
/// 8-bit data whatever the descriptor says, as pydicom reads it.
fn lut_entries(bytes: &[u8], entries: usize, bits: i32) -> Option<Vec<u8>> {
    if bytes.len() >= 2 * entries {
        Some(
            bytes
                .chunks_exact(2)
                .take(entries)
                .map(|c| entry_u8(container(c), bits))
                .collect(),
        )
    } else if bytes.len() >= entries {
        Some(bytes.iter().take(entries).copied().collect())
    } else {
        None
    }
}

fn entry_u8(v: u32, bits: i32) -> u8 {
    if bits == 16 {
        (v >> 8) as u8
    } else {
        v.min(255) as u8
    }
}

/// Expands segmented palette data (PS3.3 C.7.9.2) to `entries` values, as
/// pydicom does: linear segments round half to even; an indirect segment
/// copies segments found at an offset (in table units) and may not nest.
fn expand_segmented(data: &[u32], entries: usize, wide: bool) -> Result<Vec<u32>, String> {
    let mut lut = Vec::with_capacity(entries);
    expand_segments(data, &mut lut, entries, wide, None)?;
    if lut.len() < entries {
        return Err(format!("expands to {} of {entries} entries", lut.len()));
    }
    Ok(lut)
}

fn expand_segments(
    data: &[u32],
    lut: &mut Vec<u32>,
    limit: usize,
    wide: bool,
    segments: Option<usize>,
) -> Result<(), String> {
    let word = |i: usize| data.get(i).copied().ok_or("segment runs past the table");
    let (mut i, mut done) = (0usize, 0usize);
    while i + 1 < data.len() && lut.len() < limit && segments.is_none_or(|n| done < n) {
        let (op, len) = (word(i)?, word(i + 1)? as usize);
        i += 2;
        match op {
            0 => {
                let seg = data
                    .get(i..i + len)
                    .ok_or("discrete segment runs past the table")?;
                lut.extend(seg.iter().take(limit - lut.len()));
                i += len;
            }
            1 => {
                let y0 = i64::from(*lut.last().ok_or("linear segment comes first")?);
                let y1 = i64::from(word(i)?);
                i += 1;
                for k in 1..=len {
                    if lut.len() == limit {
                        break;
                    }
                    lut.push(linear_step(y0, y1, k, len));
                }
            }
            2 => {
                if segments.is_some() {
                    return Err("indirect segment inside an indirect segment".into());
                }
                if lut.is_empty() {
                    return Err("indirect segment comes first".into());
                }
                let offset = if wide {
                    let v = word(i)? | word(i + 1)? << 16;
                    i += 2;
                    v
                } else {
                    let v = word(i)? | word(i + 1)? << 8 | word(i + 2)? << 16 | word(i + 3)? << 24;
                    i += 4;
                    v
                };
                let copied = data
                    .get(offset as usize..)
                    .ok_or("indirect segment points past the table")?;
                expand_segments(copied, lut, limit, wide, Some(len))?;
            }
            other => return Err(format!("unknown segment type {other}")),
        }
        done += 1;
    }
    Ok(())
}

/// Step `k` of `len` from `y0` to `y1`, rounded half to even like numpy.
fn linear_step(y0: i64, y1: i64, k: usize, len: usize) -> u32 {
    let (num, den) = ((y1 - y0) * k as i64, len as i64);
    let (q, r) = (num.div_euclid(den), num.rem_euclid(den));
    let up = match (2 * r).cmp(&den) {
        Ordering::Greater => 1,
        Ordering::Less => 0,
        Ordering::Equal => (y0 + q).rem_euclid(2),
    };
    (y0 + q + up).clamp(0, i64::from(u32::MAX)) as u32
}

/// Decodes one RLE Lossless frame (PS3.5 Annex G) into interleaved
/// little-endian samples, straight into the frame buffer.
fn rle_frame(fragment: &[u8], l: &Layout) -> Result<Vec<u8>, String> {
    let pixels = l.pixels();
    let segments = l.samples * l.bytes;
    let len = pixels * segments;
    if fragment.len().saturating_mul(RLE_MAX_EXPANSION) < len {
        return Err(format!(
            "RLE fragment of {} bytes cannot hold a frame of {len} bytes",
            fragment.len()
        ));
    }
    let header = fragment.get(..64).ok_or("RLE header cut short")?;
    let word = |i: usize| -> usize {
        header
            .get(i * 4..i * 4 + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u32::from_le_bytes(b) as usize)
    };
    let count = word(0);
    if count != segments {
        return Err(format!(
            "RLE frame has {count} segments, {segments} expected"
        ));
    }
    let mut out = vec![0u8; len];
    for seg in 0..segments {
        let start = word(1 + seg);
        let end = if seg + 1 < count {
            word(2 + seg)
        } else {
            fragment.len()
        };
        let data = fragment
            .get(start..end)
            .filter(|_| start >= 64)
            .ok_or_else(|| format!("RLE segment {seg} lies outside its fragment"))?;
        // Segments run sample by sample, most significant byte first.
        let (sample, byte) = (seg / l.bytes, seg % l.bytes);
        let at = sample * l.bytes + (l.bytes - 1 - byte);
        let dst = out
            .get_mut(at..)
            .unwrap_or_default()
            .iter_mut()
            .step_by(segments);
        let written = unpack_bits(data, dst);
        if written < pixels {
            return Err(format!(
                "RLE segment {seg} decodes to {written} of {pixels} bytes"
            ));
        }
    }
    Ok(out)
}

/// PackBits into `dst` until it is full or `src` ends; returns bytes written.
fn unpack_bits<'a>(src: &[u8], mut dst: impl Iterator<Item = &'a mut u8>) -> usize {
    let (mut i, mut written) = (0usize, 0usize);
    'runs: while let Some(&h) = src.get(i) {
        i += 1;
        let (run, literal) = match h as i8 {
            -128 => continue,
            n @ 0..=127 => (n as usize + 1, true),
            n => (1 + usize::from(n.unsigned_abs()), false),
        };
        for k in 0..run {
            let v = src.get(if literal { i + k } else { i });
            let (Some(&v), Some(d)) = (v, dst.next()) else {
                break 'runs;
            };
            *d = v;
            written += 1;
        }
        i += if literal { run } else { 1 };
    }
    written
}

/// What a JPEG frame header says, as far as decoding it is concerned.
#[derive(Debug, Default)]
struct JpegHeader {
    /// The SOFn marker (0xC0 baseline ... 0xCF).
    sof: u8,
    precision: u8,
    height: u16,
    width: u16,
    components: u8,
    ids: [u8; 3],
    jfif: bool,
    /// The Adobe APP14 colour transform, when present.
    adobe: Option<u8>,
}

impl JpegHeader {
    const RGB_IDS: [u8; 3] = *b"RGB";

    /// Whether jpeg-decoder 0.3 transforms the components from YCbCr
    /// (`choose_color_transform` in its decoder.rs).
    fn jpeg_decoder_converts(&self) -> Result<bool, Fault> {
        match self.ids {
            [1, 2, 3] => Ok(true),
            Self::RGB_IDS => Ok(false),
            [1, 34, 35] | [114, 103, 98] => Err(Fault::Unsupported(
                "JPEG",
                "big-gamut colour transform has no decoder in this build".into(),
            )),
            _ if self.jfif => Ok(true),
            _ => match self.adobe {
                None | Some(1) => Ok(true),
                Some(0) => Ok(false),
                Some(t) => Err(Fault::Bad(format!(
                    "Adobe colour transform {t} for 3 components"
                ))),
            },
        }
    }

    /// Whether the components are YCbCr as the file means them, as pydicom
    /// reads it: libjpeg's choice when an Adobe marker is present, else RGB
    /// component ids, then a JFIF marker, then the Photometric Interpretation.
    fn stream_is_ycbcr(&self, colour: Colour) -> bool {
        match self.adobe {
            Some(t) => self.jfif || t != 0,
            None if self.ids == Self::RGB_IDS || self.ids == *b"rgb" => false,
            None if self.jfif => true,
            None => matches!(colour, Colour::YbrFull | Colour::YbrFull422),
        }
    }
}

/// Bytes across the fragments of one frame.
struct FrameBytes<'a, I> {
    parts: I,
    cur: &'a [u8],
}

impl<'a, I: Iterator<Item = &'a [u8]>> FrameBytes<'a, I> {
    fn byte(&mut self) -> Option<u8> {
        loop {
            if let Some((&b, rest)) = self.cur.split_first() {
                self.cur = rest;
                return Some(b);
            }
            self.cur = self.parts.next()?;
        }
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }

    fn skip(&mut self, mut n: usize) -> Option<()> {
        while n > 0 {
            if self.cur.is_empty() {
                self.cur = self.parts.next()?;
                continue;
            }
            let k = n.min(self.cur.len());
            self.cur = self.cur.get(k..)?;
            n -= k;
        }
        Some(())
    }

    fn fill(&mut self, buf: &mut [u8]) -> Option<()> {
        for b in buf {
            *b = self.byte()?;
        }
        Some(())
    }
}

/// Walks JPEG markers up to the frame header, the way jpeg-decoder reads them
/// (bytes before a marker and fill bytes are skipped).
fn jpeg_header<'a>(parts: impl Iterator<Item = &'a [u8]>) -> Result<JpegHeader, String> {
    let mut r = FrameBytes { parts, cur: &[] };
    if (r.byte(), r.byte()) != (Some(0xFF), Some(0xD8)) {
        return Err("frame does not start with a JPEG SOI marker".into());
    }
    let cut = || "JPEG ends before its frame header".to_string();
    let mut h = JpegHeader::default();
    loop {
        while r.byte().ok_or_else(cut)? != 0xFF {}
        let mut m = r.byte().ok_or_else(cut)?;
        while m == 0xFF {
            m = r.byte().ok_or_else(cut)?;
        }
        match m {
            0x00 | 0x01 | 0xD0..=0xD8 => {}
            0xD9 | 0xDA => return Err("JPEG has no frame header before its scan".into()),
            0xC0..=0xCF if !matches!(m, 0xC4 | 0xC8 | 0xCC) => {
                r.skip(2).ok_or_else(cut)?;
                h.sof = m;
                h.precision = r.byte().ok_or_else(cut)?;
                h.height = r.u16().ok_or_else(cut)?;
                h.width = r.u16().ok_or_else(cut)?;
                h.components = r.byte().ok_or_else(cut)?;
                for k in 0..usize::from(h.components.min(3)) {
                    let id = r.byte().ok_or_else(cut)?;
                    r.skip(2).ok_or_else(cut)?;
                    if let Some(slot) = h.ids.get_mut(k) {
                        *slot = id;
                    }
                }
                return Ok(h);
            }
            _ => {
                let len = usize::from(r.u16().ok_or_else(cut)?);
                let body = len.checked_sub(2).ok_or("JPEG segment length below 2")?;
                let mut start = [0u8; 12];
                let n = match m {
                    0xE0 | 0xEE => body.min(start.len()),
                    _ => 0,
                };
                r.fill(start.get_mut(..n).unwrap_or_default())
                    .ok_or_else(cut)?;
                if m == 0xE0 && n >= 5 && start.starts_with(b"JFIF\0") {
                    h.jfif = true;
                }
                if m == 0xEE && n == 12 && start.starts_with(b"Adobe\0") {
                    h.adobe = start.get(11).copied();
                }
                r.skip(body - n).ok_or_else(cut)?;
            }
        }
    }
}

/// Decodes a lossy JPEG frame without any colour transform (zune-jpeg with
/// its output in the stream's own colour space).
fn zune_raw(bytes: &[u8], l: &Layout) -> Result<Vec<u8>, String> {
    let decoder = |space| {
        let options = DecoderOptions::default()
            .set_max_width(MAX_SIDE as usize)
            .set_max_height(MAX_SIDE as usize)
            .jpeg_set_out_colorspace(space);
        JpegDecoder::new_with_options(ZCursor::new(bytes), options)
    };
    let mut d = decoder(ColorSpace::YCbCr);
    d.decode_headers().map_err(|e| format!("JPEG: {e}"))?;
    match d.input_colorspace() {
        Some(ColorSpace::YCbCr) => {}
        Some(ColorSpace::RGB) => {
            d = decoder(ColorSpace::RGB);
            d.decode_headers().map_err(|e| format!("JPEG: {e}"))?;
        }
        other => return Err(format!("JPEG colour space {other:?} for 3 samples")),
    }
    let len = l.pixels() * 3;
    if d.output_buffer_size() != Some(len) {
        return Err("JPEG output size differs from the image".into());
    }
    let mut out = vec![0u8; len];
    d.decode_into(&mut out).map_err(|e| format!("JPEG: {e}"))?;
    Ok(out)
}

/// How a data set is encoded (for [`scan_encoding`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    ImplicitLe,
    ExplicitLe,
    ExplicitBe,
}

impl Encoding {
    fn u16(self, b: &[u8]) -> u16 {
        let b = <[u8; 2]>::try_from(b).unwrap_or_default();
        match self {
            Encoding::ExplicitBe => u16::from_be_bytes(b),
            _ => u16::from_le_bytes(b),
        }
    }

    fn u32(self, b: &[u8]) -> u32 {
        let b = <[u8; 4]>::try_from(b).unwrap_or_default();
        match self {
            Encoding::ExplicitBe => u32::from_be_bytes(b),
            _ => u32::from_le_bytes(b),
        }
    }

    fn tag(self, b: &[u8]) -> (u16, u16) {
        (
            self.u16(b.get(0..2).unwrap_or_default()),
            self.u16(b.get(2..4).unwrap_or_default()),
        )
    }
}

/// Where the data set starts in a Part 10 file (after `DICM`), if it is one.
fn part10_start(bytes: &[u8]) -> Option<usize> {
    if bytes.get(128..132) == Some(b"DICM") {
        Some(132)
    } else if bytes.get(0..4) == Some(b"DICM") {
        Some(4)
    } else {
        None
    }
}

/// The transfer syntax of a data set without file meta, from its first
/// element: byte order from the group number (a bare data set starts with a
/// low group), explicit VR when two letters follow the tag.
fn guess_bare_encoding(bytes: &[u8]) -> Option<&'static str> {
    let head = bytes.get(..8)?;
    let le = Encoding::ExplicitLe.u16(head.get(0..2)?);
    let be = Encoding::ExplicitBe.u16(head.get(0..2)?);
    let explicit = head.get(4..6)?.iter().all(u8::is_ascii_uppercase);
    let group = le.min(be);
    if group > 0x0008 || !group.is_multiple_of(2) {
        return None;
    }
    match (le <= be, explicit) {
        (true, false) => Some(uids::IMPLICIT_VR_LITTLE_ENDIAN),
        (true, true) => Some(uids::EXPLICIT_VR_LITTLE_ENDIAN),
        (false, true) => Some(EXPLICIT_VR_BIG_ENDIAN),
        (false, false) => None,
    }
}

/// The transfer syntax of `bytes`, after checking that every element and item
/// length of the file meta and of an uncompressed data set fits in the bytes
/// that follow it. dicom-parser zero-fills a buffer of the stated length
/// before reading, so one flipped length byte would otherwise cost gigabytes.
/// The walk follows the parsers step for step, or a shifted parser would meet
/// lengths the walk never saw. (A deflated data set is left to the parser.)
fn scan_encoding(bytes: &[u8]) -> Result<String, String> {
    let (ts, start) = match part10_start(bytes) {
        Some(meta) => file_meta(bytes, meta)?,
        None => (
            guess_bare_encoding(bytes)
                .ok_or("no DICM signature and no recognisable data set")?
                .to_string(),
            0,
        ),
    };
    let encoding = match ts.as_str() {
        uids::IMPLICIT_VR_LITTLE_ENDIAN => Encoding::ImplicitLe,
        EXPLICIT_VR_BIG_ENDIAN => Encoding::ExplicitBe,
        uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => return Ok(ts),
        _ => Encoding::ExplicitLe,
    };
    walk(bytes, start, encoding)?;
    Ok(ts)
}

/// An element header as the parsers read it.
struct Header {
    group: u16,
    element: u16,
    /// `None` for items and delimiters, and in implicit VR.
    vr: Option<[u8; 2]>,
    len: u32,
    size: usize,
}

fn header(bytes: &[u8], pos: usize, enc: Encoding) -> Option<Header> {
    let head = bytes.get(pos..pos.checked_add(8)?)?;
    let (group, element) = enc.tag(head);
    let vr = match (group, enc) {
        (0xFFFE, _) | (_, Encoding::ImplicitLe) => None,
        _ => Some(<[u8; 2]>::try_from(head.get(4..6)?).ok()?),
    };
    let (len, size) = match vr {
        Some(vr) if short_length_vr(vr) => (u32::from(enc.u16(head.get(6..8)?)), 8),
        Some(_) => (enc.u32(bytes.get(pos + 8..pos + 12)?), 12),
        None => (enc.u32(head.get(4..8)?), 8),
    };
    Some(Header {
        group,
        element,
        vr,
        len,
        size,
    })
}

fn overlong(h: &Header, remaining: usize) -> String {
    format!(
        "element ({:04X},{:04X}) claims {} bytes, {remaining} remain",
        h.group, h.element, h.len
    )
}

/// The file meta as dicom-object reads it: a group length of 4 bytes, then
/// whole explicit VR little endian elements until that many bytes are read.
/// Returns the Transfer Syntax UID and where the data set starts.
fn file_meta(bytes: &[u8], mut pos: usize) -> Result<(String, usize), String> {
    let cut = || "file meta cut short".to_string();
    let first = header(bytes, pos, Encoding::ExplicitLe).ok_or_else(cut)?;
    if (first.group, first.element, first.len) != (0x0002, 0x0000, 4) {
        return Err("file meta does not start with its group length".into());
    }
    pos += first.size;
    let group_length = bytes
        .get(pos..pos + 4)
        .map(|b| u64::from(Encoding::ExplicitLe.u32(b)))
        .ok_or_else(cut)?;
    pos += 4;
    let (mut read, mut ts) = (0u64, None);
    while read < group_length {
        let h = header(bytes, pos, Encoding::ExplicitLe).ok_or_else(cut)?;
        pos += h.size;
        let remaining = bytes.len().saturating_sub(pos);
        if h.len as usize > remaining {
            return Err(overlong(&h, remaining));
        }
        let len = h.len as usize;
        if (h.group, h.element) == (0x0002, 0x0010) {
            let uid = bytes.get(pos..pos + len).unwrap_or_default();
            let uid = String::from_utf8_lossy(uid);
            ts = Some(uid.trim_end_matches(['\0', ' ']).to_string());
        }
        pos += len;
        read += (h.size + len) as u64;
    }
    Ok((ts.ok_or("file meta has no Transfer Syntax UID")?, pos))
}

/// VRs with a 16-bit length in explicit VR (PS3.5 7.1.2).
fn short_length_vr(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// Bytes dicom-parser consumes for a value of `len` bytes: binary numbers
/// are read whole, so a length that is not a multiple of their size leaves
/// the rest to be read as the next header.
fn consumed(vr: [u8; 2], len: usize) -> usize {
    let unit = match &vr {
        b"US" | b"SS" | b"OW" => 2,
        b"UL" | b"SL" | b"FL" | b"AT" | b"OF" | b"OL" => 4,
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => 8,
        _ => 1,
    };
    len - len % unit
}

/// The VR dicom-parser gives `tag` in implicit VR: the standard dictionary's,
/// reached through the parser itself reading the bare, empty element (so no
/// dependency on dicom-core's dictionary trait is needed).
fn dictionary_vr(group: u16, element: u16) -> [u8; 2] {
    let ([g0, g1], [e0, e1]) = (group.to_le_bytes(), element.to_le_bytes());
    let empty = [g0, g1, e0, e1, 0, 0, 0, 0];
    TransferSyntaxRegistry
        .get(uids::IMPLICIT_VR_LITTLE_ENDIAN)
        .and_then(|ts| InMemDicomObject::read_dataset_with_ts(Cursor::new(empty), ts).ok())
        .and_then(|obj| {
            let vr = obj.element(Tag(group, element)).ok()?.vr().to_string();
            <[u8; 2]>::try_from(vr.as_bytes()).ok()
        })
        .unwrap_or(*b"UN")
}

/// Walks the data set's element headers from `pos` as dicom-parser reads
/// them: sequences and items are entered, values and pixel fragments skipped.
fn walk(bytes: &[u8], mut pos: usize, enc: Encoding) -> Result<(), String> {
    let mut fragments = false;
    let mut vrs: HashMap<(u16, u16), [u8; 2]> = HashMap::new();
    while let Some(h) = header(bytes, pos, enc) {
        pos += h.size;
        let remaining = bytes.len().saturating_sub(pos);
        if h.len != UNDEFINED_LENGTH && h.len as usize > remaining {
            return Err(overlong(&h, remaining));
        }
        let len = h.len as usize;
        if h.group == 0xFFFE {
            // An item is entered, unless it is a fragment of pixel data.
            match h.element {
                0xE000 if fragments && h.len != UNDEFINED_LENGTH => pos += len,
                0xE0DD => fragments = false,
                _ => {}
            }
            continue;
        }
        if h.len == UNDEFINED_LENGTH {
            // Pixel Data holds fragments; any other element of undefined
            // length (UN too) the parser reads as a sequence.
            if (h.group, h.element) == (0x7FE0, 0x0010) {
                fragments = true;
            }
            continue;
        }
        let vr = match h.vr {
            Some(vr) => vr,
            None => *vrs
                .entry((h.group, h.element))
                .or_insert_with(|| dictionary_vr(h.group, h.element)),
        };
        if &vr == b"SQ" {
            continue;
        }
        // In implicit VR the parser may take OB or OW from context; only an
        // even length reads the same either way.
        if h.vr.is_none() && len % 2 == 1 && matches!(&vr, b"OB" | b"OW") {
            return Err(format!(
                "element ({:04X},{:04X}) has odd length {len}",
                h.group, h.element
            ));
        }
        pos += consumed(vr, len);
    }
    if fragments {
        // The parser would take the fragments read so far as all of them.
        return Err("encapsulated pixel data ends without its sequence delimiter".into());
    }
    Ok(())
}

/// Parses a Part 10 file, or a bare data set with the guessed transfer syntax.
fn parse(bytes: &[u8], ts_uid: &str) -> Result<DefaultDicomObject, String> {
    if part10_start(bytes).is_some() {
        return OpenFileOptions::new()
            .from_reader(Cursor::new(bytes))
            .map_err(|e| one_line(&e));
    }
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or("unknown transfer syntax")?;
    let obj =
        InMemDicomObject::read_dataset_with_ts(Cursor::new(bytes), ts).map_err(|e| one_line(&e))?;
    obj.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(ts_uid)
            .media_storage_sop_class_uid("")
            .media_storage_sop_instance_uid(""),
    )
    .map_err(|e| one_line(&e))
}

/// Error chains of the DICOM crates span lines and may print a parsed value
/// (a token's debug form, a quoted string); logs get one line, each message
/// cut before anything that could be a value.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = String::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let t = without_values(&err.to_string());
        if !t.is_empty() && !s.contains(&t) {
            if !s.is_empty() {
                s.push_str(": ");
            }
            s.push_str(&t);
        }
        cur = err.source();
    }
    s.replace(['\n', '\r'], " ")
}

/// `msg` up to its first quote, bracket, brace or debug-style `Name(`.
fn without_values(msg: &str) -> String {
    let mut prev = ' ';
    let cut = msg
        .char_indices()
        .find(|&(_, c)| {
            let value =
                matches!(c, '"' | '\'' | '`' | '[' | '{') || (c == '(' && prev.is_alphanumeric());
            prev = c;
            value
        })
        .map_or(msg.len(), |(i, _)| i);
    msg.get(..cut).unwrap_or_default().trim_end().to_string()
}

/// A Photometric Interpretation fit for a message: a defined term, or not shown.
fn printable_pi(pi: &str) -> &str {
    const DEFINED: [&str; 14] = [
        "MONOCHROME1",
        "MONOCHROME2",
        "PALETTE COLOR",
        "RGB",
        "HSV",
        "ARGB",
        "CMYK",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_PARTIAL_422",
        "YBR_PARTIAL_420",
        "YBR_ICT",
        "YBR_RCT",
        "XYB",
    ];
    DEFINED
        .iter()
        .find(|&&d| d == pi)
        .copied()
        .unwrap_or("(not a defined term)")
}

/// A UID fit for a message: digits and dots only, else not shown.
fn printable_uid(uid: &str) -> &str {
    if !uid.is_empty() && uid.len() <= 64 && uid.chars().all(|c| c.is_ascii_digit() || c == '.') {
        uid
    } else {
        "(not a UID)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An explicit VR little endian element.
    fn el(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut v = value.to_vec();
        if !v.len().is_multiple_of(2) {
            v.push(if matches!(vr, b"OB" | b"UI") { 0 } else { b' ' });
        }
        let mut out = Vec::new();
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(vr);
        if short_length_vr(*vr) {
            out.extend_from_slice(&(v.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(&v);
        out
    }

    fn us(group: u16, element: u16, v: u16) -> Vec<u8> {
        el(group, element, b"US", &v.to_le_bytes())
    }

    /// A Part 10 file: preamble, meta for `ts`, then `dataset` (explicit LE).
    fn part10(ts: &str, dataset: &[Vec<u8>]) -> Vec<u8> {
        let meta_body = [
            el(0x0002, 0x0001, b"OB", &[0, 1]),
            el(0x0002, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.7"),
            el(0x0002, 0x0003, b"UI", b"1.2.3.4"),
            el(0x0002, 0x0010, b"UI", ts.as_bytes()),
            el(0x0002, 0x0012, b"UI", b"1.2.3.5"),
        ]
        .concat();
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        out.extend(el(
            0x0002,
            0x0000,
            b"UL",
            &(meta_body.len() as u32).to_le_bytes(),
        ));
        out.extend(meta_body);
        for e in dataset {
            out.extend_from_slice(e);
        }
        out
    }

    fn pixel_module(rows: u16, cols: u16, spp: u16, bits: u16, pi: &str) -> Vec<Vec<u8>> {
        vec![
            el(0x0010, 0x0010, b"PN", b"Doe^Jane"),
            us(0x0028, 0x0002, spp),
            el(0x0028, 0x0004, b"CS", pi.as_bytes()),
            us(0x0028, 0x0010, rows),
            us(0x0028, 0x0011, cols),
            us(0x0028, 0x0100, bits),
            us(0x0028, 0x0101, bits),
            us(0x0028, 0x0102, bits - 1),
            us(0x0028, 0x0103, 0),
        ]
    }

    /// Encapsulated pixel data: an empty offset table, then one item per fragment.
    fn encapsulated(fragments: &[&[u8]]) -> Vec<u8> {
        let item = |v: &[u8]| {
            let mut out = vec![0xFE, 0xFF, 0x00, 0xE0];
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
            out
        };
        let mut out = vec![
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        out.extend(item(&[]));
        for f in fragments {
            out.extend(item(f));
        }
        out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        out
    }

    /// One RLE frame of literal runs, one segment per entry of `segments`.
    fn rle(segments: &[Vec<u8>]) -> Vec<u8> {
        let mut header = vec![0u8; 64];
        let mut body = Vec::new();
        header[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
        for (i, s) in segments.iter().enumerate() {
            let at = 64 + body.len() as u32;
            header[4 + i * 4..8 + i * 4].copy_from_slice(&at.to_le_bytes());
            for chunk in s.chunks(128) {
                body.push(chunk.len() as u8 - 1);
                body.extend_from_slice(chunk);
            }
            if !body.len().is_multiple_of(2) {
                body.push(0x80);
            }
        }
        [header, body].concat()
    }

    fn open(bytes: &[u8]) -> Result<DicomSource, CaptureError> {
        DicomSource::from_bytes(Path::new("test.dcm"), bytes)
    }

    fn first_frame(bytes: &[u8]) -> Frame {
        open(bytes).unwrap().next_frame().unwrap().unwrap()
    }

    /// The float equations with round half up: the specification of the Q16 path.
    fn ybr_reference(y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let (y, cb, cr) = (f64::from(y), f64::from(cb) - 128.0, f64::from(cr) - 128.0);
        let q = |v: f64| (v + 0.5).floor().clamp(0.0, 255.0) as u8;
        [
            q(y + 1.402 * cr),
            q(y - 0.114 * 1.772 / 0.587 * cb - 0.299 * 1.402 / 0.587 * cr),
            q(y + 1.772 * cb),
        ]
    }

    #[test]
    fn fixed_point_ybr_matches_the_float_equations() {
        let mut exact = 0u32;
        let mut total = 0u32;
        for y in (0..=255u8).step_by(3) {
            for cb in (0..=255u8).step_by(5) {
                for cr in (0..=255u8).step_by(5) {
                    let (a, b) = (ybr_to_rgb(y, cb, cr), ybr_reference(y, cb, cr));
                    for (p, q) in a.iter().zip(b) {
                        assert!(p.abs_diff(q) <= 1, "{y} {cb} {cr}: {a:?} vs {b:?}");
                    }
                    exact += u32::from(a == b);
                    total += 1;
                }
            }
        }
        assert!(exact * 1000 >= total * 999, "{exact} of {total} exact");
        assert_eq!(ybr_to_rgb(128, 128, 128), [128, 128, 128]);
        assert_eq!(ybr_to_rgb(255, 128, 128), [255, 255, 255]);
    }

    #[test]
    fn stored_bits_are_masked_and_sign_extended() {
        // 12 bits stored in 16, high bit 11, overlay bits set above.
        let signed = Bits {
            stored: 12,
            shift: 0,
            signed: true,
        };
        assert_eq!(signed.value(0xF800), -2048);
        assert_eq!(signed.value(0x77FF), 2047);
        assert_eq!(signed.value(0x0FFF), -1);
        assert_eq!(signed.to_u16(0x0FFF), 32_767);
        assert_eq!(signed.to_u8(0x0800), 0);
        assert_eq!(signed.to_u8(0x07FF), 255);
        let unsigned = Bits {
            stored: 12,
            shift: 0,
            signed: false,
        };
        assert_eq!(unsigned.value(0xF123), 0x123);
        assert_eq!(unsigned.to_u8(0x0FFF), 255);
        assert_eq!(unsigned.to_u8(0x0010), 1);
        // High bit 13 with 12 stored: the sample sits two bits up.
        let shifted = Bits {
            stored: 12,
            shift: 2,
            signed: false,
        };
        assert_eq!(shifted.value(0x0FFF << 2 | 3), 0x0FFF);
        let six = Bits {
            stored: 6,
            shift: 0,
            signed: false,
        };
        assert_eq!(six.to_u8(63), 252);
    }

    #[test]
    fn rle_ybr_full_is_converted_and_16_bit_rgb_keeps_high_bytes() {
        // 2x2 YBR_FULL in RLE: three segments, Y, Cb, Cr.
        let (y, cb, cr) = (
            vec![0, 100, 200, 255],
            vec![128, 90, 200, 10],
            vec![128, 240, 30, 128],
        );
        let mut ds = pixel_module(2, 2, 3, 8, "YBR_FULL");
        ds.push(encapsulated(&[&rle(&[y.clone(), cb.clone(), cr.clone()])]));
        let f = first_frame(&part10(uids::RLE_LOSSLESS, &ds));
        assert_eq!(f.format(), PixelFormat::Rgb24);
        let (data, ..) = f.into_parts();
        for i in 0..4 {
            assert_eq!(
                data[i * 3..i * 3 + 3],
                ybr_reference(y[i], cb[i], cr[i]),
                "pixel {i}"
            );
        }
        // 2x1 RGB, 16 bits with 12 stored: MSB then LSB segment per sample.
        let mut ds = pixel_module(1, 2, 3, 16, "RGB");
        ds[6] = us(0x0028, 0x0101, 12);
        ds[7] = us(0x0028, 0x0102, 11);
        let values: [[u16; 3]; 2] = [[0x0FFF, 0x0800, 0x0010], [0xF000, 0x0123, 0x0FF0]];
        let mut segments = Vec::new();
        for s in 0..3 {
            segments.push(values.iter().map(|p| (p[s] >> 8) as u8).collect());
            segments.push(values.iter().map(|p| p[s] as u8).collect());
        }
        ds.push(encapsulated(&[&rle(&segments)]));
        let (data, ..) = first_frame(&part10(uids::RLE_LOSSLESS, &ds)).into_parts();
        assert_eq!(data, [0xFF, 0x80, 0x01, 0x00, 0x12, 0xFF]);
    }

    #[test]
    fn hostile_geometry_and_frame_counts_are_errors() {
        // 65535 x 65535 x 3 x 16 bits would overflow 32-bit sizes.
        let mut ds = pixel_module(0xFFFF, 0xFFFF, 3, 16, "RGB");
        ds.push(el(0x7FE0, 0x0010, b"OW", &[0; 16]));
        let e = open(&part10(uids::EXPLICIT_VR_LITTLE_ENDIAN, &ds))
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("exceeds the 16384-pixel limit"),
            "{e}"
        );
        for frames in ["4000000000", "99999", "-1", "x"] {
            let mut ds = pixel_module(4, 4, 1, 8, "MONOCHROME2");
            ds.push(el(0x0028, 0x0008, b"IS", frames.as_bytes()));
            ds.push(el(0x7FE0, 0x0010, b"OB", &[0; 16]));
            let e = open(&part10(uids::EXPLICIT_VR_LITTLE_ENDIAN, &ds))
                .err()
                .unwrap();
            assert!(matches!(e, CaptureError::Dicom { .. }), "{frames}: {e}");
        }
        let mut ds = pixel_module(4, 4, 1, 8, "MONOCHROME2");
        ds.push(el(0x0028, 0x0008, b"IS", b"3"));
        ds.push(encapsulated(&[&[0xFF, 0xD8, 0xFF, 0xD9]]));
        let e = open(&part10(uids::JPEG_BASELINE8_BIT, &ds)).err().unwrap();
        assert!(e.to_string().contains("3 frame(s) declared, 1"), "{e}");
        // A 16 Mi-entry element in 40 bytes of file.
        let mut bytes = part10(
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
            &pixel_module(4, 4, 1, 8, "MONOCHROME2"),
        );
        bytes.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0, 0, 0, 1]);
        bytes.extend_from_slice(&[0; 16]);
        let e = open(&bytes).err().unwrap();
        assert!(
            e.to_string().contains("(7FE0,0010) claims 16777216 bytes"),
            "{e}"
        );
    }

    #[test]
    fn corrupt_rle_segments_are_errors() {
        let good = rle(&[vec![7; 16]]);
        let cases: Vec<Vec<u8>> = vec![
            good[..40].to_vec(),                             // header cut
            good[..70].to_vec(),                             // segment cut
            rle(&[vec![7; 16], vec![1; 16]]),                // two segments for one
            [&good[..4], &[0xFF; 60], &good[64..]].concat(), // offsets past the end
            rle(&[vec![7; 10]]),                             // decodes short
        ];
        for (i, frag) in cases.iter().enumerate() {
            let mut ds = pixel_module(4, 4, 1, 8, "MONOCHROME2");
            ds.push(encapsulated(&[frag]));
            let r = open(&part10(uids::RLE_LOSSLESS, &ds)).and_then(|mut s| s.next_frame());
            assert!(r.is_err(), "case {i} decoded");
        }
    }

    #[test]
    fn jpeg_headers_that_disagree_with_the_image_are_refused_before_decoding() {
        // A real 8x8 gray JPEG, declared as 4x4 (jpeg-decoder's output would
        // overrun dicom-pixeldata's buffer) and as 3 samples.
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode(&[90u8; 64], 8, 8, image::ExtendedColorType::L8)
            .unwrap();
        let frame = |rows, cols, spp, pi| {
            let mut ds = pixel_module(rows, cols, spp, 8, pi);
            ds.push(encapsulated(&[&jpeg]));
            open(&part10(uids::JPEG_BASELINE8_BIT, &ds)).and_then(|mut s| s.next_frame())
        };
        let f = frame(8, 8, 1, "MONOCHROME2").unwrap().unwrap();
        assert_eq!((f.width(), f.height()), (8, 8));
        let e = frame(4, 4, 1, "MONOCHROME2").err().unwrap();
        assert!(e.to_string().contains("JPEG frame is 8x8"), "{e}");
        assert!(frame(8, 8, 3, "RGB").is_err());
        for cut in [2, 20, 100] {
            let mut ds = pixel_module(8, 8, 1, 8, "MONOCHROME2");
            ds.push(encapsulated(&[&jpeg[..cut]]));
            let r = open(&part10(uids::JPEG_BASELINE8_BIT, &ds)).and_then(|mut s| s.next_frame());
            assert!(r.is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn segmented_palette_expands_like_pydicom() {
        // PS3.3 C.7.9.2 example shapes: discrete, linear, indirect.
        let data = [0, 3, 10, 20, 30, 1, 4, 50, 2, 2, 0, 0];
        let lut = expand_segmented(&data, 13, true).unwrap();
        assert_eq!(lut, [10, 20, 30, 35, 40, 45, 50, 10, 20, 30, 35, 40, 45]);
        // Ties round to even: 0 -> 5 in 2 steps is 2.5 -> 2, then 5.
        assert_eq!(
            expand_segmented(&[0, 1, 0, 1, 2, 5], 3, true).unwrap(),
            [0, 2, 5]
        );
        assert!(expand_segmented(&[1, 4, 50], 4, true).is_err());
        assert!(expand_segmented(&[0, 1, 9, 2, 1, 0, 0], 4, true).is_err());
        assert!(expand_segmented(&[0, 2, 1, 2], 8, true).is_err());
    }

    #[test]
    fn error_text_is_cut_before_values() {
        assert_eq!(
            without_values("Unexpected token PrimitiveValue(Strs([\"Doe^Jane\"]))"),
            "Unexpected token PrimitiveValue"
        );
        assert_eq!(
            without_values("Could not read 8 value bytes for element tagged (0010,0010)"),
            "Could not read 8 value bytes for element tagged (0010,0010)"
        );
        assert_eq!(
            without_values("Cannot convert `Doe` to the target"),
            "Cannot convert"
        );
        assert_eq!(printable_pi("Doe^Jane"), "(not a defined term)");
        assert_eq!(printable_uid("Doe^Jane"), "(not a UID)");
        let mut ds = pixel_module(4, 4, 1, 8, "Doe^Jane");
        ds.push(el(0x7FE0, 0x0010, b"OB", &[0; 16]));
        let e = open(&part10(uids::EXPLICIT_VR_LITTLE_ENDIAN, &ds))
            .err()
            .unwrap();
        assert!(matches!(e, CaptureError::Unsupported { .. }));
        assert!(!e.to_string().contains("Doe"), "{e}");
        let mut ds = pixel_module(4, 4, 1, 8, "MONOCHROME2");
        ds.push(el(0x7FE0, 0x0010, b"OB", &[0; 16]));
        let src = open(&part10("Doe^Jane", &ds)).err().unwrap();
        assert!(!src.to_string().contains("Doe"), "{src}");
    }

    #[test]
    fn bare_data_sets_and_planar_rgb() {
        // No preamble, no meta: implicit VR little endian, planar 2x1 RGB.
        let imp = |g: u16, e: u16, v: &[u8]| {
            let mut out = [g.to_le_bytes(), e.to_le_bytes()].concat();
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
            out
        };
        let bytes = [
            imp(0x0008, 0x0060, b"OT"),
            imp(0x0028, 0x0002, &3u16.to_le_bytes()),
            imp(0x0028, 0x0004, b"RGB "),
            imp(0x0028, 0x0006, &1u16.to_le_bytes()),
            imp(0x0028, 0x0010, &1u16.to_le_bytes()),
            imp(0x0028, 0x0011, &2u16.to_le_bytes()),
            imp(0x0028, 0x0100, &8u16.to_le_bytes()),
            imp(0x0028, 0x0101, &8u16.to_le_bytes()),
            imp(0x0028, 0x0102, &7u16.to_le_bytes()),
            imp(0x0028, 0x0103, &0u16.to_le_bytes()),
            imp(0x7FE0, 0x0010, &[1, 2, 3, 4, 5, 6]),
        ]
        .concat();
        let (data, ..) = first_frame(&bytes).into_parts();
        assert_eq!(data, [1, 3, 5, 2, 4, 6]);
        assert!(open(b"\x89PNG\r\n\x1a\n0000000000000000").is_err());
    }
}
