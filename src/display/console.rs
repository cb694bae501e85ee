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
    /// Puts the console of `tty` (normally `/dev/tty0`, the active VT) in
    /// graphics mode. Needs root or `CAP_SYS_TTY_CONFIG`.
    pub fn take(tty: &Path) -> std::io::Result<GraphicsConsole> {
        let file = OpenOptions::new().read(true).write(true).open(tty)?;
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
}
