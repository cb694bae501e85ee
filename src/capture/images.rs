//! Still images and folders of frames: PNG, JPEG and TIFF through `image`,
//! DICOM files through [`super::dicom`]. A folder replays in name order.

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageReader, Limits};

use super::dicom::DicomSource;
use super::{CaptureError, FrameSource};
use crate::frame::{Frame, FrameMeta, MAX_SIDE, PixelFormat};

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "tif", "tiff"];

/// Replays one still or every image in a folder.
pub struct ImagesSource {
    root: PathBuf,
    files: Vec<PathBuf>,
    next_file: usize,
    current_dicom: Option<DicomSource>,
    interval_us: u64,
    seq: u64,
}

impl ImagesSource {
    /// `path` is a file or a folder; `interval_us` spaces the stills in time.
    pub fn open(path: &Path, interval_us: u64) -> Result<ImagesSource, CaptureError> {
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
            files,
            next_file: 0,
            current_dicom: None,
            interval_us,
            seq: 0,
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

/// Decodes one PNG/JPEG/TIFF file into a frame (gray stays gray, 16-bit stays 16-bit).
pub fn decode_image(path: &Path, bytes: &[u8], meta: FrameMeta) -> Result<Frame, CaptureError> {
    let not_image = |reason: String| CaptureError::NotAnImage {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| not_image(e.to_string()))?;
    if reader.format().is_none() {
        return Err(not_image("unrecognised file signature".into()));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| not_image(e.to_string().replace('\n', " ")))?;
    let (w, h) = (img.width(), img.height());
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
                match dcm.next_frame()? {
                    Some(f) => {
                        self.seq = f.meta.seq + 1;
                        return Ok(Some(f));
                    }
                    None => self.current_dicom = None,
                }
            }
            let Some(path) = self.files.get(self.next_file).cloned() else {
                return Ok(None);
            };
            self.next_file += 1;
            let bytes = std::fs::read(&path).map_err(|e| CaptureError::io(&path, e))?;
            if looks_like_dicom(&bytes) || is_dicom_name(&path) {
                let mut dcm = DicomSource::from_bytes(&path, &bytes)?;
                dcm.continue_from(self.seq, self.seq * self.interval_us);
                self.current_dicom = Some(dcm);
                continue;
            }
            let meta = FrameMeta {
                seq: self.seq,
                timestamp_us: self.seq * self.interval_us,
            };
            self.seq += 1;
            return decode_image(&path, &bytes, meta).map(Some);
        }
    }
}
