//! `--board auto`: which board this is, from its device tree, and where
//! its profile is.

use std::path::{Path, PathBuf};

use super::{BoardProfile, ConfigError};

/// Device-tree `compatible` strings of the boards we have profiles for,
/// most specific first. The profile is `<name>.toml`.
pub(super) const KNOWN_BOARDS: &[(&str, &str)] = &[
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
