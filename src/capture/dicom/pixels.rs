//! Turns one frame's stored samples into output pixels: stored bits masked and
//! sign-extended, and the colour model (YBR_FULL in Q16 fixed point, palettes)
//! converted to RGB. Same-size conversions run in place.

use std::borrow::Cow;

use super::layout::{Arrangement, Colour, Layout};
use super::palette::Palette;

/// YBR_FULL to RGB (PS3.3 C.7.6.3.1.2, the JFIF equations), coefficients in
/// Q16: `R = Y + 1.402 Cr'`, `G = Y - 0.344136 Cb' - 0.714136 Cr'`,
/// `B = Y + 1.772 Cb'` with `Cb' = Cb - 128`, rounded half up.
const Q16_ONE_HALF: i32 = 1 << 15;
const CR_TO_R_Q16: i32 = 91_881;
const CB_TO_G_Q16: i32 = 22_554;
const CR_TO_G_Q16: i32 = 46_802;
const CB_TO_B_Q16: i32 = 116_130;

/// Turns one frame's stored samples into output pixels. Same-size conversions
/// run in place, so a decoder's buffer is reused and native data copied once.
pub(super) fn render(
    l: &Layout,
    stored: Cow<'_, [u8]>,
    palette: Option<&Palette>,
) -> Result<Vec<u8>, String> {
    let len = l.frame_len();
    if stored.len() < len {
        return Err(format!(
            "pixel data has {} bytes, {len} expected",
            stored.len()
        ));
    }
    let in_place = match (l.colour, l.arrangement) {
        (Colour::Mono1 | Colour::Mono2, _) => true,
        (Colour::Rgb | Colour::YbrFull, Arrangement::Interleaved) => l.bytes == 1,
        _ => false,
    };
    if in_place {
        let mut buf = match stored {
            Cow::Owned(mut v) => {
                v.truncate(len);
                v
            }
            Cow::Borrowed(s) => s.get(..len).unwrap_or_default().to_vec(),
        };
        convert_in_place(l, &mut buf);
        return Ok(buf);
    }
    let src = stored.get(..len).unwrap_or_default();
    let mut out = vec![0u8; l.pixels() * 3];
    let b = l.bits;
    let sample = |c: &[u8]| b.to_u8(container(c));
    match (l.colour, l.arrangement) {
        (Colour::Palette, _) => {
            let p = palette.ok_or("no palette")?;
            for (c, o) in src.chunks_exact(l.bytes).zip(out.chunks_exact_mut(3)) {
                o.copy_from_slice(&p.lookup(b.value(container(c))));
            }
        }
        (Colour::YbrFull422, Arrangement::Ybr422) => {
            for (q, o) in src.chunks_exact(4).zip(out.chunks_exact_mut(6)) {
                if let &[y0, y1, cb, cr] = q {
                    let (cb, cr) = (b.to_u8(cb.into()), b.to_u8(cr.into()));
                    let [r0, g0, b0] = ybr_to_rgb(b.to_u8(y0.into()), cb, cr);
                    let [r1, g1, b1] = ybr_to_rgb(b.to_u8(y1.into()), cb, cr);
                    o.copy_from_slice(&[r0, g0, b0, r1, g1, b1]);
                }
            }
        }
        (Colour::Rgb | Colour::YbrFull, Arrangement::Interleaved) => {
            for (px, o) in src.chunks_exact(3 * l.bytes).zip(out.chunks_exact_mut(3)) {
                let mut s = px.chunks_exact(l.bytes).map(sample);
                let v = [
                    s.next().unwrap_or(0),
                    s.next().unwrap_or(0),
                    s.next().unwrap_or(0),
                ];
                o.copy_from_slice(&colour_pixel(l.colour, v));
            }
        }
        (Colour::Rgb | Colour::YbrFull, Arrangement::Planar) => {
            let plane = l.pixels() * l.bytes;
            let (Some(p0), Some(p1), Some(p2)) = (
                src.get(..plane),
                src.get(plane..2 * plane),
                src.get(2 * plane..3 * plane),
            ) else {
                return Err("planes cut short".into());
            };
            let planes = p0
                .chunks_exact(l.bytes)
                .zip(p1.chunks_exact(l.bytes))
                .zip(p2.chunks_exact(l.bytes));
            for (((a, bb), c), o) in planes.zip(out.chunks_exact_mut(3)) {
                o.copy_from_slice(&colour_pixel(l.colour, [sample(a), sample(bb), sample(c)]));
            }
        }
        _ => return Err("no conversion for this pixel layout".into()),
    }
    Ok(out)
}

/// Conversions whose output is the size of their input (gray, 8-bit colour).
fn convert_in_place(l: &Layout, buf: &mut [u8]) {
    let b = l.bits;
    match (l.colour, l.bytes) {
        (Colour::Mono1 | Colour::Mono2, 1) => {
            let invert = l.colour == Colour::Mono1;
            if b.is_plain(8) && !invert {
                return;
            }
            for v in buf.iter_mut() {
                let g = b.to_u8(u32::from(*v));
                *v = if invert { 255 - g } else { g };
            }
        }
        (Colour::Mono1 | Colour::Mono2, _) => {
            if b.is_plain(16) {
                return;
            }
            for s in buf.chunks_exact_mut(2) {
                let v = b.to_u16(container(s));
                s.copy_from_slice(&v.to_le_bytes());
            }
        }
        (Colour::Rgb, _) if !b.is_plain(8) => {
            for v in buf.iter_mut() {
                *v = b.to_u8(u32::from(*v));
            }
        }
        (Colour::YbrFull, _) => {
            for px in buf.chunks_exact_mut(3) {
                if let &mut [y, cb, cr] = px {
                    let rgb = ybr_to_rgb(b.to_u8(y.into()), b.to_u8(cb.into()), b.to_u8(cr.into()));
                    px.copy_from_slice(&rgb);
                }
            }
        }
        _ => {}
    }
}

/// A little-endian sample container of one or two bytes.
pub(super) fn container(c: &[u8]) -> u32 {
    match *c {
        [v] => u32::from(v),
        [lo, hi] => u32::from(u16::from_le_bytes([lo, hi])),
        _ => 0,
    }
}

fn colour_pixel(colour: Colour, [a, b, c]: [u8; 3]) -> [u8; 3] {
    match colour {
        Colour::YbrFull => ybr_to_rgb(a, b, c),
        _ => [a, b, c],
    }
}

/// Full-range YCbCr to RGB in Q16 fixed point (see [`CR_TO_R_Q16`]).
fn ybr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let y = i32::from(y) << 16;
    let (cb, cr) = (i32::from(cb) - 128, i32::from(cr) - 128);
    let clamp = |v: i32| ((v + Q16_ONE_HALF) >> 16).clamp(0, 255) as u8;
    [
        clamp(y + CR_TO_R_Q16 * cr),
        clamp(y - CB_TO_G_Q16 * cb - CR_TO_G_Q16 * cr),
        clamp(y + CB_TO_B_Q16 * cb),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::tests::ybr_reference;

    #[test]
    fn fixed_point_ybr_matches_the_float_equations() {
        let mut exact = 0u32;
        let mut total = 0u32;
        for y in (0..=255u8).step_by(3) {
            for cb in (0..=255u8).step_by(5) {
                for cr in (0..=255u8).step_by(5) {
                    let (a, b) = (ybr_to_rgb(y, cb, cr), ybr_reference(y, cb, cr));
                    for (p, q) in a.iter().zip(b) {
                        assert!(p.abs_diff(q) <= 1, "{y} {cb} {cr}: {a:?} vs {b:?}");
                    }
                    exact += u32::from(a == b);
                    total += 1;
                }
            }
        }
        assert!(exact * 1000 >= total * 999, "{exact} of {total} exact");
        assert_eq!(ybr_to_rgb(128, 128, 128), [128, 128, 128]);
        assert_eq!(ybr_to_rgb(255, 128, 128), [255, 255, 255]);
    }
}
