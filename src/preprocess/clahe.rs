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

/// Weight precision of the bilinear blend, per axis. Q16 keeps the blend within
/// rounding distance of OpenCV's float32 blend (Q11 left 1.2% of echo pixels
/// one level off); the sum needs 64 bits.
const W_BITS: u32 = 16;
const W_ONE: u32 = 1 << W_BITS;

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

/// Reusable buffers: tile LUTs and per-axis taps.
#[derive(Default)]
pub struct Clahe {
    luts: Vec<[u8; 256]>,
    xs: Vec<Tap>,
    ys: Vec<Tap>,
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

/// Per-coordinate taps: position `f = p / tile - 0.5` in tile units (OpenCV's
/// definition), in Q11 rounded to nearest; tiles clamped to the grid.
fn taps(n: u32, tile: u32, tiles: u32, out: &mut Vec<Tap>) {
    let (one, tile) = (i64::from(W_ONE), i64::from(tile));
    out.clear();
    out.extend((0..i64::from(n)).map(|p| {
        // f * 2^11 = (2 * p * 2^11 - tile * 2^11) / (2 * tile), rounded.
        let num = 2 * p * one - tile * one;
        let f = (num + tile).div_euclid(2 * tile);
        let t1 = f.div_euclid(one);
        let last = i64::from(tiles) - 1;
        Tap {
            t1: t1.clamp(0, last) as u32,
            t2: (t1 + 1).clamp(0, last) as u32,
            w2: f.rem_euclid(one) as u32,
        }
    }));
}

impl Clahe {
    /// Applies CLAHE to `img` in place.
    pub fn apply(&mut self, p: ClaheParams, img: &mut GrayImage) {
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
                for y in ty * th..(ty + 1) * th {
                    let row = reflect101(y, h) as usize * w as usize;
                    for x in tx * tw..(tx + 1) * tw {
                        hist[img.data[row + reflect101(x, w) as usize] as usize] += 1;
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
                    *l = (sum as f32 * scale).round_ties_even().clamp(0.0, 255.0) as u8;
                }
            }
        }
        taps(w, tw, gx, &mut self.xs);
        taps(h, th, gy, &mut self.ys);
        for (y, ty) in self.ys.iter().enumerate() {
            let row = &mut img.data[y * w as usize..(y + 1) * w as usize];
            let (w2y, w1y) = (ty.w2, W_ONE - ty.w2);
            for (v, tx) in row.iter_mut().zip(&self.xs) {
                let s = *v as usize;
                let (w2x, w1x) = (tx.w2, W_ONE - tx.w2);
                let l = |ty: u32, tx: u32| u64::from(self.luts[(ty * gx + tx) as usize][s]);
                let (w1x, w2x, w1y, w2y) = (
                    u64::from(w1x),
                    u64::from(w2x),
                    u64::from(w1y),
                    u64::from(w2y),
                );
                let top = l(ty.t1, tx.t1) * w1x + l(ty.t1, tx.t2) * w2x;
                let bottom = l(ty.t2, tx.t1) * w1x + l(ty.t2, tx.t2) * w2x;
                let res = top * w1y + bottom * w2y;
                *v = round_half_even(res, 2 * W_BITS).min(255) as u8;
            }
        }
    }
}

/// `v / 2^bits` rounded half to even, as OpenCV's `cvRound` rounds the blend.
fn round_half_even(v: u64, bits: u32) -> u64 {
    let (q, rem, half) = (v >> bits, v & ((1 << bits) - 1), 1u64 << (bits - 1));
    if rem > half || (rem == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
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
            Clahe::default().apply(ClaheParams { clip_limit: clip, tiles_x: g, tiles_y: g }, &mut img);
            prop_assert!(img.data.windows(2).all(|p| p[0] == p[1]));
        }

        #[test]
        fn monotonic_within_a_single_tile(px in proptest::collection::vec(any::<u8>(), 16..400), clip in 0.0f32..8.0) {
            // With one tile every pixel uses the same LUT, which never decreases.
            let w = 16u32;
            let h = px.len() as u32 / w;
            let mut img = GrayImage { width: w, height: h, data: px[..(w * h) as usize].to_vec() };
            let src = img.data.clone();
            Clahe::default().apply(ClaheParams { clip_limit: clip, tiles_x: 1, tiles_y: 1 }, &mut img);
            for (i, j) in (0..src.len()).zip(1..src.len()) {
                if src[i] < src[j] { prop_assert!(img.data[i] <= img.data[j]); }
            }
        }
    }
}
