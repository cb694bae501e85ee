//! RGB888 canvas rows to what a screen stores.

/// Pixel layouts of framebuffers and panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScreenFormat {
    /// 32 bpp, bytes B, G, R, X (DRM XRGB8888 on a little-endian machine).
    Xrgb8888,
    /// 24 bpp, bytes B, G, R.
    Bgr888,
    /// 16 bpp RGB565, little-endian (framebuffers).
    Rgb565Le,
    /// 16 bpp RGB565, big-endian (MIPI DCS panels over SPI).
    Rgb565Be,
}

impl ScreenFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            ScreenFormat::Xrgb8888 => 4,
            ScreenFormat::Bgr888 => 3,
            ScreenFormat::Rgb565Le | ScreenFormat::Rgb565Be => 2,
        }
    }
}

/// One RGB888 pixel as RGB565 (top bits of each channel).
pub fn rgb565(r: u8, g: u8, b: u8) -> u16 {
    (u16::from(r >> 3) << 11) | (u16::from(g >> 2) << 5) | u16::from(b >> 3)
}

/// Converts packed RGB888 `rgb` into `out` (as many pixels as both hold).
pub fn convert_row(rgb: &[u8], format: ScreenFormat, out: &mut [u8]) {
    let px = rgb.chunks_exact(3);
    match format {
        ScreenFormat::Xrgb8888 => (crate::preprocess::kernels::kernels().rgb_to_xrgb8888)(rgb, out),
        ScreenFormat::Bgr888 => {
            for (o, p) in out.chunks_exact_mut(3).zip(px) {
                o.copy_from_slice(&[p[2], p[1], p[0]]);
            }
        }
        ScreenFormat::Rgb565Le => {
            for (o, p) in out.chunks_exact_mut(2).zip(px) {
                o.copy_from_slice(&rgb565(p[0], p[1], p[2]).to_le_bytes());
            }
        }
        ScreenFormat::Rgb565Be => {
            for (o, p) in out.chunks_exact_mut(2).zip(px) {
                o.copy_from_slice(&rgb565(p[0], p[1], p[2]).to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_store_their_bytes() {
        let rgb = [1, 2, 3, 255, 0, 255];
        let mut out = [0u8; 8];
        convert_row(&rgb, ScreenFormat::Xrgb8888, &mut out);
        assert_eq!(out, [3, 2, 1, 0xFF, 255, 0, 255, 0xFF]);
        let mut out = [0u8; 6];
        convert_row(&rgb, ScreenFormat::Bgr888, &mut out);
        assert_eq!(out, [3, 2, 1, 255, 0, 255]);
        let mut out = [0u8; 4];
        convert_row(&rgb, ScreenFormat::Rgb565Le, &mut out);
        assert_eq!(out, [0x00, 0x00, 0x1F, 0xF8]);
        convert_row(&rgb, ScreenFormat::Rgb565Be, &mut out);
        assert_eq!(out, [0x00, 0x00, 0xF8, 0x1F]);
        assert_eq!(rgb565(255, 255, 255), 0xFFFF);
    }
}
