//! The Linux text console under a framebuffer picture.
//!
//! While the console is in text mode it blinks its cursor and prints kernel
//! messages over whatever we draw. `KDSETMODE KD_GRAPHICS` on the active VT
//! stops that; the mode must be put back on exit, or the board is left with
//! a console that shows nothing. Restoring happens in `Drop`, and `run` turns
//! SIGINT/SIGTERM into a normal end of the frame loop
//! ([`crate::pipeline::stop_on_signals`]) so that `Drop` runs.

// The two ioctls need `unsafe`; nothing else here does.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const KDSETMODE: libc::c_ulong = 0x4B3A;
const KD_TEXT: libc::c_int = 0;
const KD_GRAPHICS: libc::c_int = 1;

/// The console in graphics mode, back in text mode when dropped.
pub struct GraphicsConsole {
    tty: File,
    path: PathBuf,
}

fn set_mode(tty: &File, mode: libc::c_int) -> std::io::Result<()> {
    // SAFETY: KDSETMODE takes its argument by value (an int); the descriptor
    // is open for the whole call because `tty` is borrowed.
    let r = unsafe { libc::ioctl(tty.as_raw_fd(), KDSETMODE as _, mode) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl GraphicsConsole {
    fn open(tty: &Path) -> std::io::Result<File> {
        OpenOptions::new().write(true).open(tty)
    }

    /// Puts the console of `tty` (normally `/dev/tty0`, the active VT) in
    /// graphics mode. Needs root or `CAP_SYS_TTY_CONFIG`.
    ///
    /// Opened write-only: on Debian and Pi OS `/dev/tty0` is `root:tty`
    /// mode 0620, so the `tty` group the service runs in may write it but
    /// not read it, and `KDSETMODE` asks for no read access (the kernel
    /// checks the capability, not the open mode).
    pub fn take(tty: &Path) -> std::io::Result<GraphicsConsole> {
        let file = Self::open(tty)?;
        set_mode(&file, KD_GRAPHICS)?;
        Ok(GraphicsConsole {
            tty: file,
            path: tty.to_path_buf(),
        })
    }
}

impl Drop for GraphicsConsole {
    fn drop(&mut self) {
        match set_mode(&self.tty, KD_TEXT) {
            Ok(()) => tracing::info!("{}: console back in text mode", self.path.display()),
            Err(e) => tracing::error!(
                "{}: cannot put the console back in text mode: {e}",
                self.path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_console_is_refused() {
        assert!(GraphicsConsole::take(Path::new("/nonexistent/tty0")).is_err());
        // A regular file answers no console ioctl (ENOTTY).
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = GraphicsConsole::take(f.path()).err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
    }

    #[test]
    fn the_console_is_opened_write_only() {
        // /dev/tty0 is mode 0620 root:tty: a read-write open by the
        // service's user (group tty) is refused with EACCES, so the console
        // would stay in text mode under the picture. Root ignores the mode,
        // so check the open mode itself: /dev/null stands in for the tty.
        let f = GraphicsConsole::open(Path::new("/dev/null")).unwrap();
        // SAFETY: F_GETFL on a descriptor `f` keeps open.
        let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_ACCMODE, libc::O_WRONLY);
    }
}
