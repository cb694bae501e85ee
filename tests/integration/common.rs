//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command running the `bedside` binary. Under user-mode QEMU a child
/// process of another architecture needs the emulator in front of it
/// (binfmt_misc is not available here): scripts/test sets BEDSIDE_TEST_RUNNER.
pub fn bedside() -> Command {
    let bin = env!("CARGO_BIN_EXE_bedside");
    match std::env::var("BEDSIDE_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut parts = runner.split_whitespace();
            let mut c = Command::new(parts.next().unwrap_or("qemu-aarch64"));
            c.args(parts).arg(bin);
            c
        }
        _ => Command::new(bin),
    }
}

/// The program and leading arguments that run bedside: the binary, with
/// the emulator in front of it under qemu-user (as [`bedside`]).
pub fn bedside_argv() -> Vec<String> {
    let bin = env!("CARGO_BIN_EXE_bedside").to_string();
    match std::env::var("BEDSIDE_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => runner
            .split_whitespace()
            .map(String::from)
            .chain([bin])
            .collect(),
        _ => vec![bin],
    }
}

/// Runs bedside with `args`, returning (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = bedside().args(args).output().expect("spawn bedside");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into(),
        String::from_utf8_lossy(&stderr).into(),
    )
}

/// Asserts the contract for bad input: exit 1, exactly one line on stderr that
/// contains every fragment, and no panic.
pub fn assert_clean_failure(args: &[&str], fragments: &[&str]) {
    let (code, _out, err) = run(args);
    assert_eq!(code, 1, "exit code for {args:?}; stderr: {err}");
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line for {args:?}, got: {err}");
    for f in fragments {
        assert!(lines[0].contains(f), "{args:?}: '{}' lacks '{f}'", lines[0]);
    }
}

/// Copies a model bundle folder.
pub fn copy_bundle(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replaces a bundle's model file with `bytes` and makes the manifest's
/// sha256 agree, so the checks behind the hash are what is tested.
pub fn replace_model(bundle: &Path, file: &str, bytes: &[u8]) {
    let path = bundle.join(file);
    let old = sha256_hex(&std::fs::read(&path).unwrap());
    std::fs::write(&path, bytes).unwrap();
    let manifest = bundle.join("manifest.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        text.contains(&old),
        "{} does not name {file}'s hash",
        manifest.display()
    );
    std::fs::write(&manifest, text.replace(&old, &sha256_hex(bytes))).unwrap();
}

/// Edits a bundle's manifest text.
pub fn edit_manifest(bundle: &Path, edits: &[(&str, &str)]) {
    let manifest = bundle.join("manifest.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "manifest lacks {from:?}");
        text = text.replace(from, to);
    }
    std::fs::write(&manifest, text).unwrap();
}

/// Deterministic pseudo-random bytes (xorshift64*), for hostile inputs.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Every record of a `--jsonl` log, one JSON value per line.
pub fn jsonl_all(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The records of a `--jsonl` log about frames and devices: without the
/// run's start and end, the alarms' rise and end, button presses, mode
/// changes and the model's stalls.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    records(&std::fs::read_to_string(path).unwrap())
}

/// The frame and device records of `--jsonl` text (see [`jsonl`]).
pub fn records(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| {
            !matches!(
                l["status"].as_str(),
                Some(
                    "run_start"
                        | "run_end"
                        | "alarm_raised"
                        | "alarm_cleared"
                        | "button"
                        | "mode_change"
                        | "stall"
                        | "stall_ended"
                )
            )
        })
        .collect()
}

/// A log writer the test reads back (the pipeline's tracing or JSONL output).
#[derive(Clone, Default)]
pub struct Log(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Log {
    /// What was written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
