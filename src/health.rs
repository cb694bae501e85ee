//! Telling systemd how the run is doing (`Type=notify`, `WatchdogSec=`):
//! `READY=1` once the first frame is through, `WATCHDOG=1` while frames
//! keep coming, `STOPPING=1` on the way out. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call does nothing.
//!
//! The protocol is one datagram per message to the socket systemd names
//! (a path, or an abstract name starting with `@`); it is small enough
//! that a crate for it would be more code to audit than this.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// The connection to systemd's notification socket, if there is one.
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    /// Half of `WATCHDOG_USEC`, as systemd recommends; `None`: no watchdog.
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
    ready: bool,
}

impl Notifier {
    /// From the environment systemd sets (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
    /// `WATCHDOG_PID`). A socket that cannot be reached is logged once and
    /// ignored: the run itself must not fail because of it.
    pub fn from_env() -> Notifier {
        let watchdog_for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let ping_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && watchdog_for_us)
            .map(|u| Duration::from_micros(u / 2));
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .and_then(|name| match connect(&name) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("NOTIFY_SOCKET {name}: {e}; systemd will not hear from bedside");
                    None
                }
            });
        Notifier {
            socket,
            ping_every,
            last_ping: None,
            ready: false,
        }
    }

    /// Nothing to tell anyone (tests, runs outside systemd).
    pub fn none() -> Notifier {
        Notifier {
            socket: None,
            ping_every: None,
            last_ping: None,
            ready: false,
        }
    }

    fn send(&self, msg: &str) {
        if let Some((s, addr)) = &self.socket
            && let Err(e) = s.send_to_addr(msg.as_bytes(), addr)
        {
            tracing::debug!("notify {msg}: {e}");
        }
    }

    /// The frame loop went round (a frame shown, or NO SIGNAL shown while
    /// the camera is reopened): ready (once) and, at most every half
    /// watchdog period, alive. A hung loop stops these and systemd restarts
    /// the service.
    pub fn alive(&mut self) {
        if !self.ready {
            self.ready = true;
            self.send("READY=1\nSTATUS=running");
        }
        if let Some(every) = self.ping_every
            && self.last_ping.is_none_or(|t| t.elapsed() >= every)
        {
            self.last_ping = Some(Instant::now());
            self.send("WATCHDOG=1");
        }
    }

    /// A one-line status for `systemctl status`.
    pub fn status(&self, text: &str) {
        self.send(&format!("STATUS={text}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }
}

fn connect(name: &str) -> std::io::Result<(UnixDatagram, std::os::unix::net::SocketAddr)> {
    let addr = match name.strip_prefix('@') {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())?
        }
        None => std::os::unix::net::SocketAddr::from_pathname(name)?,
    };
    Ok((UnixDatagram::unbound()?, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_pings_at_most_every_half_period_and_stopping() {
        let dir = std::env::temp_dir().join(format!("bedside-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let listener = UnixDatagram::bind(&dir).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut n = Notifier {
            socket: Some(connect(dir.to_str().unwrap()).unwrap()),
            ping_every: Some(Duration::from_secs(3600)),
            last_ping: None,
            ready: false,
        };
        n.alive();
        n.alive();
        n.status("no signal");
        n.stopping();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(len) = listener.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
            if got.len() == 4 {
                break;
            }
        }
        let _ = std::fs::remove_file(&dir);
        assert_eq!(
            got,
            [
                "READY=1\nSTATUS=running",
                "WATCHDOG=1",
                "STATUS=no signal",
                "STOPPING=1"
            ]
        );
    }

    #[test]
    fn nothing_happens_without_systemd() {
        let mut n = Notifier::none();
        n.alive();
        n.stopping();
    }
}
