//! The full-system test's cart: plays 8-bit gray frames into vivid's HDMI
//! output, which vivid loops back to its HDMI input (`/dev/video0`), where
//! `bedside` captures them (`tests/system/README.md`, FINDINGS.md section 5).
//!
//!     vivid_feed OUTPUT CAPTURE FRAMES WIDTH HEIGHT [CONTROL]
//!
//! FRAMES is a file of WIDTHxHEIGHT gray frames back to back, played in a
//! loop at 30 fps (each frame on two outputs of the 59.94 Hz signal), as
//! YUYV with neutral chroma so the captured luma is the frame byte for byte.
//! CONTROL is a file the test writes `normal`, `blank` or `frozen` into,
//! read at every output frame (blank: black frames, the probe lifted;
//! frozen: the frame playing when it was asked for, repeated). Every
//! change is printed with the frame index.
//!
//! The feeder announces its timings to the capture side the way a source
//! does to a receiver (vivid's "DV Timings Signal Mode" = Selected, "DV
//! Timings" = the output's): `bedside` must detect and set them itself.
//! When the output is disconnected it keeps its node open (so vivid's
//! disconnection lasts, as an unplugged cable does) until killed.
//! Needs the `v4l2` feature. A test tool, not part of the runtime.

#[cfg(feature = "v4l2")]
fn main() {
    if let Err(e) = feed::run(std::env::args().skip(1).collect()) {
        eprintln!("vivid_feed: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(feature = "v4l2"))]
fn main() {
    eprintln!("vivid_feed needs the v4l2 feature");
    std::process::exit(1);
}

#[cfg(feature = "v4l2")]
mod feed {
    use std::os::raw::{c_int, c_void};
    use std::time::{Duration, Instant};

    use bedside::capture::v4l2::dv;
    use v4l::control::{Control, Value};
    use v4l::v4l_sys::{v4l2_buffer, v4l2_requestbuffers};
    use v4l::v4l2::{self, vidioc};
    use v4l::video::Output;
    use v4l::{Device, FourCC};

    const BUFFERS: u32 = 4;
    const OUTPUT: u32 = 2; // V4L2_BUF_TYPE_VIDEO_OUTPUT
    const MMAP: u32 = 1; // V4L2_MEMORY_MMAP
    const CINE_FPS: f64 = 30.0;
    const ENODEV: i32 = 19;

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Kind {
        Blank,
        Frozen,
    }

    /// What the control file asks for now (missing or `normal`: none).
    fn asked(control: Option<&String>) -> Option<Kind> {
        let text = std::fs::read_to_string(control?).ok()?;
        match text.trim() {
            "blank" => Some(Kind::Blank),
            "frozen" => Some(Kind::Frozen),
            _ => None,
        }
    }

    fn ioctl<T>(fd: c_int, request: vidioc::_IOC_TYPE, arg: &mut T) -> std::io::Result<()> {
        // SAFETY: `arg` is the struct the request is defined with.
        unsafe { v4l2::ioctl(fd, request, arg as *mut T as *mut c_void) }
    }

    fn set_control(
        dev: &Device,
        name: &str,
        pick: &dyn Fn(&v4l::control::Description) -> Option<Value>,
    ) -> Result<(), String> {
        let controls = dev.query_controls().map_err(|e| format!("controls: {e}"))?;
        let c = controls
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("no control named '{name}'"))?;
        let value = pick(c).ok_or_else(|| format!("{name}: no fitting value in {:?}", c.items))?;
        dev.set_control(Control { id: c.id, value })
            .map_err(|e| format!("{name}: {e}"))
    }

    /// The menu item of `c` whose name starts with `prefix`.
    fn menu_item(c: &v4l::control::Description, prefix: &str) -> Option<Value> {
        c.items.as_ref()?.iter().find_map(|(i, item)| {
            let name = match item {
                v4l::control::MenuItem::Name(n) => n.as_str(),
                v4l::control::MenuItem::Value(_) => return None,
            };
            name.starts_with(prefix)
                .then_some(Value::Integer(i64::from(*i)))
        })
    }

    pub fn run(args: Vec<String>) -> Result<(), String> {
        let [output, capture, frames, width, height, rest @ ..] = args.as_slice() else {
            return Err("usage: vivid_feed OUTPUT CAPTURE FRAMES WIDTH HEIGHT [CONTROL]".into());
        };
        let (w, h): (u32, u32) = (
            width.parse().map_err(|_| "bad WIDTH")?,
            height.parse().map_err(|_| "bad HEIGHT")?,
        );
        let control = rest.first();
        let gray = std::fs::read(frames).map_err(|e| format!("{frames}: {e}"))?;
        let n = w as usize * h as usize;
        if gray.is_empty() || gray.len() % n != 0 {
            return Err(format!(
                "{frames}: {} bytes is not a whole number of {w}x{h} frames",
                gray.len()
            ));
        }
        // Every frame as YUYV once, so a tick is one copy.
        let yuyv: Vec<Vec<u8>> = gray
            .chunks_exact(n)
            .map(|g| g.iter().flat_map(|&y| [y, 128]).collect())
            .collect();
        let black = vec![[0u8, 128]; n].concat();

        let out = Device::with_path(output).map_err(|e| format!("{output}: {e}"))?;
        let fd = out.handle().fd();
        let timings = (0..)
            .map_while(|i| dv::supported(fd, i))
            .find(|t| t.width() == w && t.height() == h)
            .ok_or_else(|| format!("{output}: no DV timings of {w}x{h}"))?;
        dv::set(fd, &timings).map_err(|e| format!("{output}: set timings {timings}: {e}"))?;
        let mut fmt = out.format().map_err(|e| format!("{output}: {e}"))?;
        (fmt.width, fmt.height, fmt.fourcc) = (w, h, FourCC::new(b"YUYV"));
        (fmt.stride, fmt.size) = (0, 0);
        let got = out
            .set_format(&fmt)
            .map_err(|e| format!("{output}: format: {e}"))?;
        if (got.width, got.height, got.fourcc.repr) != (w, h, *b"YUYV") {
            return Err(format!("{output}: the driver set {got}"));
        }

        // The capture side: loop the output back, no text over it, and the
        // receiver "detects" the output's timings.
        let cap = Device::with_path(capture).map_err(|e| format!("{capture}: {e}"))?;
        set_control(&cap, "Loop Video", &|_| Some(Value::Boolean(true)))?;
        set_control(&cap, "OSD Text Mode", &|_| Some(Value::Integer(2)))?;
        let name = timings.to_string();
        let prefix = &name[..name.find('.').unwrap_or(name.len())];
        set_control(&cap, "DV Timings", &|c| {
            menu_item(c, prefix).or_else(|| menu_item(c, &format!("{w}x{h}p")))
        })?;
        set_control(&cap, "DV Timings Signal Mode", &|c| {
            menu_item(c, "Selected")
        })?;
        drop(cap);

        let mut req: v4l2_requestbuffers = zeroed();
        (req.count, req.type_, req.memory) = (BUFFERS, OUTPUT, MMAP);
        ioctl(fd, vidioc::VIDIOC_REQBUFS, &mut req)
            .map_err(|e| format!("{output}: REQBUFS: {e}"))?;
        let mut maps: Vec<&mut [u8]> = Vec::new();
        for i in 0..req.count {
            let mut b: v4l2_buffer = zeroed();
            (b.index, b.type_, b.memory) = (i, OUTPUT, MMAP);
            ioctl(fd, vidioc::VIDIOC_QUERYBUF, &mut b)
                .map_err(|e| format!("{output}: QUERYBUF: {e}"))?;
            // SAFETY: mapping the driver's buffer `i` at the offset it gave; the
            // mapping lives until the process ends, as the node does.
            let p = unsafe {
                v4l2::mmap(
                    std::ptr::null_mut(),
                    b.length as usize,
                    3, /* PROT_READ|PROT_WRITE */
                    1, /* MAP_SHARED */
                    fd,
                    b.m.offset as _,
                )
            };
            let p = p.map_err(|e| format!("{output}: mmap: {e}"))?;
            // SAFETY: the mapping is `length` bytes long and only used here.
            maps.push(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, b.length as usize) });
        }
        let frame_len = yuyv[0].len();
        if maps.iter().any(|m| m.len() < frame_len) {
            return Err(format!("{output}: buffers smaller than a frame"));
        }
        let queue = |i: u32| -> std::io::Result<()> {
            let mut b: v4l2_buffer = zeroed();
            (b.index, b.type_, b.memory, b.bytesused) = (i, OUTPUT, MMAP, frame_len as u32);
            ioctl(fd, vidioc::VIDIOC_QBUF, &mut b)
        };
        // Queues every buffer and starts streaming (again after a fault:
        // STREAMOFF first gives every buffer back and clears the error).
        let start_stream = |maps: &mut Vec<&mut [u8]>, restart: bool| -> Result<(), String> {
            let mut kind_arg: c_int = OUTPUT as c_int;
            if restart {
                ioctl(fd, vidioc::VIDIOC_STREAMOFF, &mut kind_arg)
                    .map_err(|e| disconnected(output, "STREAMOFF", e))?;
            }
            for (i, m) in maps.iter_mut().enumerate() {
                m[..frame_len].copy_from_slice(&yuyv[0]);
                queue(i as u32).map_err(|e| disconnected(output, "QBUF", e))?;
            }
            ioctl(fd, vidioc::VIDIOC_STREAMON, &mut kind_arg)
                .map_err(|e| disconnected(output, "STREAMON", e))
        };
        start_stream(&mut maps, false)?;
        println!(
            "vivid_feed: playing {} frame(s) of {w}x{h} on {output} at {timings}",
            yuyv.len()
        );

        let start = Instant::now();
        let mut state: Option<(Kind, usize)> = None;
        let mut shown = 0usize;
        loop {
            // The crate opens the node non-blocking: wait for a played buffer.
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 2000) } < 0 {
                return Err(format!(
                    "{output}: poll: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let mut b: v4l2_buffer = zeroed();
            (b.type_, b.memory) = (OUTPUT, MMAP);
            if let Err(e) = ioctl(fd, vidioc::VIDIOC_DQBUF, &mut b) {
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => continue,
                    // vivid's fatal streaming error reaches the output queue too.
                    Some(libc::EIO) => {
                        println!("vivid_feed: {output}: the stream failed ({e}); restarting it");
                        start_stream(&mut maps, true)?;
                        continue;
                    }
                    _ => return Err(disconnected(output, "DQBUF", e)),
                }
            }
            let t = start.elapsed().as_secs_f64();
            let index = (t * CINE_FPS) as usize % yuyv.len();
            let now = asked(control);
            match (now, state) {
                (Some(k), Some((was, _))) if k == was => {}
                (Some(k), _) => {
                    state = Some((k, shown));
                    println!("vivid_feed: {k:?} begins at {t:.1} s, frame {shown}");
                }
                (None, Some((k, _))) => {
                    state = None;
                    println!("vivid_feed: {k:?} ends at {t:.1} s");
                }
                (None, None) => {}
            }
            let picture = match state {
                Some((Kind::Blank, _)) => &black,
                Some((Kind::Frozen, held)) => &yuyv[held],
                None => {
                    shown = index;
                    &yuyv[index]
                }
            };
            maps[b.index as usize][..frame_len].copy_from_slice(picture);
            if let Err(e) = queue(b.index) {
                if e.raw_os_error() != Some(libc::EIO) {
                    return Err(disconnected(output, "QBUF", e));
                }
                println!("vivid_feed: {output}: the stream failed ({e}); restarting it");
                start_stream(&mut maps, true)?;
            }
        }
    }

    /// A failed call; when the node was disconnected, holds it open (the
    /// disconnection lasts while any vivid node is open) until killed.
    fn disconnected(output: &str, call: &str, e: std::io::Error) -> String {
        if e.raw_os_error() == Some(ENODEV) {
            println!("vivid_feed: {output} disconnected; holding it open");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        format!("{output}: {call}: {e}")
    }

    fn zeroed<T>() -> T {
        // SAFETY: plain C structs of the V4L2 API; all-zero is valid for them.
        unsafe { std::mem::zeroed() }
    }
}
