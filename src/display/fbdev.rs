//! Linux framebuffer output (`/dev/fbN`): HDMI on the boards, bochs-display or
//! virtio-gpu under QEMU.
//!
//! Geometry comes from sysfs (`/sys/class/graphics/fbN/{virtual_size,
//! bits_per_pixel,stride}`), so no ioctl is needed. The device is mapped
//! into memory and only the rectangles that changed since the last frame are
//! rewritten ([`super::damage`]). 32 bpp (XRGB8888), 24 bpp (BGR) and 16 bpp
//! (RGB565) are supported, in the kernel's usual channel order for them. The
//! canvas is created at the framebuffer's size, and the text console is put
//! in graphics mode while we draw ([`super::console`]).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

use super::console::GraphicsConsole;
use super::damage::DamageTracker;
use super::pixels::{ScreenFormat, convert_row};
use super::{Canvas, DisplayError, FrameSink};
use crate::frame::FrameMeta;

/// The console whose text would otherwise show through.
const ACTIVE_VT: &str = "/dev/tty0";

/// What the framebuffer is: size, pixel format and row pitch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FbGeometry {
    pub width: u32,
    pub height: u32,
    pub bits_per_pixel: u32,
    /// Bytes from one row to the next.
    pub stride: usize,
}

impl FbGeometry {
    fn format(&self) -> Option<ScreenFormat> {
        match self.bits_per_pixel {
            32 => Some(ScreenFormat::Xrgb8888),
            24 => Some(ScreenFormat::Bgr888),
            16 => Some(ScreenFormat::Rgb565Le),
            _ => None,
        }
    }

    fn len(&self) -> usize {
        self.stride * self.height as usize
    }
}

pub struct FbdevSink {
    path: PathBuf,
    map: MmapMut,
    geometry: FbGeometry,
    format: ScreenFormat,
    damage: DamageTracker,
    bytes_written: u64,
    // Dropped last: the picture stays until the console takes the screen back.
    _console: Option<GraphicsConsole>,
}

fn read_sysfs(dir: &Path, name: &str) -> Result<String, DisplayError> {
    let p = dir.join(name);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| DisplayError::io(&p, e))
}

/// The geometry the kernel reports for framebuffer `name` (`fb0`).
fn sysfs_geometry(path: &Path, name: &str) -> Result<FbGeometry, DisplayError> {
    let unsupported = |reason: String| DisplayError::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
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
    Ok(FbGeometry {
        width: parse(w)?,
        height: parse(h)?,
        bits_per_pixel: parse(&read_sysfs(&sys, "bits_per_pixel")?)?,
        stride: parse(&read_sysfs(&sys, "stride")?)? as usize,
    })
}

impl FbdevSink {
    /// Opens `/dev/fbN`, maps it and takes the console into graphics mode
    /// (a warning, not an error, when that is not permitted).
    pub fn open(path: &Path) -> Result<FbdevSink, DisplayError> {
        let name = path.file_name().and_then(|n| n.to_str()).filter(|n| {
            n.starts_with("fb") && n.len() > 2 && n[2..].bytes().all(|b| b.is_ascii_digit())
        });
        let Some(name) = name else {
            return Err(DisplayError::Unsupported {
                path: path.to_path_buf(),
                reason: "not a framebuffer device name (expected /dev/fbN)".into(),
            });
        };
        if !path.exists() {
            return Err(DisplayError::io(
                path,
                std::io::Error::from_raw_os_error(libc::ENOENT),
            ));
        }
        let geometry = sysfs_geometry(path, name)?;
        let mut sink = FbdevSink::with_file(path, geometry)?;
        match GraphicsConsole::take(Path::new(ACTIVE_VT)) {
            Ok(c) => sink._console = Some(c),
            Err(e) => tracing::warn!(
                "{ACTIVE_VT}: console stays in text mode, its cursor may show over the picture: {e}"
            ),
        }
        tracing::info!(device = %path.display(), "framebuffer {}x{} {} bpp stride {}", geometry.width, geometry.height, geometry.bits_per_pixel, geometry.stride);
        Ok(sink)
    }

    /// Draws into `path` (a framebuffer device, or a file of at least
    /// `stride * height` bytes in tests) as a framebuffer of `geometry`.
    pub fn with_file(path: &Path, geometry: FbGeometry) -> Result<FbdevSink, DisplayError> {
        let unsupported = |reason: String| DisplayError::Unsupported {
            path: path.to_path_buf(),
            reason,
        };
        let Some(format) = geometry.format() else {
            return Err(unsupported(format!(
                "{} bits per pixel (supported: 16, 24, 32)",
                geometry.bits_per_pixel
            )));
        };
        let FbGeometry {
            width,
            height,
            stride,
            ..
        } = geometry;
        if width == 0
            || height == 0
            || width > 8192
            || height > 8192
            || stride < width as usize * format.bytes_per_pixel()
        {
            return Err(unsupported(format!(
                "geometry {width}x{height} stride {stride}"
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| DisplayError::io(path, e))?;
        if let Ok(m) = file.metadata()
            && m.is_file()
            && m.len() < geometry.len() as u64
        {
            return Err(unsupported(format!(
                "{} bytes, the geometry needs {}",
                m.len(),
                geometry.len()
            )));
        }
        let map = map(&file, geometry.len()).map_err(|e| DisplayError::io(path, e))?;
        Ok(FbdevSink {
            path: path.to_path_buf(),
            map,
            geometry,
            format,
            damage: DamageTracker::new(width, height),
            bytes_written: 0,
            _console: None,
        })
    }
}

#[allow(unsafe_code)]
fn map(file: &File, len: usize) -> std::io::Result<MmapMut> {
    // SAFETY: the mapping is of a framebuffer (or, in tests, a file we made)
    // and only ever used as a `[u8]` we write to. Another writer (the kernel
    // console before KD_GRAPHICS) can change bytes under us; for bytes we only
    // write that is harmless. The file is checked to be long enough above, so
    // no access faults past its end.
    unsafe { MmapOptions::new().len(len).map_mut(file) }
}

impl FrameSink for FbdevSink {
    fn describe(&self) -> String {
        let g = self.geometry;
        format!(
            "framebuffer {} {}x{} {} bpp",
            self.path.display(),
            g.width,
            g.height,
            g.bits_per_pixel
        )
    }

    fn size(&self) -> (u32, u32) {
        (self.geometry.width, self.geometry.height)
    }

    fn show(&mut self, canvas: &Canvas, _: &FrameMeta) -> Result<(), DisplayError> {
        let g = self.geometry;
        let bpp = self.format.bytes_per_pixel();
        for r in self.damage.update(canvas) {
            // A canvas larger than the screen is clipped.
            if r.x >= g.width || r.y >= g.height {
                continue;
            }
            let cols = r.width.min(g.width - r.x) as usize;
            for y in r.y..(r.y + r.height).min(g.height) {
                let src = (y as usize * canvas.width as usize + r.x as usize) * 3;
                let dst = y as usize * g.stride + r.x as usize * bpp;
                convert_row(
                    &canvas.rgb[src..src + cols * 3],
                    self.format,
                    &mut self.map[dst..dst + cols * bpp],
                );
                self.bytes_written += (cols * bpp) as u64;
            }
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.bytes_written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(bpp: u32, width: u32, height: u32, stride: usize) -> FbGeometry {
        FbGeometry {
            width,
            height,
            bits_per_pixel: bpp,
            stride,
        }
    }

    #[test]
    fn refuses_non_framebuffers_and_bad_geometry() {
        for p in ["/dev/null", "/dev/fbx", "/tmp/fb"] {
            assert!(
                matches!(
                    FbdevSink::open(Path::new(p)),
                    Err(DisplayError::Unsupported { .. })
                ),
                "{p}"
            );
        }
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), vec![0; 100]).unwrap();
        for g in [
            geometry(8, 10, 10, 10),
            geometry(32, 10, 10, 39),
            geometry(32, 0, 10, 40),
            geometry(32, 10, 10, 40),
        ] {
            let e = FbdevSink::with_file(f.path(), g).err().unwrap();
            assert!(matches!(e, DisplayError::Unsupported { .. }), "{g:?}: {e}");
        }
    }

    /// Draws into a file-backed framebuffer with padded rows and reads the
    /// pixels back, in each depth.
    #[test]
    fn writes_pixels_at_their_place_and_only_what_changed() {
        for (bpp, expect) in [
            (32u32, vec![30, 20, 10, 0xFF]),
            (24, vec![30, 20, 10]),
            (
                16,
                super::super::pixels::rgb565(10, 20, 30)
                    .to_le_bytes()
                    .to_vec(),
            ),
        ] {
            let (w, h) = (20u32, 6u32);
            let stride = w as usize * bpp as usize / 8 + 12;
            let f = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(f.path(), vec![0xEE; stride * h as usize]).unwrap();
            let mut sink = FbdevSink::with_file(f.path(), geometry(bpp, w, h, stride)).unwrap();
            let mut c = Canvas::new(w, h);
            c.rgb[(2 * w as usize + 5) * 3..][..3].copy_from_slice(&[10, 20, 30]);
            sink.show(&c, &FrameMeta::default()).unwrap();
            let full = sink.bytes_written();
            assert_eq!(full, u64::from(w * h) * u64::from(bpp / 8));
            c.rgb[(4 * w as usize + 7) * 3..][..3].copy_from_slice(&[10, 20, 30]);
            sink.show(&c, &FrameMeta::default()).unwrap();
            assert_eq!(
                sink.bytes_written() - full,
                u64::from(bpp / 8),
                "one changed pixel, one pixel written"
            );
            drop(sink);
            let bytes = std::fs::read(f.path()).unwrap();
            let px = |x: usize, y: usize| {
                &bytes[y * stride + x * bpp as usize / 8..][..bpp as usize / 8]
            };
            assert_eq!(px(5, 2), expect.as_slice(), "{bpp} bpp");
            assert_eq!(px(7, 4), expect.as_slice(), "{bpp} bpp");
            assert!(
                px(0, 0).iter().take(3).all(|&b| b == 0),
                "{bpp} bpp: black elsewhere"
            );
            // Row padding is never touched.
            assert!(
                bytes[stride - 12..stride].iter().all(|&b| b == 0xEE),
                "{bpp} bpp padding"
            );
        }
    }
}
