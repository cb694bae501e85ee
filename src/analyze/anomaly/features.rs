//! Per-frame features of an ultrasound picture, measured inside its sector.
//!
//! The picture is the model's input (the detected active area, resized), so
//! every feature costs a few passes over a few thousand pixels. The sector
//! is the set of pixels that showed echo at least once during warm-up
//! ([`SectorMask::learn`]); outside it an ultrasound picture is black, so
//! anything bright there is content of another kind.

/// Columns are counted in at most this many bins (the model's input is
/// narrower; a wider picture puts neighbouring columns together).
pub const MAX_COLUMNS: usize = 128;

/// Which pixels belong to the sector, learned once per warm-up.
#[derive(Clone, Debug)]
pub struct SectorMask {
    width: usize,
    inside: Vec<bool>,
    /// Pixels outside the sector but within [`SectorMask::with_reach`]'s
    /// reach of it: where a fan that grew (a zoom, a shallower depth)
    /// shows its new edge.
    near: Vec<bool>,
    /// Column bins in use and the sector pixels in each.
    bins: usize,
    column_pixels: [u32; MAX_COLUMNS],
    pixels: u32,
}

impl Default for SectorMask {
    fn default() -> Self {
        SectorMask::from_inside(1, Vec::new())
    }
}

impl SectorMask {
    /// A pixel is in the sector when any warm-up frame showed it at
    /// `level` or brighter; an empty result (all frames black) takes the
    /// whole picture, so the features stay defined.
    pub fn learn<'a>(
        width: usize,
        frames: impl Iterator<Item = &'a [u8]>,
        len: usize,
        level: u8,
    ) -> SectorMask {
        let mut peak = vec![0u8; len];
        for f in frames {
            for (p, &v) in peak.iter_mut().zip(f) {
                *p = (*p).max(v);
            }
        }
        let mut inside: Vec<bool> = peak.iter().map(|&p| p >= level).collect();
        if !inside.contains(&true) {
            inside.iter_mut().for_each(|i| *i = true);
        }
        SectorMask::from_inside(width, inside)
    }

    /// The same sector with the pixels outside it within `reach` pixels
    /// (horizontally, vertically or diagonally) marked as near it.
    pub fn with_reach(mut self, reach: usize) -> SectorMask {
        let w = self.width;
        let h = self.rows();
        // A square dilation, done as a row pass and a column pass.
        let mut rows = vec![false; self.inside.len()];
        for y in 0..h {
            let row = &self.inside[y * w..(y + 1) * w];
            for x in 0..w {
                let (lo, hi) = (x.saturating_sub(reach), (x + reach + 1).min(w));
                rows[y * w + x] = row[lo..hi].contains(&true);
            }
        }
        let mut near = vec![false; self.inside.len()];
        for x in 0..w {
            for y in 0..h {
                let (lo, hi) = (y.saturating_sub(reach), (y + reach + 1).min(h));
                near[y * w + x] = !self.inside[y * w + x] && (lo..hi).any(|j| rows[j * w + x]);
            }
        }
        self.near = near;
        self
    }

    /// Pixels outside the sector at `level` or brighter: how many lie near
    /// it and how many farther away.
    pub fn echo_outside(&self, pixels: &[u8], level: u8) -> (usize, usize) {
        let (mut near, mut far) = (0, 0);
        for ((&p, &i), &n) in pixels.iter().zip(&self.inside).zip(&self.near) {
            if !i && p >= level {
                if n {
                    near += 1;
                } else {
                    far += 1;
                }
            }
        }
        (near, far)
    }

    /// Every pixel inside (before a mask is learned).
    pub fn whole(width: usize, len: usize) -> SectorMask {
        SectorMask::from_inside(width, vec![true; len])
    }

    fn from_inside(width: usize, inside: Vec<bool>) -> SectorMask {
        let width = width.max(1);
        let bins = width.min(MAX_COLUMNS);
        let mut column_pixels = [0u32; MAX_COLUMNS];
        for (i, _) in inside.iter().enumerate().filter(|(_, v)| **v) {
            column_pixels[(i % width) * bins / width] += 1;
        }
        let pixels = column_pixels.iter().sum();
        let near = vec![false; inside.len()];
        SectorMask {
            width,
            inside,
            near,
            bins,
            column_pixels,
            pixels,
        }
    }

    pub fn len(&self) -> usize {
        self.inside.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inside.is_empty()
    }

    /// Fraction of the picture inside the sector.
    pub fn coverage(&self) -> f32 {
        self.pixels as f32 / self.inside.len().max(1) as f32
    }

    /// The darkest band of columns (an eighth of the sector's width)
    /// relative to its `floor`, the darkest that band or a neighbour within
    /// half a band was during warm-up: dark chambers move through a column
    /// over the cardiac cycle (and sideways when the probe slides), a
    /// shadow takes its echo away below anything seen nearby. Columns with under a quarter
    /// of the deepest column's pixels (the fan's narrow edges) are left out.
    fn darkest_band(&self, sums: &[u64; MAX_COLUMNS], floor: &[f32; MAX_COLUMNS]) -> f32 {
        let deep = self.is_deep();
        let used = (0..self.bins).filter(|&c| deep(c)).count();
        let band = (used / 8).max(2);
        // The floor a column is held to is the darkest of its neighbours'
        // within half a band: a chamber that moves sideways (the probe
        // slid, the heart turned) is dark where a neighbour was dark before.
        let reach = band / 2;
        let mut near = [0f32; MAX_COLUMNS];
        for (c, n) in near[..self.bins].iter_mut().enumerate() {
            let (lo, hi) = (c.saturating_sub(reach), (c + reach + 1).min(self.bins));
            *n = floor[lo..hi].iter().copied().fold(f32::INFINITY, f32::min);
        }
        let floor = &near;
        let mut least = f32::INFINITY;
        let (mut got, mut usual, mut run) = (0f32, 0f32, 0usize);
        for c in 0..self.bins {
            if !deep(c) {
                (got, usual, run) = (0.0, 0.0, 0);
                continue;
            }
            got += sums[c] as f32;
            usual += floor[c] * self.column_pixels[c] as f32;
            run += 1;
            if run > band {
                got -= sums[c - band] as f32;
                usual -= floor[c - band] * self.column_pixels[c - band] as f32;
                run = band;
            }
            if run == band && usual >= band as f32 {
                least = least.min(got / usual);
            }
        }
        if least.is_finite() { least } else { 1.0 }
    }

    /// Per column bin, the deepest row (from the top, in rows) at which
    /// a sector pixel shows echo at `level` or brighter; 0 for a bin
    /// without any. The bottom of the picture traces the sector's far edge:
    /// a depth change moves it in every column at once, a shadow in a band.
    pub fn echo_depth(&self, pixels: &[u8], level: u8, out: &mut [u16; MAX_COLUMNS]) {
        out.fill(0);
        let w = self.width;
        for (y, (row, inside)) in pixels.chunks(w).zip(self.inside.chunks(w)).enumerate() {
            let y = u16::try_from(y + 1).unwrap_or(u16::MAX);
            for (x, (&p, &i)) in row.iter().zip(inside).enumerate() {
                if i && p >= level {
                    out[x * self.bins / w] = y;
                }
            }
        }
    }

    /// Column bins with at least a quarter of the deepest bin's pixels
    /// (the fan's narrow edges left out), as a mask over the bins.
    pub fn deep_bins(&self) -> impl Iterator<Item = usize> + '_ {
        let deep = self.is_deep();
        (0..self.bins).filter(move |&c| deep(c))
    }

    /// Whether a column bin has at least a quarter of the deepest bin's
    /// pixels.
    fn is_deep(&self) -> impl Fn(usize) -> bool + '_ {
        let deepest = self.column_pixels[..self.bins]
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        move |c| deepest > 0 && self.column_pixels[c] * 4 >= deepest
    }

    /// Rows the picture has.
    pub fn rows(&self) -> usize {
        self.inside.len() / self.width
    }

    /// Mean of each column bin inside the sector.
    pub fn column_means(&self, sums: &[u64; MAX_COLUMNS], out: &mut [f32; MAX_COLUMNS]) {
        for c in 0..MAX_COLUMNS {
            out[c] = sums[c] as f32 / self.column_pixels[c].max(1) as f32;
        }
    }
}

/// The frame at the capture's own resolution, where noise has not been
/// averaged away by the resize to the model's input.
#[derive(Clone, Copy, Debug)]
pub struct NativeView<'a> {
    pub width: u32,
    pub pixels: &'a [u8],
    /// The active area (what the model's input was cropped from).
    pub area: crate::preprocess::Rect,
}

impl<'a> NativeView<'a> {
    pub fn of(img: &'a crate::preprocess::GrayImage, area: crate::preprocess::Rect) -> Self {
        NativeView {
            width: img.width,
            pixels: &img.data,
            area,
        }
    }
}

/// Rows sampled from the native picture for [`native_roughness`].
const NATIVE_ROWS: u32 = 64;

/// Roughness at native resolution: the sum of absolute differences of
/// horizontal neighbours over the sum of the pixels, in up to 64 evenly
/// spaced rows of the active area. No sector mask is needed: black pixels
/// add nothing to either sum (and noise over them counts, as it should).
/// `None` when the area lies outside the picture.
pub fn native_roughness(v: NativeView) -> Option<f32> {
    let a = v.area;
    let w = v.width as usize;
    if a.width < 2
        || a.height == 0
        || a.x.checked_add(a.width)? > v.width
        || (a.y as usize + a.height as usize) * w > v.pixels.len()
    {
        return None;
    }
    let step = a.height.div_ceil(NATIVE_ROWS).max(1);
    let (mut diff, mut sum) = (0u64, 0u64);
    for y in (a.y..a.y + a.height).step_by(step as usize) {
        let start = y as usize * w + a.x as usize;
        let row = &v.pixels[start..start + a.width as usize];
        sum += row.iter().map(|&p| u64::from(p)).sum::<u64>();
        diff += row
            .windows(2)
            .map(|p| u64::from(p[0].abs_diff(p[1])))
            .sum::<u64>();
    }
    Some(diff as f32 / sum.max(1) as f32)
}

/// What one frame measured. Intensities are on the 0..255 scale.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Features {
    /// Mean absolute reconstruction error of the model, full scale 1.
    pub reconstruction_error: f32,
    /// Mean intensity inside the sector.
    pub mean: f32,
    /// Speckle contrast inside the sector: standard deviation over mean.
    pub speckle_contrast: f32,
    /// Mean absolute difference of neighbouring pixels in a row, over the
    /// mean: high for noise, which has no spatial correlation. Measured at
    /// native resolution when the detector is given the native frame
    /// ([`native_roughness`]), else in the model's input.
    pub roughness: f32,
    /// Mean absolute difference to the previous frame inside the sector;
    /// `None` for the first frame or after a gap in time.
    pub difference: Option<f32>,
    /// The larger of this and the previous frame's difference: a single
    /// repeated frame (frame-rate conversion does that) is not a frozen
    /// picture, two in a row are. Filled in by the detector.
    pub motion: Option<f32>,
    /// Mean intensity outside the sector.
    pub outside: f32,
    /// The darkest band of columns relative to its darkest in warm-up
    /// (1.0 without a baseline): low under a shadow.
    pub band_level: f32,
}

/// Measures `pixels` (8-bit, `mask.len()` of them, rows of the mask's
/// width). `recon` is the model's reconstruction in units of `pixel_scale`;
/// `previous` the frame before (empty if none). `columns` receives the
/// mean of each column bin; `floor` is the darkest each was in warm-up.
pub fn measure(
    mask: &SectorMask,
    pixels: &[u8],
    recon: &[f32],
    pixel_scale: f32,
    previous: &[u8],
    floor: Option<&[f32; MAX_COLUMNS]>,
    columns: &mut [f32; MAX_COLUMNS],
) -> Features {
    let n = pixels.len().max(1) as f32;
    let reconstruction_error = pixels
        .iter()
        .zip(recon)
        .map(|(&p, &r)| (f32::from(p) * pixel_scale - r).abs())
        .sum::<f32>()
        / n;
    let w = mask.width;
    let (mut sum, mut sum_sq, mut rough, mut rough_n) = (0u64, 0u64, 0u64, 0u64);
    let (mut out_sum, mut out_n) = (0u64, 0u64);
    let mut column_sum = [0u64; MAX_COLUMNS];
    for (row, inside) in pixels.chunks(w).zip(mask.inside.chunks(w)) {
        for (x, (&p, &i)) in row.iter().zip(inside).enumerate() {
            let v = u64::from(p);
            if i {
                sum += v;
                sum_sq += v * v;
                column_sum[x * mask.bins / w] += v;
                if x + 1 < row.len() && inside[x + 1] {
                    rough += u64::from(p.abs_diff(row[x + 1]));
                    rough_n += 1;
                }
            } else {
                out_sum += v;
                out_n += 1;
            }
        }
    }
    let inside_n = mask.pixels.max(1) as f32;
    let mean = sum as f32 / inside_n;
    let var = (sum_sq as f32 / inside_n - mean * mean).max(0.0);
    let scale = mean.max(1.0);
    mask.column_means(&column_sum, columns);
    let band_level = floor.map_or(1.0, |f| mask.darkest_band(&column_sum, f));
    let difference = (previous.len() == pixels.len()).then(|| {
        let d: u64 = previous
            .iter()
            .zip(pixels)
            .zip(&mask.inside)
            .filter(|(_, i)| **i)
            .map(|((&a, &b), _)| u64::from(a.abs_diff(b)))
            .sum();
        d as f32 / inside_n
    });
    Features {
        reconstruction_error,
        mean,
        speckle_contrast: var.sqrt() / scale,
        roughness: rough as f32 / rough_n.max(1) as f32 / scale,
        difference,
        motion: None,
        outside: if out_n == 0 {
            0.0
        } else {
            out_sum as f32 / out_n as f32
        },
        band_level,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 16x8 picture: columns 0..8 are a sector of alternating echo, 8..16 black.
    fn picture() -> Vec<u8> {
        (0..128u32)
            .map(|i| match (i % 16, i / 16) {
                (x, y) if x < 8 => 40 + ((x + y) % 2) as u8 * 40,
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn sector_mask_and_features() {
        let frame = picture();
        let mask = SectorMask::learn(16, [frame.as_slice()].into_iter(), 128, 10);
        assert_eq!(mask.coverage(), 0.5);
        let recon: Vec<f32> = frame.iter().map(|&p| f32::from(p) / 255.0).collect();
        let mut cols = [0f32; MAX_COLUMNS];
        let f = measure(&mask, &frame, &recon, 1.0 / 255.0, &[], None, &mut cols);
        let floor = cols;
        assert!(f.reconstruction_error < 1e-6);
        assert_eq!(f.outside, 0.0);
        assert_eq!(f.mean, 60.0);
        assert!((f.speckle_contrast - 20.0 / 60.0).abs() < 1e-5);
        assert!((f.roughness - 40.0 / 60.0).abs() < 1e-5);
        assert_eq!(f.difference, None);
        assert_eq!(f.band_level, 1.0);
        assert_eq!(&cols[..8], &[60.0; 8]);
        let moved: Vec<u8> = frame
            .iter()
            .map(|&p| if p > 0 { p + 2 } else { 0 })
            .collect();
        let g = measure(
            &mask,
            &moved,
            &recon,
            1.0 / 255.0,
            &frame,
            Some(&floor),
            &mut cols,
        );
        assert!((g.band_level - 62.0 / 60.0).abs() < 1e-5);
        assert_eq!(g.difference, Some(2.0));
        // Columns 2 and 3 shadowed from top to bottom: that band keeps a tenth.
        let mut shaded = frame.clone();
        for row in shaded.chunks_mut(16) {
            row[2..4].iter_mut().for_each(|p| *p /= 10);
        }
        let s = measure(
            &mask,
            &shaded,
            &recon,
            1.0 / 255.0,
            &frame,
            Some(&floor),
            &mut cols,
        );
        assert!(s.band_level < 0.11, "{}", s.band_level);
        // Bright content where the sector is black.
        let foreign = vec![120u8; 128];
        assert_eq!(
            measure(
                &mask,
                &foreign,
                &recon,
                1.0 / 255.0,
                &frame,
                None,
                &mut cols
            )
            .outside,
            120.0
        );
    }

    #[test]
    fn native_roughness_of_rows_and_bad_areas() {
        use crate::preprocess::Rect;
        // 6x4: rows alternate 10, 30 -> |diff| 20 per pair, 5 pairs, sum 120.
        let px: Vec<u8> = (0..24).map(|i| if i % 2 == 0 { 10 } else { 30 }).collect();
        let area = Rect {
            x: 0,
            y: 0,
            width: 6,
            height: 4,
        };
        let r = native_roughness(NativeView {
            width: 6,
            pixels: &px,
            area,
        });
        assert_eq!(r, Some(100.0 / 120.0));
        for bad in [
            Rect {
                x: 5,
                y: 0,
                width: 2,
                height: 1,
            },
            Rect {
                x: 0,
                y: 3,
                width: 6,
                height: 2,
            },
            Rect {
                x: 0,
                y: 0,
                width: 1,
                height: 4,
            },
            Rect {
                x: u32::MAX,
                y: 0,
                width: 2,
                height: 1,
            },
        ] {
            assert_eq!(
                native_roughness(NativeView {
                    width: 6,
                    pixels: &px,
                    area: bad
                }),
                None
            );
        }
    }

    #[test]
    fn black_warm_up_takes_the_whole_picture() {
        let black = [0u8; 16];
        let mask = SectorMask::learn(4, [black.as_slice()].into_iter(), 16, 10);
        assert_eq!(mask.coverage(), 1.0);
    }
}
