//! The image attributes every frame of an object shares (codec, colour model,
//! stored bits, geometry), validated once at open so that sizes computed from
//! them cannot overflow, and the VOI window they imply.

use dicom_dictionary_std::{tags, uids};
use dicom_object::{DefaultDicomObject, Tag};

use super::{EXPLICIT_VR_BIG_ENDIAN, Fault, printable_pi};
use crate::frame::{MAX_SIDE, PixelFormat, Tone, VoiWindow};

/// More frames than any cine holds; a larger Number of Frames is corrupt or hostile.
const MAX_FRAMES: i64 = 100_000;

/// How the pixel data is encoded, as far as this module is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Codec {
    /// Implicit/explicit VR little endian, explicit big endian, deflated.
    Native,
    Rle,
    /// Baseline, extended (8-bit) and lossless JPEG.
    Jpeg,
}

impl Codec {
    pub(super) fn for_uid(uid: &str) -> Option<Codec> {
        match uid {
            uids::IMPLICIT_VR_LITTLE_ENDIAN
            | uids::EXPLICIT_VR_LITTLE_ENDIAN
            | EXPLICIT_VR_BIG_ENDIAN
            | uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => Some(Codec::Native),
            uids::RLE_LOSSLESS => Some(Codec::Rle),
            uids::JPEG_BASELINE8_BIT
            | uids::JPEG_EXTENDED12_BIT
            | uids::JPEG_LOSSLESS
            | uids::JPEG_LOSSLESS_SV1 => Some(Codec::Jpeg),
            _ => None,
        }
    }
}

/// Photometric interpretations we decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Colour {
    Mono1,
    Mono2,
    Rgb,
    YbrFull,
    YbrFull422,
    Palette,
}

/// Where a frame's samples sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Arrangement {
    /// Samples of a pixel together (Planar Configuration 0, and decoder output).
    Interleaved,
    /// One plane per sample (Planar Configuration 1).
    Planar,
    /// Native YBR_FULL_422: `Y0 Y1 Cb Cr` for each pair of pixels.
    Ybr422,
}

/// Stored values in their container (PS3.5 8.1.1): `stored` bits, `shift`
/// above bit 0, two's complement when signed. Bits above the High Bit (e.g.
/// overlays in 12-bit data) are not pixel data and are masked off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Bits {
    stored: u32,
    shift: u32,
    pub(super) signed: bool,
}

impl Bits {
    pub(super) fn value(self, raw: u32) -> i32 {
        let v = (raw >> self.shift) & ((1u32 << self.stored) - 1);
        if self.signed && v >> (self.stored - 1) == 1 {
            v as i32 - (1i32 << self.stored)
        } else {
            v as i32
        }
    }

    /// An unsigned level from 0: signed values shifted up by half their range.
    fn level(self, raw: u32) -> u32 {
        let v = self.value(raw);
        (if self.signed {
            v + (1 << (self.stored - 1))
        } else {
            v
        }) as u32
    }

    /// The level in 8 bits: the high byte of the stored bits, or the stored
    /// bits shifted up when there are fewer than 8.
    pub(super) fn to_u8(self, raw: u32) -> u8 {
        let l = self.level(raw);
        if self.stored >= 8 {
            (l >> (self.stored - 8)) as u8
        } else {
            (l << (8 - self.stored)) as u8
        }
    }

    /// 16-bit output: the value, offset by 32768 when signed, so that one
    /// unsigned path (and [`Tone`]) serves both.
    pub(super) fn to_u16(self, raw: u32) -> u16 {
        let v = self.value(raw);
        if self.signed {
            (v + 32_768) as u16
        } else {
            v as u16
        }
    }

    /// True when stored values are the container's bits as they are.
    pub(super) fn is_plain(self, container_bits: u32) -> bool {
        self.stored == container_bits && self.shift == 0 && !self.signed
    }
}

/// The layout shared by every frame of an object, validated once at open so
/// that sizes below cannot overflow (sides are at most [`MAX_SIDE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) colour: Colour,
    pub(super) samples: usize,
    /// Bytes per sample container: 1 or 2.
    pub(super) bytes: usize,
    pub(super) bits: Bits,
    pub(super) arrangement: Arrangement,
}

impl Layout {
    pub(super) fn read(obj: &DefaultDicomObject, codec: Codec) -> Result<Layout, Fault> {
        let rows = u16_attr(obj, tags::ROWS, "Rows")?.ok_or("no Rows")?;
        let cols = u16_attr(obj, tags::COLUMNS, "Columns")?.ok_or("no Columns")?;
        let spp = u16_attr(obj, tags::SAMPLES_PER_PIXEL, "Samples per Pixel")?.unwrap_or(1);
        let allocated =
            u16_attr(obj, tags::BITS_ALLOCATED, "Bits Allocated")?.ok_or("no Bits Allocated")?;
        let stored = u16_attr(obj, tags::BITS_STORED, "Bits Stored")?.unwrap_or(allocated);
        let high = u16_attr(obj, tags::HIGH_BIT, "High Bit")?.unwrap_or(stored.saturating_sub(1));
        let signed = match u16_attr(obj, tags::PIXEL_REPRESENTATION, "Pixel Representation")? {
            None | Some(0) => false,
            Some(1) => true,
            Some(v) => return Err(Fault::Bad(format!("Pixel Representation {v}"))),
        };
        let planar = match u16_attr(obj, tags::PLANAR_CONFIGURATION, "Planar Configuration")? {
            None | Some(0) => false,
            Some(1) => true,
            Some(v) => return Err(Fault::Bad(format!("Planar Configuration {v}"))),
        };
        let pi = obj
            .element(tags::PHOTOMETRIC_INTERPRETATION)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_matches([' ', '\0']).to_string())
            .filter(|s| !s.is_empty());
        let pi = match pi {
            Some(pi) => pi,
            None if spp == 1 => "MONOCHROME2".to_string(),
            None => return Err(Fault::from("no Photometric Interpretation")),
        };
        let unsupported = |why: &str| {
            let layout = format!(
                "{spp} sample(s) of {allocated} bits, photometric interpretation {}",
                printable_pi(&pi)
            );
            Fault::Unsupported(
                "pixel layout",
                if why.is_empty() {
                    layout
                } else {
                    format!("{layout} ({why})")
                },
            )
        };
        if rows == 0 || cols == 0 {
            return Err(Fault::Bad(format!("empty image ({cols}x{rows})")));
        }
        if u32::from(rows) > MAX_SIDE || u32::from(cols) > MAX_SIDE {
            return Err(Fault::Unsupported(
                "image size",
                format!("{cols}x{rows} exceeds the {MAX_SIDE}-pixel limit"),
            ));
        }
        let colour = match pi.as_str() {
            "MONOCHROME1" => Colour::Mono1,
            "MONOCHROME2" => Colour::Mono2,
            "RGB" => Colour::Rgb,
            "YBR_FULL" => Colour::YbrFull,
            "YBR_FULL_422" => Colour::YbrFull422,
            "PALETTE COLOR" => Colour::Palette,
            _ => return Err(unsupported("")),
        };
        let bytes = match allocated {
            8 => 1,
            16 => 2,
            _ => return Err(unsupported("")),
        };
        let samples = match colour {
            Colour::Mono1 | Colour::Mono2 | Colour::Palette => 1,
            _ => 3,
        };
        if usize::from(spp) != samples {
            return Err(unsupported(""));
        }
        let (stored, high) = (u32::from(stored), u32::from(high));
        if stored == 0
            || stored > u32::from(allocated)
            || high >= u32::from(allocated)
            || high + 1 < stored
        {
            return Err(Fault::Bad(format!(
                "Bits Stored {stored} and High Bit {high} do not fit Bits Allocated {allocated}"
            )));
        }
        let ybr = matches!(colour, Colour::YbrFull | Colour::YbrFull422);
        if samples == 3 && signed {
            return Err(unsupported("signed colour samples"));
        }
        if ybr && bytes != 1 {
            return Err(unsupported(""));
        }
        let arrangement = match (codec, colour) {
            (Codec::Native, Colour::YbrFull422) if planar => {
                return Err(unsupported("planar YBR_FULL_422"));
            }
            (Codec::Native, Colour::YbrFull422) if !cols.is_multiple_of(2) => {
                return Err(unsupported("odd Columns in YBR_FULL_422"));
            }
            (Codec::Native, Colour::YbrFull422) => Arrangement::Ybr422,
            (Codec::Rle, Colour::YbrFull422) => return Err(unsupported("YBR_FULL_422 in RLE")),
            (Codec::Native, _) if planar && samples == 3 => Arrangement::Planar,
            _ => Arrangement::Interleaved,
        };
        Ok(Layout {
            width: u32::from(cols),
            height: u32::from(rows),
            colour,
            samples,
            bytes,
            bits: Bits {
                stored,
                shift: high + 1 - stored,
                signed,
            },
            arrangement,
        })
    }

    pub(super) fn pixels(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Bytes of one frame in this layout.
    pub(super) fn frame_len(&self) -> usize {
        match self.arrangement {
            Arrangement::Ybr422 => self.pixels() * 2,
            _ => self.pixels() * self.samples * self.bytes,
        }
    }

    /// The layout a decoder (RLE, JPEG) produces: interleaved, full resolution.
    pub(super) fn decoded(self) -> Layout {
        Layout {
            arrangement: Arrangement::Interleaved,
            ..self
        }
    }

    /// Bytes of one frame as output ([`Layout::output`]'s format).
    pub(super) fn output_len(&self) -> usize {
        self.pixels() * self.output().bytes_per_pixel()
    }

    pub(super) fn output(&self) -> PixelFormat {
        match (self.colour, self.bytes) {
            (Colour::Mono1 | Colour::Mono2, 1) => PixelFormat::Gray8,
            (Colour::Mono1 | Colour::Mono2, _) => PixelFormat::Gray16,
            _ => PixelFormat::Rgb24,
        }
    }
}

/// The first value of an integer attribute; `None` when absent or empty.
fn int_attr(obj: &DefaultDicomObject, tag: Tag, name: &str) -> Result<Option<i64>, String> {
    let Ok(e) = obj.element(tag) else {
        return Ok(None);
    };
    match e.to_int::<i64>() {
        Ok(v) => Ok(Some(v)),
        Err(_)
            if e.to_str()
                .is_ok_and(|s| s.trim_matches([' ', '\0']).is_empty()) =>
        {
            Ok(None)
        }
        Err(_) => Err(format!("{name} is not a number")),
    }
}

fn u16_attr(obj: &DefaultDicomObject, tag: Tag, name: &str) -> Result<Option<u16>, String> {
    int_attr(obj, tag, name)?
        .map(|v| u16::try_from(v).map_err(|_| format!("{name} {v} is out of range")))
        .transpose()
}

pub(super) fn number_of_frames(obj: &DefaultDicomObject) -> Result<u32, String> {
    match int_attr(obj, tags::NUMBER_OF_FRAMES, "Number of Frames")? {
        None => Ok(1),
        Some(n) if (1..=MAX_FRAMES).contains(&n) => Ok(n as u32),
        Some(n) => Err(format!("implausible Number of Frames {n}")),
    }
}

/// The first VOI window, mapped through Rescale Slope/Intercept into stored
/// values (and the +32768 offset of signed data), since that is what the
/// frame's samples are.
pub(super) fn tone(obj: &DefaultDicomObject, layout: &Layout) -> Tone {
    let first = |tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_multi_float64().ok())
            .and_then(|v| v.first().copied())
    };
    let slope = first(tags::RESCALE_SLOPE).unwrap_or(1.0);
    let intercept = first(tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    let offset = if layout.bits.signed { 32_768.0 } else { 0.0 };
    let window = match (first(tags::WINDOW_CENTER), first(tags::WINDOW_WIDTH)) {
        (Some(c), Some(w)) if slope.is_finite() && slope > 0.0 && intercept.is_finite() => {
            let (center, width) = ((c - intercept) / slope + offset, w / slope);
            (center.is_finite() && width.is_finite() && width >= 1.0)
                .then_some(VoiWindow { center, width })
        }
        _ => None,
    };
    Tone {
        window,
        invert: layout.colour == Colour::Mono1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bits_are_masked_and_sign_extended() {
        // 12 bits stored in 16, high bit 11, overlay bits set above.
        let signed = Bits {
            stored: 12,
            shift: 0,
            signed: true,
        };
        assert_eq!(signed.value(0xF800), -2048);
        assert_eq!(signed.value(0x77FF), 2047);
        assert_eq!(signed.value(0x0FFF), -1);
        assert_eq!(signed.to_u16(0x0FFF), 32_767);
        assert_eq!(signed.to_u8(0x0800), 0);
        assert_eq!(signed.to_u8(0x07FF), 255);
        let unsigned = Bits {
            stored: 12,
            shift: 0,
            signed: false,
        };
        assert_eq!(unsigned.value(0xF123), 0x123);
        assert_eq!(unsigned.to_u8(0x0FFF), 255);
        assert_eq!(unsigned.to_u8(0x0010), 1);
        // High bit 13 with 12 stored: the sample sits two bits up.
        let shifted = Bits {
            stored: 12,
            shift: 2,
            signed: false,
        };
        assert_eq!(shifted.value(0x0FFF << 2 | 3), 0x0FFF);
        let six = Bits {
            stored: 6,
            shift: 0,
            signed: false,
        };
        assert_eq!(six.to_u8(63), 252);
    }
}
