//! A PALETTE COLOR lookup table (PS3.3 C.7.6.3.1.5-6, C.7.9) as 8-bit RGB
//! entries; 16-bit entries keep their high byte, and segmented data are
//! expanded as pydicom does.

use std::cmp::Ordering;

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use super::Fault;
use super::pixels::container;

/// A PALETTE COLOR lookup table (PS3.3 C.7.6.3.1.5-6, C.7.9) as 8-bit RGB
/// entries; 16-bit entries keep their high byte.
#[derive(Debug)]
pub(super) struct Palette {
    first: i32,
    rgb: Vec<[u8; 3]>,
}

impl Palette {
    pub(super) fn read(obj: &DefaultDicomObject, signed: bool) -> Result<Palette, Fault> {
        let channels = [
            (
                "Red",
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
            (
                "Green",
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
            (
                "Blue",
                tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
        ];
        let mut palette = Palette {
            first: 0,
            rgb: Vec::new(),
        };
        for (k, (name, descriptor, data, segmented)) in channels.into_iter().enumerate() {
            let d = obj
                .element(descriptor)
                .ok()
                .and_then(|e| e.to_multi_int::<i32>().ok())
                .filter(|d| d.len() == 3)
                .ok_or_else(|| format!("no valid {name} Palette Color Lookup Table Descriptor"))?;
            let (count, first, bits) = match d.as_slice() {
                &[c, f, b] => (c, f, b),
                _ => (0, 0, 0),
            };
            // 0 stands for 2^16 entries; the first mapped value is signed with the pixels.
            let entries = match count & 0xFFFF {
                0 => 65_536,
                n => n as usize,
            };
            let first = if signed && first > 0x7FFF {
                first - 0x1_0000
            } else {
                first
            };
            if bits != 8 && bits != 16 {
                return Err(Fault::Bad(format!(
                    "{name} palette has {bits}-bit entries, 8 or 16 expected"
                )));
            }
            let values = if let Ok(e) = obj.element(data) {
                let bytes = e
                    .to_bytes()
                    .map_err(|_| format!("{name} palette is not data"))?;
                lut_entries(&bytes, entries, bits)
                    .ok_or_else(|| format!("{name} palette holds fewer than {entries} entries"))?
            } else if let Ok(e) = obj.element(segmented) {
                let bytes = e
                    .to_bytes()
                    .map_err(|_| format!("{name} palette is not data"))?;
                let words: Vec<u32> = if bits == 16 {
                    bytes.chunks_exact(2).map(container).collect()
                } else {
                    bytes.iter().map(|&b| u32::from(b)).collect()
                };
                let lut = expand_segmented(&words, entries, bits == 16)
                    .map_err(|r| format!("{name} segmented palette: {r}"))?;
                lut.into_iter().map(|v| entry_u8(v, bits)).collect()
            } else {
                return Err(Fault::Bad(format!("no {name} palette data")));
            };
            if k == 0 {
                palette.first = first;
                palette.rgb = vec![[0; 3]; entries];
            } else if entries != palette.rgb.len() {
                return Err(Fault::from("palette channels differ in length"));
            }
            for (e, v) in palette.rgb.iter_mut().zip(values) {
                if let Some(slot) = e.get_mut(k) {
                    *slot = v;
                }
            }
        }
        Ok(palette)
    }

    /// Values below the first mapped one take the first entry, values past
    /// the end the last (PS3.3 C.7.6.3.1.5).
    pub(super) fn lookup(&self, value: i32) -> [u8; 3] {
        let last = self.rgb.len().saturating_sub(1);
        let i = (i64::from(value) - i64::from(self.first)).clamp(0, last as i64) as usize;
        self.rgb.get(i).copied().unwrap_or_default()
    }
}

/// Table entries as 8 bits. Data of two bytes per entry are 16-bit words
/// (8-bit values in them when the descriptor says 8); one byte per entry is
/// 8-bit data whatever the descriptor says, as pydicom reads it.
fn lut_entries(bytes: &[u8], entries: usize, bits: i32) -> Option<Vec<u8>> {
    if bytes.len() >= 2 * entries {
        Some(
            bytes
                .chunks_exact(2)
                .take(entries)
                .map(|c| entry_u8(container(c), bits))
                .collect(),
        )
    } else if bytes.len() >= entries {
        Some(bytes.iter().take(entries).copied().collect())
    } else {
        None
    }
}

fn entry_u8(v: u32, bits: i32) -> u8 {
    if bits == 16 {
        (v >> 8) as u8
    } else {
        v.min(255) as u8
    }
}

/// Expands segmented palette data (PS3.3 C.7.9.2) to `entries` values, as
/// pydicom does: linear segments round half to even; an indirect segment
/// copies segments found at an offset (in table units) and may not nest.
fn expand_segmented(data: &[u32], entries: usize, wide: bool) -> Result<Vec<u32>, String> {
    let mut lut = Vec::with_capacity(entries);
    // Segments that add nothing (length 0, or indirect ones pointing at
    // such) cost time without filling the table: ~200k of them took 30 s
    // of CPU at open. A real table needs at most one segment per entry,
    // and every indirect segment repeats a few.
    let mut steps = SEGMENT_STEPS_PER_ENTRY * entries;
    expand_segments(data, &mut lut, entries, wide, None, &mut steps)?;
    if lut.len() < entries {
        return Err(format!("expands to {} of {entries} entries", lut.len()));
    }
    Ok(lut)
}

/// Segments a table may take per entry it holds (see [`expand_segmented`]).
const SEGMENT_STEPS_PER_ENTRY: usize = 4;

fn expand_segments(
    data: &[u32],
    lut: &mut Vec<u32>,
    limit: usize,
    wide: bool,
    segments: Option<usize>,
    steps: &mut usize,
) -> Result<(), String> {
    let word = |i: usize| data.get(i).copied().ok_or("segment runs past the table");
    let (mut i, mut done) = (0usize, 0usize);
    while i + 1 < data.len() && lut.len() < limit && segments.is_none_or(|n| done < n) {
        *steps = steps.checked_sub(1).ok_or_else(|| {
            format!(
                "more than {} segments for {limit} entries",
                SEGMENT_STEPS_PER_ENTRY * limit
            )
        })?;
        let (op, len) = (word(i)?, word(i + 1)? as usize);
        i += 2;
        match op {
            0 => {
                let seg = data
                    .get(i..i + len)
                    .ok_or("discrete segment runs past the table")?;
                lut.extend(seg.iter().take(limit - lut.len()));
                i += len;
            }
            1 => {
                let y0 = i64::from(*lut.last().ok_or("linear segment comes first")?);
                let y1 = i64::from(word(i)?);
                i += 1;
                for k in 1..=len {
                    if lut.len() == limit {
                        break;
                    }
                    lut.push(linear_step(y0, y1, k, len));
                }
            }
            2 => {
                if segments.is_some() {
                    return Err("indirect segment inside an indirect segment".into());
                }
                if lut.is_empty() {
                    return Err("indirect segment comes first".into());
                }
                let offset = if wide {
                    let v = word(i)? | word(i + 1)? << 16;
                    i += 2;
                    v
                } else {
                    let v = word(i)? | word(i + 1)? << 8 | word(i + 2)? << 16 | word(i + 3)? << 24;
                    i += 4;
                    v
                };
                let copied = data
                    .get(offset as usize..)
                    .ok_or("indirect segment points past the table")?;
                expand_segments(copied, lut, limit, wide, Some(len), steps)?;
            }
            other => return Err(format!("unknown segment type {other}")),
        }
        done += 1;
    }
    Ok(())
}

/// Step `k` of `len` from `y0` to `y1`, rounded half to even like numpy.
fn linear_step(y0: i64, y1: i64, k: usize, len: usize) -> u32 {
    let (num, den) = ((y1 - y0) * k as i64, len as i64);
    let (q, r) = (num.div_euclid(den), num.rem_euclid(den));
    let up = match (2 * r).cmp(&den) {
        Ordering::Greater => 1,
        Ordering::Less => 0,
        Ordering::Equal => (y0 + q).rem_euclid(2),
    };
    (y0 + q + up).clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segmented_palette_expands_like_pydicom() {
        // PS3.3 C.7.9.2 example shapes: discrete, linear, indirect.
        let data = [0, 3, 10, 20, 30, 1, 4, 50, 2, 2, 0, 0];
        let lut = expand_segmented(&data, 13, true).unwrap();
        assert_eq!(lut, [10, 20, 30, 35, 40, 45, 50, 10, 20, 30, 35, 40, 45]);
        // Ties round to even: 0 -> 5 in 2 steps is 2.5 -> 2, then 5.
        assert_eq!(
            expand_segmented(&[0, 1, 0, 1, 2, 5], 3, true).unwrap(),
            [0, 2, 5]
        );
        assert!(expand_segmented(&[1, 4, 50], 4, true).is_err());
        assert!(expand_segmented(&[0, 1, 9, 2, 1, 0, 0], 4, true).is_err());
        assert!(expand_segmented(&[0, 2, 1, 2], 8, true).is_err());
    }

    #[test]
    fn segments_that_fill_nothing_stop_at_the_step_limit() {
        // One real entry, then 200k indirect segments each repeating 2000
        // empty discrete segments: quadratic work without a step limit.
        let mut data = vec![0, 1, 7];
        let empties = data.len();
        data.extend([0u32, 0].repeat(2000));
        for _ in 0..200_000 {
            data.extend([2, 200_000, empties as u32, 0]);
        }
        let e = expand_segmented(&data, 256, true).unwrap_err();
        assert_eq!(e, "more than 1024 segments for 256 entries");
    }
}
