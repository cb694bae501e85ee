//! Operator buttons (FREEZE, RECORD, MODE) on GPIO lines, read through
//! embedded-hal's `InputPin` (linux-embedded-hal's `CdevPin` on a board:
//! the GPIO character device, no sysfs, no root).
//!
//! A reader thread polls the lines every [`POLL`] and debounces them: a
//! level must hold for the debounce time (default 30 ms, the board's
//! `[buttons] debounce_ms`) before it counts, and a press is counted on
//! the debounced change to "pressed". The frame loop reads press counts
//! from [`Presses`] (atomics: no lock, no allocation per frame).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use embedded_hal::digital::InputPin;

/// The operator's buttons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Button {
    /// X-ray: classify the picture now.
    Freeze,
    /// Start or stop recording (only where the profile configures it).
    Record,
    /// Switch between ultrasound and X-ray.
    Mode,
}

impl Button {
    pub const ALL: [Button; 3] = [Button::Freeze, Button::Record, Button::Mode];

    pub fn name(self) -> &'static str {
        match self {
            Button::Freeze => "freeze",
            Button::Record => "record",
            Button::Mode => "mode",
        }
    }
}

/// Debounced press counts, shared between the reader and the frame loop.
#[derive(Debug, Default)]
pub struct Presses {
    counts: [AtomicU64; 3],
}

impl Presses {
    pub fn count(&self, b: Button) -> u64 {
        self.counts[b as usize].load(Ordering::Relaxed)
    }

    pub fn press(&self, b: Button) {
        self.counts[b as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// How often the reader samples the lines.
pub const POLL: Duration = Duration::from_millis(5);

/// The default debounce time.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(30);

/// One line's debouncer: a level counts once it held for `hold`.
#[derive(Clone, Debug)]
pub struct Debouncer {
    hold: Duration,
    /// The debounced level (true: pressed); `None` before the first sample.
    level: Option<bool>,
    /// A different raw level seen since this time.
    changing_since: Option<Instant>,
}

impl Debouncer {
    /// The first sample sets the level without a press: a line that reads
    /// pressed from the start (a missing pull-up) never fires.
    pub fn new(hold: Duration) -> Debouncer {
        Debouncer {
            hold,
            level: None,
            changing_since: None,
        }
    }

    /// The debounced level, once sampled.
    pub fn level(&self) -> Option<bool> {
        self.level
    }

    /// Feeds a raw sample; true on a debounced press.
    pub fn sample(&mut self, pressed: bool, now: Instant) -> bool {
        let Some(level) = self.level else {
            self.level = Some(pressed);
            return false;
        };
        if pressed == level {
            self.changing_since = None;
            return false;
        }
        let since = *self.changing_since.get_or_insert(now);
        if now.duration_since(since) < self.hold {
            return false;
        }
        self.level = Some(pressed);
        self.changing_since = None;
        pressed
    }
}

/// Where a button is wired: `gpiochip0:17` (chip name or path, line
/// offset), active low unless `:active-high` follows (a button to ground
/// with the pull-up the board's overlay sets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinSpec {
    pub chip: PathBuf,
    pub line: u32,
    pub active_low: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadPin {
    #[error(
        "'{0}': expected CHIP:LINE[:active-high|:active-low], e.g. gpiochip0:17 or /dev/gpiochip4:23"
    )]
    Syntax(String),
    #[error("'{0}': line {1} is not a GPIO line number (0 to 511)")]
    Line(String, String),
}

impl FromStr for PinSpec {
    type Err = BadPin;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(':');
        let (Some(chip), Some(line)) = (parts.next(), parts.next()) else {
            return Err(BadPin::Syntax(s.into()));
        };
        let active_low = match parts.next() {
            None | Some("active-low") => true,
            Some("active-high") => false,
            Some(_) => return Err(BadPin::Syntax(s.into())),
        };
        if parts.next().is_some() || chip.is_empty() {
            return Err(BadPin::Syntax(s.into()));
        }
        let line = line
            .parse::<u32>()
            .ok()
            .filter(|l| *l < 512)
            .ok_or_else(|| BadPin::Line(s.into(), line.into()))?;
        let chip = if chip.contains('/') {
            PathBuf::from(chip)
        } else if chip.starts_with("gpiochip") {
            Path::new("/dev").join(chip)
        } else {
            return Err(BadPin::Syntax(s.into()));
        };
        Ok(PinSpec {
            chip,
            line,
            active_low,
        })
    }
}

impl std::fmt::Display for PinSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}{}",
            self.chip.display(),
            self.line,
            if self.active_low { "" } else { ":active-high" }
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{button} button on {pin}: {reason}")]
pub struct ButtonError {
    pub button: &'static str,
    pub pin: String,
    pub reason: String,
}

/// The reader thread; dropping it stops it.
pub struct ButtonReader {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ButtonReader {
    /// Polls `pins` (any embedded-hal input pins) until dropped. A pin that
    /// fails to read is reported once and left out (the others go on).
    pub fn start<P: InputPin + Send + 'static>(
        pins: Vec<(Button, P)>,
        hold: Duration,
        presses: Arc<Presses>,
    ) -> std::io::Result<ButtonReader> {
        ButtonReader::start_with_clock(pins, hold, presses, Instant::now)
    }

    /// [`start`](Self::start) with the time of each round of samples taken
    /// from `clock` (read once per round, before the pins). A test drives
    /// its own clock so that the debouncing it checks does not depend on
    /// how often a loaded machine or an emulator lets this thread run.
    pub fn start_with_clock<P, C>(
        pins: Vec<(Button, P)>,
        hold: Duration,
        presses: Arc<Presses>,
        mut clock: C,
    ) -> std::io::Result<ButtonReader>
    where
        P: InputPin + Send + 'static,
        C: FnMut() -> Instant + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("buttons".into())
            .spawn(move || {
                let mut lines: Vec<(Button, P, Debouncer, bool)> = pins
                    .into_iter()
                    .map(|(b, p)| (b, p, Debouncer::new(hold), true))
                    .collect();
                while !st.load(Ordering::Relaxed) {
                    let now = clock();
                    for (button, pin, debouncer, working) in lines.iter_mut().filter(|l| l.3) {
                        match pin.is_high() {
                            Ok(level) => {
                                let first = debouncer.level().is_none();
                                if first && level {
                                    tracing::warn!(
                                        "{} button reads pressed at start: ignored until released (check its wiring and pull-up)",
                                        button.name()
                                    );
                                }
                                if debouncer.sample(level, now) {
                                    tracing::info!("{} pressed", button.name().to_uppercase());
                                    presses.press(*button);
                                }
                            }
                            Err(e) => {
                                tracing::error!(
                                    "{} button: cannot read its GPIO line ({e:?}); the button is ignored from now on",
                                    button.name()
                                );
                                *working = false;
                            }
                        }
                    }
                    std::thread::sleep(POLL);
                }
            })?;
        Ok(ButtonReader {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for ButtonReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Opens a button's line on the GPIO character device. The line is
/// requested active low when the spec says so, so `is_high()` means pressed.
#[cfg(target_os = "linux")]
pub fn open_cdev(
    button: Button,
    spec: &PinSpec,
) -> Result<linux_embedded_hal::CdevPin, ButtonError> {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    let err = |reason: String| ButtonError {
        button: button.name(),
        pin: spec.to_string(),
        reason,
    };
    if !spec.chip.exists() {
        return Err(err(format!(
            "{} does not exist (`ls /dev/gpiochip*`; on a Pi the header is gpiochip0 on Pi 4, gpiochip4 on Pi 5 before kernel 6.6)",
            spec.chip.display()
        )));
    }
    let mut chip = Chip::new(&spec.chip).map_err(|e| err(e.to_string()))?;
    let lines = chip.num_lines();
    if spec.line >= lines {
        return Err(err(format!(
            "{} has {lines} lines, no line {}",
            spec.chip.display(),
            spec.line
        )));
    }
    let mut flags = LineRequestFlags::INPUT;
    if spec.active_low {
        flags |= LineRequestFlags::ACTIVE_LOW;
    }
    let handle = chip
        .get_line(spec.line)
        .and_then(|l| l.request(flags, 0, &format!("bedside-{}", button.name())))
        .map_err(|e| {
            err(format!(
                "{e} (is the line used by another driver, e.g. gpio-keys?)"
            ))
        })?;
    linux_embedded_hal::CdevPin::new(handle).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bouncing_press_counts_once_and_a_short_glitch_not_at_all() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut d = Debouncer::new(Duration::from_millis(30));
        // Contact bounce for 12 ms, then held for 100 ms, then bounce on release.
        let mut presses = 0;
        assert!(!d.sample(false, t0), "the first sample sets the level");
        for t in (0..200).step_by(2) {
            let raw = match t {
                0..12 => (t / 2) % 2 == 0,
                12..112 => true,
                112..120 => (t / 2) % 2 == 1,
                _ => false,
            };
            presses += u32::from(d.sample(raw, ms(t)));
        }
        assert_eq!(presses, 1);
        // A line that reads pressed from the start fires only after a release.
        let mut d = Debouncer::new(Duration::from_millis(30));
        assert!(!(0..50).any(|t| d.sample(true, ms(t * 2))));
        // A 10 ms glitch is not a press.
        let mut d = Debouncer::new(Duration::from_millis(30));
        d.sample(false, ms(298));
        let glitch = (300..400)
            .step_by(2)
            .filter(|&t| d.sample((300..310).contains(&t), ms(t)))
            .count();
        assert_eq!(glitch, 0);
    }

    /// The reader thread on embedded-hal pins: a scripted line pressed for
    /// 60 ms twice gives two presses of that button and none of the other.
    /// The lines and the reader share a clock that moves [`POLL`] per round
    /// of samples, not with the wall clock: a reader thread starved of CPU
    /// (a loaded CI machine, qemu) still sees every scripted press (found as
    /// FREEZE counted once, not twice, under qemu on a loaded machine).
    #[test]
    fn the_reader_counts_debounced_presses_per_button() {
        use embedded_hal::digital::{ErrorType, InputPin};
        /// Milliseconds on the test's clock: the time of the current round.
        type Now = Arc<AtomicU64>;
        struct Scripted {
            now: Now,
            pressed: Vec<(u64, u64)>,
        }
        impl ErrorType for Scripted {
            type Error = core::convert::Infallible;
        }
        impl InputPin for Scripted {
            fn is_high(&mut self) -> Result<bool, Self::Error> {
                let t = self.now.load(Ordering::SeqCst);
                Ok(self.pressed.iter().any(|&(a, b)| (a..b).contains(&t)))
            }
            fn is_low(&mut self) -> Result<bool, Self::Error> {
                self.is_high().map(|h| !h)
            }
        }
        let now: Now = Arc::new(AtomicU64::new(0));
        // Each round reads the clock once: it returns the round's time and
        // leaves it for the pins, so round k samples the lines at k * POLL.
        let rounds = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let clock = {
            let (now, rounds) = (Arc::clone(&now), Arc::clone(&rounds));
            move || {
                let ms = rounds.fetch_add(1, Ordering::SeqCst) * POLL.as_millis() as u64;
                now.store(ms, Ordering::SeqCst);
                epoch + Duration::from_millis(ms)
            }
        };
        let presses = Arc::new(Presses::default());
        let reader = ButtonReader::start_with_clock(
            vec![
                (
                    Button::Freeze,
                    Scripted {
                        now: Arc::clone(&now),
                        pressed: vec![(20, 80), (150, 210)],
                    },
                ),
                (
                    Button::Record,
                    Scripted {
                        now: Arc::clone(&now),
                        pressed: vec![(40, 45)],
                    },
                ),
            ],
            Duration::from_millis(20),
            Arc::clone(&presses),
            clock,
        )
        .unwrap();
        // Wait for the rounds up to 300 ms on the test's clock (however long
        // the machine takes: the bound only catches a reader that hangs).
        let done = 300 / POLL.as_millis() as u64 + 1;
        let waited = Instant::now();
        while rounds.load(Ordering::SeqCst) <= done {
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "the reader thread did only {} rounds in 60 s",
                rounds.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(reader);
        assert_eq!(presses.count(Button::Freeze), 2);
        assert_eq!(presses.count(Button::Record), 0, "a 5 ms blip is bounce");
        assert_eq!(presses.count(Button::Mode), 0);
    }

    #[test]
    fn pin_specs_parse_and_reject() {
        assert_eq!(
            "gpiochip0:17".parse::<PinSpec>().unwrap(),
            PinSpec {
                chip: "/dev/gpiochip0".into(),
                line: 17,
                active_low: true
            }
        );
        let p: PinSpec = "/dev/gpiochip4:23:active-high".parse().unwrap();
        assert_eq!((p.line, p.active_low), (23, false));
        for bad in [
            "17",
            "gpiochip0",
            "gpiochip0:x",
            "gpiochip0:600",
            "gpiochip0:3:sideways",
            ":3",
            "chip:3",
        ] {
            assert!(bad.parse::<PinSpec>().is_err(), "{bad}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_missing_gpio_chip_is_one_clear_error() {
        let spec: PinSpec = "/dev/gpiochip-none:17".parse().unwrap();
        let e = open_cdev(Button::Freeze, &spec).err().unwrap().to_string();
        assert!(
            e.starts_with(
                "freeze button on /dev/gpiochip-none:17: /dev/gpiochip-none does not exist"
            ),
            "{e}"
        );
    }
}
