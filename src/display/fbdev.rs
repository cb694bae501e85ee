//! Linux framebuffer output (`/dev/fbN`): HDMI on the boards, bochs-display or
//! virtio-gpu under QEMU.
//!
//! Geometry comes from sysfs (`/sys/class/graphics/fbN/{virtual_size,
//! bits_per_pixel,stride}`), so no ioctl is needed; rows are written with
//! positioned writes into the device. 32 bpp (XRGB8888) and 16 bpp (RGB565)
//! are supported. The canvas is created at the framebuffer's size.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Canvas, DisplayError, FrameSink};
use crate::frame::FrameMeta;

pub struct FbdevSink {
    path: PathBuf,
    file: File,
    width: u32,
    height: u32,
    bpp: u32,
    stride: usize,
    line: Vec<u8>,
}

fn read_sysfs(dir: &Path, name: &str) -> Result<String, DisplayError> {
    let p = dir.join(name);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| DisplayError::io(&p, e))
}

impl FbdevSink {
    pub fn open(path: &Path) -> Result<FbdevSink, DisplayError> {
        let unsupported = |reason: String| DisplayError::Unsupported {
            path: path.to_path_buf(),
            reason,
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.starts_with("fb"));
        let Some(name) = name else {
            return Err(unsupported(
                "not a framebuffer device name (expected /dev/fbN)".into(),
            ));
        };
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| DisplayError::io(path, e))?;
        let sys = Path::new("/sys/class/graphics").join(name);
        let size = read_sysfs(&sys, "virtual_size")?;
        let (w, h) = size
            .split_once(',')
            .ok_or_else(|| unsupported(format!("odd virtual_size '{size}'")))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| unsupported(format!("odd sysfs value '{v}'")))
        };
        let (width, height) = (parse(w)?, parse(h)?);
        let bpp = parse(&read_sysfs(&sys, "bits_per_pixel")?)?;
        let stride = parse(&read_sysfs(&sys, "stride")?)? as usize;
        if bpp != 32 && bpp != 16 {
            return Err(unsupported(format!(
                "{bpp} bits per pixel (supported: 16, 32)"
            )));
        }
        if width == 0 || height == 0 || stride < width as usize * bpp as usize / 8 {
            return Err(unsupported(format!(
                "geometry {width}x{height} stride {stride}"
            )));
        }
        tracing::info!(device = %path.display(), "framebuffer {width}x{height} {bpp} bpp stride {stride}");
        Ok(FbdevSink {
            path: path.to_path_buf(),
            file,
            width,
            height,
            bpp,
            stride,
            line: vec![0; width as usize * bpp as usize / 8],
        })
    }
}

/// RGB888 row to XRGB8888 (little-endian B, G, R, X) or RGB565.
fn convert_row(rgb: &[u8], bpp: u32, out: &mut [u8]) {
    if bpp == 32 {
        for (o, p) in out.chunks_exact_mut(4).zip(rgb.chunks_exact(3)) {
            o.copy_from_slice(&[p[2], p[1], p[0], 0xff]);
        }
    } else {
        for (o, p) in out.chunks_exact_mut(2).zip(rgb.chunks_exact(3)) {
            let v =
                (u16::from(p[0] >> 3) << 11) | (u16::from(p[1] >> 2) << 5) | u16::from(p[2] >> 3);
            o.copy_from_slice(&v.to_le_bytes());
        }
    }
}

impl FrameSink for FbdevSink {
    fn describe(&self) -> String {
        format!(
            "framebuffer {} {}x{} {} bpp",
            self.path.display(),
            self.width,
            self.height,
            self.bpp
        )
    }

    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn show(&mut self, canvas: &Canvas, _: &FrameMeta) -> Result<(), DisplayError> {
        let rows = canvas.height.min(self.height) as usize;
        let cols = canvas.width.min(self.width) as usize;
        let bytes = cols * self.bpp as usize / 8;
        for y in 0..rows {
            let src = &canvas.rgb[y * canvas.width as usize * 3..][..cols * 3];
            convert_row(src, self.bpp, &mut self.line[..bytes]);
            self.file
                .write_all_at(&self.line[..bytes], (y * self.stride) as u64)
                .map_err(|e| DisplayError::io(&self.path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_pixels() {
        let mut out = [0u8; 4];
        convert_row(&[1, 2, 3], 32, &mut out);
        assert_eq!(out, [3, 2, 1, 0xff]);
        let mut out = [0u8; 2];
        convert_row(&[255, 0, 255], 16, &mut out);
        assert_eq!(u16::from_le_bytes(out), 0xf81f);
    }

    #[test]
    fn refuses_non_framebuffer_paths() {
        assert!(matches!(
            FbdevSink::open(Path::new("/dev/null")),
            Err(DisplayError::Unsupported { .. })
        ));
    }
}
