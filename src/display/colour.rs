//! The picture in colour for the screen, when the source is in colour: a
//! colour Doppler cine keeps its colour on the cart's screen while the model
//! still gets gray.
//!
//! Free for gray sources: a gray format (GREY, Y16) is never looked at. A
//! colour format carrying a gray picture (most grabbers send YUYV whatever
//! the ultrasound machine shows) costs a look at one pixel in 16 for
//! chroma (every fourth pixel of every fourth row, [`CHROMA_MARGIN`] from
//! neutral), and the gray path is taken when there is none. Only a picture
//! with colour in it is converted, into three planes the overlay resizes
//! with the same kernels as gray.
//!
//! YUV is read as limited range, BT.601 below 720 lines and BT.709 from 720
//! on, as V4L2 defaults a capture's encoding by its size (SD and HD video);
//! for a picture meant to be looked at, not measured.

use crate::frame::{Frame, PixelFormat};

/// How far from neutral a sample's chroma (or an RGB pixel's channels from
/// each other) must be to count as colour: above compression noise.
pub const CHROMA_MARGIN: i32 = 12;

/// Samples with colour a frame needs to be shown in colour: a colour box
/// or a coloured trace, not a few noisy pixels.
pub const MIN_COLOUR_SAMPLES: usize = 8;

/// A frame's picture as three planes, reused between frames.
#[derive(Clone, Debug, Default)]
pub struct ColourPicture {
    pub width: u32,
    pub height: u32,
    /// R, G and B planes, `width * height` each.
    pub planes: [Vec<u8>; 3],
    /// Whether the last frame carried colour (the planes hold it).
    pub is_colour: bool,
}

impl ColourPicture {
    /// Looks at `frame`: a colour frame with colour in it is converted
    /// (returns true); anything else leaves the planes and returns false.
    pub fn update(&mut self, frame: &Frame) -> bool {
        self.is_colour = has_colour(frame);
        if self.is_colour {
            self.convert(frame);
        }
        self.is_colour
    }

    fn convert(&mut self, frame: &Frame) {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        self.width = frame.width();
        self.height = frame.height();
        for p in &mut self.planes {
            // Same size as the last frame: no allocation.
            p.resize(w * h, 0);
        }
        let m = Matrix::for_height(frame.height());
        let [r, g, b] = &mut self.planes;
        let data = frame.data();
        let stride = frame.stride();
        for y in 0..h {
            let row = frame.row(y as u32);
            let out = y * w..(y + 1) * w;
            let (r, g, b) = (&mut r[out.clone()], &mut g[out.clone()], &mut b[out]);
            match frame.format() {
                PixelFormat::Gray8 | PixelFormat::Gray16 => {}
                PixelFormat::Rgb24 => {
                    for (i, px) in row.chunks_exact(3).enumerate() {
                        (r[i], g[i], b[i]) = (px[0], px[1], px[2]);
                    }
                }
                PixelFormat::Bgr24 => {
                    for (i, px) in row.chunks_exact(3).enumerate() {
                        (r[i], g[i], b[i]) = (px[2], px[1], px[0]);
                    }
                }
                PixelFormat::Xrgb8888 => {
                    for (i, px) in row.chunks_exact(4).enumerate() {
                        (r[i], g[i], b[i]) = (px[2], px[1], px[0]);
                    }
                }
                PixelFormat::Yuyv | PixelFormat::Uyvy => {
                    let (y0, u, y1, v) = if frame.format() == PixelFormat::Yuyv {
                        (0, 1, 2, 3)
                    } else {
                        (1, 0, 3, 2)
                    };
                    for (i, q) in row.chunks_exact(4).enumerate() {
                        let (cb, cr) = (q[u], q[v]);
                        (r[2 * i], g[2 * i], b[2 * i]) = m.rgb(q[y0], cb, cr);
                        (r[2 * i + 1], g[2 * i + 1], b[2 * i + 1]) = m.rgb(q[y1], cb, cr);
                    }
                }
                PixelFormat::Nv12 => {
                    let uv_start = stride * (h + y / 2);
                    let uv = &data[uv_start..uv_start + w];
                    for (i, (ys, c)) in row.chunks_exact(2).zip(uv.chunks_exact(2)).enumerate() {
                        (r[2 * i], g[2 * i], b[2 * i]) = m.rgb(ys[0], c[0], c[1]);
                        (r[2 * i + 1], g[2 * i + 1], b[2 * i + 1]) = m.rgb(ys[1], c[0], c[1]);
                    }
                }
            }
        }
    }
}

/// Whether `frame` is in a colour format and has colour in it (sampled).
pub fn has_colour(frame: &Frame) -> bool {
    let format = frame.format();
    if matches!(format, PixelFormat::Gray8 | PixelFormat::Gray16) {
        return false;
    }
    let off = |a: u8, b: u8| (i32::from(a) - i32::from(b)).abs() > CHROMA_MARGIN;
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let mut found = 0;
    for y in (0..h).step_by(4) {
        let row = frame.row(y as u32);
        found += match format {
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => row
                .chunks_exact(3)
                .step_by(4)
                .filter(|p| off(p[0], p[1]) || off(p[1], p[2]))
                .count(),
            PixelFormat::Xrgb8888 => row
                .chunks_exact(4)
                .step_by(4)
                .filter(|p| off(p[0], p[1]) || off(p[1], p[2]))
                .count(),
            PixelFormat::Yuyv | PixelFormat::Uyvy => {
                let (u, v) = if format == PixelFormat::Yuyv {
                    (1, 3)
                } else {
                    (0, 2)
                };
                // One chroma pair per two pixels: every second pair is
                // every fourth pixel.
                row.chunks_exact(4)
                    .step_by(2)
                    .filter(|q| off(q[u], 128) || off(q[v], 128))
                    .count()
            }
            PixelFormat::Nv12 => {
                let start = frame.stride() * (h + y / 2);
                frame.data()[start..start + w]
                    .chunks_exact(2)
                    .step_by(2)
                    .filter(|c| off(c[0], 128) || off(c[1], 128))
                    .count()
            }
            PixelFormat::Gray8 | PixelFormat::Gray16 => 0,
        };
        if found >= MIN_COLOUR_SAMPLES {
            return true;
        }
    }
    false
}

/// Limited-range YCbCr to RGB in 8.8 fixed point.
#[derive(Clone, Copy, Debug)]
struct Matrix {
    cr_r: i32,
    cb_g: i32,
    cr_g: i32,
    cb_b: i32,
}

impl Matrix {
    /// BT.601 under 720 lines, BT.709 from 720 on.
    fn for_height(height: u32) -> Matrix {
        if height >= 720 {
            // 1.793, 0.213, 0.533, 2.112
            Matrix {
                cr_r: 459,
                cb_g: 55,
                cr_g: 136,
                cb_b: 541,
            }
        } else {
            // 1.596, 0.392, 0.813, 2.017
            Matrix {
                cr_r: 409,
                cb_g: 100,
                cr_g: 208,
                cb_b: 516,
            }
        }
    }

    #[inline]
    fn rgb(&self, y: u8, cb: u8, cr: u8) -> (u8, u8, u8) {
        let c = 298 * (i32::from(y) - 16) + 128;
        let d = i32::from(cb) - 128;
        let e = i32::from(cr) - 128;
        let clamp = |v: i32| (v >> 8).clamp(0, 255) as u8;
        (
            clamp(c + self.cr_r * e),
            clamp(c - self.cb_g * d - self.cr_g * e),
            clamp(c + self.cb_b * d),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameMeta;

    fn frame(data: Vec<u8>, format: PixelFormat, w: u32, h: u32) -> Frame {
        let stride = w as usize * format.bytes_per_pixel();
        Frame::new_checked(data, format, w, h, stride, FrameMeta::default()).unwrap()
    }

    /// A 64x32 YUYV frame, gray, with a colour box (Cb, Cr) at columns 16..48.
    fn yuyv_with_box(cb: u8, cr: u8) -> Frame {
        let (w, h) = (64usize, 32usize);
        let mut d = vec![0u8; w * h * 2];
        for y in 0..h {
            for x in (0..w).step_by(2) {
                let i = (y * w + x) * 2;
                let coloured = (16..48).contains(&x);
                d[i] = 100;
                d[i + 1] = if coloured { cb } else { 128 };
                d[i + 2] = 100;
                d[i + 3] = if coloured { cr } else { 128 };
            }
        }
        frame(d, PixelFormat::Yuyv, w as u32, h as u32)
    }

    #[test]
    fn gray_pictures_take_the_gray_path() {
        let mut p = ColourPicture::default();
        // A gray format is never looked at.
        assert!(!p.update(&frame(vec![7; 64], PixelFormat::Gray8, 8, 8)));
        // A colour format carrying gray, with chroma noise under the margin.
        assert!(!p.update(&yuyv_with_box(128 + 10, 128 - 10)));
        let rgb: Vec<u8> = (0..64 * 3).map(|i| 90 + (i % 3) as u8 * 4).collect();
        assert!(!p.update(&frame(rgb, PixelFormat::Rgb24, 8, 8)));
        assert!(p.planes[0].is_empty(), "nothing converted");
    }

    #[test]
    fn a_colour_box_is_shown_in_colour() {
        let mut p = ColourPicture::default();
        // Red in BT.601: Cb below neutral, Cr above.
        assert!(p.update(&yuyv_with_box(90, 240)));
        let at = |x: usize, y: usize| {
            let i = y * 64 + x;
            (p.planes[0][i], p.planes[1][i], p.planes[2][i])
        };
        let (r, g, b) = at(30, 10);
        assert!(r > 200 && g < 90 && b < 90, "{:?}", (r, g, b));
        // Outside the box: gray, R = G = B from Y 100 (limited range).
        let (r, g, b) = at(4, 10);
        assert_eq!((r, g, b), (98, 98, 98));
    }

    #[test]
    fn every_colour_format_gives_the_same_picture() {
        // One red and one gray pixel pair, in each packed RGB order.
        let px = [[200u8, 40, 30], [90, 90, 90]];
        let w = 16;
        let h = 16;
        let mut rgb = Vec::new();
        for i in 0..w * h {
            rgb.extend_from_slice(&px[usize::from(i % 4 != 0)]);
        }
        let bgr: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
        let xrgb: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[2], p[1], p[0], 0]).collect();
        let mut want = ColourPicture::default();
        assert!(want.update(&frame(rgb, PixelFormat::Rgb24, w, h)));
        for (data, format) in [(bgr, PixelFormat::Bgr24), (xrgb, PixelFormat::Xrgb8888)] {
            let mut got = ColourPicture::default();
            assert!(got.update(&frame(data, format, w, h)), "{format}");
            assert_eq!(got.planes, want.planes, "{format}");
        }
    }

    #[test]
    fn uyvy_and_nv12_read_as_yuyv() {
        let yuyv = yuyv_with_box(90, 240);
        let mut want = ColourPicture::default();
        assert!(want.update(&yuyv));
        let uyvy: Vec<u8> = yuyv
            .data()
            .chunks(4)
            .flat_map(|q| [q[1], q[0], q[3], q[2]])
            .collect();
        let mut got = ColourPicture::default();
        assert!(got.update(&frame(uyvy, PixelFormat::Uyvy, 64, 32)));
        assert_eq!(got.planes, want.planes);
        // NV12: the Y plane, then one Cb Cr pair per 2x2 pixels.
        let (w, h) = (64usize, 32usize);
        let mut nv12: Vec<u8> = yuyv.data().chunks(2).map(|p| p[0]).collect();
        for _ in 0..h / 2 {
            for x in (0..w).step_by(2) {
                let coloured = (16..48).contains(&x);
                nv12.push(if coloured { 90 } else { 128 });
                nv12.push(if coloured { 240 } else { 128 });
            }
        }
        let f =
            Frame::new_checked(nv12, PixelFormat::Nv12, 64, 32, 64, FrameMeta::default()).unwrap();
        let mut got = ColourPicture::default();
        assert!(got.update(&f));
        assert_eq!(got.planes, want.planes);
    }

    #[test]
    fn hd_video_reads_as_bt709() {
        let sd = Matrix::for_height(480).rgb(128, 90, 240);
        let hd = Matrix::for_height(720).rgb(128, 90, 240);
        assert_ne!(sd, hd);
        // Neutral chroma is gray in both.
        assert_eq!(Matrix::for_height(480).rgb(128, 128, 128), (130, 130, 130));
        assert_eq!(Matrix::for_height(1080).rgb(128, 128, 128), (130, 130, 130));
    }
}
