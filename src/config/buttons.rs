//! `[buttons]`: the operator's FREEZE, RECORD and MODE buttons on GPIO lines.

use serde::Deserialize;

use crate::buttons::{Button, PinSpec};

/// `[buttons]`: operator buttons on GPIO lines ("gpiochip0:17").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawButtons {
    freeze: Option<String>,
    record: Option<String>,
    mode: Option<String>,
    debounce_ms: Option<u64>,
}

/// The operator buttons a board has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ButtonSettings {
    pub pins: Vec<(Button, PinSpec)>,
    pub debounce: Option<std::time::Duration>,
}

impl RawButtons {
    pub(super) fn check(self) -> Result<ButtonSettings, String> {
        let b = self;
        let mut pins: Vec<(Button, PinSpec)> = Vec::new();
        for (button, spec) in [
            (Button::Freeze, &b.freeze),
            (Button::Record, &b.record),
            (Button::Mode, &b.mode),
        ] {
            let Some(spec) = spec else { continue };
            let pin: PinSpec = spec
                .parse()
                .map_err(|e| format!("buttons.{}: {e}", button.name()))?;
            if let Some((other, _)) = pins
                .iter()
                .find(|(_, p)| p.chip == pin.chip && p.line == pin.line)
            {
                return Err(format!(
                    "buttons.{} and buttons.{} are both on {}",
                    other.name(),
                    button.name(),
                    pin
                ));
            }
            pins.push((button, pin));
        }
        let debounce = match b.debounce_ms {
            Some(ms) if !(1..=1000).contains(&ms) => {
                return Err(format!("buttons.debounce_ms = {ms}: give 1 to 1000"));
            }
            ms => ms.map(std::time::Duration::from_millis),
        };
        Ok(ButtonSettings { pins, debounce })
    }
}
