//! A log file that rotates by size: `--jsonl` on a cart that runs all day
//! must not fill the card.
//!
//! Lines go to `PATH` until it holds `max_bytes`; then, at the end of a
//! line, `PATH.{keep-1}` becomes `PATH.{keep}` (the oldest is replaced), and
//! so on down to `PATH` becoming `PATH.1`, and a new `PATH` is started. At
//! most `keep + 1` files exist, each at most one line over `max_bytes`.
//! Files are created 0600 ([`crate::private_output`]): the log is tied to
//! the frames by time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Default size of one `--jsonl` file before it rotates.
pub const DEFAULT_MAX_MIB: u64 = 64;
/// Default number of rotated files kept beside the current one.
pub const DEFAULT_KEEP: u32 = 4;

pub struct RotatingLog {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    max_bytes: u64,
    keep: u32,
}

impl RotatingLog {
    /// Opens `path` (appended to with `append`, whose size then counts).
    pub fn open(
        path: &Path,
        append: bool,
        max_bytes: u64,
        keep: u32,
    ) -> std::io::Result<RotatingLog> {
        let file = crate::private_output::open(path, append)?;
        let written = if append { file.metadata()?.len() } else { 0 };
        Ok(RotatingLog {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            written,
            max_bytes: max_bytes.max(1),
            keep,
        })
    }

    /// `PATH.n`.
    pub fn rotated(path: &Path, n: u32) -> PathBuf {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if self.keep == 0 {
            // Nothing kept: start the file again.
            self.out = BufWriter::new(crate::private_output::open(&self.path, false)?);
            self.written = 0;
            return Ok(());
        }
        for n in (1..self.keep).rev() {
            let from = Self::rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, Self::rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, Self::rotated(&self.path, 1))?;
        self.out = BufWriter::new(crate::private_output::open(&self.path, false)?);
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        // Only at the end of a line: a record is never split across files.
        if self.written >= self.max_bytes && buf[..n].ends_with(b"\n") {
            self.rotate()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn rotates_at_line_ends_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut log = RotatingLog::open(&path, false, 100, 2).unwrap();
        for i in 0..40 {
            // Written in pieces, as a formatter does: never split.
            write!(log, "{{\"seq\":{i},").unwrap();
            writeln!(log, "\"pad\":\"{}\"}}", "x".repeat(20)).unwrap();
        }
        log.flush().unwrap();
        let (now, one, two) = (
            lines(&path),
            lines(&RotatingLog::rotated(&path, 1)),
            lines(&RotatingLog::rotated(&path, 2)),
        );
        assert!(
            !RotatingLog::rotated(&path, 3).exists(),
            "at most keep + 1 files"
        );
        for f in [&now, &one, &two] {
            for l in f.iter() {
                serde_json::from_str::<serde_json::Value>(l).unwrap();
            }
        }
        // The newest lines, in order, across the files; each full file
        // holds what fits in 100 bytes plus the line that crossed it.
        let all: Vec<u64> = two
            .iter()
            .chain(&one)
            .chain(&now)
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(*all.last().unwrap(), 39);
        assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "{all:?}");
        assert_eq!((one.len(), two.len()), (3, 3));
        for p in [path.clone(), RotatingLog::rotated(&path, 1)] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }

    #[test]
    fn an_appended_file_counts_what_it_already_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, "x".repeat(150) + "\n").unwrap();
        let mut log = RotatingLog::open(&path, true, 100, 1).unwrap();
        writeln!(log, "{{}}").unwrap();
        log.flush().unwrap();
        assert_eq!(lines(&path), Vec::<String>::new());
        assert_eq!(lines(&RotatingLog::rotated(&path, 1)).len(), 2);
    }
}
