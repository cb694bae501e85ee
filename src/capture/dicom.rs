//! DICOM files: single images and multi-frame cines, decoded one frame at a time.
//!
//! Uses dicom-object + dicom-pixeldata with their pure-Rust codecs (uncompressed,
//! deflate, RLE, JPEG baseline/extended/lossless). Patient attributes are never
//! read into logs: [`FrameSource::describe`] names the file and geometry only.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{PhotometricInterpretation, PixelDecoder, PixelRepresentation};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::{CaptureError, FrameSource};
use crate::frame::{Frame, FrameMeta, PixelFormat, Tone, VoiWindow};

/// Frame interval used when a multi-frame object states no Frame Time.
const DEFAULT_FRAME_US: u64 = 33_333;

/// Replays the frames of one DICOM object.
pub struct DicomSource {
    path: PathBuf,
    obj: DefaultDicomObject,
    frames: u32,
    next: u32,
    interval_us: u64,
    first_seq: u64,
    first_us: u64,
}

impl DicomSource {
    /// Opens a DICOM file (with or without the 128-byte preamble).
    pub fn open(path: &Path) -> Result<DicomSource, CaptureError> {
        let bytes = std::fs::read(path).map_err(|e| CaptureError::io(path, e))?;
        DicomSource::from_bytes(path, &bytes)
    }

    /// Parses DICOM from memory; `name` is used in messages only.
    pub fn from_bytes(name: &Path, bytes: &[u8]) -> Result<DicomSource, CaptureError> {
        let err = |reason: String| CaptureError::Dicom {
            path: name.to_path_buf(),
            reason,
        };
        let obj = OpenFileOptions::new()
            .from_reader(Cursor::new(bytes))
            .map_err(|e| err(one_line(&e)))?;
        let ts_uid = obj
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        match TransferSyntaxRegistry.get(&ts_uid) {
            Some(ts) if ts.can_decode_all() => {}
            Some(ts) => {
                return Err(CaptureError::Unsupported {
                    path: name.to_path_buf(),
                    what: "transfer syntax",
                    detail: format!("{} ({ts_uid}) has no decoder in this build", ts.name()),
                });
            }
            None => {
                return Err(CaptureError::Unsupported {
                    path: name.to_path_buf(),
                    what: "transfer syntax",
                    detail: format!("unknown UID {ts_uid}"),
                });
            }
        }
        if obj.element(tags::PIXEL_DATA).is_err() {
            return Err(err("no Pixel Data element".into()));
        }
        let int = |tag| obj.element(tag).ok().and_then(|e| e.to_int::<i64>().ok());
        let frames = int(tags::NUMBER_OF_FRAMES).unwrap_or(1);
        if !(1..=100_000).contains(&frames) {
            return Err(err(format!("implausible Number of Frames {frames}")));
        }
        let frame_ms = obj
            .element(tags::FRAME_TIME)
            .ok()
            .and_then(|e| e.to_float64().ok());
        let interval_us = match frame_ms {
            Some(ms) if ms.is_finite() && ms > 0.0 && ms < 60_000.0 => (ms * 1000.0).round() as u64,
            _ => DEFAULT_FRAME_US,
        };
        Ok(DicomSource {
            path: name.to_path_buf(),
            obj,
            frames: frames as u32,
            next: 0,
            interval_us,
            first_seq: 0,
            first_us: 0,
        })
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
        let path = &self.path;
        let unsupported = |what, detail: String| CaptureError::Unsupported {
            path: path.clone(),
            what,
            detail,
        };
        let px = self
            .obj
            .decode_pixel_data_frame(index)
            .map_err(|e| CaptureError::Dicom {
                path: path.clone(),
                reason: format!("frame {index}: {}", one_line(&e)),
            })?;
        let (w, h) = (px.columns(), px.rows());
        let spp = px.samples_per_pixel();
        let bits = px.bits_allocated();
        let signed = px.pixel_representation() == PixelRepresentation::Signed;
        let pi = px.photometric_interpretation().clone();
        let meta = FrameMeta {
            seq: self.first_seq + u64::from(index),
            timestamp_us: self.first_us + u64::from(index) * self.interval_us,
        };
        let data = px.data();
        let plane = w as usize * h as usize;
        let bad = |e| CaptureError::BadFrame {
            path: path.clone(),
            source: e,
        };
        match (spp, bits, &pi) {
            (
                1,
                8,
                PhotometricInterpretation::Monochrome1 | PhotometricInterpretation::Monochrome2,
            ) => {
                let mut d = data
                    .get(..plane)
                    .ok_or_else(|| short(path, plane, data.len()))?
                    .to_vec();
                if pi == PhotometricInterpretation::Monochrome1 {
                    d.iter_mut().for_each(|v| *v = 255 - *v);
                }
                Frame::packed(d, PixelFormat::Gray8, w, h, meta).map_err(bad)
            }
            (
                1,
                16,
                PhotometricInterpretation::Monochrome1 | PhotometricInterpretation::Monochrome2,
            ) => {
                let mut d = data
                    .get(..plane * 2)
                    .ok_or_else(|| short(path, plane * 2, data.len()))?
                    .to_vec();
                let mut window = px
                    .window()
                    .ok()
                    .flatten()
                    .and_then(|w| w.first().copied())
                    .and_then(|wl| {
                        (wl.width >= 1.0 && wl.center.is_finite()).then_some(VoiWindow {
                            center: wl.center,
                            width: wl.width,
                        })
                    });
                if signed {
                    // Shift two's complement to offset binary so one unsigned path serves both.
                    d.chunks_exact_mut(2).for_each(|s| s[1] ^= 0x80);
                    if let Some(w) = window.as_mut() {
                        w.center += 32768.0;
                    }
                }
                let tone = Tone {
                    window,
                    invert: pi == PhotometricInterpretation::Monochrome1,
                };
                Ok(Frame::packed(d, PixelFormat::Gray16, w, h, meta)
                    .map_err(bad)?
                    .with_tone(tone))
            }
            (3, 8, PhotometricInterpretation::Rgb) => {
                let d = data
                    .get(..plane * 3)
                    .ok_or_else(|| short(path, plane * 3, data.len()))?;
                let d = match px.planar_configuration() {
                    dicom_pixeldata::PlanarConfiguration::Standard => d.to_vec(),
                    dicom_pixeldata::PlanarConfiguration::PixelFirst => {
                        let mut out = vec![0u8; plane * 3];
                        for (i, px) in out.chunks_exact_mut(3).enumerate() {
                            px.copy_from_slice(&[d[i], d[plane + i], d[2 * plane + i]]);
                        }
                        out
                    }
                };
                Frame::packed(d, PixelFormat::Rgb24, w, h, meta).map_err(bad)
            }
            _ => Err(unsupported(
                "pixel layout",
                format!(
                    "{spp} sample(s) of {bits} bits, photometric interpretation {}",
                    pi.as_str()
                ),
            )),
        }
    }
}

fn short(path: &Path, needed: usize, actual: usize) -> CaptureError {
    CaptureError::Dicom {
        path: path.to_path_buf(),
        reason: format!("pixel data has {actual} bytes, {needed} expected"),
    }
}

/// Error chains of the DICOM crates span lines; logs want one.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s.replace('\n', " ")
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
