//! Full-system test: the aarch64 `bedside` on a real arm64 Linux kernel
//! under `qemu-system-aarch64` (virt, Cortex-A72, 2 vCPUs), with vivid as
//! the cart's grabber (`/dev/video0`), bochs-display as the monitor
//! (`/dev/fb0`) and the PL061 power-button line as FREEZE. The host reads
//! the guest's serial log and takes QMP screendumps of the monitor.
//! See `tests/system/README.md`.
//!
//! Runs when `BEDSIDE_SYSTEM_BIN` names the aarch64 binary (the test
//! command sets it after the aarch64 build); otherwise each test says it
//! was not run and passes, so a host-only `cargo test` stays host-only.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const W: usize = 640;
const H: usize = 480;
const PANEL: [u8; 3] = [24, 24, 28];
const CYAN: [u8; 3] = [90, 200, 250];
const YELLOW: [u8; 3] = [250, 200, 0];
const RED: [u8; 3] = [220, 30, 30];

/// The guest's /init: load the drivers, run bedside with `args`, power off.
fn init_script(args: &str) -> String {
    script(&format!(
        r#"RUST_LOG=info /bin/bedside run --board /etc/qemu-virt.toml {args} --jsonl /tmp/frames.jsonl 2>&1
echo "BEDSIDE-SYSTEM: exit $?""#
    ))
}

/// An /init that loads the drivers, runs `body` and powers off.
fn script(body: &str) -> String {
    format!(
        r#"#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in /mods/*.ko; do
  case $m in *vivid.ko) insmod $m n_devs=1 ;; *) insmod $m ;; esac
done
echo "BEDSIDE-SYSTEM: drivers loaded"
{body}
echo "BEDSIDE-SYSTEM: log lines $(grep -c status /tmp/frames.jsonl)"
poweroff -f
"#
    )
}

struct Vm {
    dir: tempfile::TempDir,
    child: Child,
    serial: PathBuf,
    qmp: Option<BufReader<UnixStream>>,
}

impl Vm {
    /// Boots a VM running `args`; `None` when the test is not to run here.
    fn boot(name: &str, init_text: &str) -> Option<Vm> {
        let Some(bin) = std::env::var_os("BEDSIDE_SYSTEM_BIN") else {
            eprintln!("{name}: not run (BEDSIDE_SYSTEM_BIN is not set; scripts/test sets it)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("init");
        std::fs::write(&init, init_text).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        // The vivid_ctl example, built for aarch64 beside the binary.
        let ctl = Path::new(&bin)
            .parent()
            .map(|d| d.join("examples/vivid_ctl"))
            .filter(|p| p.exists());
        let status = Command::new(root.join("tests/system/prepare"))
            .args([dir.path(), Path::new(&bin), &init])
            .args(ctl)
            .status()
            .expect("run tests/system/prepare");
        assert!(status.success(), "tests/system/prepare failed");
        let serial = dir.path().join("serial.log");
        let qmp = dir.path().join("qmp.sock");
        let child = Command::new("qemu-system-aarch64")
            .args([
                "-M",
                "virt",
                "-cpu",
                "cortex-a72",
                "-smp",
                "2",
                "-m",
                "1024",
            ])
            .args([
                "-accel",
                "tcg,thread=multi",
                "-display",
                "none",
                "-no-reboot",
                "-nic",
                "none",
            ])
            .arg("-kernel")
            .arg(dir.path().join("Image"))
            .arg("-initrd")
            .arg(dir.path().join("initramfs.cpio.gz"))
            .args(["-append", "console=ttyAMA0 rdinit=/init panic=-1 quiet"])
            .args([
                "-device",
                &format!("bochs-display,romfile=,xres={W},yres={H}"),
            ])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .stdin(Stdio::null())
            .spawn()
            .expect("start qemu-system-aarch64 (scripts/setup installs qemu-system-arm)");
        let mut vm = Vm {
            dir,
            child,
            serial,
            qmp: None,
        };
        vm.connect(&qmp);
        Some(vm)
    }

    fn connect(&mut self, sock: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match UnixStream::connect(sock) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("QMP socket {}: {e}", sock.display()),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        self.qmp = Some(BufReader::new(stream));
        self.read_reply("QMP"); // greeting
        self.command(serde_json::json!({"execute": "qmp_capabilities"}));
    }

    /// Reads QMP lines up to the one holding `key` (events are skipped).
    fn read_reply(&mut self, key: &str) -> serde_json::Value {
        let qmp = self.qmp.as_mut().unwrap();
        loop {
            let mut line = String::new();
            let n = qmp.read_line(&mut line).expect("QMP read");
            assert!(n > 0, "QMP closed");
            let v: serde_json::Value = serde_json::from_str(&line).expect("QMP JSON");
            if v.get(key).is_some() || v.get("error").is_some() {
                return v;
            }
        }
    }

    fn command(&mut self, cmd: serde_json::Value) -> serde_json::Value {
        let qmp = self.qmp.as_mut().unwrap();
        writeln!(qmp.get_mut(), "{cmd}").unwrap();
        let r = self.read_reply("return");
        assert!(r.get("error").is_none(), "QMP {cmd}: {r}");
        r
    }

    fn serial(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    /// Waits until the serial log holds `marker`; fails with the log's tail.
    fn wait_for(&self, marker: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.serial();
            if s.contains(marker) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "no '{marker}' within {timeout:?}; serial log ends:\n{}",
                tail(&s, 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The monitor as the guest drew it (QMP screendump, PPM).
    fn screen(&mut self) -> Screen {
        // The DRM fbdev emulation flushes in a worker (FINDINGS section 5).
        std::thread::sleep(Duration::from_millis(400));
        let path = self.dir.path().join("screen.ppm");
        let _ = std::fs::remove_file(&path);
        self.command(serde_json::json!({"execute": "screendump", "arguments": {"filename": path}}));
        Screen::read(&path)
    }

    /// Waits for the guest to power itself off.
    fn finish(mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "qemu: {status}");
                return self.serial();
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "the VM did not power off within {timeout:?}; serial log ends:\n{}",
                    tail(&self.serial(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

struct Screen {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Screen {
    fn read(path: &Path) -> Screen {
        let bytes = std::fs::read(path).expect("screendump file");
        // P6\n<w> <h>\n255\n<rgb>
        let mut fields = Vec::new();
        let mut i = 0;
        while fields.len() < 4 {
            while bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            while !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            fields.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
        }
        assert_eq!(fields[0], "P6", "a PPM screendump");
        let (width, height) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        let rgb = bytes[i + 1..].to_vec();
        assert_eq!(rgb.len(), width * height * 3);
        Screen { width, height, rgb }
    }

    fn px(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Share of the pixels in the rectangle that are `c`.
    fn share(&self, x: std::ops::Range<usize>, y: std::ops::Range<usize>, c: [u8; 3]) -> f64 {
        let (mut hit, mut n) = (0, 0);
        for yy in y {
            for xx in x.clone() {
                n += 1;
                hit += usize::from(self.px(xx, yy) == c);
            }
        }
        hit as f64 / n as f64
    }

    fn count(&self, x: std::ops::Range<usize>, y: std::ops::Range<usize>, c: [u8; 3]) -> usize {
        let n = x.len() * y.len();
        (self.share(x, y, c) * n as f64).round() as usize
    }

    /// Distinct gray levels in the rectangle (the picture, not a blank).
    fn grays(&self, x: std::ops::Range<usize>, y: std::ops::Range<usize>) -> usize {
        let mut seen = [false; 256];
        for yy in y {
            for xx in x.clone() {
                let [r, g, b] = self.px(xx, yy);
                if r == g && g == b {
                    seen[r as usize] = true;
                }
            }
        }
        seen.iter().filter(|&&s| s).count()
    }
}

/// The 640x480 layout: picture left of x = 430, panel right of it, the
/// alarm banner on top of the picture, the demonstration banner at the bottom.
const PANEL_X: usize = 430;

#[test]
fn ultrasound_on_vivid_draws_picture_overlay_and_alarm_on_the_framebuffer() {
    let Some(mut vm) = Vm::boot("ultrasound", &init_script("--duration 14")) else {
        return;
    };
    vm.wait_for("starting ultrasound run", Duration::from_secs(60));
    // vivid's test pattern is not an echo: the model must call it
    // unexpected content, and the screen must say so.
    let log = vm.wait_for("ALARM raised: unexpected content", Duration::from_secs(60));
    assert!(log.contains("capturing 640x480 YUYV"), "{}", tail(&log, 30));
    assert!(
        log.contains("framebuffer 640x480 32 bpp"),
        "{}",
        tail(&log, 30)
    );
    std::thread::sleep(Duration::from_secs(1));
    let s = vm.screen();
    assert_eq!((s.width, s.height), (W, H));
    assert!(
        s.share(PANEL_X + 10..W, 200..400, PANEL) > 0.5,
        "the side panel"
    );
    assert!(
        s.count(PANEL_X..W, 0..40, CYAN) > 20,
        "the ULTRASOUND title"
    );
    assert!(
        s.share(0..W, H - 10..H - 4, YELLOW) > 0.4,
        "the DEMONSTRATION banner"
    );
    assert!(s.share(0..PANEL_X, 2..8, RED) > 0.5, "the red alarm banner");
    assert!(s.grays(0..PANEL_X, 40..440) > 4, "a picture, not a blank");
    let log = vm.finish(Duration::from_secs(90));
    assert!(log.contains("BEDSIDE-SYSTEM: exit 0"), "{}", tail(&log, 40));
    assert!(
        log.contains("frame(s) from V4L2 /dev/video0"),
        "{}",
        tail(&log, 40)
    );
    assert!(!log.contains("panicked"), "{}", tail(&log, 40));
    assert!(log.contains("/dev/tty0: console back in text mode"));
}

#[test]
fn xray_freeze_button_classifies_the_picture() {
    let Some(mut vm) = Vm::boot(
        "xray",
        &init_script("--mode xray --trigger button --duration 25"),
    ) else {
        return;
    };
    vm.wait_for("starting xray run", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let before = vm.screen();
    // Probability bars are cyan (top class) below the title: none yet.
    let bars = |s: &Screen| s.count(PANEL_X + 8..W, 60..300, CYAN);
    assert!(
        bars(&before) < 10,
        "no result before FREEZE: {}",
        bars(&before)
    );
    // FREEZE: the power-button line of the PL061, pressed from the host.
    vm.command(serde_json::json!({"execute": "system_powerdown"}));
    vm.wait_for("FREEZE: classifying this picture", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(4));
    let after = vm.screen();
    assert!(
        bars(&after) > 40,
        "probability bars after FREEZE: {}",
        bars(&after)
    );
    assert!(
        after.share(0..W, H - 10..H - 4, YELLOW) > 0.4,
        "the DEMONSTRATION banner"
    );
    let log = vm.finish(Duration::from_secs(90));
    assert!(log.contains("FREEZE pressed"), "{}", tail(&log, 40));
    assert!(log.contains("BEDSIDE-SYSTEM: exit 0"), "{}", tail(&log, 40));
    assert!(!log.contains("panicked"), "{}", tail(&log, 40));
}

/// Faults through vivid's controls while bedside streams: dropped and
/// error-flagged buffers (counted), a fatal streaming error and a
/// disconnection (no signal, the stream reopened by itself, no crash).
#[test]
fn vivid_faults_are_counted_and_survived() {
    let body = r#"RUST_LOG=info /bin/bedside run --board /etc/qemu-virt.toml --duration 60 --jsonl /tmp/frames.jsonl 2>&1 &
pid=$!
ctl() { /bin/vivid_ctl /dev/video0 "$@" 2>&1; }
sleep 10
echo "BEDSIDE-SYSTEM: fault drops"; ctl "Percentage of Dropped Buffers" 50; sleep 4; ctl "Percentage of Dropped Buffers" 0
echo "BEDSIDE-SYSTEM: fault error buffer"; ctl "Inject V4L2_BUF_FLAG_ERROR" press; sleep 3
echo "BEDSIDE-SYSTEM: fault fatal"; ctl "Inject Fatal Streaming Error" press; sleep 6
echo "BEDSIDE-SYSTEM: fault disconnect"; ctl "Disconnect" press; sleep 10
echo "BEDSIDE-SYSTEM: after the faults"; sleep 6
echo "BEDSIDE-SYSTEM: stopping"
kill -INT $pid; wait $pid
echo "BEDSIDE-SYSTEM: exit $?""#;
    let Some(mut vm) = Vm::boot("faults", &script(body)) else {
        return;
    };
    let ctl_missing = |log: &str| log.contains("/bin/vivid_ctl: not found");
    vm.wait_for("starting ultrasound run", Duration::from_secs(60));
    let log = vm.wait_for("BEDSIDE-SYSTEM: fault disconnect", Duration::from_secs(90));
    assert!(!ctl_missing(&log), "vivid_ctl is not in the initramfs");
    assert!(
        log.contains("vivid_ctl: Percentage of Dropped Buffers = 50"),
        "{}",
        tail(&log, 40)
    );
    let log = vm.wait_for("BEDSIDE-SYSTEM: after the faults", Duration::from_secs(90));
    // Each fault was seen and survived: the fatal streaming error and the
    // disconnection each closed the stream and reopened it by itself.
    let after = |marker: &str, what: &str| {
        log.rsplit_once(marker)
            .is_some_and(|(_, rest)| rest.contains(what))
    };
    assert!(
        after("fault error buffer", "flagged 1 buffer(s) as damaged"),
        "{}",
        tail(&log, 40)
    );
    assert!(
        after("fault fatal", "the stream failed") && after("fault fatal", "reconnected after"),
        "{}",
        tail(&log, 40)
    );
    assert!(
        after("fault disconnect", "device disconnected; reopening")
            && after("fault disconnect", "reconnected after"),
        "{}",
        tail(&log, 40)
    );
    std::thread::sleep(Duration::from_secs(2));
    let s = vm.screen();
    assert!(s.grays(0..PANEL_X, 40..440) > 4, "the picture is back");
    assert!(
        s.share(0..PANEL_X, 2..8, YELLOW) < 0.1,
        "no NO SIGNAL banner any more"
    );
    let log = vm.finish(Duration::from_secs(120));
    assert!(log.contains("BEDSIDE-SYSTEM: exit 0"), "{}", tail(&log, 60));
    assert!(!log.contains("panicked"), "{}", tail(&log, 60));
    let summary = &log[log.rfind("== ultrasound mode").expect("the run's summary")..];
    // vivid's dropped buffers (sequence gaps) and its error-flagged buffer
    // are counted; the disconnection and the fatal error gave no-signal events.
    assert!(
        summary.contains("device: "),
        "device losses counted: {summary}"
    );
    assert!(!summary.contains("device: 0 frame(s)"), "{summary}");
    assert!(!summary.contains(", 0 damaged buffer(s)"), "{summary}");
    assert!(summary.contains("no-signal events"), "{summary}");
}
