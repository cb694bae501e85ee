//! `[recording]` and `--record-what`: what RECORD writes, and where.
//! Absent, nothing is ever written.

use std::path::PathBuf;

use serde::Deserialize;

use crate::record::RecordSettings;

/// `[recording]`: what RECORD writes, and where. Absent: nothing, ever.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecording {
    dir: PathBuf,
    /// "pictures" and/or "results"; no default, so the file says what is written.
    what: Vec<String>,
}

/// "pictures,results" (or a list of them) as record settings for `dir`.
pub fn record_settings(dir: PathBuf, what: &[impl AsRef<str>]) -> Result<RecordSettings, String> {
    let (mut pictures, mut results) = (false, false);
    for w in what {
        match w.as_ref().trim() {
            "pictures" => pictures = true,
            "results" => results = true,
            other => {
                return Err(format!(
                    "'{other}' is not something bedside records (give pictures and/or results)"
                ));
            }
        }
    }
    if !(pictures || results) {
        return Err("nothing to record: give pictures and/or results".into());
    }
    Ok(RecordSettings {
        dir,
        pictures,
        results,
    })
}

impl RawRecording {
    pub(super) fn check(self) -> Result<RecordSettings, String> {
        if !self.dir.is_absolute() {
            return Err(format!(
                "recording.dir = {}: give an absolute path",
                self.dir.display()
            ));
        }
        record_settings(self.dir, &self.what).map_err(|e| format!("recording.what: {e}"))
    }
}
