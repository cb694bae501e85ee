//! Digital-video timings of HDMI/SDI inputs (feature `v4l2`).
//!
//! An HDMI grabber's picture size is not ours to choose: it is what the
//! cart sends. A receiver (vivid's HDMI input, the TC358743 bridge on a
//! Pi, most SDI cards) reports what it locks on with `VIDIOC_QUERY_DV_TIMINGS`
//! and captures only after the application sets those timings. And when
//! the cable is pulled or the cart switches resolution, frames may keep
//! coming as noise: only the query says there is no signal. So an input
//! with DV timings is queried at open (and the detected timings set) and
//! after every frame; any change closes the stream, which is reopened on
//! the new timings, and no signal is "no signal", never a frame of noise.
//!
//! The `v4l` crate 0.14 has no DV-timings calls: raw ioctls on its bindings
//! (one of the few places `unsafe` is allowed, see `lib.rs`).
#![allow(unsafe_code)]

use std::io;
use std::os::raw::{c_int, c_ulong, c_void};

use v4l::v4l_sys::{v4l2_dv_timings, v4l2_enum_dv_timings, v4l2_input};

const fn ioc(dir: c_ulong, nr: c_ulong, size: usize) -> c_ulong {
    (dir << 30) | ((size as c_ulong) << 16) | ((b'V' as c_ulong) << 8) | nr
}
const READ: c_ulong = 2;
const READ_WRITE: c_ulong = 3;
const TIMINGS: usize = std::mem::size_of::<v4l2_dv_timings>();
const VIDIOC_ENUMINPUT: c_ulong = ioc(READ_WRITE, 26, std::mem::size_of::<v4l2_input>());
const VIDIOC_G_INPUT: c_ulong = ioc(READ, 38, std::mem::size_of::<c_int>());
const VIDIOC_S_DV_TIMINGS: c_ulong = ioc(READ_WRITE, 87, TIMINGS);
const VIDIOC_G_DV_TIMINGS: c_ulong = ioc(READ_WRITE, 88, TIMINGS);
const VIDIOC_ENUM_DV_TIMINGS: c_ulong =
    ioc(READ_WRITE, 98, std::mem::size_of::<v4l2_enum_dv_timings>());
const VIDIOC_QUERY_DV_TIMINGS: c_ulong = ioc(READ, 99, TIMINGS);
/// `V4L2_IN_CAP_DV_TIMINGS`: the input is set by DV timings, not a size.
const IN_CAP_DV_TIMINGS: u32 = 2;
const ENOLCK: i32 = 37;
const ERANGE: i32 = 34;
const ENOLINK: i32 = 67;

/// One set of DV timings, as the driver filled it in.
#[derive(Clone, Copy)]
pub struct Timings(v4l2_dv_timings);

impl Timings {
    pub fn width(&self) -> u32 {
        // SAFETY: type 0 (BT.656/1120) is the only kind defined; `bt` is its layout.
        unsafe { self.0.__bindgen_anon_1.bt.width }
    }
    pub fn height(&self) -> u32 {
        // SAFETY: as in `width`.
        unsafe { self.0.__bindgen_anon_1.bt.height }
    }
    fn interlaced(&self) -> bool {
        // SAFETY: as in `width`.
        unsafe { self.0.__bindgen_anon_1.bt.interlaced != 0 }
    }
    fn pixelclock(&self) -> u64 {
        // SAFETY: as in `width`.
        unsafe { self.0.__bindgen_anon_1.bt.pixelclock }
    }
    /// Frames per second from the pixel clock and the total frame size.
    pub fn fps(&self) -> f64 {
        // SAFETY: as in `width`.
        let bt = unsafe { self.0.__bindgen_anon_1.bt };
        let htotal = u64::from(bt.width + bt.hfrontporch + bt.hsync + bt.hbackporch);
        let vtotal = u64::from(bt.height + bt.vfrontporch + bt.vsync + bt.vbackporch)
            + if bt.interlaced != 0 {
                u64::from(bt.il_vfrontporch + bt.il_vsync + bt.il_vbackporch + bt.height)
            } else {
                0
            };
        let pixels = htotal * vtotal;
        if pixels == 0 {
            0.0
        } else {
            bt.pixelclock as f64 / pixels as f64
        }
    }
    /// The same picture: size, scan and pixel clock.
    pub fn same_as(&self, other: &Timings) -> bool {
        (
            self.width(),
            self.height(),
            self.interlaced(),
            self.pixelclock(),
        ) == (
            other.width(),
            other.height(),
            other.interlaced(),
            other.pixelclock(),
        )
    }
}

impl std::fmt::Display for Timings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scan = if self.interlaced() { 'i' } else { 'p' };
        write!(
            f,
            "{}x{}{scan}{:.2}",
            self.width(),
            self.height(),
            self.fps()
        )
    }
}

/// What the receiver sees on its input.
pub enum Signal {
    Locked(Timings),
    /// No signal, no lock, or out of range: the reason in words.
    Lost(&'static str),
}

fn zeroed<T>() -> T {
    // SAFETY: only used for the plain C structs of the V4L2 API, for which
    // all-zero bytes are a valid value (and what the API asks callers to pass).
    unsafe { std::mem::zeroed() }
}

fn ioctl<T>(fd: c_int, request: c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is the struct `request` is defined with (sizes in the codes above).
    unsafe { v4l::v4l2::ioctl(fd, request as _, arg as *mut T as *mut c_void) }
}

/// Whether the device's current input is set by DV timings (HDMI, SDI, DVI).
pub fn input_uses_timings(fd: c_int) -> bool {
    let mut index: c_int = 0;
    if ioctl(fd, VIDIOC_G_INPUT, &mut index).is_err() {
        return false;
    }
    let mut input: v4l2_input = zeroed();
    input.index = index as u32;
    ioctl(fd, VIDIOC_ENUMINPUT, &mut input).is_ok() && input.capabilities & IN_CAP_DV_TIMINGS != 0
}

/// What the receiver detects now. `Err` only for a failing device (ENODEV,
/// or a driver that cannot detect: then there is nothing to check).
pub fn query(fd: c_int) -> io::Result<Signal> {
    let mut t: v4l2_dv_timings = zeroed();
    match ioctl(fd, VIDIOC_QUERY_DV_TIMINGS, &mut t) {
        Ok(()) => Ok(Signal::Locked(Timings(t))),
        Err(e) => match e.raw_os_error() {
            Some(ENOLINK) => Ok(Signal::Lost("no signal on the input")),
            Some(ENOLCK) => Ok(Signal::Lost("the input cannot lock on the signal")),
            Some(ERANGE) => Ok(Signal::Lost("the signal is out of the input's range")),
            _ => Err(e),
        },
    }
}

/// The timings the input is set to.
pub fn current(fd: c_int) -> io::Result<Timings> {
    let mut t: v4l2_dv_timings = zeroed();
    ioctl(fd, VIDIOC_G_DV_TIMINGS, &mut t)?;
    Ok(Timings(t))
}

/// Sets the input (or, on an output node, the output) to `t`.
pub fn set(fd: c_int, t: &Timings) -> io::Result<()> {
    let mut t = t.0;
    ioctl(fd, VIDIOC_S_DV_TIMINGS, &mut t)
}

/// The `index`th timings the device supports (`None` past the last).
pub fn supported(fd: c_int, index: u32) -> Option<Timings> {
    let mut e: v4l2_enum_dv_timings = zeroed();
    e.index = index;
    ioctl(fd, VIDIOC_ENUM_DV_TIMINGS, &mut e).ok()?;
    Some(Timings(e.timings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_codes_match_the_kernel_header() {
        // linux/videodev2.h as compiled for arm64 and x86_64.
        assert_eq!(TIMINGS, 132);
        assert_eq!(VIDIOC_QUERY_DV_TIMINGS, 0x8084_5663);
        assert_eq!(VIDIOC_S_DV_TIMINGS, 0xc084_5657);
        assert_eq!(VIDIOC_G_DV_TIMINGS, 0xc084_5658);
        assert_eq!(VIDIOC_ENUM_DV_TIMINGS, 0xc094_5662);
        assert_eq!(VIDIOC_G_INPUT, 0x8004_5626);
        assert_eq!(VIDIOC_ENUMINPUT, 0xc050_561a);
    }

    #[test]
    fn timings_print_as_people_write_them() {
        let mut t: v4l2_dv_timings = zeroed();
        // CEA-861 640x480p59.94.
        t.__bindgen_anon_1.bt.width = 640;
        t.__bindgen_anon_1.bt.height = 480;
        t.__bindgen_anon_1.bt.pixelclock = 25_175_000;
        t.__bindgen_anon_1.bt.hfrontporch = 16;
        t.__bindgen_anon_1.bt.hsync = 96;
        t.__bindgen_anon_1.bt.hbackporch = 48;
        t.__bindgen_anon_1.bt.vfrontporch = 10;
        t.__bindgen_anon_1.bt.vsync = 2;
        t.__bindgen_anon_1.bt.vbackporch = 33;
        let a = Timings(t);
        assert_eq!(a.to_string(), "640x480p59.94");
        let mut b = a;
        b.0.__bindgen_anon_1.bt.width = 1280;
        assert!(a.same_as(&a) && !a.same_as(&b));
    }
}
