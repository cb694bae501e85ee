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
//!
//! The submodules, in the order a file meets them:
//! - `scan`: checks every element length against the file before parsing.
//! - `layout`: the image attributes every frame shares, validated once at open.
//! - `palette`: PALETTE COLOR lookup tables, segmented ones included.
//! - `rle`, `jpeg`: the RLE Lossless decoder, and the JPEG header checks.
//! - `pixels`: stored samples to output pixels (bits, sign, colour model).

mod jpeg;
mod layout;
mod palette;
mod pixels;
mod rle;
mod scan;

use std::borrow::Cow;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::{tags, uids};
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::{CaptureError, FrameSource};
use crate::budget::{DecodeBudget, OverBudget};
use crate::frame::{Frame, FrameMeta, PixelFormat, Tone};
use crate::safe_read::{Links, read_file};
use jpeg::{jpeg_header, zune_raw};
use layout::{Codec, Colour, Layout, number_of_frames, tone};
use palette::Palette;
use pixels::render;
use rle::rle_frame;
use scan::{Scanned, part10_start, scan_encoding};

/// Frame interval used when a multi-frame object states no Frame Time.
const DEFAULT_FRAME_US: u64 = 33_333;
/// Retired in 2004 (so deprecated in dicom-dictionary-std), still written by old carts.
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

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
    /// The attributes the X-ray gate reads, shared with every frame.
    facts: std::sync::Arc<crate::analyze::gate::ImageFacts>,
    first_seq: u64,
    first_us: u64,
}

impl DicomSource {
    /// Opens a DICOM file (with or without the 128-byte preamble, or a bare
    /// data set without file meta) within the default decode budget.
    pub fn open(path: &Path) -> Result<DicomSource, CaptureError> {
        DicomSource::open_within(path, DecodeBudget::default())
    }

    /// Opens a DICOM file that the user named: a symlink is followed, but it
    /// must lead to a regular file within `budget`, and so must its frames.
    pub fn open_within(path: &Path, budget: DecodeBudget) -> Result<DicomSource, CaptureError> {
        let bytes = read_file(path, budget.bytes(), Links::Follow, "a DICOM file")?;
        DicomSource::from_bytes_within(path, &bytes, budget)
    }

    /// Parses DICOM from memory within the default budget; `name` is used
    /// in messages only.
    pub fn from_bytes(name: &Path, bytes: &[u8]) -> Result<DicomSource, CaptureError> {
        DicomSource::from_bytes_within(name, bytes, DecodeBudget::default())
    }

    /// Parses DICOM from memory: a deflated data set may inflate, and each
    /// frame decode to, at most `budget` (`crate::budget`).
    pub fn from_bytes_within(
        name: &Path,
        bytes: &[u8],
        budget: DecodeBudget,
    ) -> Result<DicomSource, CaptureError> {
        DicomSource::build(name, bytes, budget).map_err(|f| f.at(name))
    }

    fn build(name: &Path, bytes: &[u8], budget: DecodeBudget) -> Result<DicomSource, Fault> {
        let Scanned {
            ts: ts_uid,
            inflated,
        } = scan_encoding(bytes, budget)?;
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
        let obj = match &inflated {
            Some(data_set) => parse_bare(data_set, uids::EXPLICIT_VR_LITTLE_ENDIAN)?,
            None => parse(bytes, &ts_uid)?,
        };
        drop(inflated);
        let pixel = obj
            .element(tags::PIXEL_DATA)
            .map_err(|_| Fault::from("no Pixel Data element"))?;
        let layout = Layout::read(&obj, codec)?;
        // Before any frame is decoded: what a decoder will hold for one.
        // JPEG decoders keep the component planes beside their output.
        let stored = layout.decoded().frame_len() as u64;
        let working = if codec == Codec::Jpeg {
            2 * stored
        } else {
            stored
        };
        budget
            .check(
                "a decoded frame",
                Some(working.max(layout.output_len() as u64)),
            )
            .map_err(Fault::Budget)?;
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
        let mut source = DicomSource {
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
            facts: Default::default(),
        };
        source.facts = std::sync::Arc::new(source.read_facts());
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

    /// The Modality attribute (US, CR, DX, CT, ...), upper case, if the
    /// object states one.
    pub fn modality(&self) -> Option<String> {
        self.code(tags::MODALITY)
    }

    /// What the object says about its picture, for the X-ray gate.
    pub fn facts(&self) -> crate::analyze::gate::ImageFacts {
        (*self.facts).clone()
    }

    fn read_facts(&self) -> crate::analyze::gate::ImageFacts {
        crate::analyze::gate::ImageFacts {
            modality: self.modality(),
            body_part: self.code(tags::BODY_PART_EXAMINED),
            view_position: self.code(tags::VIEW_POSITION),
            presentation_intent: self.code(tags::PRESENTATION_INTENT_TYPE),
        }
    }

    /// A code string attribute (CS: up to 16 characters), trimmed and upper
    /// case; `None` when absent, empty or not printable.
    fn code(&self, tag: dicom_object::Tag) -> Option<String> {
        let v = self.obj.element(tag).ok()?.to_str().ok()?;
        let v = v.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        (!v.is_empty() && v.len() <= 16 && v.chars().all(|c| c.is_ascii_graphic() || c == ' '))
            .then(|| v.to_ascii_uppercase())
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
        let frame = frame.with_facts(self.facts.clone());
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
    Budget(OverBudget),
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
            Fault::Budget(source) => CaptureError::OverBudget {
                path: path.to_path_buf(),
                source,
            },
        }
    }

    fn in_frame(self, index: u32) -> Fault {
        match self {
            Fault::Bad(r) => Fault::Bad(format!("frame {index}: {r}")),
            Fault::Unsupported(what, d) => Fault::Unsupported(what, format!("frame {index}: {d}")),
            Fault::Budget(b) => Fault::Budget(OverBudget {
                what: format!("frame {index}: {}", b.what),
                ..b
            }),
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

/// Parses a Part 10 file, or a bare data set with the guessed transfer syntax.
fn parse(bytes: &[u8], ts_uid: &str) -> Result<DefaultDicomObject, String> {
    if part10_start(bytes).is_some() {
        return OpenFileOptions::new()
            .from_reader(Cursor::new(bytes))
            .map_err(|e| one_line(&e));
    }
    parse_bare(bytes, ts_uid)
}

/// Parses a data set without file meta in transfer syntax `ts_uid`.
fn parse_bare(bytes: &[u8], ts_uid: &str) -> Result<DefaultDicomObject, String> {
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
    use dicom_dictionary_std::uids;

    use super::scan::short_length_vr;

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
    pub(super) fn ybr_reference(y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let (y, cb, cr) = (f64::from(y), f64::from(cb) - 128.0, f64::from(cr) - 128.0);
        let q = |v: f64| (v + 0.5).floor().clamp(0.0, 255.0) as u8;
        [
            q(y + 1.402 * cr),
            q(y - 0.114 * 1.772 / 0.587 * cb - 0.299 * 1.402 / 0.587 * cr),
            q(y + 1.772 * cb),
        ]
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
            e.to_string().contains("(7FE0,0010) at byte")
                && e.to_string().contains("claims 16777216 bytes"),
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
