//! A QEMU TCG plugin (API v1, QEMU 7.2) that counts the guest instructions an
//! aarch64 program executes, by class, in total and between bedside's marker
//! instructions (`src/marker.rs` in the main crate).
//!
//! - Classes come from the top-level A64 encoding groups, decided once per
//!   instruction at translation time (free at run time): integer (data
//!   processing, immediate and register), branch (branches, exception
//!   generation and system instructions: hints, barriers, MRS), load/store
//!   (to general registers), SIMD load/store (to SIMD&FP registers: `ld1`,
//!   `ldr q0`, also scalar FP loads), SIMD data processing (Advanced SIMD
//!   vector and scalar, crypto, SVE) and scalar FP.
//! - Each translated block adds its per-class counts inline when it starts
//!   (one add per class present), so the totals include the rest of a block
//!   a marker sits in; a marker's callback subtracts that unexecuted rest,
//!   which makes region counts exact.
//! - A region begins at `hint #0x7e; movz xzr, #ID` and ends at
//!   `hint #0x7f; movz xzr, #ID` (both NOPs on real CPUs; `hint #0x7e/0x7f`
//!   are unallocated). The marker instructions themselves are not counted in
//!   the region. Regions with different ids may nest or overlap.
//!
//! Arguments: `out=FILE` (required): a JSON file written at exit with the
//! totals and every completed region in the order it ended; `symbols=N`
//! (default 0): also the N functions that executed the most instructions
//! inside each region (a block counts for the symbol of its first
//! instruction; names as in the binary's symbol table, mangled).
//!
//! Single-threaded guests only: the inline adds are not atomic, and regions
//! count every vCPU's instructions. Every guest thread is a vCPU, so the
//! output says how many there were (`threads`) and `scripts/icount` refuses
//! the counts of a program that started a second one.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use qemu_plugin_sys as q;

#[unsafe(no_mangle)]
pub static qemu_plugin_version: c_int = q::QEMU_PLUGIN_VERSION as c_int;

const CLASSES: usize = 6;
const CLASS_NAMES: [&str; CLASSES] = [
    "integer",
    "branch",
    "load_store",
    "simd_load_store",
    "simd_dp",
    "scalar_fp",
];
const INTEGER: usize = 0;
const BRANCH: usize = 1;
const LOAD_STORE: usize = 2;
const SIMD_LOAD_STORE: usize = 3;
const SIMD_DP: usize = 4;
const SCALAR_FP: usize = 5;

/// `hint #0x7e` and `hint #0x7f` (HINT is 0xd503201f with imm7 in bits 11:5).
const BEGIN: u32 = 0xd503_201f | (0x7e << 5);
const END: u32 = 0xd503_201f | (0x7f << 5);
/// `movz xzr, #imm16` (sf=1, hw=0, Rd=31): the region id.
const MOVZ_XZR_MASK: u32 = 0xffe0_001f;
const MOVZ_XZR: u32 = 0xd280_001f;

/// The class of one A64 instruction word.
pub fn classify(word: u32) -> usize {
    let op0 = (word >> 25) & 0xf;
    match op0 {
        // 100x: data processing, immediate.
        0b1000 | 0b1001 => INTEGER,
        // 101x: branches, exception generating, system.
        0b1010 | 0b1011 => BRANCH,
        // x101: data processing, register.
        0b0101 | 0b1101 => INTEGER,
        // x1x0: loads and stores; bit 26 (V) selects SIMD&FP registers.
        0b0100 | 0b0110 | 0b1100 | 0b1110 => {
            if word & (1 << 26) != 0 {
                SIMD_LOAD_STORE
            } else {
                LOAD_STORE
            }
        }
        // x111: scalar FP and Advanced SIMD. With bit 28 clear: Advanced
        // SIMD vector and crypto; with bit 28 set, bit 30 set: Advanced
        // SIMD scalar (and SHA); bit 30 clear: floating point proper.
        0b0111 | 0b1111 => {
            if word & (1 << 28) != 0 && word & (1 << 30) == 0 {
                SCALAR_FP
            } else {
                SIMD_DP
            }
        }
        // 0010: SVE (no Pi core has it); 0000/0001/0011: SME or unallocated.
        _ => SIMD_DP,
    }
}

/// Executed instructions per class, added inline by translated blocks.
/// TCG writes these through raw pointers (`AtomicU64` only for a stable
/// address and a race-free read at exit; the adds themselves are plain).
static COUNTS: [AtomicU64; CLASSES] = [const { AtomicU64::new(0) }; CLASSES];

/// Per-symbol instruction counters, added inline like `COUNTS` (only when
/// `symbols=N` asks for them). Entries are leaked so their addresses stay
/// put; the index of a name is its position.
struct Symbols {
    index: HashMap<String, usize>,
    names: Vec<String>,
    counters: Vec<&'static AtomicU64>,
}

static SYMBOLS: Mutex<Option<Symbols>> = Mutex::new(None);

fn symbol_counter(name: &str) -> (usize, &'static AtomicU64) {
    let mut guard = SYMBOLS.lock().unwrap_or_else(|e| e.into_inner());
    let t = guard.get_or_insert_with(|| Symbols {
        index: HashMap::new(),
        names: Vec::new(),
        counters: Vec::new(),
    });
    if let Some(&i) = t.index.get(name) {
        return (i, t.counters[i]);
    }
    let c: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
    let i = t.names.len();
    t.index.insert(name.to_string(), i);
    t.names.push(name.to_string());
    t.counters.push(c);
    (i, c)
}

fn symbol_snapshot() -> Vec<u64> {
    let guard = SYMBOLS.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().map_or_else(Vec::new, |t| {
        t.counters
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    })
}

/// One marker as translated: what it does and the per-class counts of the
/// instructions from it to the end of its block (counted at block entry
/// but not yet executed when the marker runs).
struct Marker {
    begin: bool,
    id: u16,
    rest: [u64; CLASSES],
    /// The block's symbol index (when counting by symbol).
    symbol: Option<usize>,
}

#[derive(Default)]
struct State {
    out: Option<String>,
    /// How many functions to list per region (0: no counting by symbol).
    top_symbols: usize,
    /// Per-symbol counts at each open region's start.
    open_symbols: HashMap<u16, Vec<u64>>,
    /// The top functions of each completed region (same order as `done`).
    done_symbols: Vec<Vec<(usize, u64)>>,
    /// Instructions executed before an open region's begin marker (plus the
    /// two marker instructions), by region id.
    open: HashMap<u16, [u64; CLASSES]>,
    /// Completed regions in the order they ended.
    done: Vec<(u16, [u64; CLASSES])>,
    /// Ends without a begin (a bug in the guest's markers).
    unmatched: u64,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
/// Whether blocks count by symbol (`symbols=N`, N > 0).
static SYMBOLS_ON: AtomicBool = AtomicBool::new(false);

/// One more than the highest vCPU index seen: the guest threads that ran.
static THREADS: AtomicU64 = AtomicU64::new(1);

unsafe extern "C" fn on_vcpu_init(_id: q::qemu_plugin_id_t, vcpu: c_uint) {
    THREADS.fetch_max(u64::from(vcpu) + 1, Ordering::Relaxed);
}

fn snapshot() -> [u64; CLASSES] {
    std::array::from_fn(|c| COUNTS[c].load(Ordering::Relaxed))
}

unsafe extern "C" fn on_marker(_vcpu: c_uint, userdata: *mut c_void) {
    // SAFETY: userdata is a `Marker` leaked at translation; blocks are
    // never freed while they can run, so it lives as long as they do.
    let m = unsafe { &*(userdata as *const Marker) };
    let now = snapshot();
    // Executed strictly before the marker's hint.
    let before: [u64; CLASSES] = std::array::from_fn(|c| now[c] - m.rest[c]);
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(state) = guard.as_mut() else { return };
    // Per symbol, the same correction for the marker's own block.
    let by_symbol = |rest_total: u64| {
        let mut v = symbol_snapshot();
        if let Some(i) = m.symbol {
            v[i] = v[i].saturating_sub(rest_total);
        }
        v
    };
    let rest_total: u64 = m.rest.iter().sum();
    if m.begin {
        // The region starts after the hint (branch class) and the movz (integer).
        let mut start = before;
        start[BRANCH] += 1;
        start[INTEGER] += 1;
        state.open.insert(m.id, start);
        if state.top_symbols > 0 {
            state
                .open_symbols
                .insert(m.id, by_symbol(rest_total.saturating_sub(2)));
        }
    } else if let Some(start) = state.open.remove(&m.id) {
        let n = std::array::from_fn(|c| before[c].saturating_sub(start[c]));
        state.done.push((m.id, n));
        if state.top_symbols > 0 {
            let start = state.open_symbols.remove(&m.id).unwrap_or_default();
            let end = by_symbol(rest_total);
            let mut top: Vec<(usize, u64)> = end
                .iter()
                .enumerate()
                .map(|(i, &e)| (i, e.saturating_sub(start.get(i).copied().unwrap_or(0))))
                .filter(|&(_, n)| n > 0)
                .collect();
            top.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
            top.truncate(state.top_symbols);
            state.done_symbols.push(top);
        }
    } else {
        state.unmatched += 1;
    }
}

/// The instruction word of `insn` (A64 words are 4 bytes, little-endian).
unsafe fn word(insn: *const q::qemu_plugin_insn) -> Option<u32> {
    // SAFETY: QEMU hands out valid instruction handles during translation;
    // data points to `size` bytes.
    unsafe {
        if q::qemu_plugin_insn_size(insn) != 4 {
            return None;
        }
        let p = q::qemu_plugin_insn_data(insn) as *const u8;
        Some(u32::from_le_bytes(std::ptr::read_unaligned(
            p as *const [u8; 4],
        )))
    }
}

/// The word after `insn` in guest memory. In user mode guest memory is
/// host memory (`haddr`), so this also works when the marker's second
/// instruction starts the next block.
unsafe fn next_word(insn: *const q::qemu_plugin_insn) -> Option<u32> {
    // SAFETY: user-mode QEMU maps the guest's code contiguously at
    // guest_base; the marker's two instructions are adjacent in the same
    // mapped text section.
    unsafe {
        let h = q::qemu_plugin_insn_haddr(insn) as *const u8;
        if h.is_null() {
            return None;
        }
        Some(u32::from_le_bytes(std::ptr::read_unaligned(
            h.add(4) as *const [u8; 4]
        )))
    }
}

unsafe extern "C" fn on_translate(_id: q::qemu_plugin_id_t, tb: *mut q::qemu_plugin_tb) {
    // SAFETY: `tb` is valid for the duration of this callback; its
    // instructions are indexed 0..n.
    unsafe {
        let n = q::qemu_plugin_tb_n_insns(tb);
        let mut classes = Vec::with_capacity(n);
        let mut words = Vec::with_capacity(n);
        for i in 0..n {
            let insn = q::qemu_plugin_tb_get_insn(tb, i);
            let w = word(insn);
            words.push(w);
            classes.push(w.map_or(INTEGER, classify));
        }
        let mut per_class = [0u64; CLASSES];
        for &c in &classes {
            per_class[c] += 1;
        }
        for (c, &k) in per_class.iter().enumerate() {
            if k > 0 {
                q::qemu_plugin_register_vcpu_tb_exec_inline(
                    tb,
                    q::qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64,
                    COUNTS[c].as_ptr() as *mut c_void,
                    k,
                );
            }
        }
        let mut symbol = None;
        if n > 0 && SYMBOLS_ON.load(Ordering::Relaxed) {
            let name = q::qemu_plugin_insn_symbol(q::qemu_plugin_tb_get_insn(tb, 0));
            let name = if name.is_null() {
                "?".into()
            } else {
                CStr::from_ptr(name).to_string_lossy()
            };
            let (i, counter) = symbol_counter(&name);
            symbol = Some(i);
            q::qemu_plugin_register_vcpu_tb_exec_inline(
                tb,
                q::qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64,
                counter.as_ptr() as *mut c_void,
                n as u64,
            );
        }
        for (i, w) in words.iter().enumerate() {
            let Some(w) = *w else { continue };
            if w != BEGIN && w != END {
                continue;
            }
            let insn = q::qemu_plugin_tb_get_insn(tb, i);
            let next = match words.get(i + 1) {
                Some(Some(x)) => Some(*x),
                _ => next_word(insn),
            };
            let Some(next) = next.filter(|x| x & MOVZ_XZR_MASK == MOVZ_XZR) else {
                continue;
            };
            let mut rest = [0u64; CLASSES];
            for &c in &classes[i..] {
                rest[c] += 1;
            }
            let marker = Box::new(Marker {
                begin: w == BEGIN,
                id: ((next >> 5) & 0xffff) as u16,
                rest,
                symbol,
            });
            q::qemu_plugin_register_vcpu_insn_exec_cb(
                insn,
                Some(on_marker),
                q::qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
                Box::into_raw(marker) as *mut c_void,
            );
        }
    }
}

fn json_string(x: &str) -> String {
    let mut s = String::from("\"");
    for ch in x.chars() {
        match ch {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn counts_json(c: &[u64; CLASSES]) -> String {
    let total: u64 = c.iter().sum();
    let mut s = format!("{{\"total\":{total}");
    for (name, v) in CLASS_NAMES.iter().zip(c) {
        s.push_str(&format!(",\"{name}\":{v}"));
    }
    s.push('}');
    s
}

unsafe extern "C" fn on_exit(_id: q::qemu_plugin_id_t, _data: *mut c_void) {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(state) = guard.as_mut() else { return };
    let Some(path) = state.out.clone() else {
        return;
    };
    let mut s = format!("{{\"all\":{}", counts_json(&snapshot()));
    s.push_str(&format!(
        ",\"unmatched_ends\":{},\"unclosed\":{},\"threads\":{}",
        state.unmatched,
        state.open.len(),
        THREADS.load(Ordering::Relaxed)
    ));
    s.push_str(",\"regions\":[");
    for (i, (id, c)) in state.done.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{{\"id\":{id},\"counts\":{}", counts_json(c)));
        if let Some(top) = state.done_symbols.get(i) {
            let names = SYMBOLS.lock().unwrap_or_else(|e| e.into_inner());
            s.push_str(",\"symbols\":[");
            for (k, (sym, n)) in top.iter().enumerate() {
                let name = names
                    .as_ref()
                    .and_then(|t| t.names.get(*sym))
                    .map_or("?", |x| x.as_str());
                if k > 0 {
                    s.push(',');
                }
                s.push_str(&format!("[{},{n}]", json_string(name)));
            }
            s.push(']');
        }
        s.push('}');
    }
    s.push_str("]}\n");
    let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(s.as_bytes()));
    if let Err(e) = written {
        eprintln!("bedside-icount: cannot write {path}: {e}");
    }
}

/// # Safety
/// Called by QEMU once at load with `argc` valid C strings in `argv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_install(
    id: q::qemu_plugin_id_t,
    _info: *const q::qemu_info_t,
    argc: c_int,
    argv: *mut *mut c_char,
) -> c_int {
    let mut state = State::default();
    for i in 0..argc.max(0) as usize {
        // SAFETY: QEMU passes argc NUL-terminated strings.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) }.to_string_lossy();
        match arg.split_once('=') {
            Some(("out", path)) => state.out = Some(path.to_string()),
            Some(("symbols", n)) => match n.parse() {
                Ok(n) => state.top_symbols = n,
                Err(_) => {
                    eprintln!("bedside-icount: symbols={n:?} is not a count");
                    return -1;
                }
            },
            _ => {
                eprintln!(
                    "bedside-icount: unknown argument {arg:?} (expected out=FILE, symbols=N)"
                );
                return -1;
            }
        }
    }
    if state.out.is_none() {
        eprintln!("bedside-icount: out=FILE is required");
        return -1;
    }
    SYMBOLS_ON.store(state.top_symbols > 0, Ordering::Relaxed);
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    // SAFETY: registering callbacks with the id QEMU gave us.
    unsafe {
        q::qemu_plugin_register_vcpu_init_cb(id, Some(on_vcpu_init));
        q::qemu_plugin_register_vcpu_tb_trans_cb(id, Some(on_translate));
        q::qemu_plugin_register_atexit_cb(id, Some(on_exit), std::ptr::null_mut());
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_known_words() {
        // Words from aarch64-linux-gnu-objdump.
        let cases = [
            (0x8b020020, INTEGER),         // add x0, x1, x2
            (0xd2800020, INTEGER),         // mov x0, #1
            (0x9b027c20, INTEGER),         // mul x0, x1, x2
            (0x14000001, BRANCH),          // b .+4
            (0xd65f03c0, BRANCH),          // ret
            (0xd503201f, BRANCH),          // nop
            (0xf9400020, LOAD_STORE),      // ldr x0, [x1]
            (0xa9bf7bfd, LOAD_STORE),      // stp x29, x30, [sp, #-16]!
            (0x3dc00020, SIMD_LOAD_STORE), // ldr q0, [x1]
            (0x4c407020, SIMD_LOAD_STORE), // ld1 {v0.16b}, [x1]
            (0x4e228420, SIMD_DP),         // add v0.16b, v1.16b, v2.16b
            (0x0e628020, SIMD_DP),         // smlal v0.4s, v1.4h, v2.4h
            (0x4f821020, SIMD_DP),         // fmla v0.4s, v1.4s, v2.s[0]
            (0x4f82e020, SIMD_DP),         // sdot v0.4s, v1.16b, v2.4b[0]
            (0x5ee28420, SIMD_DP),         // add d0, d1, d2 (SIMD scalar)
            (0x1e222820, SCALAR_FP),       // fadd s0, s1, s2
            (0x1e220020, SCALAR_FP),       // scvtf s0, w1
            (0x1e270020, SCALAR_FP),       // fmov s0, w1
        ];
        for (w, c) in cases {
            assert_eq!(classify(w), c, "{w:#010x}");
        }
        assert_eq!(BEGIN, 0xd5032fdf);
        assert_eq!(END, 0xd5032fff);
        assert_eq!(0xd28000bf & MOVZ_XZR_MASK, MOVZ_XZR); // movz xzr, #5
    }
}
