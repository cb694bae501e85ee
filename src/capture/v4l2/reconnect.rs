//! When and where to open a device again after it went away.
//!
//! A grabber that is unplugged, loses its USB link or stops sending frames
//! is closed and reopened with exponential backoff, forever: a cart runs all
//! day and the cable comes back. The device is reopened by a stable name
//! (`/dev/v4l/by-id/...`) when there is one, because a re-enumerated USB
//! device often comes back as another `/dev/videoN`.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exponential backoff between reopen attempts: 100 ms, 200 ms, ... up to 5 s.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    /// Attempts since the last success.
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
            attempts: 0,
        }
    }

    /// How long to wait before the next attempt; each call doubles the wait.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        self.attempts = self.attempts.saturating_add(1);
        d
    }

    /// A frame arrived: the next failure starts from the shortest wait.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.attempts = 0;
    }
}

/// Where udev keeps stable names of video devices.
pub const BY_ID: &str = "/dev/v4l/by-id";

/// The path to reopen `device` by: itself when it already is a link under
/// `by_id` (or `/dev/v4l/by-path`), else the `by_id` link that points at
/// the same node, else `device` (a built-in camera, or no udev).
pub fn stable_path(device: &Path, by_id: &Path) -> PathBuf {
    if device.starts_with(by_id) || device.starts_with("/dev/v4l/by-path") {
        return device.to_path_buf();
    }
    let Ok(target) = device.canonicalize() else {
        return device.to_path_buf();
    };
    let Ok(entries) = std::fs::read_dir(by_id) else {
        return device.to_path_buf();
    };
    let mut links: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.canonicalize().is_ok_and(|t| t == target))
        .collect();
    // udev makes `-video-index0` for the capture node and `-index1` for its
    // metadata node; both may point here only through one; prefer index0 and
    // otherwise the first name, so the choice is stable.
    links.sort();
    links
        .iter()
        .find(|p| p.to_string_lossy().ends_with("index0"))
        .or(links.first())
        .cloned()
        .unwrap_or_else(|| device.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.attempts, 8);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        assert_eq!(b.attempts, 1);
    }

    #[test]
    fn stable_name_is_found_for_a_plain_node() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("video2");
        std::fs::write(&node, b"").unwrap();
        std::fs::write(dir.path().join("video3"), b"").unwrap();
        let by_id = dir.path().join("by-id");
        std::fs::create_dir(&by_id).unwrap();
        let link = by_id.join("usb-MACROSILICON_USB_Video-video-index0");
        std::os::unix::fs::symlink(&node, &link).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("video3"),
            by_id.join("usb-Other-video-index0"),
        )
        .unwrap();
        assert_eq!(stable_path(&node, &by_id), link);
        // Given the stable name, keep it.
        assert_eq!(stable_path(&link, &by_id), link);
        // No link for it, or no udev at all: the node itself.
        let lone = dir.path().join("video9");
        std::fs::write(&lone, b"").unwrap();
        assert_eq!(stable_path(&lone, &by_id), lone);
        assert_eq!(stable_path(&node, &dir.path().join("absent")), node);
    }
}
