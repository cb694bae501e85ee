//! JPEG frame headers, read so that a frame is checked against Rows, Columns
//! and Samples per Pixel before dicom-pixeldata decodes it (its adapter copies
//! the decoded image unchecked), and raw decoding where jpeg-decoder's colour
//! guess contradicts the file.

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::Fault;
use super::layout::{Colour, Layout};
use crate::frame::MAX_SIDE;

/// What a JPEG frame header says, as far as decoding it is concerned.
#[derive(Debug, Default)]
pub(super) struct JpegHeader {
    /// The SOFn marker (0xC0 baseline ... 0xCF).
    pub(super) sof: u8,
    pub(super) precision: u8,
    pub(super) height: u16,
    pub(super) width: u16,
    pub(super) components: u8,
    ids: [u8; 3],
    jfif: bool,
    /// The Adobe APP14 colour transform, when present.
    adobe: Option<u8>,
}

impl JpegHeader {
    const RGB_IDS: [u8; 3] = *b"RGB";

    /// Whether jpeg-decoder 0.3 transforms the components from YCbCr
    /// (`choose_color_transform` in its decoder.rs).
    pub(super) fn jpeg_decoder_converts(&self) -> Result<bool, Fault> {
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
    pub(super) fn stream_is_ycbcr(&self, colour: Colour) -> bool {
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
pub(super) fn jpeg_header<'a>(parts: impl Iterator<Item = &'a [u8]>) -> Result<JpegHeader, String> {
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
pub(super) fn zune_raw(bytes: &[u8], l: &Layout) -> Result<Vec<u8>, String> {
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
