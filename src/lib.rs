//! # bedside
//!
//! A runtime for small Arm boards beside ultrasound and X-ray carts: it takes
//! the cart's video or images, preprocesses them in fixed point, runs an int8
//! model with tract, and shows the result on a screen attached to the board.
//!
//! ## A frame's journey
//!
//! 1. A [`capture::FrameSource`] delivers a [`frame::Frame`] (pixels, format,
//!    geometry, and [`frame::FrameMeta`] with sequence number and time).
//! 2. The [`preprocess::Preprocessor`] turns it into a display copy (8-bit gray)
//!    and the model's int8 input, following the bundle's chain spec.
//! 3. The [`infer::Model`] (tract, from a verified [`infer::Bundle`]) returns raw
//!    outputs.
//! 4. An analyzer makes an [`analyze::Verdict`]: class probabilities (X-ray) or
//!    an anomaly score with an alarm state (ultrasound).
//! 5. The [`display::Overlay`] draws picture and verdict; a
//!    [`display::FrameSink`] shows it (framebuffer, PNG files, or nothing).
//!
//! [`pipeline::Pipeline`] wires the stages and measures each of them.
//! Hardware sits behind our own traits, so every stage runs in tests with real
//! data and no devices.
//!
//! ## Safety
//!
//! `unsafe` is denied crate-wide and allowed only where there is no safe
//! API, each block with a `SAFETY:` comment: the NEON kernels
//! (`preprocess::kernels::neon`), mapping the framebuffer
//! (`display::fbdev::map`), the console's `KDSETMODE` ioctl
//! (`display::console`), the DV-timings ioctls the `v4l` crate lacks
//! (`capture::v4l2::dv`) and the instruction-count markers (`marker`,
//! two NOP-like instructions in inline assembly).

#![deny(unsafe_code)]

pub mod analyze;
pub mod bench;
pub mod budget;
pub mod buttons;
pub mod capture;
pub mod config;
pub mod demo;
pub mod display;
pub mod evaluate;
pub mod frame;
pub mod health;
pub mod infer;
pub mod inventory;
pub mod marker;
pub mod pipeline;
pub mod preprocess;
pub mod printable;
pub mod private_output;
pub mod record;
mod rng;
pub mod rotating_log;
pub mod safe_read;
pub mod settings;
