//! Board profiles (`boards/*.toml`): the capture device, display and mode a
//! board runs with, validated at load with clear errors. Command-line options
//! override profile values.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capture::SourceSpec;
use crate::capture::v4l2::CaptureFormat;
use crate::display::DisplaySpec;
use crate::infer::tract::MAX_THREADS;
use crate::infer::{InferOptions, PrecisionPolicy, PublicKey, SignaturePolicy};
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
    #[error("--board auto: {0}")]
    NotDetected(String),
}

/// Device-tree `compatible` strings of the boards we have profiles for,
/// most specific first. The profile is `<name>.toml`.
const KNOWN_BOARDS: &[(&str, &str)] = &[
    ("raspberrypi,5-model-b", "rpi5"),
    ("brcm,bcm2712", "rpi5"),
    ("raspberrypi,4-model-b", "rpi4"),
    ("brcm,bcm2711", "rpi4"),
    ("nvidia,p3768-0000+p3767-0005", "jetson-orin-nano"),
    ("nvidia,p3767-0005", "jetson-orin-nano"),
    ("nvidia,p3767-0003", "jetson-orin-nano"),
    ("linux,dummy-virt", "qemu-virt"),
];

/// Where `--board auto` looks for `<name>.toml`, in order: `$BEDSIDE_BOARDS`,
/// `/etc/bedside/boards` (local edits), `/usr/share/bedside/boards` (the
/// package), `./boards` (a checkout).
pub fn board_search_path() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("BEDSIDE_BOARDS")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    v.extend(["/etc/bedside/boards", "/usr/share/bedside/boards", "boards"].map(PathBuf::from));
    v
}

/// The profile name for the machine whose device tree is at `dt` (normally
/// `/proc/device-tree`), from its `compatible` list.
pub fn detect_board(dt: &Path) -> Result<&'static str, ConfigError> {
    let compatible = std::fs::read(dt.join("compatible")).map_err(|e| {
        ConfigError::NotDetected(format!(
            "{}: {e} (no device tree: not an Arm board? give --board FILE)",
            dt.join("compatible").display()
        ))
    })?;
    let names: Vec<&str> = compatible
        .split(|&b| b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .filter(|s| !s.is_empty())
        .collect();
    KNOWN_BOARDS
        .iter()
        .find(|(c, _)| names.contains(c))
        .map(|(_, board)| *board)
        .ok_or_else(|| {
            ConfigError::NotDetected(format!(
                "this machine's device tree is compatible with {}: no profile for it (give --board FILE)",
                if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
            ))
        })
}

impl BoardProfile {
    /// `--board auto` detects the board from `/proc/device-tree` and loads
    /// its profile from [`board_search_path`]; anything else is a file.
    pub fn load_arg(arg: &Path) -> Result<BoardProfile, ConfigError> {
        if arg != Path::new("auto") {
            return BoardProfile::load(arg);
        }
        let name = detect_board(Path::new("/proc/device-tree"))?;
        BoardProfile::load_detected(name, &board_search_path())
    }

    /// The first `<name>.toml` along `path`.
    pub fn load_detected(name: &str, path: &[PathBuf]) -> Result<BoardProfile, ConfigError> {
        let file = format!("{name}.toml");
        let found = path
            .iter()
            .map(|d| d.join(&file))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                ConfigError::NotDetected(format!(
                    "detected {name}, but no {file} in {}",
                    path.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        tracing::info!("--board auto: {name} ({})", found.display());
        BoardProfile::load(&found)
    }
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

/// `[recording]`: what RECORD writes, and where. Absent: nothing, ever.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecording {
    dir: PathBuf,
    /// "pictures" and/or "results"; no default, so the file says what is written.
    what: Vec<String>,
}

/// `[xray]`: when X-ray mode classifies.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawXray {
    trigger: Option<crate::pipeline::Trigger>,
    stable_frames: Option<u32>,
}

/// `[alarm]`: the ultrasound alarm's hysteresis and baseline.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlarm {
    /// Raise after this many abnormal frames among the last `window`.
    raise_after: Option<usize>,
    window: Option<usize>,
    /// Clear after this many normal frames in a row.
    clear_after: Option<usize>,
    /// Frame time the baseline is learned over.
    warmup_ms: Option<u64>,
    /// Reconstruction error for "unexpected content" (default: the bundle's).
    error_threshold: Option<f32>,
}

/// `[buttons]`: operator buttons on GPIO lines ("gpiochip0:17").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawButtons {
    freeze: Option<String>,
    record: Option<String>,
    mode: Option<String>,
    debounce_ms: Option<u64>,
}

/// `[inference]`: how the model runs and which bundles the board accepts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInference {
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapture {
    width: u32,
    height: u32,
    fps: u32,
    /// FourCCs the device may deliver, most wanted first (default: raw
    /// 4:2:2 first, MJPEG last; see `CaptureFormat::DEFAULT_PREFERENCE`).
    #[serde(default)]
    formats: Option<Vec<String>>,
}

/// `[capture]`: what a live device is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub formats: Vec<CaptureFormat>,
}

/// A validated board profile.
#[derive(Clone, Debug)]
pub struct BoardProfile {
    pub board: String,
    pub mode: Mode,
    pub source: SourceSpec,
    pub display: DisplaySpec,
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

/// "pictures,results" (or a list of them) as record settings for `dir`.
pub fn record_settings(
    dir: PathBuf,
    what: &[impl AsRef<str>],
) -> Result<crate::record::RecordSettings, String> {
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
    Ok(crate::record::RecordSettings {
        dir,
        pictures,
        results,
    })
}

/// The `[alarm]` keys a board may set; unset keys keep the detector's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AlarmSettings {
    pub raise_after: Option<usize>,
    pub window: Option<usize>,
    pub clear_after: Option<usize>,
    pub warmup_ms: Option<u64>,
    pub error_threshold: Option<f32>,
}

impl AlarmSettings {
    /// The detector's settings with this board's overrides.
    pub fn apply(
        &self,
        mut p: crate::analyze::anomaly::DetectorParams,
    ) -> crate::analyze::anomaly::DetectorParams {
        if let Some(v) = self.raise_after {
            p.raise_k = v;
        }
        if let Some(v) = self.window {
            p.window = v;
        }
        if let Some(v) = self.clear_after {
            p.clear_m = v;
        }
        if let Some(v) = self.warmup_ms {
            p.warmup_us = v * 1000;
        }
        if let Some(v) = self.error_threshold {
            p.error_threshold = v;
        }
        p
    }
}

/// The operator buttons a board has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ButtonSettings {
    pub pins: Vec<(crate::buttons::Button, crate::buttons::PinSpec)>,
    pub debounce: Option<std::time::Duration>,
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
            Some(c) => {
                let formats = match c.formats {
                    None => CaptureFormat::DEFAULT_PREFERENCE.to_vec(),
                    Some(names) if names.is_empty() => {
                        return Err(bad("capture formats: the list is empty".into()));
                    }
                    Some(names) => names
                        .iter()
                        .map(|n| n.parse::<CaptureFormat>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| bad(format!("capture formats: {e}")))?,
                };
                Some(CaptureSettings {
                    width: c.width,
                    height: c.height,
                    fps: c.fps,
                    formats,
                })
            }
            None => None,
        };
        let stall_after_ms = raw.inference.as_ref().and_then(|i| i.stall_after_ms);
        let result_valid = match raw.inference.as_ref().and_then(|i| i.result_valid_ms) {
            Some(ms) if !(100..=60_000).contains(&ms) => {
                return Err(bad(format!(
                    "inference.result_valid_ms = {ms}: give 100 to 60000"
                )));
            }
            ms => ms.map(std::time::Duration::from_millis),
        };
        let (inference, signatures) = match raw.inference {
            None => (InferOptions::default(), SignaturePolicy::default()),
            Some(i) => {
                if !(1..=MAX_THREADS).contains(&i.threads) {
                    return Err(bad(format!(
                        "inference.threads = {}: give 1 to {MAX_THREADS}",
                        i.threads
                    )));
                }
                let trusted = i
                    .trusted_keys
                    .iter()
                    .map(|k| PublicKey::from_hex(k))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("inference.trusted_keys: {e}")))?;
                if i.require_signature && trusted.is_empty() {
                    return Err(bad(
                        "inference.require_signature is set but trusted_keys is empty".into(),
                    ));
                }
                (
                    InferOptions {
                        precision: i.precision,
                        threads: i.threads,
                    },
                    SignaturePolicy {
                        required: i.require_signature,
                        trusted,
                    },
                )
            }
        };
        let stall_after = match stall_after_ms {
            Some(ms) if !(100..=3_600_000).contains(&ms) => {
                return Err(bad(format!(
                    "inference.stall_after_ms = {ms}: give 100 to 3600000"
                )));
            }
            ms => ms.map(std::time::Duration::from_millis),
        };
        let (trigger, stable_frames) = match raw.xray {
            None => (None, None),
            Some(RawXray {
                stable_frames: Some(n),
                ..
            }) if !(1..=600).contains(&n) => {
                return Err(bad(format!("xray.stable_frames = {n}: give 1 to 600")));
            }
            Some(x) => (x.trigger, x.stable_frames),
        };
        let alarm = match raw.alarm {
            None => AlarmSettings::default(),
            Some(a) => {
                use crate::analyze::anomaly::MAX_WINDOW;
                let window = a.window.unwrap_or(5);
                if !(1..=MAX_WINDOW).contains(&window) {
                    return Err(bad(format!(
                        "alarm.window = {window}: give 1 to {MAX_WINDOW}"
                    )));
                }
                let raise = a.raise_after.unwrap_or(3);
                if !(1..=window).contains(&raise) {
                    return Err(bad(format!(
                        "alarm.raise_after = {raise}: give 1 to the window ({window})"
                    )));
                }
                if let Some(c) = a.clear_after
                    && !(1..=600).contains(&c)
                {
                    return Err(bad(format!("alarm.clear_after = {c}: give 1 to 600")));
                }
                if let Some(w) = a.warmup_ms
                    && !(100..=60_000).contains(&w)
                {
                    return Err(bad(format!("alarm.warmup_ms = {w}: give 100 to 60000")));
                }
                if let Some(t) = a.error_threshold
                    && !(t.is_finite() && t > 0.0)
                {
                    return Err(bad(format!(
                        "alarm.error_threshold = {t}: give a positive number"
                    )));
                }
                AlarmSettings {
                    raise_after: a.raise_after,
                    window: a.window,
                    clear_after: a.clear_after,
                    warmup_ms: a.warmup_ms,
                    error_threshold: a.error_threshold,
                }
            }
        };
        let buttons = match raw.buttons {
            None => ButtonSettings::default(),
            Some(b) => {
                use crate::buttons::{Button, PinSpec};
                let mut pins: Vec<(Button, PinSpec)> = Vec::new();
                for (button, spec) in [
                    (Button::Freeze, &b.freeze),
                    (Button::Record, &b.record),
                    (Button::Mode, &b.mode),
                ] {
                    let Some(spec) = spec else { continue };
                    let pin: PinSpec = spec
                        .parse()
                        .map_err(|e| bad(format!("buttons.{}: {e}", button.name())))?;
                    if let Some((other, _)) = pins
                        .iter()
                        .find(|(_, p)| p.chip == pin.chip && p.line == pin.line)
                    {
                        return Err(bad(format!(
                            "buttons.{} and buttons.{} are both on {}",
                            other.name(),
                            button.name(),
                            pin
                        )));
                    }
                    pins.push((button, pin));
                }
                let debounce = match b.debounce_ms {
                    Some(ms) if !(1..=1000).contains(&ms) => {
                        return Err(bad(format!("buttons.debounce_ms = {ms}: give 1 to 1000")));
                    }
                    ms => ms.map(std::time::Duration::from_millis),
                };
                ButtonSettings { pins, debounce }
            }
        };
        let recording = match raw.recording {
            None => None,
            Some(r) if !r.dir.is_absolute() => {
                return Err(bad(format!(
                    "recording.dir = {}: give an absolute path",
                    r.dir.display()
                )));
            }
            Some(r) => Some(
                record_settings(r.dir, &r.what).map_err(|e| bad(format!("recording.what: {e}")))?,
            ),
        };
        let decode_budget = match raw.limits.as_ref().and_then(|l| l.decode_budget_mib) {
            Some(mib) => crate::budget::DecodeBudget::from_mib(mib)
                .map_err(|e| bad(format!("limits.decode_budget_mib: {e}")))?,
            None => crate::budget::DecodeBudget::default(),
        };
        Ok(BoardProfile {
            decode_budget,
            board: raw.board,
            mode: raw.mode,
            source,
            display,
            model: raw.model.clone(),
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
            models: {
                let mut m = raw
                    .models
                    .map(|m| ModeModels {
                        ultrasound: m.ultrasound,
                        xray: m.xray,
                    })
                    .unwrap_or_default();
                // The profile's own mode runs its `model`.
                let own = match raw.mode {
                    Mode::Ultrasound => &mut m.ultrasound,
                    Mode::Xray => &mut m.xray,
                };
                if own.is_none() {
                    own.clone_from(&raw.model);
                }
                m
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
