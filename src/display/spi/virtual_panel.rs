//! A virtual MIPI DCS panel for tests: an `SpiDevice` and a D/C `OutputPin`
//! that decode the byte stream the way a controller does (D/C low: command,
//! high: its parameters or pixel data) into panel memory.
//!
//! Decoded: CASET/RASET (the address window), RAMWR (RGB565 big-endian
//! pixels, written left to right, top to bottom within the window) and
//! MADCTL (kept, so tests can check the axis exchange of rotated
//! orientations). Memory is kept in the host's (logical) addressing: the
//! controller's own mapping of it onto the glass is its business, set by
//! MADCTL.

use std::sync::{Arc, Mutex};

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin};
use embedded_hal::spi::{ErrorType, Operation, SpiDevice};

const CASET: u8 = 0x2A;
const RASET: u8 = 0x2B;
const RAMWR: u8 = 0x2C;
const MADCTL: u8 = 0x36;
/// Addresses are at most 9 bits on these controllers (320 lines).
const SIDE: usize = 320;

#[derive(Default)]
struct State {
    data: bool,
    command: Option<u8>,
    args: Vec<u8>,
    window: (u16, u16, u16, u16),
    cursor: (u16, u16),
    half: Option<u8>,
    madctl: u8,
    memory: Vec<u16>,
    largest: usize,
}

impl State {
    fn command(&mut self, c: u8) {
        self.command = Some(c);
        self.args.clear();
        self.half = None;
        if c == RAMWR {
            self.cursor = (self.window.0, self.window.2);
        }
    }

    fn data(&mut self, b: u8) {
        match self.command {
            Some(CASET | RASET) => {
                self.args.push(b);
                if self.args.len() == 4 {
                    let a = u16::from_be_bytes([self.args[0], self.args[1]]);
                    let z = u16::from_be_bytes([self.args[2], self.args[3]]);
                    if self.command == Some(CASET) {
                        (self.window.0, self.window.1) = (a, z);
                    } else {
                        (self.window.2, self.window.3) = (a, z);
                    }
                }
            }
            Some(MADCTL) => self.madctl = b,
            Some(RAMWR) => match self.half.take() {
                None => self.half = Some(b),
                Some(hi) => {
                    let (x, y) = self.cursor;
                    let (x0, x1, _, y1) = self.window;
                    assert!(
                        (x as usize) < SIDE && (y as usize) < SIDE,
                        "pixel at {x},{y} is off the panel"
                    );
                    assert!(y <= y1, "more pixels than the window holds");
                    self.memory[y as usize * SIDE + x as usize] = u16::from_be_bytes([hi, b]);
                    self.cursor = if x >= x1 { (x0, y + 1) } else { (x + 1, y) };
                }
            },
            _ => {}
        }
    }
}

/// The panel's memory and what it was told.
#[derive(Clone)]
pub struct VirtualPanel(Arc<Mutex<State>>);

pub struct FakeSpi(Arc<Mutex<State>>, usize);
pub struct FakeDc(Arc<Mutex<State>>);
pub struct NoDelay;

pub fn delay() -> NoDelay {
    NoDelay
}

impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _: u32) {}
}

impl VirtualPanel {
    /// A panel, the SPI device and the D/C line that reach it; transfers
    /// longer than `bufsiz` fail as spidev's do.
    pub fn new(bufsiz: usize) -> (VirtualPanel, FakeSpi, FakeDc) {
        let state = Arc::new(Mutex::new(State {
            memory: vec![0; SIDE * SIDE],
            ..State::default()
        }));
        (
            VirtualPanel(state.clone()),
            FakeSpi(state.clone(), bufsiz),
            FakeDc(state),
        )
    }

    /// The top-left `w` x `h` pixels as addressed by the host.
    pub fn logical_rgb565(&self, w: u32, h: u32) -> Vec<u16> {
        let s = self.0.lock().unwrap();
        (0..h as usize)
            .flat_map(|y| s.memory[y * SIDE..y * SIDE + w as usize].to_vec())
            .collect()
    }

    /// MADCTL's row/column exchange bit (MV), set for 90 and 270 degrees.
    pub fn madctl_swaps_axes(&self) -> bool {
        self.0.lock().unwrap().madctl & 0x20 != 0
    }

    pub fn largest_transfer(&self) -> usize {
        self.0.lock().unwrap().largest
    }
}

impl ErrorType for FakeSpi {
    type Error = core::convert::Infallible;
}

impl SpiDevice for FakeSpi {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
        let mut s = self.0.lock().unwrap();
        for op in operations {
            if let Operation::Write(bytes) = op {
                assert!(
                    bytes.len() <= self.1,
                    "a {}-byte transfer exceeds bufsiz {}",
                    bytes.len(),
                    self.1
                );
                s.largest = s.largest.max(bytes.len());
                for &b in bytes.iter() {
                    if s.data { s.data(b) } else { s.command(b) }
                }
            }
        }
        Ok(())
    }
}

impl PinErrorType for FakeDc {
    type Error = core::convert::Infallible;
}

impl OutputPin for FakeDc {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.0.lock().unwrap().data = false;
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.0.lock().unwrap().data = true;
        Ok(())
    }
}
