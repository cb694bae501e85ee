//! The preprocessing chain spec (`--chain`, a manifest's `preprocess`) on
//! arbitrary text, and every chain that parses run on a small frame, twice,
//! then on a frame of another size (the crop, resize and CLAHE plans are
//! made per size).
//!
//! Input: 4 header bytes (width, height, format, quantization), the spec up
//! to the first NUL byte, then pixel bytes (cycled to fill the frame).
//! Shared by `fuzz_targets/chain.rs` and `tests/integration/fuzz_regressions.rs`.

use bedside::frame::{Frame, FrameMeta, PixelFormat};
use bedside::preprocess::{Chain, InputQuant, Preprocessor};

pub fn run(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let (head, rest) = data.split_at(4);
    let (spec, pixels) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(spec) = std::str::from_utf8(spec) else {
        return;
    };
    let Ok(chain) = spec.parse::<Chain>() else {
        return;
    };
    // The text form parses back to the same chain.
    assert_eq!(chain.to_string().parse::<Chain>().as_ref(), Ok(&chain));
    let quant = InputQuant {
        scale: [1.0 / 255.0, 0.0078125, 0.02][usize::from(head[3]) % 3],
        zero_point: i32::from(head[3] as i8),
        pixel_scale: 1.0 / 255.0,
    };
    let Ok(mut pre) = Preprocessor::new(chain.clone(), Some(quant)) else {
        return;
    };
    let format =
        [PixelFormat::Gray8, PixelFormat::Gray16, PixelFormat::Rgb24][usize::from(head[2]) % 3];
    let (w, h) = (u32::from(head[0] % 96) + 1, u32::from(head[1] % 96) + 1);
    for (width, height) in [(w, h), (w, h), (h, w + 1)] {
        let len = width as usize * height as usize * format.bytes_per_pixel();
        let bytes: Vec<u8> = if pixels.is_empty() {
            (0..len).map(|i| (i * 7) as u8).collect()
        } else {
            pixels.iter().copied().cycle().take(len).collect()
        };
        let frame = Frame::packed(bytes, format, width, height, FrameMeta::default())
            .expect("a packed frame of the right size");
        if pre.process(&frame).is_ok() {
            let (ow, oh) = (pre.processed().width, pre.processed().height);
            assert_eq!(pre.processed().data.len(), ow as usize * oh as usize);
            if chain.quantizes() {
                assert_eq!(pre.model_input().len(), pre.processed().data.len());
            }
        }
    }
}
