//! Checks that every element and item length fits in the bytes that follow it
//! before dicom-object parses the file: dicom-parser zero-fills a buffer of the
//! stated length before reading, so one flipped length byte would cost gigabytes.
//! It also bounds how deep sequences nest (the parser recurses once per level,
//! and a few thousand levels overflow a thread's stack), and inflates a
//! deflated data set itself, within the decode budget, so that the walk sees
//! the bytes the parser will read.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use dicom_dictionary_std::uids;
use dicom_object::{InMemDicomObject, Tag};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::EXPLICIT_VR_BIG_ENDIAN;
use crate::budget::DecodeBudget;

const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;
/// Sequences may nest this deep. Real objects nest a handful of levels
/// (a structured report a dozen); dicom-parser overflows a 2 MiB stack at a
/// few thousand.
pub(super) const MAX_SEQUENCE_DEPTH: usize = 32;

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

/// What [`scan_encoding`] found.
pub(super) struct Scanned {
    /// The Transfer Syntax UID.
    pub ts: String,
    /// A deflated data set, inflated: the parser reads these bytes (explicit
    /// VR little endian) instead of inflating the file again unchecked.
    pub inflated: Option<Vec<u8>>,
}

/// The transfer syntax of `bytes`, after checking that every element and item
/// length of the file meta and of the data set fits in the bytes that follow
/// it and that sequences nest at most [`MAX_SEQUENCE_DEPTH`] deep.
/// dicom-parser zero-fills a buffer of the stated length before reading, so
/// one flipped length byte would otherwise cost gigabytes. The walk follows
/// the parsers step for step, or a shifted parser would meet lengths the walk
/// never saw. A deflated data set is inflated first, within `budget`.
pub(super) fn scan_encoding(bytes: &[u8], budget: DecodeBudget) -> Result<Scanned, String> {
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
        uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => {
            let inflated = inflate(bytes.get(start..).unwrap_or_default(), budget)?;
            walk(&inflated, 0, Encoding::ExplicitLe)?;
            return Ok(Scanned {
                ts,
                inflated: Some(inflated),
            });
        }
        _ => Encoding::ExplicitLe,
    };
    walk(bytes, start, encoding)?;
    Ok(Scanned { ts, inflated: None })
}

/// Inflates a deflated data set (raw deflate, PS3.5 A.5). The output is
/// counted first without being kept, so a bomb is refused having cost
/// time, not memory; then it is inflated into a buffer of exactly its size.
fn inflate(deflated: &[u8], budget: DecodeBudget) -> Result<Vec<u8>, String> {
    let broken = |e: std::io::Error| format!("deflated data set does not inflate ({e})");
    let limit = budget.bytes();
    let mut counting = flate2::read::DeflateDecoder::new(deflated).take(limit.saturating_add(1));
    let size = std::io::copy(&mut counting, &mut std::io::sink()).map_err(broken)?;
    if size > limit {
        return Err(format!(
            "the deflated data set inflates past the decode budget of {budget} \
             (--decode-budget, or [limits] decode_budget_mib)"
        ));
    }
    let mut out = Vec::with_capacity(size as usize);
    flate2::read::DeflateDecoder::new(deflated)
        .take(size)
        .read_to_end(&mut out)
        .map_err(broken)?;
    Ok(out)
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

/// An element in messages: its tag when the standard dictionary knows it,
/// else only where it is. (A misaligned walk reads value bytes as a tag,
/// and a value may be a patient's name.)
fn element_at(h: &Header, pos: usize) -> String {
    if dictionary_vr(h.group, h.element) == *b"UN" {
        format!("an element at byte {pos}")
    } else {
        format!("element ({:04X},{:04X}) at byte {pos}", h.group, h.element)
    }
}

fn overlong(h: &Header, pos: usize, remaining: usize) -> String {
    format!(
        "{} claims {} bytes, {remaining} remain",
        element_at(h, pos),
        h.len
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
        let at = pos;
        pos += h.size;
        let remaining = bytes.len().saturating_sub(pos);
        if h.len as usize > remaining {
            return Err(overlong(&h, at, remaining));
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

/// A sequence or item the walk is inside, with where it ends (`None`:
/// at its delimiter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Sequence(Option<usize>),
    Item(Option<usize>),
}

/// The sequences and items the walk is inside, to bound their nesting.
#[derive(Default)]
struct Nesting {
    open: Vec<Open>,
}

impl Nesting {
    /// Leaves what ended before `pos`.
    fn close_before(&mut self, pos: usize) {
        while let Some(Open::Sequence(Some(end)) | Open::Item(Some(end))) = self.open.last() {
            if pos < *end {
                break;
            }
            self.open.pop();
        }
    }

    fn enter(&mut self, o: Open) -> Result<(), String> {
        self.open.push(o);
        let depth = self
            .open
            .iter()
            .filter(|o| matches!(o, Open::Sequence(_)))
            .count();
        if depth > MAX_SEQUENCE_DEPTH {
            return Err(format!(
                "sequences nest more than {MAX_SEQUENCE_DEPTH} deep"
            ));
        }
        Ok(())
    }

    /// An item or sequence delimiter: leaves the innermost open one of its
    /// kind with undefined length (and what is left open inside it).
    fn delimit(&mut self, o: Open) {
        if let Some(i) = self.open.iter().rposition(|x| *x == o) {
            self.open.truncate(i);
        }
    }
}

/// Walks the data set's element headers from `pos` as dicom-parser reads
/// them: sequences and items are entered, values and pixel fragments skipped.
fn walk(bytes: &[u8], mut pos: usize, enc: Encoding) -> Result<(), String> {
    let mut fragments = false;
    let mut nesting = Nesting::default();
    let mut vrs: HashMap<(u16, u16), [u8; 2]> = HashMap::new();
    while let Some(h) = header(bytes, pos, enc) {
        nesting.close_before(pos);
        let at = pos;
        pos += h.size;
        let remaining = bytes.len().saturating_sub(pos);
        if h.len != UNDEFINED_LENGTH && h.len as usize > remaining {
            return Err(overlong(&h, at, remaining));
        }
        let len = h.len as usize;
        let end = (h.len != UNDEFINED_LENGTH).then_some(pos + len);
        // The parser reads (FFFE,xxxx) as an item header only where it
        // expects one: among pixel fragments, right inside a sequence, or
        // an item delimiter anywhere. Elsewhere (at the top level, inside
        // an item) an Item or Sequence Delimiter tag, or any other FFFE tag,
        // is a plain element whose value it reads: a walk that took it for
        // structure and did not skip that value would fall out of step and
        // miss the lengths the parser then meets (fuzz/regressions/dicom).
        let item_context = fragments
            || matches!(nesting.open.last(), Some(Open::Sequence(_)))
            || h.element == 0xE00D;
        if h.group == 0xFFFE && item_context {
            // An item is entered, unless it is a fragment of pixel data.
            match h.element {
                0xE000 if fragments && h.len != UNDEFINED_LENGTH => pos += len,
                0xE000 if !fragments => nesting.enter(Open::Item(end))?,
                0xE00D => nesting.delimit(Open::Item(None)),
                0xE0DD if fragments => fragments = false,
                0xE0DD => nesting.delimit(Open::Sequence(None)),
                _ => {}
            }
            continue;
        }
        if h.len == UNDEFINED_LENGTH {
            // Pixel Data holds fragments; any other element of undefined
            // length (UN too) the parser reads as a sequence.
            if (h.group, h.element) == (0x7FE0, 0x0010) {
                fragments = true;
            } else {
                nesting.enter(Open::Sequence(None))?;
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
            nesting.enter(Open::Sequence(end))?;
            continue;
        }
        // In implicit VR the parser may take OB or OW from context; only an
        // even length reads the same either way.
        if h.vr.is_none() && len % 2 == 1 && matches!(&vr, b"OB" | b"OW") {
            return Err(format!("{} has odd length {len}", element_at(&h, at)));
        }
        pos += consumed(vr, len);
    }
    if fragments {
        // The parser would take the fragments read so far as all of them.
        return Err("encapsulated pixel data ends without its sequence delimiter".into());
    }
    Ok(())
}
