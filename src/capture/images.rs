//! Still images and folders of frames: PNG and TIFF through `image`, JPEG
//! through zune-jpeg in strict mode, DICOM files through [`super::dicom`].
//! A folder replays in name order; a file in it that cannot be read or
//! decoded is skipped ([`CaptureError::BadFile`]) and the replay goes on.
//!
//! Every decoder is held to the [`DecodeBudget`]: the file's size before it
//! is read, the picture's declared size before it is decoded. A truncated or
//! corrupt file is an error, never a picture with its missing rows filled in
//! (image's JPEG path fills them; the strict decoder and an end-of-image
//! check refuse them).

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::dicom::DicomSource;
use super::mjpeg::ends_with_eoi;
use super::{CaptureError, FrameSource};
use crate::budget::DecodeBudget;
use crate::frame::{Frame, FrameMeta, MAX_SIDE, PixelFormat};
use crate::safe_read::{Links, read_file};

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "tif", "tiff"];

/// Replays one still or every image in a folder.
pub struct ImagesSource {
    root: PathBuf,
    files: Vec<PathBuf>,
    next_file: usize,
    current_dicom: Option<DicomSource>,
    interval_us: u64,
    seq: u64,
    budget: DecodeBudget,
    /// A single file (not a folder): its errors end the source.
    single: bool,
}

impl ImagesSource {
    /// `path` is a file or a folder; `interval_us` spaces the stills in time.
    pub fn open(
        path: &Path,
        interval_us: u64,
        budget: DecodeBudget,
    ) -> Result<ImagesSource, CaptureError> {
        let meta = std::fs::metadata(path).map_err(|e| CaptureError::io(path, e))?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).map_err(|e| CaptureError::io(path, e))? {
                let p = entry.map_err(|e| CaptureError::io(path, e))?.path();
                if p.is_file() && (is_dicom_name(&p) || has_image_extension(&p)) {
                    files.push(p);
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(CaptureError::EmptyFolder {
                    path: path.to_path_buf(),
                });
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        Ok(ImagesSource {
            root: path.to_path_buf(),
            single: !meta.is_dir(),
            files,
            next_file: 0,
            current_dicom: None,
            interval_us,
            seq: 0,
            budget,
        })
    }
}

fn has_image_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn is_dicom_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("dcm"))
}

/// True when the bytes carry the DICOM Part 10 signature.
pub fn looks_like_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM") || bytes.get(0..4) == Some(b"DICM")
}

/// Decodes one PNG/JPEG/TIFF file into a frame (gray stays gray, 16-bit
/// stays 16-bit) within `budget`.
pub fn decode_image(
    path: &Path,
    bytes: &[u8],
    meta: FrameMeta,
    budget: DecodeBudget,
) -> Result<Frame, CaptureError> {
    let not_image = |reason: String| CaptureError::NotAnImage {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| not_image(e.to_string()))?;
    match reader.format() {
        None => return Err(not_image("unrecognised file signature".into())),
        Some(ImageFormat::Jpeg) => return decode_jpeg(path, bytes, meta, budget),
        Some(_) => {}
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(budget.bytes());
    reader.limits(limits);
    let one_line = |e: image::ImageError| not_image(e.to_string().replace('\n', " "));
    let decoder = reader.into_decoder().map_err(one_line)?;
    // The picture as decoded, plus its RGB copy when it is neither gray
    // nor RGB (both are held while it is converted).
    let (w, h) = decoder.dimensions();
    let converted = match decoder.color_type() {
        image::ColorType::L8 | image::ColorType::L16 | image::ColorType::Rgb8 => 0,
        _ => u64::from(w) * u64::from(h) * 3,
    };
    budget
        .check(
            "the decoded picture",
            decoder.total_bytes().checked_add(converted),
        )
        .map_err(|source| CaptureError::OverBudget {
            path: path.to_path_buf(),
            source,
        })?;
    let img = DynamicImage::from_decoder(decoder).map_err(one_line)?;
    let bad = |e| CaptureError::BadFrame {
        path: path.to_path_buf(),
        source: e,
    };
    match img {
        DynamicImage::ImageLuma8(g) => {
            Frame::packed(g.into_raw(), PixelFormat::Gray8, w, h, meta).map_err(bad)
        }
        DynamicImage::ImageLuma16(g) => {
            let bytes = g.into_raw().iter().flat_map(|v| v.to_le_bytes()).collect();
            Frame::packed(bytes, PixelFormat::Gray16, w, h, meta).map_err(bad)
        }
        other => {
            Frame::packed(other.to_rgb8().into_raw(), PixelFormat::Rgb24, w, h, meta).map_err(bad)
        }
    }
}

/// A JPEG file, strictly: it must end with its end-of-image marker and
/// decode without missing data. Gray stays gray; colour becomes RGB.
fn decode_jpeg(
    path: &Path,
    bytes: &[u8],
    meta: FrameMeta,
    budget: DecodeBudget,
) -> Result<Frame, CaptureError> {
    let not_image = |reason: String| CaptureError::NotAnImage {
        path: path.to_path_buf(),
        reason,
    };
    if !ends_with_eoi(bytes) {
        return Err(not_image("truncated JPEG: no end-of-image marker".into()));
    }
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(MAX_SIDE as usize)
        .set_max_height(MAX_SIDE as usize);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let jpeg_error = |e: zune_jpeg::errors::DecodeErrors| not_image(format!("JPEG: {e}"));
    decoder.decode_headers().map_err(jpeg_error)?;
    let (w, h) = decoder
        .dimensions()
        .ok_or_else(|| not_image("JPEG: no frame header".into()))?;
    let gray = decoder
        .input_colorspace()
        .is_some_and(|c| c == ColorSpace::Luma);
    let (out, format) = if gray {
        (ColorSpace::Luma, PixelFormat::Gray8)
    } else {
        (ColorSpace::RGB, PixelFormat::Rgb24)
    };
    let claim = (w as u64) * (h as u64) * out.num_components() as u64;
    // zune keeps the component planes beside its output.
    budget
        .check("the decoded picture", Some(2 * claim))
        .map_err(|source| CaptureError::OverBudget {
            path: path.to_path_buf(),
            source,
        })?;
    decoder.set_options(
        DecoderOptions::default()
            .set_strict_mode(true)
            .set_max_width(MAX_SIDE as usize)
            .set_max_height(MAX_SIDE as usize)
            .jpeg_set_out_colorspace(out),
    );
    let pixels = decoder.decode().map_err(jpeg_error)?;
    Frame::packed(pixels, format, w as u32, h as u32, meta).map_err(|e| CaptureError::BadFrame {
        path: path.to_path_buf(),
        source: e,
    })
}

impl FrameSource for ImagesSource {
    fn describe(&self) -> String {
        format!(
            "images {} ({} file(s))",
            self.root.display(),
            self.files.len()
        )
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        loop {
            if let Some(dcm) = self.current_dicom.as_mut() {
                match dcm.next_frame() {
                    Ok(Some(f)) => {
                        self.seq = f.meta.seq + 1;
                        return Ok(Some(f));
                    }
                    Ok(None) => self.current_dicom = None,
                    Err(e) => {
                        self.current_dicom = None;
                        return Err(self.skipped(e));
                    }
                }
            }
            let Some(path) = self.files.get(self.next_file).cloned() else {
                return Ok(None);
            };
            self.next_file += 1;
            match self.open_file(&path) {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => continue,
                Err(e) => return Err(self.skipped(e)),
            }
        }
    }
}

impl ImagesSource {
    /// A still's frame, or `None` once a DICOM file is set up to replay.
    fn open_file(&mut self, path: &Path) -> Result<Option<Frame>, CaptureError> {
        let bytes = read_file(path, self.budget.bytes(), Links::Follow, "an image")?;
        if looks_like_dicom(&bytes) || is_dicom_name(path) {
            let mut dcm = DicomSource::from_bytes_within(path, &bytes, self.budget)?;
            dcm.continue_from(self.seq, self.seq * self.interval_us);
            self.current_dicom = Some(dcm);
            return Ok(None);
        }
        let meta = FrameMeta {
            seq: self.seq,
            timestamp_us: self.seq * self.interval_us,
        };
        self.seq += 1;
        decode_image(path, &bytes, meta, self.budget).map(Some)
    }

    /// A single file is the source: its error ends it. One bad file of a
    /// folder is skipped (the error names it) and the folder goes on.
    fn skipped(&self, e: CaptureError) -> CaptureError {
        if self.single || e.is_frame_local() {
            return e;
        }
        let path = self
            .files
            .get(self.next_file.wrapping_sub(1))
            .unwrap_or(&self.root);
        CaptureError::skipped_file(path, e)
    }
}
