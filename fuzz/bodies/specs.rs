//! The other strings bedside takes from outside: `--source`, `--display`
//! (with SPI panel options), `--faults`, `--inject`, `--model-faults`, a
//! button pin, a capture format name, a trusted public key and the contents
//! of `manifest.sig`. The first byte picks the parser, the rest is the text.
//! Shared by `fuzz_targets/specs.rs` and `tests/integration/fuzz_regressions.rs`.

use bedside::buttons::PinSpec;
use bedside::capture::SourceSpec;
use bedside::capture::fault::FaultPlan;
use bedside::capture::rehearse::Rehearsal;
use bedside::capture::v4l2::CaptureFormat;
use bedside::display::DisplaySpec;
use bedside::infer::PublicKey;
use bedside::infer::faults::ModelFaultPlan;
use bedside::infer::signature::parse_signature;

pub fn run(data: &[u8]) {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    match which % 9 {
        0 => drop(text.parse::<SourceSpec>()),
        1 => drop(text.parse::<DisplaySpec>()),
        2 => drop(text.parse::<FaultPlan>()),
        3 => drop(text.parse::<Rehearsal>()),
        4 => drop(text.parse::<ModelFaultPlan>()),
        5 => drop(text.parse::<PinSpec>()),
        6 => drop(text.parse::<CaptureFormat>()),
        7 => drop(PublicKey::from_hex(text)),
        _ => drop(parse_signature("fuzz/manifest.sig", text)),
    }
}
