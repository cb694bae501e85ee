//! CLAHE: contrast-limited adaptive histogram equalization, the classic
//! algorithm as OpenCV's `createCLAHE` implements it.
//!
//! 1. The image is split into a grid of tiles; when its size is not a multiple
//!    of the grid, tiles extend past the edge into a BORDER_REFLECT_101 mirror.
//! 2. Each tile's histogram is clipped at `max(1, clip_limit * tile_area / 256)`;
//!    the excess is spread evenly over all bins, the remainder one count at a
//!    time at regular steps.
//! 3. Each tile's cumulative histogram, scaled by 255 / tile_area, is its LUT.
//! 4. Every pixel is the bilinear blend of the LUTs of the four nearest tile
//!    centres, with Q16 weights per axis (integer only per pixel; OpenCV blends
//!    in float, so results may differ by one level where it rounds otherwise).

use super::GrayImage;
use super::kernels::Kernels;
use super::kernels::generic::{CLAHE_ONE as W_ONE, ClaheTaps, histogram_add};

// Weight precision of the bilinear blend is Q16 per axis: it keeps the blend
// within rounding distance of OpenCV's float32 blend (Q11 left 1.2% of echo
// pixels one level off); the sum needs 64 bits.

/// CLAHE settings as written in a chain: `clahe=2.0:8x8`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClaheParams {
    /// Clip limit relative to a uniform histogram (OpenCV's `clipLimit`); 0 disables clipping.
    pub clip_limit: f32,
    pub tiles_x: u32,
    pub tiles_y: u32,
}

/// Interpolation taps of one coordinate: the two tiles and the weight of the second.
#[derive(Clone, Copy, Debug, Default)]
struct Tap {
    t1: u32,
    t2: u32,
    w2: u32,
}

/// Reusable buffers: tile LUTs and per-axis taps (columns as structure of
/// arrays for the SIMD blend), the taps kept while the geometry stays.
#[derive(Default)]
pub struct Clahe {
    luts: Vec<[u8; 256]>,
    /// (width, height, tile width, tile height, tiles x, tiles y) of the taps.
    taps_for: Option<(u32, u32, u32, u32, u32, u32)>,
    ys: Vec<Tap>,
    x_t1: Vec<u32>,
    x_t2: Vec<u32>,
    x_w2: Vec<u32>,
}

/// BORDER_REFLECT_101 index: `... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ...`.
fn reflect101(i: u32, n: u32) -> u32 {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let i = i % period;
    if i < n { i } else { period - i }
}

/// Taps of coordinate `p`: position `f = p / tile - 0.5` in tile units
/// (OpenCV's definition), in Q16 rounded to nearest; tiles clamped to the grid.
fn tap(p: u32, tile: u32, tiles: u32) -> Tap {
    let (one, p, tile) = (i64::from(W_ONE), i64::from(p), i64::from(tile));
    // f * 2^16 = (2 * p * 2^16 - tile * 2^16) / (2 * tile), rounded.
    let num = 2 * p * one - tile * one;
    let f = (num + tile).div_euclid(2 * tile);
    let t1 = f.div_euclid(one);
    let last = i64::from(tiles) - 1;
    Tap {
        t1: t1.clamp(0, last) as u32,
        t2: (t1 + 1).clamp(0, last) as u32,
        w2: f.rem_euclid(one) as u32,
    }
}

impl Clahe {
    /// Applies CLAHE to `img` in place.
    pub fn apply(&mut self, k: &Kernels, p: ClaheParams, img: &mut GrayImage) {
        let (w, h) = (img.width, img.height);
        if w == 0 || h == 0 {
            return;
        }
        let (gx, gy) = (p.tiles_x.clamp(1, w), p.tiles_y.clamp(1, h));
        // OpenCV's quirk, kept for fidelity: when either side is not a multiple
        // of the grid, *both* sides grow by `tiles - side % tiles` (a whole tile
        // on a side that was a multiple).
        let (ew, eh) = if w % gx != 0 || h % gy != 0 {
            (w + gx - w % gx, h + gy - h % gy)
        } else {
            (w, h)
        };
        let (tw, th) = (ew / gx, eh / gy);
        let area = tw * th;
        let clip = if p.clip_limit > 0.0 {
            ((p.clip_limit as f64 * f64::from(area) / 256.0) as u32).max(1)
        } else {
            u32::MAX
        };
        self.luts.resize(gx as usize * gy as usize, [0; 256]);
        for ty in 0..gy {
            for tx in 0..gx {
                let mut hist = [0u32; 256];
                // The part of the tile inside the image is a run of whole row
                // segments; only the mirrored margin needs reflected indices.
                let (x0, x1) = (tx * tw, (tx + 1) * tw);
                let inside = x0.min(w)..x1.min(w);
                for y in ty * th..(ty + 1) * th {
                    let row = reflect101(y, h) as usize * w as usize;
                    let r = &img.data[row..row + w as usize];
                    histogram_add(&r[inside.start as usize..inside.end as usize], &mut hist);
                    for x in inside.end.max(x0)..x1 {
                        hist[r[reflect101(x, w) as usize] as usize] += 1;
                    }
                }
                clip_histogram(&mut hist, clip);
                let lut = &mut self.luts[(ty * gx + tx) as usize];
                // OpenCV's LUT arithmetic to the bit: a float32 scale and
                // round-half-to-even (cvRound). Once per tile, not per pixel.
                let scale = 255.0f32 / area as f32;
                let mut sum = 0u32;
                for (l, &c) in lut.iter_mut().zip(&hist) {
                    sum += c;
                    *l = round_ties_even_small(sum as f32 * scale).clamp(0.0, 255.0) as u8;
                }
            }
        }
        if self.taps_for != Some((w, h, tw, th, gx, gy)) {
            self.ys.clear();
            self.ys.extend((0..h).map(|y| tap(y, th, gy)));
            self.x_t1.clear();
            self.x_t2.clear();
            self.x_w2.clear();
            for t in (0..w).map(|x| tap(x, tw, gx)) {
                self.x_t1.push(t.t1);
                self.x_t2.push(t.t2);
                self.x_w2.push(t.w2);
            }
            self.taps_for = Some((w, h, tw, th, gx, gy));
        }
        let cols = ClaheTaps {
            t1: &self.x_t1,
            t2: &self.x_t2,
            w2: &self.x_w2,
        };
        let gx = gx as usize;
        for (row, ty) in img.data.chunks_exact_mut(w as usize).zip(&self.ys) {
            let tile_row = |t: u32| &self.luts[t as usize * gx..(t as usize + 1) * gx];
            (k.clahe_row)(row, cols, tile_row(ty.t1), tile_row(ty.t2), ty.w2);
        }
    }
}

/// `x.round_ties_even()` for `0 <= x < 2^22` without a libm call (x86-64's
/// baseline has no rounding instruction): adding 2^23 leaves no fraction
/// bits, so the FPU rounds to nearest even, and subtracting it is exact.
#[inline(always)]
fn round_ties_even_small(x: f32) -> f32 {
    const SHIFT: f32 = 8_388_608.0;
    (x + SHIFT) - SHIFT
}

/// Clips bins at `clip` and redistributes the excess as OpenCV does.
fn clip_histogram(hist: &mut [u32; 256], clip: u32) {
    let mut excess = 0u32;
    for c in hist.iter_mut() {
        if *c > clip {
            excess += *c - clip;
            *c = clip;
        }
    }
    let batch = excess / 256;
    let mut residual = excess - batch * 256;
    for c in hist.iter_mut() {
        *c += batch;
    }
    if let Some(step) = 256u32.checked_div(residual) {
        let step = step.max(1) as usize;
        let mut i = 0;
        while i < 256 && residual > 0 {
            hist[i] += 1;
            i += step;
            residual -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::preprocess::kernels::{GENERIC, kernels};

    #[test]
    fn small_rounding_is_round_ties_even() {
        for i in 0..=(1u32 << 16) {
            let x = i as f32 / 256.0;
            assert_eq!(round_ties_even_small(x), x.round_ties_even(), "{x}");
        }
        assert_eq!(round_ties_even_small(2.5), 2.0);
        assert_eq!(round_ties_even_small(3.5), 4.0);
    }

    #[test]
    fn clipping_keeps_the_count() {
        let mut h = [0u32; 256];
        h[10] = 1000;
        h[200] = 24;
        clip_histogram(&mut h, 40);
        assert_eq!(h.iter().sum::<u32>(), 1024);
        assert!(h.iter().all(|&c| c <= 40 + 4), "{:?}", &h[..16]);
    }

    #[test]
    fn spreads_a_low_contrast_image() {
        let data: Vec<u8> = (0..64 * 64).map(|i| 100 + ((i % 64) / 8) as u8).collect();
        let mut img = GrayImage {
            width: 64,
            height: 64,
            data,
        };
        Clahe::default().apply(
            &GENERIC,
            ClaheParams {
                clip_limit: 40.0,
                tiles_x: 2,
                tiles_y: 2,
            },
            &mut img,
        );
        let (lo, hi) = (
            img.data.iter().min().copied().unwrap(),
            img.data.iter().max().copied().unwrap(),
        );
        assert!(hi - lo > 100, "range {lo}..{hi} from 7 levels");
    }

    proptest! {
        #[test]
        fn flat_stays_flat_and_order_is_kept(v in any::<u8>(), w in 1u32..40, h in 1u32..40, g in 1u32..9, clip in 0.0f32..8.0) {
            let mut img = GrayImage { width: w, height: h, data: vec![v; (w * h) as usize] };
            Clahe::default().apply(kernels(), ClaheParams { clip_limit: clip, tiles_x: g, tiles_y: g }, &mut img);
            prop_assert!(img.data.windows(2).all(|p| p[0] == p[1]));
        }

        #[test]
        fn monotonic_within_a_single_tile(px in proptest::collection::vec(any::<u8>(), 16..400), clip in 0.0f32..8.0) {
            // With one tile every pixel uses the same LUT, which never decreases.
            let w = 16u32;
            let h = px.len() as u32 / w;
            let mut img = GrayImage { width: w, height: h, data: px[..(w * h) as usize].to_vec() };
            let src = img.data.clone();
            Clahe::default().apply(kernels(), ClaheParams { clip_limit: clip, tiles_x: 1, tiles_y: 1 }, &mut img);
            for (i, j) in (0..src.len()).zip(1..src.len()) {
                if src[i] < src[j] { prop_assert!(img.data[i] <= img.data[j]); }
            }
        }
    }
}
