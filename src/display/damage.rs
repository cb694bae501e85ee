//! Which parts of the screen changed since the last frame.
//!
//! Most of the screen is the same from frame to frame (the side panel, the
//! letterbox bars, the text), so sinks rewrite only what changed: on an SPI
//! panel at 40 MHz a full 320x240 frame costs 31 ms of bus time, a changed
//! score trace a fraction of that. The canvas is compared with the previous
//! one in bands of rows; each band with a change gives one rectangle
//! spanning its changed columns.

use super::Canvas;

/// Rows compared as one band: small enough to keep rectangles tight around
/// text, large enough to keep their number (and per-transfer overhead) low.
const BAND: u32 = 16;

/// Rectangles of pixels in canvas coordinates: the type crops use.
pub use crate::preprocess::Rect;

/// Remembers the last frame shown and reports what differs.
pub struct DamageTracker {
    previous: Vec<u8>,
    width: u32,
    height: u32,
    /// Everything is damaged (the first frame, or after `invalidate`).
    full: bool,
    rects: Vec<Rect>,
}

impl DamageTracker {
    pub fn new(width: u32, height: u32) -> DamageTracker {
        DamageTracker {
            previous: vec![0; width as usize * height as usize * 3],
            width,
            height,
            full: true,
            rects: Vec::with_capacity(height.div_ceil(BAND) as usize),
        }
    }

    /// The next frame is redrawn whole (the screen may have been overwritten,
    /// e.g. by a console switch).
    pub fn invalidate(&mut self) {
        self.full = true;
    }

    /// The rectangles of `canvas` that differ from the last frame; remembers
    /// `canvas` as the last frame. A canvas of another size is all damage.
    pub fn update(&mut self, canvas: &Canvas) -> &[Rect] {
        self.rects.clear();
        if (canvas.width, canvas.height) != (self.width, self.height) {
            *self = DamageTracker::new(canvas.width, canvas.height);
        }
        let (w, h) = (self.width, self.height);
        let row = w as usize * 3;
        if self.full {
            self.full = false;
            self.previous.copy_from_slice(&canvas.rgb);
            if w > 0 && h > 0 {
                self.rects.push(Rect {
                    x: 0,
                    y: 0,
                    width: w,
                    height: h,
                });
            }
            return &self.rects;
        }
        let mut y0 = 0;
        while y0 < h {
            let y1 = (y0 + BAND).min(h);
            // Changed columns (in bytes) and rows within this band.
            let mut span: Option<(usize, usize)> = None;
            let mut rows: Option<(u32, u32)> = None;
            for y in y0..y1 {
                let at = y as usize * row;
                let (new, old) = (&canvas.rgb[at..at + row], &self.previous[at..at + row]);
                let Some(first) = new.iter().zip(old).position(|(a, b)| a != b) else {
                    continue;
                };
                let last = new
                    .iter()
                    .zip(old)
                    .rposition(|(a, b)| a != b)
                    .unwrap_or(first);
                span = Some(span.map_or((first, last), |(f, l)| (f.min(first), l.max(last))));
                rows = Some(rows.map_or((y, y), |(f, _)| (f, y)));
            }
            if let (Some((first, last)), Some((top, bottom))) = (span, rows) {
                let (x0, x1) = (first / 3, last / 3);
                let rect = Rect {
                    x: x0 as u32,
                    y: top,
                    width: (x1 - x0 + 1) as u32,
                    height: bottom - top + 1,
                };
                for y in rect.y..rect.y + rect.height {
                    let at = y as usize * row + x0 * 3;
                    let len = rect.width as usize * 3;
                    self.previous[at..at + len].copy_from_slice(&canvas.rgb[at..at + len]);
                }
                self.rects.push(rect);
            }
            y0 = y1;
        }
        &self.rects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canvas(w: u32, h: u32) -> Canvas {
        Canvas::new(w, h)
    }

    fn set(c: &mut Canvas, x: u32, y: u32, v: u8) {
        let i = (y * c.width + x) as usize * 3;
        c.rgb[i..i + 3].copy_from_slice(&[v, v, v]);
    }

    #[test]
    fn first_frame_is_all_damage_then_only_changes() {
        let mut t = DamageTracker::new(64, 40);
        let mut c = canvas(64, 40);
        assert_eq!(
            t.update(&c),
            [Rect {
                x: 0,
                y: 0,
                width: 64,
                height: 40
            }]
        );
        assert!(t.update(&c).is_empty(), "an unchanged frame is no damage");
        set(&mut c, 10, 3, 200);
        set(&mut c, 20, 5, 200);
        set(&mut c, 5, 33, 9);
        assert_eq!(
            t.update(&c),
            [
                Rect {
                    x: 10,
                    y: 3,
                    width: 11,
                    height: 3
                },
                Rect {
                    x: 5,
                    y: 33,
                    width: 1,
                    height: 1
                }
            ]
        );
        assert!(t.update(&c).is_empty());
        t.invalidate();
        assert_eq!(t.update(&c).len(), 1);
    }

    #[test]
    fn a_change_of_one_channel_counts() {
        let mut t = DamageTracker::new(8, 8);
        let mut c = canvas(8, 8);
        t.update(&c);
        c.rgb[(2 * 8 + 7) * 3 + 2] = 1;
        assert_eq!(
            t.update(&c),
            [Rect {
                x: 7,
                y: 2,
                width: 1,
                height: 1
            }]
        );
    }

    #[test]
    fn replaying_the_damage_rebuilds_the_frame() {
        // Whatever sequence of frames, copying only the damaged rectangles
        // onto the previous screen gives the new frame.
        let (w, h) = (50u32, 37u32);
        let mut t = DamageTracker::new(w, h);
        let mut screen = vec![0u8; (w * h * 3) as usize];
        let mut c = canvas(w, h);
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..30 {
            for _ in 0..20 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                set(
                    &mut c,
                    (seed % u64::from(w)) as u32,
                    ((seed >> 20) % u64::from(h)) as u32,
                    (seed >> 40) as u8,
                );
            }
            for r in t.update(&c).to_vec() {
                for y in r.y..r.y + r.height {
                    let at = ((y * w + r.x) * 3) as usize;
                    let len = (r.width * 3) as usize;
                    screen[at..at + len].copy_from_slice(&c.rgb[at..at + len]);
                }
            }
            assert_eq!(screen, c.rgb);
        }
    }
}
