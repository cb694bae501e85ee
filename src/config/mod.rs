//! Board profiles (`boards/*.toml`): the capture device, display and mode a
//! board runs with, validated at load with clear errors. Command-line options
//! override profile values.

//!
//! One file per section: each has its raw (TOML) form and a `check` that
//! turns it into validated settings or says which key is wrong and why;
//! ranges shared with the command line live in [`crate::settings`].

mod alarm;
mod buttons;
mod capture;
mod detect;
mod inference;
mod recording;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capture::SourceSpec;
use crate::display::DisplaySpec;
use crate::infer::{InferOptions, SignaturePolicy};
use crate::pipeline::Mode;
pub use alarm::AlarmSettings;
use alarm::RawAlarm;
pub use buttons::ButtonSettings;
use buttons::RawButtons;
pub use capture::CaptureSettings;
use capture::RawCapture;
pub use detect::{board_search_path, detect_board};
pub use inference::LiveSettings;
use inference::{RawInference, RawXray};
use recording::RawRecording;
pub use recording::record_settings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("--board auto: {0}")]
    NotDetected(String),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    board: String,
    mode: Mode,
    source: String,
    /// `"fbdev:/dev/fb0"`, or a `[display]` table with `output` and
    /// `diagonal_in` (see [`display_table`]).
    display: toml::Value,
    #[serde(default)]
    model: Option<PathBuf>,
    #[serde(default)]
    capture: Option<RawCapture>,
    #[serde(default)]
    inference: Option<RawInference>,
    #[serde(default)]
    xray: Option<RawXray>,
    #[serde(default)]
    alarm: Option<RawAlarm>,
    #[serde(default)]
    buttons: Option<RawButtons>,
    #[serde(default)]
    recording: Option<RawRecording>,
    #[serde(default)]
    models: Option<RawModels>,
    #[serde(default)]
    limits: Option<RawLimits>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    decode_budget_mib: Option<u64>,
}

/// `[models]`: the bundle of each mode, for MODE.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModels {
    ultrasound: Option<PathBuf>,
    xray: Option<PathBuf>,
}

/// A validated board profile.
#[derive(Clone, Debug)]
pub struct BoardProfile {
    pub board: String,
    /// Where it was read from, and the SHA-256 of its text (hex): what an
    /// audit of a run names (`run_start` in `--jsonl`).
    pub path: PathBuf,
    pub sha256: String,
    pub mode: Mode,
    pub source: SourceSpec,
    pub display: DisplaySpec,
    /// `[display] diagonal_in`: the screen's diagonal in inches, which sizes
    /// the alarm banner's lettering for reading at 1 m.
    pub display_diagonal_in: Option<f32>,
    pub model: Option<PathBuf>,
    /// What live devices are asked for.
    pub capture: Option<CaptureSettings>,
    pub inference: InferOptions,
    pub signatures: SignaturePolicy,
    /// The live pipeline's settings (`[inference] stall_after_ms`, `[xray]`).
    pub live: LiveSettings,
    /// `[alarm]`: overrides of the ultrasound detector's settings.
    pub alarm: AlarmSettings,
    /// `[buttons]`: where the operator's buttons are wired.
    pub buttons: ButtonSettings,
    /// `[recording]`: what RECORD writes; `None`: recording is off.
    pub recording: Option<crate::record::RecordSettings>,
    /// `[models]`: the bundle of each mode (MODE switches between them).
    pub models: ModeModels,
    /// `[limits] decode_budget_mib`: what one input may cost (`crate::budget`).
    pub decode_budget: crate::budget::DecodeBudget,
}

/// The bundle folder of each mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModeModels {
    pub ultrasound: Option<PathBuf>,
    pub xray: Option<PathBuf>,
}

impl ModeModels {
    pub fn get(&self, mode: Mode) -> Option<&Path> {
        match mode {
            Mode::Ultrasound => self.ultrasound.as_deref(),
            Mode::Xray => self.xray.as_deref(),
        }
    }
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
        let (display, display_diagonal_in) = display_table(&raw.display).map_err(bad)?;
        let capture = raw
            .capture
            .map(RawCapture::check)
            .transpose()
            .map_err(bad)?;
        let (inference, signatures, stall_after, result_valid) = match raw.inference {
            None => Default::default(),
            Some(i) => i.check().map_err(bad)?,
        };
        let (trigger, stable_frames) = match raw.xray {
            None => (None, None),
            Some(x) => x.check().map_err(bad)?,
        };
        let alarm = match raw.alarm {
            None => AlarmSettings::default(),
            Some(a) => a.check().map_err(bad)?,
        };
        let buttons = match raw.buttons {
            None => ButtonSettings::default(),
            Some(b) => b.check().map_err(bad)?,
        };
        let recording = raw
            .recording
            .map(RawRecording::check)
            .transpose()
            .map_err(bad)?;
        let decode_budget = match raw.limits.as_ref().and_then(|l| l.decode_budget_mib) {
            Some(mib) => crate::budget::DecodeBudget::from_mib(mib)
                .map_err(|e| bad(format!("limits.decode_budget_mib: {e}")))?,
            None => crate::budget::DecodeBudget::default(),
        };
        let mut models = raw
            .models
            .map(|m| ModeModels {
                ultrasound: m.ultrasound,
                xray: m.xray,
            })
            .unwrap_or_default();
        // The profile's own mode runs its `model`.
        let own = match raw.mode {
            Mode::Ultrasound => &mut models.ultrasound,
            Mode::Xray => &mut models.xray,
        };
        if own.is_none() {
            own.clone_from(&raw.model);
        }
        Ok(BoardProfile {
            decode_budget,
            board: raw.board,
            path: path.to_path_buf(),
            sha256: {
                use sha2::Digest;
                sha2::Sha256::digest(text.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            },
            mode: raw.mode,
            source,
            display,
            display_diagonal_in,
            model: raw.model,
            capture,
            inference,
            signatures,
            live: LiveSettings {
                stall_after,
                result_valid,
                trigger,
                stable_frames,
            },
            alarm,
            buttons,
            recording,
            models,
        })
    }
}

/// `display = "SPEC"`, or
///
/// ```toml
/// [display]
/// output = "fbdev:/dev/fb0"
/// diagonal_in = 7      # the panel's diagonal: sizes the alarm lettering
/// ```
fn display_table(value: &toml::Value) -> Result<(DisplaySpec, Option<f32>), String> {
    let spec =
        |s: &str| -> Result<DisplaySpec, String> { s.parse().map_err(|e| format!("display: {e}")) };
    match value {
        toml::Value::String(s) => Ok((spec(s)?, None)),
        toml::Value::Table(t) => {
            if let Some(k) = t
                .keys()
                .find(|k| !["output", "diagonal_in"].contains(&k.as_str()))
            {
                return Err(format!(
                    "display: unknown key '{k}' (expected output, diagonal_in)"
                ));
            }
            let output = match t.get("output") {
                Some(toml::Value::String(s)) => spec(s)?,
                Some(_) => return Err("display.output must be a string".into()),
                None => return Err("display: missing output (e.g. \"fbdev:/dev/fb0\")".into()),
            };
            let diagonal = match t.get("diagonal_in") {
                None => None,
                Some(v) => {
                    let d = v
                        .as_float()
                        .or_else(|| v.as_integer().map(|i| i as f64))
                        .filter(|d| (0.5..=100.0).contains(d))
                        .ok_or("display.diagonal_in must be the screen's diagonal in inches, 0.5 to 100")?;
                    Some(d as f32)
                }
            };
            Ok((output, diagonal))
        }
        _ => Err("display must be a string or a [display] table".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::detect::KNOWN_BOARDS;
    use super::*;
    use crate::capture::v4l2::CaptureFormat;
    use crate::infer::PrecisionPolicy;

    #[test]
    fn boards_are_detected_from_the_device_tree() {
        let dir = tempfile::tempdir().unwrap();
        let dt = dir.path();
        for (compatible, board) in [
            (&b"raspberrypi,4-model-b\0brcm,bcm2711\0"[..], "rpi4"),
            (b"raspberrypi,5-model-b\0brcm,bcm2712\0", "rpi5"),
            (
                b"nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0",
                "jetson-orin-nano",
            ),
            (b"linux,dummy-virt\0", "qemu-virt"),
        ] {
            std::fs::write(dt.join("compatible"), compatible).unwrap();
            assert_eq!(detect_board(dt).unwrap(), board);
        }
        std::fs::write(dt.join("compatible"), b"acme,toaster\0").unwrap();
        let e = detect_board(dt).unwrap_err().to_string();
        assert!(
            e.contains("acme,toaster") && e.contains("--board FILE"),
            "{e}"
        );
        let e = detect_board(&dt.join("none")).unwrap_err().to_string();
        assert!(e.contains("no device tree"), "{e}");
        // Every detected name has a profile in the checkout, and it loads.
        let boards = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("boards");
        for (_, board) in KNOWN_BOARDS {
            let p =
                BoardProfile::load_detected(board, &[dt.to_path_buf(), boards.clone()]).unwrap();
            assert_eq!(p.board, *board);
        }
        let e = BoardProfile::load_detected("rpi4", &[dt.to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no rpi4.toml"), "{e}");
    }

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

    #[test]
    fn the_display_table_gives_the_screen_size() {
        let head = "board = \"x\"\nmode = \"ultrasound\"\nsource = \"synthetic\"\n";
        let parse =
            |display: &str| BoardProfile::parse(Path::new("b.toml"), &format!("{head}{display}"));
        let p = parse("[display]\noutput = \"fbdev:/dev/fb0\"\ndiagonal_in = 7\n").unwrap();
        assert_eq!(p.display, DisplaySpec::Fbdev("/dev/fb0".into()));
        assert_eq!(p.display_diagonal_in, Some(7.0));
        let p = parse("[display]\noutput = \"none\"\ndiagonal_in = 10.1\n").unwrap();
        assert_eq!(p.display_diagonal_in, Some(10.1));
        assert_eq!(
            parse("display = \"none\"\n").unwrap().display_diagonal_in,
            None
        );
        for (bad, says) in [
            (
                "[display]\noutput = \"none\"\ndiagonal_in = 0\n",
                "diagonal_in must be",
            ),
            (
                "[display]\noutput = \"none\"\ndiagonal_in = \"7\"\n",
                "diagonal_in must be",
            ),
            ("[display]\ndiagonal_in = 7\n", "missing output"),
            (
                "[display]\noutput = \"none\"\ninches = 7\n",
                "unknown key 'inches'",
            ),
            ("[display]\noutput = \"vga:0\"\n", "unknown display"),
            ("display = 3\n", "string or a [display] table"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn every_shipped_board_profile_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                BoardProfile::load(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 4, "{n} profiles in {}", dir.display());
    }

    #[test]
    fn live_keys_reach_the_pipeline_settings() {
        use crate::buttons::Button;
        let p = BoardProfile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/rpi4.toml"))
            .unwrap();
        let buttons: Vec<(Button, String)> = p
            .buttons
            .pins
            .iter()
            .map(|(b, s)| (*b, s.to_string()))
            .collect();
        assert_eq!(
            buttons,
            vec![
                (Button::Freeze, "/dev/gpiochip0:17".to_string()),
                (Button::Record, "/dev/gpiochip0:27".to_string()),
                (Button::Mode, "/dev/gpiochip0:22".to_string()),
            ]
        );
        assert_eq!(p.live.trigger, Some(crate::pipeline::Trigger::Stable));
        assert_eq!(
            (p.models.get(Mode::Ultrasound), p.models.get(Mode::Xray)),
            (
                Some(Path::new("/usr/share/bedside/models/echo-ae-demo")),
                Some(Path::new("/usr/share/bedside/models/xray-demo"))
            ),
            "the profile's own mode runs its model; [models] names the other"
        );
        assert_eq!(p.live.stall_after, Some(std::time::Duration::from_secs(2)));
        let text = "board = \"t\"\nmode = \"ultrasound\"\nsource = \"synthetic\"\ndisplay = \"none\"\n[alarm]\nraise_after = 4\nwindow = 6\nclear_after = 20\nwarmup_ms = 2000\nerror_threshold = 0.5\n";
        let p = BoardProfile::parse(Path::new("t.toml"), text).unwrap();
        let d = p
            .alarm
            .apply(crate::analyze::anomaly::DetectorParams::new(0.1));
        assert_eq!(
            (
                d.raise_k,
                d.window,
                d.clear_m,
                d.warmup_us,
                d.error_threshold
            ),
            (4, 6, 20, 2_000_000, 0.5)
        );
    }

    #[test]
    fn inference_section_is_validated() {
        let base = "board = \"x\"\nmode = \"xray\"\nsource = \"synthetic\"\ndisplay = \"none\"\n";
        let p = |extra: &str| BoardProfile::parse(Path::new("b.toml"), &format!("{base}{extra}"));
        let d = p("").unwrap();
        assert_eq!(d.inference, InferOptions::default());
        assert!(!d.signatures.required);
        let key = crate::infer::SecretKey::from_seed([3; 32])
            .public()
            .to_hex();
        let ok = p(&format!(
            "[inference]\nprecision = \"f32\"\nthreads = 2\nrequire_signature = true\ntrusted_keys = [\"{key}\"]\n"
        ))
        .unwrap();
        assert_eq!(ok.inference.precision, PrecisionPolicy::F32);
        assert_eq!(ok.inference.threads, 2);
        assert!(ok.signatures.required && ok.signatures.trusted.len() == 1);
        for (extra, says) in [
            ("[inference]\nthreads = 0\n", "threads"),
            ("[inference]\nprecision = \"fp16\"\n", "fp16"),
            (
                "[inference]\nrequire_signature = true\n",
                "trusted_keys is empty",
            ),
            ("[inference]\ntrusted_keys = [\"abc\"]\n", "trusted_keys"),
        ] {
            let e = p(extra).unwrap_err().to_string();
            assert!(e.contains(says), "{extra}: {e}");
        }
    }

    #[test]
    fn capture_formats_follow_the_profile() {
        let base = "board = \"x\"\nmode = \"xray\"\nsource = \"synthetic\"\ndisplay = \"none\"\n[capture]\nwidth = 1920\nheight = 1080\nfps = 30\n";
        let p = |extra: &str| BoardProfile::parse(Path::new("b.toml"), &format!("{base}{extra}"));
        let c = p("").unwrap().capture.unwrap();
        assert_eq!(c.formats, CaptureFormat::DEFAULT_PREFERENCE);
        let c = p("formats = [\"MJPG\", \"yuyv\"]\n")
            .unwrap()
            .capture
            .unwrap();
        assert_eq!(c.formats, [CaptureFormat::Mjpeg, CaptureFormat::Yuyv]);
        assert_eq!((c.width, c.height, c.fps), (1920, 1080, 30));
        for (extra, says) in [
            ("formats = []\n", "empty"),
            ("formats = [\"H264\"]\n", "unknown capture format 'H264'"),
        ] {
            let e = p(extra).unwrap_err().to_string();
            assert!(e.contains(says), "{extra}: {e}");
        }
    }
}
