//! Board profiles (`boards/*.toml`, `--board FILE`) on arbitrary text: TOML
//! parsing and every validation behind it (source and display specs, SPI
//! panel options, capture formats, button pins, trusted keys, recording).
//! Shared by `fuzz_targets/board_profile.rs` and `tests/integration/fuzz_regressions.rs`.

use bedside::config::BoardProfile;

pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = BoardProfile::parse(std::path::Path::new("fuzz/board.toml"), text);
    }
}
