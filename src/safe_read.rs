//! Reading files from outside: opened once, checked on the open descriptor,
//! read through it with a cap.
//!
//! `std::fs::read` follows whatever the path names: a `model.onnx` that is
//! a symlink to `/dev/zero` reads until memory runs out, a FIFO blocks for
//! ever, a 3 GB file costs 3 GB; and a check made on the path before the
//! read (`metadata`, then `read`) can be raced by a file swapped in
//! between. Here the file is opened with `O_NONBLOCK` (a FIFO does not
//! block the open) and, for files bedside finds by itself (a bundle's
//! files, a hot folder's arrivals), `O_NOFOLLOW` (the last component may
//! not be a symlink; folders above it may be); then `fstat` on that
//! descriptor says what was opened: it must be a regular file within the
//! limit, and it is read through the same descriptor, never more than the
//! limit even if it grows meanwhile.
//!
//! A file named on the command line may be a symlink (the user chose it),
//! but what it points to must still be a regular file within the limit.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::budget::bytes_text;

/// Whether the last component of the path may be a symlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// Files bedside finds by itself: a symlink is refused.
    Refuse,
    /// Files the user named: followed.
    Follow,
}

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: no such file or directory", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: is a symbolic link (refused: {what} must be a regular file)", path.display())]
    Symlink { path: PathBuf, what: &'static str },
    #[error("{}: is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: {} is over the {} limit for {what}", path.display(), bytes_text(*size), bytes_text(*limit))]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ReadError {
    fn io(path: &Path, source: std::io::Error) -> ReadError {
        match source.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound {
                path: path.to_path_buf(),
            },
            _ => ReadError::Io {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

/// Reads the regular file at `path`, at most `limit` bytes; `what` names
/// it in errors ("a model file", "an image").
pub fn read_file(
    path: &Path,
    limit: u64,
    links: Links,
    what: &'static str,
) -> Result<Vec<u8>, ReadError> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // O_NOFOLLOW on a symlink: ELOOP.
            Some(libc::ELOOP) if links == Links::Refuse => ReadError::Symlink {
                path: path.to_path_buf(),
                what,
            },
            _ => ReadError::io(path, e),
        })?;
    let meta = file.metadata().map_err(|e| ReadError::io(path, e))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kind = if ft.is_dir() {
            "a folder"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    let too_large = |size| ReadError::TooLarge {
        path: path.to_path_buf(),
        what,
        size,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    read_capped(file, meta.len(), limit).map_err(|e| match e {
        Capped::Grew(size) => too_large(size),
        Capped::Io(e) => ReadError::io(path, e),
    })
}

enum Capped {
    Grew(u64),
    Io(std::io::Error),
}

/// Reads what `fstat` said is there, and refuses a file that grew past the
/// limit while it was read (one byte more than the limit is enough to know).
fn read_capped(file: File, expected: u64, limit: u64) -> Result<Vec<u8>, Capped> {
    let mut bytes = Vec::with_capacity(expected as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Capped::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Capped::Grew(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_within_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(
            read_file(&p, 10, Links::Refuse, "a test file").unwrap(),
            b"0123456789"
        );
        let e = read_file(&p, 9, Links::Refuse, "a test file").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: 10 bytes is over the 9 bytes limit for a test file",
                p.display()
            )
        );
    }

    #[test]
    fn symlinks_fifos_devices_and_folders_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("model.onnx");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = read_file(&link, 1 << 20, Links::Refuse, "a model file").unwrap_err();
        assert!(matches!(e, ReadError::Symlink { .. }), "{e}");
        // Followed, it names a character device: refused all the same.
        let e = read_file(&link, 1 << 20, Links::Follow, "a model file").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("is a character device, not a regular file"),
            "{e}"
        );
        let fifo = dir.path().join("fifo.dcm");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(nix_mkfifo(&c), 0);
        // Returns at once (O_NONBLOCK): a FIFO with no writer would block a plain open.
        let e = read_file(&fifo, 1 << 20, Links::Refuse, "an image").unwrap_err();
        assert!(
            e.to_string().ends_with("is a FIFO, not a regular file"),
            "{e}"
        );
        let e = read_file(dir.path(), 1 << 20, Links::Follow, "an image").unwrap_err();
        assert!(
            e.to_string().ends_with("is a folder, not a regular file"),
            "{e}"
        );
        let e = read_file(&dir.path().join("none"), 1, Links::Follow, "an image").unwrap_err();
        assert!(matches!(e, ReadError::NotFound { .. }), "{e}");
    }

    #[test]
    fn a_file_that_grows_while_read_is_cut_at_the_limit_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("growing");
        std::fs::write(&p, vec![7u8; 100]).unwrap();
        // fstat said 10 bytes; 100 are there by the time it is read.
        let e = read_capped(File::open(&p).unwrap(), 10, 50);
        assert!(matches!(e, Err(Capped::Grew(51))));
    }

    #[allow(unsafe_code)]
    fn nix_mkfifo(path: &std::ffi::CStr) -> i32 {
        // SAFETY: `path` is a valid NUL-terminated string for the call's duration.
        unsafe { libc::mkfifo(path.as_ptr(), 0o600) }
    }
}
