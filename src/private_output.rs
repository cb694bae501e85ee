//! Files that can hold patient data, made readable by their owner only.
//!
//! Ultrasound frames can carry burned-in patient names and IDs, and a
//! results log is tied to them by time. Whatever bedside writes of them
//! (headless screens, contact sheets, `--jsonl`, `preprocess` output, the
//! demo's output; recordings in `crate::record`) is created 0600 in
//! folders created 0700, whatever the umask. A file that already exists
//! is set to 0600 as it is opened; a folder that already exists keeps its
//! mode (it is the user's).

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Owner read and write only.
pub const FILE_MODE: u32 = 0o600;
/// Owner only.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents, each 0700.
pub fn create_dir_all(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Opens `path` for writing, 0600: emptied, or appended to with `append`.
pub fn open(path: &Path, append: bool) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .append(append)
        .truncate(!append)
        .mode(FILE_MODE)
        .open(path)?;
    // `mode` applies only to a file it creates.
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Writes `bytes` to `path` (replacing it), 0600.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    open(path, false)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_0600_and_new_folders_0700_whatever_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_dir_all(&sub).unwrap();
        assert_eq!((mode(&dir.path().join("a")), mode(&sub)), (0o700, 0o700));
        let f = sub.join("log.jsonl");
        std::fs::write(&f, b"old\n").unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        open(&f, true).unwrap().write_all(b"new\n").unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(std::fs::read(&f).unwrap(), b"old\nnew\n");
        write(&sub.join("x.png"), b"png").unwrap();
        assert_eq!(mode(&sub.join("x.png")), 0o600);
    }
}
