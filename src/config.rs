//! Board profiles (`boards/*.toml`): the capture device, display and mode a
//! board runs with, validated at load with clear errors. Command-line options
//! override profile values.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capture::SourceSpec;
use crate::display::DisplaySpec;
use crate::pipeline::Mode;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    board: String,
    mode: Mode,
    source: String,
    display: String,
    #[serde(default)]
    model: Option<PathBuf>,
    #[serde(default)]
    capture: Option<RawCapture>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapture {
    width: u32,
    height: u32,
    fps: u32,
}

/// A validated board profile.
#[derive(Clone, Debug)]
pub struct BoardProfile {
    pub board: String,
    pub mode: Mode,
    pub source: SourceSpec,
    pub display: DisplaySpec,
    pub model: Option<PathBuf>,
    /// (width, height, fps) requested from live devices.
    pub capture: Option<(u32, u32, u32)>,
}

impl BoardProfile {
    pub fn load(path: &Path) -> Result<BoardProfile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        BoardProfile::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<BoardProfile, ConfigError> {
        let bad = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let raw: RawProfile = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        let source = raw
            .source
            .parse()
            .map_err(|e| bad(format!("source: {e}")))?;
        let display = raw
            .display
            .parse()
            .map_err(|e| bad(format!("display: {e}")))?;
        let capture = match raw.capture {
            Some(c)
                if !(16..=7680).contains(&c.width)
                    || !(16..=4320).contains(&c.height)
                    || !(1..=240).contains(&c.fps) =>
            {
                return Err(bad(format!(
                    "capture {}x{} at {} fps is out of range",
                    c.width, c.height, c.fps
                )));
            }
            Some(c) => Some((c.width, c.height, c.fps)),
            None => None,
        };
        Ok(BoardProfile {
            board: raw.board,
            mode: raw.mode,
            source,
            display,
            model: raw.model,
            capture,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let ok =
            "board = \"x\"\nmode = \"ultrasound\"\nsource = \"synthetic\"\ndisplay = \"none\"\n";
        assert!(BoardProfile::parse(Path::new("b.toml"), ok).is_ok());
        let unknown = format!("{ok}colour = 3\n");
        let e = BoardProfile::parse(Path::new("b.toml"), &unknown)
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let bad_source = ok.replace("synthetic", "webcam");
        assert!(
            BoardProfile::parse(Path::new("b.toml"), &bad_source)
                .unwrap_err()
                .to_string()
                .contains("source")
        );
    }
}
