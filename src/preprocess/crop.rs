//! Finding the active image area: the ultrasound sector or the radiograph,
//! without the burned-in text, scales and UI bars around it.
//!
//! The frame is cut into 8x8 blocks; a block is content when an eighth of its
//! pixels rise above the dark background. The largest 4-connected group of
//! content blocks is the image (dark chambers inside a sector are holes in it,
//! not gaps around it); text, icons and UI bars are smaller groups separated
//! by dark gaps. The rectangle is then tightened to the pixels of that group.
//! A frame with no content (probe lifted, blank screen) keeps its full size:
//! the model must still see it to say so.

use super::GrayImage;
use super::chain::Rect;

/// Pixels at or below this level count as background.
const BACKGROUND: u8 = 6;
/// Block side in pixels.
const BLOCK: usize = 8;

/// The active area of `img`, or the whole frame when nothing stands out.
pub fn detect_active_area(img: &GrayImage) -> Rect {
    let (w, h) = (img.width as usize, img.height as usize);
    let full = Rect {
        x: 0,
        y: 0,
        width: img.width,
        height: img.height,
    };
    if w == 0 || h == 0 {
        return full;
    }
    let (gw, gh) = (w.div_ceil(BLOCK), h.div_ceil(BLOCK));
    let mut lit = vec![0u32; gw * gh];
    for (y, row) in img.data.chunks_exact(w).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            lit[(y / BLOCK) * gw + x / BLOCK] += u32::from(v > BACKGROUND);
        }
    }
    let block_area = |b: usize| {
        let (bx, by) = (b % gw, b / gw);
        (((bx + 1) * BLOCK).min(w) - bx * BLOCK) * (((by + 1) * BLOCK).min(h) - by * BLOCK)
    };
    let on: Vec<bool> = (0..gw * gh)
        .map(|b| lit[b] as usize * 8 >= block_area(b) && lit[b] > 0)
        .collect();

    // Largest 4-connected component of content blocks.
    let mut label = vec![0u32; gw * gh];
    let (mut best, mut best_size, mut next) = (0u32, 0usize, 0u32);
    let mut stack = Vec::new();
    for start in 0..gw * gh {
        if !on[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        label[start] = next;
        stack.push(start);
        let mut size = 0;
        while let Some(b) = stack.pop() {
            size += 1;
            let (bx, by) = (b % gw, b / gw);
            let neighbours = [
                (bx > 0).then(|| b - 1),
                (bx + 1 < gw).then(|| b + 1),
                (by > 0).then(|| b - gw),
                (by + 1 < gh).then(|| b + gw),
            ];
            for n in neighbours.into_iter().flatten() {
                if on[n] && label[n] == 0 {
                    label[n] = next;
                    stack.push(n);
                }
            }
        }
        if size > best_size {
            (best, best_size) = (next, size);
        }
    }
    if best == 0 {
        return full;
    }
    // Tighten to the lit pixels of the chosen blocks.
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (y, row) in img.data.chunks_exact(w).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            if v > BACKGROUND && label[(y / BLOCK) * gw + x / BLOCK] == best {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
    }
    Rect {
        x: x0 as u32,
        y: y0 as u32,
        width: (x1 - x0) as u32,
        height: (y1 - y0) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_image_and_drops_text_and_bars() {
        let (w, h) = (100u32, 80u32);
        let mut data = vec![0u8; (w * h) as usize];
        let mut put = |x: u32, y: u32, v: u8| data[(y * w + x) as usize] = v;
        for y in 10..60 {
            for x in 30..90 {
                // The image, with a dark chamber inside it.
                let chamber = (40..50).contains(&y) && (50..70).contains(&x);
                put(x, y, if chamber { 0 } else { 120 });
            }
        }
        for x in 2..8 {
            put(x, 20, 255); // a text stroke left of it
        }
        for y in 72..78 {
            for x in 0..60 {
                put(x, y, 90); // a UI bar below, after a dark gap
            }
        }
        let r = detect_active_area(&GrayImage {
            width: w,
            height: h,
            data,
        });
        assert_eq!(
            r,
            Rect {
                x: 30,
                y: 10,
                width: 60,
                height: 50
            }
        );
    }

    #[test]
    fn blank_frames_keep_their_size() {
        let img = GrayImage {
            width: 7,
            height: 5,
            data: vec![3; 35],
        };
        assert_eq!(
            detect_active_area(&img),
            Rect {
                x: 0,
                y: 0,
                width: 7,
                height: 5
            }
        );
    }
}
