//! What is attached to this board: video devices, framebuffers and SPI buses
//! (`bedside devices`), so a clinical engineer setting up a cart can see what
//! the profile should name before running anything.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::capture::v4l2::{self, DeviceInfo};

/// A framebuffer as the kernel describes it in `/sys/class/graphics/fbN`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FramebufferInfo {
    pub path: PathBuf,
    /// The driver's name (`bochs-drmdrmfb`, `vc4drmfb`, `fb_ili9341`, ...).
    pub name: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bits_per_pixel: Option<u32>,
}

/// Everything `bedside devices` reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Inventory {
    pub video: Vec<DeviceInfo>,
    /// Why V4L2 devices could not be listed (a build without `v4l2`).
    pub video_error: Option<String>,
    pub framebuffers: Vec<FramebufferInfo>,
    /// `/dev/spidevB.C` nodes (an SPI LCD's bus, for `spi:` displays).
    pub spi: Vec<PathBuf>,
}

impl Inventory {
    /// Looks at this machine.
    pub fn scan() -> Inventory {
        let (video, video_error) = match v4l2::list_devices() {
            Ok(v) => (v, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        Inventory {
            video,
            video_error,
            framebuffers: framebuffers(Path::new("/sys/class/graphics"), Path::new("/dev")),
            spi: spi_devices(Path::new("/dev")),
        }
    }

    /// The report as people read it.
    pub fn to_text(&self) -> String {
        let mut s = String::from("Video capture (V4L2):\n");
        match &self.video_error {
            Some(e) => s.push_str(&format!("  not listed: {e}\n")),
            None if self.video.is_empty() => s.push_str("  none (no /dev/video* nodes)\n"),
            None => self.video.iter().for_each(|d| s.push_str(&device_text(d))),
        }
        s.push_str("Framebuffers:\n");
        if self.framebuffers.is_empty() {
            s.push_str("  none\n");
        }
        for fb in &self.framebuffers {
            let size = match (fb.width, fb.height) {
                (Some(w), Some(h)) => format!("{w}x{h}"),
                _ => "size unknown".into(),
            };
            let bpp = fb
                .bits_per_pixel
                .map(|b| format!(", {b} bpp"))
                .unwrap_or_default();
            s.push_str(&format!(
                "  {}  {}  {size}{bpp}\n",
                fb.path.display(),
                fb.name
            ));
        }
        s.push_str("SPI:\n");
        if self.spi.is_empty() {
            s.push_str("  none\n");
        }
        for p in &self.spi {
            s.push_str(&format!("  {}\n", p.display()));
        }
        s
    }
}

fn device_text(d: &DeviceInfo) -> String {
    let mut s = format!("  {}", d.path.display());
    if !d.card.is_empty() {
        s.push_str(&format!("  {} ({}, {})", d.card, d.driver, d.bus));
    }
    s.push('\n');
    for n in &d.stable_names {
        s.push_str(&format!("    also {}\n", n.display()));
    }
    if let Some(e) = &d.error {
        s.push_str(&format!("    cannot query: {e}\n"));
        return s;
    }
    if !d.can_capture {
        s.push_str("    not a video capture node (metadata or output)\n");
        return s;
    }
    for f in &d.formats {
        let mark = if f.supported {
            ""
        } else {
            "  (not supported by bedside)"
        };
        s.push_str(&format!("    {} {}{mark}\n", f.fourcc, f.description));
        for size in &f.sizes {
            let fps = if size.fps.is_empty() {
                "?".to_string()
            } else {
                size.fps.join(", ")
            };
            s.push_str(&format!("      {} @ {fps} fps\n", size.size));
        }
    }
    s
}

/// Framebuffers listed under `sys` (normally `/sys/class/graphics`), with
/// their device nodes under `dev`.
pub fn framebuffers(sys: &Path, dev: &Path) -> Vec<FramebufferInfo> {
    let Ok(entries) = std::fs::read_dir(sys) else {
        return Vec::new();
    };
    let read = |dir: &Path, file: &str| {
        std::fs::read_to_string(dir.join(file))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut fbs: Vec<FramebufferInfo> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("fb") && n[2..].chars().all(|c| c.is_ascii_digit()) && n.len() > 2
        })
        .map(|e| {
            let dir = e.path();
            let (width, height) = read(&dir, "virtual_size")
                .and_then(|v| {
                    let (w, h) = v.split_once(',')?;
                    Some((w.trim().parse().ok(), h.trim().parse().ok()))
                })
                .unwrap_or((None, None));
            FramebufferInfo {
                path: dev.join(e.file_name()),
                name: read(&dir, "name").unwrap_or_default(),
                width,
                height,
                bits_per_pixel: read(&dir, "bits_per_pixel").and_then(|b| b.parse().ok()),
            }
        })
        .collect();
    fbs.sort_by(|a, b| a.path.cmp(&b.path));
    fbs
}

/// `spidev*` nodes under `dev`.
pub fn spi_devices(dev: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dev) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("spidev"))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framebuffers_and_spi_are_read_from_sysfs_and_dev() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let dev = root.path().join("dev");
        for (fb, name, size, bpp) in [
            ("fb1", "fb_ili9341", "320,240", "16"),
            ("fb0", "bochs-drmdrmfb", "1280,800", "32"),
        ] {
            std::fs::create_dir_all(sys.join(fb)).unwrap();
            std::fs::write(sys.join(fb).join("name"), format!("{name}\n")).unwrap();
            std::fs::write(sys.join(fb).join("virtual_size"), format!("{size}\n")).unwrap();
            std::fs::write(sys.join(fb).join("bits_per_pixel"), format!("{bpp}\n")).unwrap();
        }
        // Not framebuffers: fbcon, a half-described node.
        std::fs::create_dir_all(sys.join("fbcon")).unwrap();
        std::fs::create_dir_all(sys.join("fb2")).unwrap();
        std::fs::create_dir_all(&dev).unwrap();
        for n in ["spidev0.0", "spidev0.1", "video0", "fb0"] {
            std::fs::write(dev.join(n), b"").unwrap();
        }
        let fbs = framebuffers(&sys, &dev);
        assert_eq!(fbs.len(), 3);
        assert_eq!(
            fbs[0],
            FramebufferInfo {
                path: dev.join("fb0"),
                name: "bochs-drmdrmfb".into(),
                width: Some(1280),
                height: Some(800),
                bits_per_pixel: Some(32),
            }
        );
        assert_eq!(fbs[2].width, None);
        assert_eq!(
            spi_devices(&dev),
            [dev.join("spidev0.0"), dev.join("spidev0.1")]
        );
        let inv = Inventory {
            video: Vec::new(),
            video_error: None,
            framebuffers: fbs,
            spi: spi_devices(&dev),
        };
        let text = inv.to_text();
        assert!(text.contains("fb_ili9341  320x240, 16 bpp"), "{text}");
        assert!(text.contains("none (no /dev/video* nodes)"), "{text}");
        assert!(text.contains("spidev0.1"), "{text}");
    }

    #[test]
    fn device_report_names_formats_sizes_and_rates() {
        let d = DeviceInfo {
            path: "/dev/video0".into(),
            stable_names: vec!["/dev/v4l/by-id/usb-MACROSILICON-video-index0".into()],
            driver: "uvcvideo".into(),
            card: "USB Video".into(),
            bus: "usb-0000:01:00.0-1.3".into(),
            can_capture: true,
            formats: vec![
                v4l2::FormatInfo {
                    fourcc: "MJPG".into(),
                    description: "Motion-JPEG".into(),
                    supported: true,
                    sizes: vec![v4l2::SizeInfo {
                        size: "1920x1080".into(),
                        fps: vec!["30".into(), "25".into()],
                    }],
                },
                v4l2::FormatInfo {
                    fourcc: "H264".into(),
                    description: "H.264".into(),
                    supported: false,
                    sizes: vec![],
                },
            ],
            error: None,
        };
        let t = device_text(&d);
        assert!(
            t.contains("USB Video (uvcvideo, usb-0000:01:00.0-1.3)"),
            "{t}"
        );
        assert!(
            t.contains("also /dev/v4l/by-id/usb-MACROSILICON-video-index0"),
            "{t}"
        );
        assert!(t.contains("1920x1080 @ 30, 25 fps"), "{t}");
        assert!(t.contains("H264 H.264  (not supported by bedside)"), "{t}");
    }
}
