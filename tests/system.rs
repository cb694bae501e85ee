//! Full-system test: the aarch64 `bedside` on a real arm64 Linux kernel
//! under `qemu-system-aarch64` (virt, Cortex-A72, 2 vCPUs), with vivid as
//! the cart's grabber (`/dev/video0`), bochs-display as the monitor
//! (`/dev/fb0`) and the PL061 power-button line as FREEZE. The host reads
//! the guest's serial log and takes QMP screendumps of the monitor.
//! See `tests/system/README.md`.
//!
//! The tests are `#[ignore]`d, so a host-only `cargo test` stays host-only;
//! the test command runs them with `--ignored` and `BEDSIDE_SYSTEM_BIN`
//! naming the aarch64 binary. Run without it, they fail: a test whose
//! precondition is missing must not pass.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bedside::analyze::Verdict;
use bedside::analyze::anomaly::{AlarmReason, AnomalyVerdict};
use bedside::capture::FrameSource;
use bedside::capture::dicom::DicomSource;
use bedside::display::overlay::{Canvas, Overlay, OverlayInfo, Status};
use bedside::preprocess::{GrayImage, ToGray};

const W: usize = 640;
const H: usize = 480;
const PANEL: [u8; 3] = [24, 24, 28];
const CYAN: [u8; 3] = [90, 200, 250];
const YELLOW: [u8; 3] = [250, 200, 0];
/// The demonstration notice's strip (white: yellow means a medium alarm).
const WHITE: [u8; 3] = [245, 245, 245];
const TEXT: [u8; 3] = [235, 235, 235];
const DIM: [u8; 3] = [150, 150, 150];
const RED: [u8; 3] = [220, 30, 30];

/// The guest's shell helpers. vivid is loaded in loopback: one HDMI input
/// (`/dev/video0`, what bedside captures) and one HDMI output
/// (`/dev/video1`, where `vivid_feed` plays the cart's frames).
///   feed FILE            starts the feeder on /data/FILE, waits until it plays
///   run ARGS             starts bedside with ARGS, its log in /tmp/log
///   waitlog TEXT [N [SECS]]  waits until bedside's log holds TEXT N times
///   ask normal|blank|frozen   tells the feeder what to play
const HELPERS: &str = r#"VIVID="n_devs=1 node_types=0x101 num_inputs=1 input_types=0x3 num_outputs=1 output_types=0x1"
feed() { rm -f /tmp/feed.log; /bin/vivid_feed /dev/video1 /dev/video0 /data/$1 640 480 /tmp/feed.cmd 2>&1 | tee /tmp/feed.log &
  t=0; until grep -q "playing" /tmp/feed.log 2>/dev/null; do sleep 0.2; t=$((t+1)); [ $t -lt 300 ] || { echo "BEDSIDE-SYSTEM: the feeder did not start"; return 1; }; done; }
run() { ( RUST_LOG=info /bin/bedside run --board /etc/qemu-virt.toml --jsonl /tmp/frames.jsonl --stats-every 5 "$@" 2>&1; echo "BEDSIDE-SYSTEM: exit $?" ) | tee /tmp/log & runner=$!; }
waitlog() { t=0; until c=$(grep -c "$1" /tmp/log 2>/dev/null); [ "${c:-0}" -ge "${2:-1}" ]; do sleep 0.2; t=$((t+1)); [ $t -lt $((${3:-60}*5)) ] || { echo "BEDSIDE-SYSTEM: timed out waiting for '$1'"; return 1; }; done; }
ask() { echo $1 > /tmp/feed.cmd; echo "BEDSIDE-SYSTEM: feeder asked for $1"; }
mark() { echo "BEDSIDE-SYSTEM: $*"; }
"#;

/// An /init that loads the drivers, runs `body` and powers off; at the end
/// the log's records other than pictures shown are printed between markers.
fn script(body: &str) -> String {
    format!(
        r#"#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
{HELPERS}
for m in /mods/*.ko; do
  case $m in *vivid.ko) insmod $m $VIVID ;; *) insmod $m ;; esac
done
echo "BEDSIDE-SYSTEM: drivers loaded"
{body}
echo "BEDSIDE-SYSTEM: log lines $(grep -c status /tmp/frames.jsonl)"
echo "BEDSIDE-SYSTEM: records begin"
grep -v -e '"status":"shown"' -e '"status":"dropped"' /tmp/frames.jsonl
echo "BEDSIDE-SYSTEM: records end"
poweroff -f
"#
    )
}

struct Vm {
    name: String,
    screens: usize,
    dir: tempfile::TempDir,
    child: Child,
    serial: PathBuf,
    qmp: Option<BufReader<UnixStream>>,
}

impl Vm {
    /// Boots a VM running `init_text`, with `data` (name, bytes) in /data.
    fn boot(name: &str, init_text: &str, data: &[(&str, &[u8])]) -> Vm {
        let Some(bin) = std::env::var_os("BEDSIDE_SYSTEM_BIN") else {
            panic!(
                "{name}: BEDSIDE_SYSTEM_BIN is not set: it names the aarch64 bedside to boot \
                 (scripts/test sets it)"
            );
        };
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("init");
        std::fs::write(&init, init_text).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        // The vivid_ctl and vivid_feed examples, built for aarch64 beside the binary.
        let mut more: Vec<std::ffi::OsString> = ["vivid_ctl", "vivid_feed"]
            .iter()
            .map(|e| {
                let p = Path::new(&bin).parent().unwrap().join("examples").join(e);
                assert!(
                    p.exists(),
                    "{} is missing: build the {e} example for aarch64 beside the binary (scripts/test does)",
                    p.display()
                );
                p.into_os_string()
            })
            .collect();
        for (file, bytes) in data {
            let p = dir.path().join(file);
            std::fs::write(&p, bytes).unwrap();
            more.push(format!("data:{}", p.display()).into());
        }
        let status = Command::new(root.join("tests/system/prepare"))
            .args([dir.path(), Path::new(&bin), &init])
            .args(&more)
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
            .args([
                "-append",
                "console=ttyAMA0 rdinit=/init panic=-1 quiet loglevel=3",
            ])
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
            name: name.to_string(),
            screens: 0,
            dir,
            child,
            serial,
            qmp: None,
        };
        vm.connect(&qmp);
        vm
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
        // Kept beside the serial log for a look after a failure.
        self.screens += 1;
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("system-{}-{}.ppm", self.name, self.screens));
        let _ = std::fs::copy(&path, keep);
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
    /// Stops the VM and keeps its serial log for a look after a failure
    /// (test data only: no patient's frames ever pass through this VM).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("system-{}.log", self.name));
        let _ = std::fs::copy(&self.serial, &keep);
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
/// Height of the demonstration strip at the bottom (the 10x20 font + 6).
const NOTICE: usize = 26;

/// Rows the top banner of `c` covers: from the top, while the left edge
/// keeps the banner's colour (its fill or its frame).
fn banner_rows(c: &Canvas) -> usize {
    let px = |y: usize| {
        let i = y * c.width as usize * 3 + 3;
        [c.rgb[i], c.rgb[i + 1], c.rgb[i + 2]]
    };
    let top = px(0);
    if top == [0, 0, 0] {
        return 0;
    }
    (0..c.height as usize).take_while(|&y| px(y) == top).count()
}

/// Where the real test data is (the test command exports it; else fetched).
fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BEDSIDE_DATA") {
        return PathBuf::from(d);
    }
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-data"))
        .output()
        .expect("run scripts/fetch-data");
    assert!(out.status.success(), "scripts/fetch-data failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The cart's ultrasound: the real echo cine (pydicom-data's
/// color3d_jpeg_baseline.dcm, 120 frames of 640x480), as bedside's own
/// conversion makes it gray: what the screen must show, byte for byte.
fn echo_frames() -> Vec<u8> {
    let path = data_dir().join("pydicom-data/data_store/data/color3d_jpeg_baseline.dcm");
    let mut src = DicomSource::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut gray = ToGray::default();
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().unwrap() {
        let g = gray.run(&f);
        assert_eq!((g.width, g.height), (W as u32, H as u32));
        out.extend_from_slice(&g.data);
    }
    assert_eq!(out.len(), 120 * W * H);
    out
}

/// The cart's X-ray console: the bundled real chest radiograph (460x488
/// after its window), centred on a black 640x480 screen (4 rows cut at top
/// and bottom).
fn radiograph_frame() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut src = DicomSource::open(&root.join("assets/demo/chest_cr.dcm")).unwrap();
    let f = src.next_frame().unwrap().unwrap();
    let mut gray = ToGray::default();
    let g = gray.run(&f);
    let (gw, gh) = (g.width as usize, g.height as usize);
    let mut out = vec![0u8; W * H];
    let (ox, cut) = ((W - gw) / 2, (gh - H) / 2);
    for y in 0..H {
        out[y * W + ox..y * W + ox + gw]
            .copy_from_slice(&g.data[(y + cut) * gw..(y + cut + 1) * gw]);
    }
    out
}

/// What bedside's overlay draws for `gray` in `status`, on the host: the
/// same code the guest runs (fixed-point kernels, bit-identical on Arm).
fn expected_screen(gray: &[u8], status: Status<'_>) -> Canvas {
    let mut overlay = Overlay::new(
        (W as u32, H as u32),
        OverlayInfo {
            mode: "ultrasound".into(),
            model_line: String::new(),
            demonstration: true,
            labels: Vec::new(),
        },
    );
    let image = GrayImage {
        width: W as u32,
        height: H as u32,
        data: gray.to_vec(),
    };
    overlay.render(&image, status, None).clone()
}

/// Pixels of `x` by `y` that differ between the screen and the canvas.
fn differences(
    s: &Screen,
    c: &Canvas,
    x: std::ops::Range<usize>,
    y: std::ops::Range<usize>,
) -> usize {
    let mut n = 0;
    for yy in y {
        for xx in x.clone() {
            let i = (yy * c.width as usize + xx) * 3;
            n += usize::from(s.px(xx, yy) != [c.rgb[i], c.rgb[i + 1], c.rgb[i + 2]]);
        }
    }
    n
}

/// The alarm banner for `reason` as the overlay draws it.
fn alarm_banner(reason: AlarmReason) -> Canvas {
    let verdict = Verdict::Anomaly(AnomalyVerdict {
        alarm: Some(reason),
        ..AnomalyVerdict::default()
    });
    expected_screen(&vec![0; W * H], Status::Result(&verdict))
}

/// The records the guest printed at the end (all but pictures shown and dropped).
fn records(log: &str) -> Vec<serde_json::Value> {
    let begin = log
        .find("BEDSIDE-SYSTEM: records begin")
        .expect("records printed");
    let end = log
        .find("BEDSIDE-SYSTEM: records end")
        .expect("records end");
    log[begin..end]
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

/// The periodic stats lines: each must have sane figures.
fn check_stats(log: &str, at_least: usize) {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("capture to display: median"))
        .collect();
    assert!(
        lines.len() >= at_least,
        "{} stats line(s), expected {at_least}: {}",
        lines.len(),
        tail(log, 30)
    );
    let field = |l: &str, key: &str| -> f64 {
        let at = l
            .find(&format!("{key}="))
            .unwrap_or_else(|| panic!("no {key} in {l}"));
        l[at + key.len() + 1..]
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{key} in {l}"))
    };
    let mut shown_before = 0.0;
    for l in &lines {
        let (fps, shown) = (field(l, "fps"), field(l, "shown"));
        assert!(fps > 0.5 && fps < 100.0, "fps {fps}: {l}");
        assert!(shown > shown_before, "pictures shown grow: {l}");
        shown_before = shown;
        for key in ["inferred", "dropped", "skipped", "device_lost", "no_signal"] {
            assert!(field(l, key) >= 0.0);
        }
        // Every stage: median <= p99 <= max, all finite.
        let key = "stages median/p99/max ms: ";
        let stages = &l[l.find(key).expect("stage list") + key.len()..];
        for name in bedside::pipeline::STAGES {
            let at = stages
                .find(&format!("{name} "))
                .unwrap_or_else(|| panic!("{name} in {l}"));
            let v: Vec<f64> = stages[at + name.len() + 1..]
                .split([',', ' '])
                .next()
                .unwrap()
                .split('/')
                .map(|x| x.parse().unwrap())
                .collect();
            assert!(
                v.len() == 3 && v[0] <= v[1] && v[1] <= v[2] && v[2] < 60_000.0,
                "{name}: {v:?} in {l}"
            );
        }
    }
}

/// The index of the frame the feeder froze on (it prints it).
/// The screen under an alarm: the picture region is `picture` exactly
/// (as bedside's overlay draws it on the host) and the banner is the
/// host-drawn banner of `reason`, pixel for pixel.
fn assert_alarm_screen(s: &Screen, picture: &[u8], reason: AlarmReason, what: &str) {
    let want = expected_screen(picture, Status::Waiting(""));
    let banner = alarm_banner(reason);
    let top = banner_rows(&banner);
    assert!(top > 40, "a banner {top} rows high");
    assert_eq!(
        differences(s, &want, 0..PANEL_X, top..H - NOTICE),
        0,
        "the picture is {what}, exactly"
    );
    // The banner spans the screen, the panel's top included.
    assert_eq!(
        differences(s, &banner, 0..W, 0..top),
        0,
        "the banner says {}",
        reason.text()
    );
}

/// Waits for the guest's "`what` cleared" mark and checks the alarm banner
/// is gone; returns the screen.
fn assert_cleared(vm: &mut Vm, what: &str) -> Screen {
    vm.wait_for(
        &format!("BEDSIDE-SYSTEM: {what} cleared"),
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(1));
    let s = vm.screen();
    assert!(
        s.share(0..W, 0..3, RED) < 0.1 && s.share(0..W, 0..3, CYAN) < 0.1,
        "the {what} alarm cleared"
    );
    s
}

fn frozen_frame(log: &str) -> usize {
    let at = log
        .rfind("vivid_feed: Frozen begins")
        .expect("the feeder froze");
    let line = log[at..].lines().next().unwrap();
    line.rsplit("frame ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "boots an arm64 VM: scripts/test runs it with BEDSIDE_SYSTEM_BIN"]
fn ultrasound_echo_through_vivid_loopback_with_injected_anomalies() {
    let frames = echo_frames();
    let body = r#"feed echo.gray
run --duration 400
waitlog "anomaly baseline learned" 1 120 && sleep 4
mark "normal playback"; sleep 5
ask frozen; waitlog "ALARM raised: frozen image" 1 40 && mark "frozen alarm"; sleep 6
ask normal; waitlog "alarm cleared" 1 40 && mark "frozen cleared"; sleep 5
ask blank; waitlog "ALARM raised: no contact" 1 40 && mark "blank alarm"; sleep 6
ask normal; waitlog "alarm cleared" 2 40 && mark "blank cleared"; sleep 5
mark "stopping"; kill -INT $(pidof bedside); wait $runner"#;
    let mut vm = Vm::boot("ultrasound", &script(body), &[("echo.gray", &frames)]);
    let log = vm.wait_for("starting ultrasound run", Duration::from_secs(90));
    assert!(
        log.contains("the input locked on 640x480p59.94"),
        "{}",
        tail(&log, 30)
    );
    assert!(log.contains("capturing 640x480 YUYV"), "{}", tail(&log, 30));
    vm.wait_for("BEDSIDE-SYSTEM: normal playback", Duration::from_secs(150));
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
        s.share(0..W, H - 10..H - 4, WHITE) > 0.4,
        "the DEMONSTRATION banner"
    );
    assert!(
        s.share(0..PANEL_X, 2..8, RED) < 0.1,
        "no alarm on the real echo"
    );
    assert!(s.grays(0..PANEL_X, 40..440) > 20, "the echo on screen");

    // Frozen: the screen holds the frozen frame exactly, under the alarm.
    let log = vm.wait_for("BEDSIDE-SYSTEM: frozen alarm", Duration::from_secs(60));
    let k = frozen_frame(&log);
    std::thread::sleep(Duration::from_secs(1));
    let frozen = &frames[k * W * H..(k + 1) * W * H];
    assert_alarm_screen(
        &vm.screen(),
        frozen,
        AlarmReason::Frozen,
        &format!("frame {k}"),
    );
    assert_cleared(&mut vm, "frozen");

    // Blank: black picture, the no-contact alarm.
    vm.wait_for("BEDSIDE-SYSTEM: blank alarm", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    assert_alarm_screen(
        &vm.screen(),
        &vec![0; W * H],
        AlarmReason::NoContact,
        "a black picture",
    );
    let s = assert_cleared(&mut vm, "blank");
    assert!(s.grays(0..PANEL_X, 40..440) > 20, "the echo is back");

    let log = vm.finish(Duration::from_secs(120));
    assert!(log.contains("BEDSIDE-SYSTEM: exit 0"), "{}", tail(&log, 40));
    assert!(!log.contains("panicked"), "{}", tail(&log, 40));
    assert!(!log.contains("timed out waiting"), "{}", tail(&log, 40));
    assert!(log.contains("/dev/tty0: console back in text mode"));
    check_stats(&log, 4);
    // Each alarm rose within the detection delay of the anomaly detector
    // (docs/EVALUATION.md: blank 2, frozen 3 judged frames) of the first frame
    // of the run of frames judged abnormal for that reason that led to it, and
    // the alarms were exactly these two. (A lone repeated frame earlier, when
    // the feeder in the VM is late and vivid shows a frame twice, is judged
    // frozen too but raises nothing: the delay is counted from the run.)
    let recs = records(&log);
    let judged: Vec<&serde_json::Value> =
        recs.iter().filter(|r| r["status"] == "processed").collect();
    for (reason, delay) in [(AlarmReason::Frozen, 3), (AlarmReason::NoContact, 2)] {
        let raised = judged
            .iter()
            .position(|r| r["anomaly"]["alarm"] == reason.text())
            .unwrap_or_else(|| panic!("no alarm {}", reason.text()));
        let judged_so = |i: usize| judged[i]["anomaly"]["cause"] == reason.text();
        let mut first = if judged_so(raised) {
            raised
        } else {
            raised.saturating_sub(1)
        };
        assert!(
            judged_so(first),
            "{}: alarm at judged frame {raised} with no frame judged so before it",
            reason.text()
        );
        while first > 0 && judged_so(first - 1) {
            first -= 1;
        }
        assert!(
            raised - first <= delay,
            "{}: judged frames {first} -> {raised}",
            reason.text()
        );
    }
    let raised_total = log.matches("ALARM raised").count();
    assert_eq!(
        raised_total,
        2,
        "exactly the two injected alarms: {}",
        tail(&log, 60)
    );
}

#[test]
#[ignore = "boots an arm64 VM: scripts/test runs it with BEDSIDE_SYSTEM_BIN"]
fn xray_radiograph_through_loopback_classified_on_freeze() {
    let frame = radiograph_frame();
    let body = r#"feed chest.gray
run --mode xray --trigger button --duration 400
waitlog "starting xray run" 1 120 && sleep 4
mark "before freeze"
waitlog "FREEZE: classifying this picture" 1 60 && sleep 8
mark "stopping"; kill -INT $(pidof bedside); wait $runner"#;
    let mut vm = Vm::boot("xray", &script(body), &[("chest.gray", &frame)]);
    vm.wait_for("BEDSIDE-SYSTEM: before freeze", Duration::from_secs(150));
    let before = vm.screen();
    // A demonstration bundle's result is the classes ranked (no bars, no
    // percentages): the ranking's lower lines, in gray below the class
    // name, where the waiting state draws nothing.
    let ranking =
        |s: &Screen| s.count(PANEL_X + 8..W, 95..145, DIM) + s.count(PANEL_X + 8..W, 95..145, TEXT);
    assert!(
        ranking(&before) < 10,
        "no result before FREEZE: {}",
        ranking(&before)
    );
    assert!(
        before.count(PANEL_X + 8..W, 60..300, CYAN) < 10,
        "no bars before FREEZE"
    );
    assert!(
        before.grays(0..PANEL_X, 40..440) > 20,
        "the radiograph on screen"
    );
    // FREEZE: the power-button line of the PL061, pressed from the host.
    vm.command(serde_json::json!({"execute": "system_powerdown"}));
    vm.wait_for("FREEZE: classifying this picture", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(5));
    let after = vm.screen();
    assert!(
        ranking(&after) > 40,
        "the ranking after FREEZE: {}",
        ranking(&after)
    );
    assert!(
        after.share(0..W, H - 10..H - 4, WHITE) > 0.4,
        "the DEMONSTRATION banner"
    );
    assert!(
        after.grays(0..PANEL_X, 40..440) > 20,
        "the radiograph stays with its result"
    );
    let log = vm.finish(Duration::from_secs(120));
    assert!(log.contains("FREEZE pressed"), "{}", tail(&log, 40));
    assert!(log.contains("BEDSIDE-SYSTEM: exit 0"), "{}", tail(&log, 40));
    assert!(!log.contains("panicked"), "{}", tail(&log, 40));
    let classified: Vec<serde_json::Value> = records(&log)
        .into_iter()
        .filter(|r| r["status"] == "processed")
        .collect();
    assert_eq!(
        classified.len(),
        1,
        "one classification, on FREEZE: {classified:?}"
    );
    assert!(
        classified[0]["classification"]["top"].is_string(),
        "{:?}",
        classified[0]
    );
}

/// Faults through vivid's controls while bedside streams the cine: dropped
/// and error-flagged buffers (counted), a fatal streaming error (stream
/// reopened), HDMI no signal (NO SIGNAL, nothing judged on the noise), and
/// a disconnection held until vivid is reloaded (NO SIGNAL, then capture
/// resumes by itself).
#[test]
#[ignore = "boots an arm64 VM: scripts/test runs it with BEDSIDE_SYSTEM_BIN"]
fn vivid_faults_are_shown_counted_and_survived() {
    let frames = echo_frames();
    let body = r#"ctl() { /bin/vivid_ctl /dev/video0 "$@" 2>&1; }
count() { grep -c "$1" /tmp/log; }
feed echo.gray
run --duration 400
waitlog "starting ultrasound run" 1 120 && sleep 6
mark "fault drops"; ctl "Percentage of Dropped Buffers" 50; sleep 4; ctl "Percentage of Dropped Buffers" 0
mark "fault error buffer"; i=0
# In loopback the output's thread may take the injected error instead of
# the input's (the feeder then restarts its stream): press until bedside sees one.
until grep -q "flagged 1 buffer" /tmp/log || [ $i -ge 10 ]; do ctl "Inject V4L2_BUF_FLAG_ERROR" press; sleep 1; i=$((i+1)); done
n=$(count "reconnected after")
mark "fault fatal"; ctl "Inject Fatal Streaming Error" press; waitlog "reconnected after" $((n+1)) 30; sleep 3
n=$(count "reconnected after")
mark "fault hdmi no signal"; ctl "DV Timings Signal Mode" 1; waitlog "no signal on the input" 1 20; sleep 3
mark "hdmi no signal held"; sleep 4
ctl "DV Timings Signal Mode" 4; waitlog "reconnected after" $((n+1)) 30 && mark "hdmi signal back"; sleep 4
mark "fault disconnect"; ctl "Disconnect" press; waitlog "device disconnected" 1 20; sleep 4
mark "disconnect held"; sleep 4
mark "reloading vivid"; locked=$(count "the input locked on 640x480"); kill -9 $(pidof vivid_feed); i=0
until rmmod vivid 2>/dev/null; do i=$((i+1)); [ $i -lt 2000 ] || { mark "rmmod failed"; break; }; done
mark "vivid unloaded"; sleep 2; insmod /mods/*-vivid.ko $VIVID && feed echo.gray
waitlog "the input locked on 640x480" $((locked+1)) 60 && mark "capture resumed"; sleep 5
mark "stopping"; kill -INT $(pidof bedside); wait $runner"#;
    let mut vm = Vm::boot("faults", &script(body), &[("echo.gray", &frames)]);
    // The technical condition's yellow frame across the top, and no
    // picture: black, crossed out in one gray.
    let no_signal_screen =
        |s: &Screen| s.share(0..W, 0..3, YELLOW) > 0.9 && s.grays(0..PANEL_X, 70..H - NOTICE) <= 2;
    // A technical condition's banner (NO SIGNAL, AI UNAVAILABLE): a yellow
    // frame with black inside. Not a yellow alarm (artefact, unexpected
    // content), which is solid: the detector may judge the picture's
    // return abrupt, and that is its call, not a fault of the device path.
    let technical_banner = |s: &Screen| {
        s.share(0..W, 0..3, YELLOW) > 0.9 && s.share(20..PANEL_X - 20, 5..9, [0, 0, 0]) > 0.9
    };
    let log = vm.wait_for(
        "BEDSIDE-SYSTEM: hdmi no signal held",
        Duration::from_secs(240),
    );
    assert!(
        log.contains("vivid_ctl: Percentage of Dropped Buffers = 50"),
        "{}",
        tail(&log, 40)
    );
    let s = vm.screen();
    assert!(
        no_signal_screen(&s),
        "NO SIGNAL and no picture while the HDMI input has no signal"
    );
    vm.wait_for("BEDSIDE-SYSTEM: hdmi signal back", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let s = vm.screen();
    assert!(
        s.grays(0..PANEL_X, 100..440) > 20 && !technical_banner(&s),
        "picture back after the signal"
    );
    vm.wait_for("BEDSIDE-SYSTEM: disconnect held", Duration::from_secs(60));
    let s = vm.screen();
    assert!(
        no_signal_screen(&s),
        "NO SIGNAL while the device is disconnected"
    );
    let log = vm.wait_for("BEDSIDE-SYSTEM: capture resumed", Duration::from_secs(90));
    assert!(!log.contains("rmmod failed"), "{}", tail(&log, 40));
    std::thread::sleep(Duration::from_secs(2));
    let s = vm.screen();
    assert!(
        s.grays(0..PANEL_X, 100..440) > 20,
        "the picture is back after the reload"
    );
    assert!(
        !technical_banner(&s),
        "no NO SIGNAL (or AI UNAVAILABLE) banner any more"
    );

    let log = vm.finish(Duration::from_secs(120));
    assert!(log.contains("BEDSIDE-SYSTEM: exit 0"), "{}", tail(&log, 60));
    assert!(!log.contains("panicked"), "{}", tail(&log, 60));
    assert!(!log.contains("timed out waiting"), "{}", tail(&log, 60));
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
        after("fault fatal", "the stream failed"),
        "{}",
        tail(&log, 40)
    );
    assert!(
        after("fault disconnect", "device disconnected; reopening"),
        "{}",
        tail(&log, 40)
    );
    check_stats(&log, 4);
    let summary = &log[log.rfind("== ultrasound mode").expect("the run's summary")..];
    assert!(
        !summary.contains("device: 0 frame(s)"),
        "device losses counted: {summary}"
    );
    assert!(!summary.contains(", 0 damaged buffer(s)"), "{summary}");
    assert!(summary.contains("no-signal events"), "{summary}");
    // Nothing was judged while the HDMI input had no signal: between the
    // first and the last record of that no-signal spell, no frame processed.
    let recs = records(&log);
    let spell: Vec<usize> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r["status"] == "no_signal"
                && r["reason"]
                    .as_str()
                    .is_some_and(|s| s.contains("no signal on the input"))
        })
        .map(|(i, _)| i)
        .collect();
    assert!(
        spell.len() >= 2,
        "the no-signal spell is in the log: {spell:?}"
    );
    let judged_in_spell = recs[spell[0]..=*spell.last().unwrap()]
        .iter()
        .filter(|r| r["status"] == "processed")
        .count();
    assert_eq!(judged_in_spell, 0, "no result computed without a signal");
}
