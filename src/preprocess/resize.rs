//! Fixed-point resizing: area averaging when shrinking (OpenCV `INTER_AREA`),
//! bilinear with centre-aligned sampling otherwise (`INTER_LINEAR`).
//!
//! Weights are computed once per geometry into a [`ResizePlan`]; the per-pixel
//! loops are integer only. Area weights are Q14 per axis and sum exactly to 2^14
//! for every output pixel; the horizontal pass is reduced to Q8 so the vertical
//! accumulation fits 32 bits. Bilinear weights are Q11, as in OpenCV.

const AREA_ONE: u32 = 1 << 14;
const LINEAR_ONE: u32 = 1 << 11;

/// Source taps of one output coordinate along one axis.
#[derive(Clone, Debug)]
struct Taps {
    start: usize,
    weights: Vec<u32>,
}

/// Precomputed weights for one source size to one destination size.
#[derive(Clone, Debug)]
pub struct ResizePlan {
    src: (usize, usize),
    dst: (usize, usize),
    area: bool,
    xs: Vec<Taps>,
    ys: Vec<Taps>,
    row_a: Vec<u32>,
    acc: Vec<u32>,
}

fn area_taps(n_src: usize, n_dst: usize) -> Vec<Taps> {
    let scale = n_src as f64 / n_dst as f64;
    (0..n_dst)
        .map(|d| {
            let (lo, hi) = (d as f64 * scale, (d + 1) as f64 * scale);
            let start = lo.floor() as usize;
            let end = (hi.ceil() as usize).min(n_src);
            let mut weights: Vec<u32> = (start..end)
                .map(|s| {
                    let cover = (hi.min(s as f64 + 1.0) - lo.max(s as f64)).max(0.0);
                    (cover / scale * AREA_ONE as f64).round() as u32
                })
                .collect();
            // Make the weights sum to exactly one so flat areas stay flat.
            let sum: u32 = weights.iter().sum();
            if let Some(big) = weights.iter_mut().max() {
                *big = (*big + AREA_ONE).saturating_sub(sum);
            }
            Taps { start, weights }
        })
        .collect()
}

fn linear_taps(n_src: usize, n_dst: usize) -> Vec<Taps> {
    let scale = n_src as f64 / n_dst as f64;
    (0..n_dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let s0 = (f.floor() as usize).min(n_src - 1);
            let frac = if s0 + 1 < n_src { f - s0 as f64 } else { 0.0 };
            let w1 = (frac * LINEAR_ONE as f64).round() as u32;
            if s0 + 1 < n_src {
                Taps {
                    start: s0,
                    weights: vec![LINEAR_ONE - w1, w1],
                }
            } else {
                Taps {
                    start: s0,
                    weights: vec![LINEAR_ONE],
                }
            }
        })
        .collect()
}

impl ResizePlan {
    /// Plans `src` (w, h) to `dst` (w, h); both non-zero.
    pub fn new(src: (u32, u32), dst: (u32, u32)) -> ResizePlan {
        let (sw, sh, dw, dh) = (
            src.0 as usize,
            src.1 as usize,
            dst.0 as usize,
            dst.1 as usize,
        );
        let area = dw <= sw && dh <= sh;
        let (xs, ys) = if area {
            (area_taps(sw, dw), area_taps(sh, dh))
        } else {
            (linear_taps(sw, dw), linear_taps(sh, dh))
        };
        ResizePlan {
            src: (sw, sh),
            dst: (dw, dh),
            area,
            xs,
            ys,
            row_a: vec![0; dw],
            acc: vec![0; dw],
        }
    }

    pub fn src_size(&self) -> (u32, u32) {
        (self.src.0 as u32, self.src.1 as u32)
    }

    /// Resizes a packed `src` image into the packed `dst` buffer.
    pub fn run(&mut self, src: &[u8], dst: &mut [u8]) {
        let (sw, _) = self.src;
        let (dw, _) = self.dst;
        // Q14 taps reduced to Q8 after the horizontal pass (area); Q11 kept (linear).
        let (h_shift, total_shift) = if self.area { (6u32, 22u32) } else { (0, 22) };
        for (ty, out_row) in self.ys.iter().zip(dst.chunks_exact_mut(dw)) {
            self.acc.iter_mut().for_each(|a| *a = 0);
            for (k, &wy) in ty.weights.iter().enumerate() {
                let row = &src[(ty.start + k) * sw..(ty.start + k + 1) * sw];
                for (tx, h) in self.xs.iter().zip(self.row_a.iter_mut()) {
                    let mut s = 0u32;
                    for (j, &wx) in tx.weights.iter().enumerate() {
                        s += u32::from(row[tx.start + j]) * wx;
                    }
                    *h = (s + ((1 << h_shift) >> 1)) >> h_shift;
                }
                for (a, &h) in self.acc.iter_mut().zip(&self.row_a) {
                    *a += h * wy;
                }
            }
            for (o, &a) in out_row.iter_mut().zip(&self.acc) {
                *o = ((a + (1 << (total_shift - 1))) >> total_shift).min(255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn integer_factor_area_is_block_mean() {
        let src: Vec<u8> = vec![0, 2, 10, 20, 4, 6, 30, 40];
        let mut dst = vec![0u8; 2];
        ResizePlan::new((4, 2), (2, 1)).run(&src, &mut dst);
        assert_eq!(dst, vec![3, 25]);
    }

    proptest! {
        #[test]
        fn flat_images_stay_flat(v in any::<u8>(), sw in 1u32..70, sh in 1u32..70, dw in 1u32..70, dh in 1u32..70) {
            let src = vec![v; (sw * sh) as usize];
            let mut dst = vec![0u8; (dw * dh) as usize];
            ResizePlan::new((sw, sh), (dw, dh)).run(&src, &mut dst);
            prop_assert!(dst.iter().all(|&d| d == v));
        }

        #[test]
        fn output_within_input_range(px in proptest::collection::vec(any::<u8>(), 1..400), dw in 1u32..40, dh in 1u32..40) {
            let sw = (px.len() as f64).sqrt().max(1.0) as u32;
            let sh = px.len() as u32 / sw;
            let src = &px[..(sw * sh) as usize];
            let mut dst = vec![0u8; (dw * dh) as usize];
            ResizePlan::new((sw, sh), (dw, dh)).run(src, &mut dst);
            let (lo, hi) = (*src.iter().min().unwrap(), *src.iter().max().unwrap());
            prop_assert!(dst.iter().all(|&d| d >= lo && d <= hi));
        }
    }
}
