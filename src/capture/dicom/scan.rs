//! Checks that every element and item length fits in the bytes that follow it
//! before dicom-object parses the file: dicom-parser zero-fills a buffer of the
//! stated length before reading, so one flipped length byte would cost gigabytes.

use std::collections::HashMap;
use std::io::Cursor;

use dicom_dictionary_std::uids;
use dicom_object::{InMemDicomObject, Tag};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::EXPLICIT_VR_BIG_ENDIAN;

const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;

/// How a data set is encoded (for [`scan_encoding`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    ImplicitLe,
    ExplicitLe,
    ExplicitBe,
}

impl Encoding {
    fn u16(self, b: &[u8]) -> u16 {
        let b = <[u8; 2]>::try_from(b).unwrap_or_default();
        match self {
            Encoding::ExplicitBe => u16::from_be_bytes(b),
            _ => u16::from_le_bytes(b),
        }
    }

    fn u32(self, b: &[u8]) -> u32 {
        let b = <[u8; 4]>::try_from(b).unwrap_or_default();
        match self {
            Encoding::ExplicitBe => u32::from_be_bytes(b),
            _ => u32::from_le_bytes(b),
        }
    }

    fn tag(self, b: &[u8]) -> (u16, u16) {
        (
            self.u16(b.get(0..2).unwrap_or_default()),
            self.u16(b.get(2..4).unwrap_or_default()),
        )
    }
}

/// Where the data set starts in a Part 10 file (after `DICM`), if it is one.
pub(super) fn part10_start(bytes: &[u8]) -> Option<usize> {
    if bytes.get(128..132) == Some(b"DICM") {
        Some(132)
    } else if bytes.get(0..4) == Some(b"DICM") {
        Some(4)
    } else {
        None
    }
}

/// The transfer syntax of a data set without file meta, from its first
/// element: byte order from the group number (a bare data set starts with a
/// low group), explicit VR when two letters follow the tag.
fn guess_bare_encoding(bytes: &[u8]) -> Option<&'static str> {
    let head = bytes.get(..8)?;
    let le = Encoding::ExplicitLe.u16(head.get(0..2)?);
    let be = Encoding::ExplicitBe.u16(head.get(0..2)?);
    let explicit = head.get(4..6)?.iter().all(u8::is_ascii_uppercase);
    let group = le.min(be);
    if group > 0x0008 || !group.is_multiple_of(2) {
        return None;
    }
    match (le <= be, explicit) {
        (true, false) => Some(uids::IMPLICIT_VR_LITTLE_ENDIAN),
        (true, true) => Some(uids::EXPLICIT_VR_LITTLE_ENDIAN),
        (false, true) => Some(EXPLICIT_VR_BIG_ENDIAN),
        (false, false) => None,
    }
}

/// The transfer syntax of `bytes`, after checking that every element and item
/// length of the file meta and of an uncompressed data set fits in the bytes
/// that follow it. dicom-parser zero-fills a buffer of the stated length
/// before reading, so one flipped length byte would otherwise cost gigabytes.
/// The walk follows the parsers step for step, or a shifted parser would meet
/// lengths the walk never saw. (A deflated data set is left to the parser.)
pub(super) fn scan_encoding(bytes: &[u8]) -> Result<String, String> {
    let (ts, start) = match part10_start(bytes) {
        Some(meta) => file_meta(bytes, meta)?,
        None => (
            guess_bare_encoding(bytes)
                .ok_or("no DICM signature and no recognisable data set")?
                .to_string(),
            0,
        ),
    };
    let encoding = match ts.as_str() {
        uids::IMPLICIT_VR_LITTLE_ENDIAN => Encoding::ImplicitLe,
        EXPLICIT_VR_BIG_ENDIAN => Encoding::ExplicitBe,
        uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => return Ok(ts),
        _ => Encoding::ExplicitLe,
    };
    walk(bytes, start, encoding)?;
    Ok(ts)
}

/// An element header as the parsers read it.
struct Header {
    group: u16,
    element: u16,
    /// `None` for items and delimiters, and in implicit VR.
    vr: Option<[u8; 2]>,
    len: u32,
    size: usize,
}

fn header(bytes: &[u8], pos: usize, enc: Encoding) -> Option<Header> {
    let head = bytes.get(pos..pos.checked_add(8)?)?;
    let (group, element) = enc.tag(head);
    let vr = match (group, enc) {
        (0xFFFE, _) | (_, Encoding::ImplicitLe) => None,
        _ => Some(<[u8; 2]>::try_from(head.get(4..6)?).ok()?),
    };
    let (len, size) = match vr {
        Some(vr) if short_length_vr(vr) => (u32::from(enc.u16(head.get(6..8)?)), 8),
        Some(_) => (enc.u32(bytes.get(pos + 8..pos + 12)?), 12),
        None => (enc.u32(head.get(4..8)?), 8),
    };
    Some(Header {
        group,
        element,
        vr,
        len,
        size,
    })
}

fn overlong(h: &Header, remaining: usize) -> String {
    format!(
        "element ({:04X},{:04X}) claims {} bytes, {remaining} remain",
        h.group, h.element, h.len
    )
}

/// The file meta as dicom-object reads it: a group length of 4 bytes, then
/// whole explicit VR little endian elements until that many bytes are read.
/// Returns the Transfer Syntax UID and where the data set starts.
fn file_meta(bytes: &[u8], mut pos: usize) -> Result<(String, usize), String> {
    let cut = || "file meta cut short".to_string();
    let first = header(bytes, pos, Encoding::ExplicitLe).ok_or_else(cut)?;
    if (first.group, first.element, first.len) != (0x0002, 0x0000, 4) {
        return Err("file meta does not start with its group length".into());
    }
    pos += first.size;
    let group_length = bytes
        .get(pos..pos + 4)
        .map(|b| u64::from(Encoding::ExplicitLe.u32(b)))
        .ok_or_else(cut)?;
    pos += 4;
    let (mut read, mut ts) = (0u64, None);
    while read < group_length {
        let h = header(bytes, pos, Encoding::ExplicitLe).ok_or_else(cut)?;
        pos += h.size;
        let remaining = bytes.len().saturating_sub(pos);
        if h.len as usize > remaining {
            return Err(overlong(&h, remaining));
        }
        let len = h.len as usize;
        if (h.group, h.element) == (0x0002, 0x0010) {
            let uid = bytes.get(pos..pos + len).unwrap_or_default();
            let uid = String::from_utf8_lossy(uid);
            ts = Some(uid.trim_end_matches(['\0', ' ']).to_string());
        }
        pos += len;
        read += (h.size + len) as u64;
    }
    Ok((ts.ok_or("file meta has no Transfer Syntax UID")?, pos))
}

/// VRs with a 16-bit length in explicit VR (PS3.5 7.1.2).
pub(super) fn short_length_vr(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// Bytes dicom-parser consumes for a value of `len` bytes: binary numbers
/// are read whole, so a length that is not a multiple of their size leaves
/// the rest to be read as the next header.
fn consumed(vr: [u8; 2], len: usize) -> usize {
    let unit = match &vr {
        b"US" | b"SS" | b"OW" => 2,
        b"UL" | b"SL" | b"FL" | b"AT" | b"OF" | b"OL" => 4,
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => 8,
        _ => 1,
    };
    len - len % unit
}

/// The VR dicom-parser gives `tag` in implicit VR: the standard dictionary's,
/// reached through the parser itself reading the bare, empty element (so no
/// dependency on dicom-core's dictionary trait is needed).
fn dictionary_vr(group: u16, element: u16) -> [u8; 2] {
    let ([g0, g1], [e0, e1]) = (group.to_le_bytes(), element.to_le_bytes());
    let empty = [g0, g1, e0, e1, 0, 0, 0, 0];
    TransferSyntaxRegistry
        .get(uids::IMPLICIT_VR_LITTLE_ENDIAN)
        .and_then(|ts| InMemDicomObject::read_dataset_with_ts(Cursor::new(empty), ts).ok())
        .and_then(|obj| {
            let vr = obj.element(Tag(group, element)).ok()?.vr().to_string();
            <[u8; 2]>::try_from(vr.as_bytes()).ok()
        })
        .unwrap_or(*b"UN")
}

/// Walks the data set's element headers from `pos` as dicom-parser reads
/// them: sequences and items are entered, values and pixel fragments skipped.
fn walk(bytes: &[u8], mut pos: usize, enc: Encoding) -> Result<(), String> {
    let mut fragments = false;
    let mut vrs: HashMap<(u16, u16), [u8; 2]> = HashMap::new();
    while let Some(h) = header(bytes, pos, enc) {
        pos += h.size;
        let remaining = bytes.len().saturating_sub(pos);
        if h.len != UNDEFINED_LENGTH && h.len as usize > remaining {
            return Err(overlong(&h, remaining));
        }
        let len = h.len as usize;
        if h.group == 0xFFFE {
            // An item is entered, unless it is a fragment of pixel data.
            match h.element {
                0xE000 if fragments && h.len != UNDEFINED_LENGTH => pos += len,
                0xE0DD => fragments = false,
                _ => {}
            }
            continue;
        }
        if h.len == UNDEFINED_LENGTH {
            // Pixel Data holds fragments; any other element of undefined
            // length (UN too) the parser reads as a sequence.
            if (h.group, h.element) == (0x7FE0, 0x0010) {
                fragments = true;
            }
            continue;
        }
        let vr = match h.vr {
            Some(vr) => vr,
            None => *vrs
                .entry((h.group, h.element))
                .or_insert_with(|| dictionary_vr(h.group, h.element)),
        };
        if &vr == b"SQ" {
            continue;
        }
        // In implicit VR the parser may take OB or OW from context; only an
        // even length reads the same either way.
        if h.vr.is_none() && len % 2 == 1 && matches!(&vr, b"OB" | b"OW") {
            return Err(format!(
                "element ({:04X},{:04X}) has odd length {len}",
                h.group, h.element
            ));
        }
        pos += consumed(vr, len);
    }
    if fragments {
        // The parser would take the fragments read so far as all of them.
        return Err("encapsulated pixel data ends without its sequence delimiter".into());
    }
    Ok(())
}
