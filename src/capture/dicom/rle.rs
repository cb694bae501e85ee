//! RLE Lossless (PS3.5 Annex G), decoded here rather than by dicom-pixeldata,
//! whose RLE path indexes without checking (a short RLE segment panics): every
//! offset is checked, and a frame costs one allocation.

use super::layout::Layout;

/// PackBits turns two bytes into at most 128 (PS3.5 G.3.1).
const RLE_MAX_EXPANSION: usize = 64;

/// Decodes one RLE Lossless frame (PS3.5 Annex G) into interleaved
/// little-endian samples, straight into the frame buffer.
pub(super) fn rle_frame(fragment: &[u8], l: &Layout) -> Result<Vec<u8>, String> {
    let pixels = l.pixels();
    let segments = l.samples * l.bytes;
    let len = pixels * segments;
    if fragment.len().saturating_mul(RLE_MAX_EXPANSION) < len {
        return Err(format!(
            "RLE fragment of {} bytes cannot hold a frame of {len} bytes",
            fragment.len()
        ));
    }
    let header = fragment.get(..64).ok_or("RLE header cut short")?;
    let word = |i: usize| -> usize {
        header
            .get(i * 4..i * 4 + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u32::from_le_bytes(b) as usize)
    };
    let count = word(0);
    if count != segments {
        return Err(format!(
            "RLE frame has {count} segments, {segments} expected"
        ));
    }
    let mut out = vec![0u8; len];
    for seg in 0..segments {
        let start = word(1 + seg);
        let end = if seg + 1 < count {
            word(2 + seg)
        } else {
            fragment.len()
        };
        let data = fragment
            .get(start..end)
            .filter(|_| start >= 64)
            .ok_or_else(|| format!("RLE segment {seg} lies outside its fragment"))?;
        // Segments run sample by sample, most significant byte first.
        let (sample, byte) = (seg / l.bytes, seg % l.bytes);
        let at = sample * l.bytes + (l.bytes - 1 - byte);
        let dst = out
            .get_mut(at..)
            .unwrap_or_default()
            .iter_mut()
            .step_by(segments);
        let written = unpack_bits(data, dst);
        if written < pixels {
            return Err(format!(
                "RLE segment {seg} decodes to {written} of {pixels} bytes"
            ));
        }
    }
    Ok(out)
}

/// PackBits into `dst` until it is full or `src` ends; returns bytes written.
fn unpack_bits<'a>(src: &[u8], mut dst: impl Iterator<Item = &'a mut u8>) -> usize {
    let (mut i, mut written) = (0usize, 0usize);
    'runs: while let Some(&h) = src.get(i) {
        i += 1;
        let (run, literal) = match h as i8 {
            -128 => continue,
            n @ 0..=127 => (n as usize + 1, true),
            n => (1 + usize::from(n.unsigned_abs()), false),
        };
        for k in 0..run {
            let v = src.get(if literal { i + k } else { i });
            let (Some(&v), Some(d)) = (v, dst.next()) else {
                break 'runs;
            };
            *d = v;
            written += 1;
        }
        i += if literal { run } else { 1 };
    }
    written
}
