//! `[inference]` and `[xray]`: how the model runs, which bundles the
//! board accepts, and how the live pipeline treats the model's results.

use std::time::Duration;

use serde::Deserialize;

use crate::infer::tract::MAX_THREADS;
use crate::infer::{InferOptions, PrecisionPolicy, PublicKey, SignaturePolicy};
use crate::settings;

/// `[inference]`: how the model runs and which bundles the board accepts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInference {
    #[serde(default)]
    precision: PrecisionPolicy,
    #[serde(default = "one")]
    threads: usize,
    #[serde(default)]
    require_signature: bool,
    /// Public keys (64 hex digits each) whose bundle signatures are trusted.
    #[serde(default)]
    trusted_keys: Vec<String>,
    /// Milliseconds a frame may be with the model before AI UNAVAILABLE.
    stall_after_ms: Option<u64>,
    /// Milliseconds a result stays valid over newer pictures (default 500).
    result_valid_ms: Option<u64>,
}

fn one() -> usize {
    1
}

/// `[xray]`: when X-ray mode classifies.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawXray {
    trigger: Option<crate::pipeline::Trigger>,
    stable_frames: Option<u32>,
}

/// How the live pipeline behaves on this board.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveSettings {
    /// How long a frame may be with the model before AI UNAVAILABLE.
    pub stall_after: Option<std::time::Duration>,
    /// How long a result may be drawn over newer pictures.
    pub result_valid: Option<std::time::Duration>,
    /// X-ray mode's trigger.
    pub trigger: Option<crate::pipeline::Trigger>,
    /// X-ray stable trigger: unchanged frames for a stable picture.
    pub stable_frames: Option<u32>,
}

impl RawInference {
    /// The model's options, the signature policy, and the stall and
    /// validity bounds of the live pipeline.
    pub(super) fn check(
        self,
    ) -> Result<
        (
            InferOptions,
            SignaturePolicy,
            Option<Duration>,
            Option<Duration>,
        ),
        String,
    > {
        let i = self;
        if !(1..=MAX_THREADS).contains(&i.threads) {
            return Err(format!(
                "inference.threads = {}: give 1 to {MAX_THREADS}",
                i.threads
            ));
        }
        let trusted = i
            .trusted_keys
            .iter()
            .map(|k| PublicKey::from_hex(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("inference.trusted_keys: {e}"))?;
        if i.require_signature && trusted.is_empty() {
            return Err("inference.require_signature is set but trusted_keys is empty".into());
        }
        let stall_after = i
            .stall_after_ms
            .map(|ms| settings::STALL_AFTER.from_millis("inference.stall_after_ms", ms))
            .transpose()
            .map_err(|e| e.to_string())?;
        let result_valid = i
            .result_valid_ms
            .map(|ms| settings::RESULT_VALID.from_millis("inference.result_valid_ms", ms))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok((
            InferOptions {
                precision: i.precision,
                threads: i.threads,
            },
            SignaturePolicy {
                required: i.require_signature,
                trusted,
            },
            stall_after,
            result_valid,
        ))
    }
}

impl RawXray {
    /// The trigger and the stable trigger's frame count.
    pub(super) fn check(self) -> Result<(Option<crate::pipeline::Trigger>, Option<u32>), String> {
        let stable_frames = self
            .stable_frames
            .map(|n| settings::count("xray.stable_frames", n, settings::STABLE_FRAMES))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok((self.trigger, stable_frames))
    }
}
