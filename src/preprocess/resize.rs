//! Fixed-point resizing: area averaging when shrinking (OpenCV `INTER_AREA`),
//! bilinear with centre-aligned sampling otherwise (`INTER_LINEAR`).
//!
//! Weights are computed once per geometry into a [`ResizePlan`]; the per-pixel
//! loops are integer only. Weights are Q14 per axis and sum exactly to 2^14 for
//! every output pixel. The vertical pass runs first, over whole source rows
//! (the SIMD kernel [`Kernels::resize_vertical`], leaving Q8); the horizontal
//! pass then runs once per *output* row, so a large downscale (a 1955x1841
//! radiograph to 224x224) touches each source pixel once in SIMD and does its
//! scalar tap sums only 224 times per row.

use super::kernels::Kernels;
use super::kernels::generic::HorizontalTaps;

const ONE: u32 = 1 << 14;

/// Source taps of every output coordinate along one axis, `n` per output:
/// output `d` reads `weights[d * n..(d + 1) * n]` from source index `start[d]`
/// on. Outputs with fewer taps are padded with zero weights (shifted left at
/// the far edge), so the horizontal pass runs a fixed-length, unrolled sum.
#[derive(Clone, Debug, Default)]
struct AxisTaps {
    n: usize,
    start: Vec<usize>,
    weights: Vec<u32>,
}

impl AxisTaps {
    /// Builds the padded table from each output's (start, weights).
    fn from_taps(n_src: usize, taps: Vec<(usize, Vec<u32>)>) -> AxisTaps {
        let n = taps.iter().map(|(_, w)| w.len()).max().unwrap_or(1).max(1);
        let mut out = AxisTaps {
            n,
            start: Vec::with_capacity(taps.len()),
            weights: Vec::with_capacity(taps.len() * n),
        };
        for (start, w) in taps {
            let padded_start = start.min(n_src.saturating_sub(n));
            let lead = start - padded_start;
            out.start.push(padded_start);
            out.weights.extend(std::iter::repeat_n(0, lead));
            out.weights.extend_from_slice(&w);
            out.weights
                .extend(std::iter::repeat_n(0, n - lead - w.len()));
        }
        out
    }

    fn get(&self, d: usize) -> (usize, &[u32]) {
        (self.start[d], &self.weights[d * self.n..(d + 1) * self.n])
    }

    /// The taps of output `d` without the zero padding (for the vertical
    /// pass, where a tap is a whole row).
    fn get_trimmed(&self, d: usize) -> (usize, &[u32]) {
        let (start, w) = self.get(d);
        let lead = w.iter().take_while(|&&v| v == 0).count();
        let end = w.len() - w[lead..].iter().rev().take_while(|&&v| v == 0).count();
        (start + lead, &w[lead..end.max(lead)])
    }

    /// Area taps: each output covers `scale` source pixels; a source pixel's
    /// weight is the share of it that is covered.
    fn area(n_src: usize, n_dst: usize) -> AxisTaps {
        let scale = n_src as f64 / n_dst as f64;
        let mut taps = Vec::with_capacity(n_dst);
        for d in 0..n_dst {
            let (lo, hi) = (d as f64 * scale, (d + 1) as f64 * scale);
            let start = lo.floor() as usize;
            let end = (hi.ceil() as usize).min(n_src);
            let mut weights: Vec<u32> = (start..end)
                .map(|s| {
                    let cover = (hi.min(s as f64 + 1.0) - lo.max(s as f64)).max(0.0);
                    (cover / scale * ONE as f64).round() as u32
                })
                .collect();
            // Make the weights sum to exactly one so flat areas stay flat.
            let sum: u32 = weights.iter().sum();
            if let Some(big) = weights.iter_mut().max() {
                *big = (*big + ONE).saturating_sub(sum);
            }
            taps.push((start, weights));
        }
        AxisTaps::from_taps(n_src, taps)
    }

    /// Bilinear taps with centre-aligned sampling, clamped at the edges.
    fn linear(n_src: usize, n_dst: usize) -> AxisTaps {
        let scale = n_src as f64 / n_dst as f64;
        let mut taps = Vec::with_capacity(n_dst);
        for d in 0..n_dst {
            let f = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let s0 = (f.floor() as usize).min(n_src - 1);
            if s0 + 1 < n_src {
                let w1 = ((f - s0 as f64) * ONE as f64).round() as u32;
                taps.push((s0, vec![ONE - w1, w1]));
            } else {
                taps.push((s0, vec![ONE]));
            }
        }
        AxisTaps::from_taps(n_src, taps)
    }
}

/// The horizontal taps a plan from `src_w` to `dst_w` columns uses (area
/// when shrinking, bilinear otherwise), for measuring the pass alone.
pub fn horizontal_taps(src_w: usize, dst_w: usize) -> HorizontalTaps {
    let xs = if dst_w <= src_w {
        AxisTaps::area(src_w, dst_w)
    } else {
        AxisTaps::linear(src_w, dst_w)
    };
    HorizontalTaps::new(xs.n, xs.start, xs.weights, src_w)
}

/// Precomputed weights and the row buffer for one source size to one
/// destination size.
#[derive(Clone, Debug)]
pub struct ResizePlan {
    src: (usize, usize),
    dst: (usize, usize),
    xs: HorizontalTaps,
    ys: AxisTaps,
    /// One output row blended vertically over the full source width, Q8.
    row: Vec<u16>,
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
        let (xs, ys) = if dw <= sw && dh <= sh {
            (AxisTaps::area(sw, dw), AxisTaps::area(sh, dh))
        } else {
            (AxisTaps::linear(sw, dw), AxisTaps::linear(sh, dh))
        };
        ResizePlan {
            src: (sw, sh),
            dst: (dw, dh),
            xs: HorizontalTaps::new(xs.n, xs.start, xs.weights, sw),
            ys,
            row: vec![0; sw],
        }
    }

    pub fn src_size(&self) -> (u32, u32) {
        (self.src.0 as u32, self.src.1 as u32)
    }

    pub fn dst_size(&self) -> (u32, u32) {
        (self.dst.0 as u32, self.dst.1 as u32)
    }

    /// Resizes a packed `src` image into the packed `dst` buffer.
    pub fn run(&mut self, k: &Kernels, src: &[u8], dst: &mut [u8]) {
        let (sw, dw) = (self.src.0, self.dst.0);
        for (oy, out_row) in dst.chunks_exact_mut(dw).enumerate() {
            let (sy, wy) = self.ys.get_trimmed(oy);
            (k.resize_vertical)(&src[sy * sw..], sw, wy, &mut self.row);
            (k.resize_horizontal)(&self.row, &self.xs, out_row);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::preprocess::kernels::{GENERIC, kernels};

    #[test]
    fn integer_factor_area_is_block_mean() {
        let src: Vec<u8> = vec![0, 2, 10, 20, 4, 6, 30, 40];
        let mut dst = vec![0u8; 2];
        ResizePlan::new((4, 2), (2, 1)).run(&GENERIC, &src, &mut dst);
        assert_eq!(dst, vec![3, 25]);
    }

    proptest! {
        #[test]
        fn flat_images_stay_flat(v in any::<u8>(), sw in 1u32..70, sh in 1u32..70, dw in 1u32..70, dh in 1u32..70) {
            let src = vec![v; (sw * sh) as usize];
            let mut dst = vec![0u8; (dw * dh) as usize];
            ResizePlan::new((sw, sh), (dw, dh)).run(kernels(), &src, &mut dst);
            prop_assert!(dst.iter().all(|&d| d == v));
        }

        #[test]
        fn output_within_input_range(px in proptest::collection::vec(any::<u8>(), 1..400), dw in 1u32..40, dh in 1u32..40) {
            let sw = (px.len() as f64).sqrt().max(1.0) as u32;
            let sh = px.len() as u32 / sw;
            let src = &px[..(sw * sh) as usize];
            let mut dst = vec![0u8; (dw * dh) as usize];
            ResizePlan::new((sw, sh), (dw, dh)).run(kernels(), src, &mut dst);
            let (lo, hi) = (*src.iter().min().unwrap(), *src.iter().max().unwrap());
            prop_assert!(dst.iter().all(|&d| d >= lo && d <= hi));
        }
    }
}
