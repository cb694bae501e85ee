//! Files built to take a cart's screen down, each run through the binary
//! in an address space of [`LIMIT_KIB`] (the shell's `ulimit -v`): a
//! decoder that allocated what a file claims would die there (out of
//! memory: SIGABRT, or a stack overflow), so each must end in one clear
//! line and exit 1 instead. Every input is generated here; none is a
//! committed multi-megabyte file.
//!
//! The same files dropped into a watched folder are skipped and logged
//! while the run goes on, and the hot folder itself behaves as a service:
//! it answers SIGTERM within a second while idle, with its log flushed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, bedside_argv};

/// 2 GiB of address space: the 4 GiB claims below cannot be met in it,
/// and bedside (or qemu-aarch64 running it) needs far less.
const LIMIT_KIB: u64 = 2 << 20;

/// Runs bedside with `args` under the address-space limit.
fn run_limited(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {LIMIT_KIB} && exec \"$@\""))
        .arg("sh")
        .args(bedside_argv())
        .args(args)
        .output()
        .expect("spawn sh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `preprocess FILE` under the limit must fail with one line holding every
/// fragment, exit 1, no panic.
fn refused(file: &Path, extra: &[&str], fragments: &[&str]) {
    let out = file.with_extension("out.png");
    let mut args = vec![
        "preprocess",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = run_limited(&args);
    assert_eq!(code, 1, "exit code for {args:?}; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line for {args:?}, got: {err}");
    for f in fragments {
        assert!(lines[0].contains(f), "{args:?}: '{}' lacks '{f}'", lines[0]);
    }
    assert!(!out.exists(), "nothing written for a refused file");
}

// ---- DICOM builders (explicit VR little endian) ----------------------------

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const RLE: &str = "1.2.840.10008.1.2.5";

fn el(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(if matches!(vr, b"OB" | b"UI") { 0 } else { b' ' });
    }
    let mut out = [group.to_le_bytes(), element.to_le_bytes()].concat();
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
    }
    out.extend(v);
    out
}

fn us(group: u16, element: u16, v: u16) -> Vec<u8> {
    el(group, element, b"US", &v.to_le_bytes())
}

fn meta(ts: &str) -> Vec<u8> {
    let body = [
        el(0x0002, 0x0001, b"OB", &[0, 1]),
        el(0x0002, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.7"),
        el(0x0002, 0x0003, b"UI", b"1.2.3.4"),
        el(0x0002, 0x0010, b"UI", ts.as_bytes()),
    ]
    .concat();
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend(el(
        0x0002,
        0x0000,
        b"UL",
        &(body.len() as u32).to_le_bytes(),
    ));
    out.extend(body);
    out
}

fn image_module(rows: u16, cols: u16, samples: u16, pi: &str) -> Vec<u8> {
    [
        us(0x0028, 0x0002, samples),
        el(0x0028, 0x0004, b"CS", pi.as_bytes()),
        us(0x0028, 0x0006, 0),
        us(0x0028, 0x0010, rows),
        us(0x0028, 0x0011, cols),
        us(0x0028, 0x0100, 8),
        us(0x0028, 0x0101, 8),
        us(0x0028, 0x0102, 7),
        us(0x0028, 0x0103, 0),
    ]
    .concat()
}

/// A Part 10 file whose data set is deflated (raw deflate, PS3.5 A.5).
fn deflated(data_set: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data_set).unwrap();
    [meta(DEFLATED), z.finish().unwrap()].concat()
}

/// Encapsulated pixel data: an empty offset table, then one fragment.
fn encapsulated(fragment: &[u8]) -> Vec<u8> {
    let mut out = vec![
        0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
    out.extend_from_slice(&(fragment.len() as u32).to_le_bytes());
    out.extend_from_slice(fragment);
    out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    out
}

/// Sequences nested `depth` deep, each of undefined length with one item.
fn nested(depth: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..depth {
        out.extend_from_slice(&[
            0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    }
    for _ in 0..depth {
        out.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The hostile DICOM files: (name, bytes, what the error line says), made once.
fn hostile_dicoms() -> &'static [(&'static str, Vec<u8>, &'static str)] {
    static FILES: std::sync::OnceLock<Vec<(&str, Vec<u8>, &str)>> = std::sync::OnceLock::new();
    FILES.get_or_init(make_hostile_dicoms)
}

fn make_hostile_dicoms() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    // 409 bytes claiming ~4 GiB of pixel data inside a deflated data set.
    let claim = [
        image_module(64, 64, 1, "MONOCHROME2"),
        vec![
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF,
        ],
        vec![0; 64],
    ]
    .concat();
    // A real bomb: 24 MiB of zeros inflated from a few KB, over a 16 MiB budget.
    let bomb = [
        image_module(64, 64, 1, "MONOCHROME2"),
        el(0x0009, 0x0010, b"OB", &vec![0; 24 << 20]),
    ]
    .concat();
    // 16384x16384 RGB behind one tiny JPEG fragment, and the same as RLE.
    let jpeg = [
        meta(JPEG_BASELINE),
        image_module(16384, 16384, 3, "YBR_FULL_422"),
        encapsulated(&[0xFF, 0xD8, 0xFF, 0xD9]),
    ]
    .concat();
    let rle = [
        meta(RLE),
        image_module(16384, 16384, 3, "RGB"),
        encapsulated(&[0; 64]),
    ]
    .concat();
    // An (FFFE,E0F0) element at the top level: the parser reads its 12-byte
    // value; a walk taking it for an item would read that value as a header
    // and skip the Pixel Data header behind it, which claims ~4 GiB.
    let fffe = [
        meta(EXPLICIT_LE),
        image_module(64, 64, 1, "MONOCHROME2"),
        vec![0xFE, 0xFF, 0xF0, 0xE0, 12, 0, 0, 0],
        vec![0x09, 0x00, 0x11, 0x00, b'O', b'B', 0, 0, 12, 0, 0, 0],
        vec![
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF,
        ],
    ]
    .concat();
    vec![
        ("claim.dcm", deflated(&claim), "claims 4294967280 bytes"),
        (
            "bomb.dcm",
            deflated(&bomb),
            "inflates past the decode budget of 16 MiB",
        ),
        (
            "nested.dcm",
            deflated(&nested(5000)),
            "sequences nest more than 32 deep",
        ),
        (
            "nested-plain.dcm",
            [meta(EXPLICIT_LE), nested(5000)].concat(),
            "sequences nest more than 32 deep",
        ),
        ("jpeg16k.dcm", jpeg, "over the decode budget of 16 MiB"),
        ("rle16k.dcm", rle, "over the decode budget of 16 MiB"),
        ("fffe.dcm", fffe, "claims 4294967280 bytes"),
    ]
}

#[test]
fn hostile_dicoms_are_one_clear_line_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, says) in hostile_dicoms() {
        let file = write(dir.path(), name, bytes);
        refused(&file, &["--decode-budget", "16"], &[name, says]);
    }
    // The nested file is small: the depth limit, not the budget, refuses it.
    let (_, bytes, _) = &hostile_dicoms()[2];
    assert!(bytes.len() < 2048, "{} bytes", bytes.len());
}

#[test]
fn the_default_budget_refuses_a_16k_jpeg_dicom_and_names_the_claim() {
    let dir = tempfile::tempdir().unwrap();
    let (name, bytes, _) = &hostile_dicoms()[4];
    let file = write(dir.path(), name, bytes);
    refused(
        &file,
        &[],
        &[
            "a decoded frame would take 1.5 GiB",
            "decode budget of 256 MiB",
        ],
    );
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn gradient(w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([(x * 7 + y * 3) as u8])
    }))
}

#[test]
fn truncated_and_oversized_pictures_are_errors_not_filled_in() {
    use image::ImageFormat::{Jpeg, Png, Tiff};
    let dir = tempfile::tempdir().unwrap();
    let jpeg = encode(gradient(64, 48), Jpeg);
    // Cut short: no end-of-image marker.
    let cut = write(dir.path(), "cut.jpg", &jpeg[..jpeg.len() * 6 / 10]);
    refused(&cut, &[], &["cut.jpg", "truncated JPEG"]);
    let png = encode(gradient(64, 48), Png);
    let cut = write(dir.path(), "cut.png", &png[..png.len() - 20]);
    refused(&cut, &[], &["cut.png", "not a readable image"]);
    let tiff = encode(gradient(64, 48), Tiff);
    let cut = write(dir.path(), "cut.tiff", &tiff[..tiff.len() * 6 / 10]);
    refused(&cut, &[], &["cut.tiff", "not a readable image"]);
    // 4100x4100 gray: 16.0 MiB decoded, over a 16 MiB budget.
    let big = image::DynamicImage::ImageLuma8(image::GrayImage::new(4100, 4100));
    let big = write(dir.path(), "big.png", &encode(big, Png));
    refused(
        &big,
        &["--decode-budget", "16"],
        &["big.png", "over the decode budget of 16 MiB"],
    );
    // The intact ones still decode.
    for (name, bytes) in [("ok.jpg", jpeg), ("ok.png", png), ("ok.tiff", tiff)] {
        let f = write(dir.path(), name, &bytes);
        let out = dir.path().join(format!("{name}.out.png"));
        let (code, _, err) = run_limited(&[
            "preprocess",
            f.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{name}: {err}");
    }
}

#[test]
fn a_file_too_big_or_not_a_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // 3 GiB, sparse: refused from its size, never read.
    let huge = dir.path().join("huge.dcm");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    refused(
        &huge,
        &[],
        &["huge.dcm", "3.0 GiB is over the 256 MiB limit"],
    );
    // A symlink to an endless device named on the command line is followed
    // and found not to be a file.
    let zero = dir.path().join("zero.dcm");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    refused(
        &zero,
        &[],
        &["zero.dcm", "is a character device, not a regular file"],
    );
}

#[test]
fn a_bundle_file_that_is_a_symlink_fifo_or_huge_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::root().join("models/xray-demo");
    type Make<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Make, &str); 3] = [
        (
            "link",
            &|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap(),
            "is a symbolic link",
        ),
        (
            "fifo",
            &|p| {
                let ok = Command::new("mkfifo").arg(p).status().unwrap().success();
                assert!(ok, "mkfifo");
            },
            "is a FIFO, not a regular file",
        ),
        (
            "huge",
            &|p| std::fs::File::create(p).unwrap().set_len(3 << 30).unwrap(),
            "over the 512 MiB limit for a model file",
        ),
    ];
    for (name, make, says) in cases {
        let bundle = dir.path().join(name);
        common::copy_bundle(&src, &bundle);
        let model = bundle.join("model.onnx");
        std::fs::remove_file(&model).unwrap();
        make(&model);
        let started = Instant::now();
        let (code, _, err) = run_limited(&["model", "info", bundle.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(
            err.contains("model.onnx") && err.contains(says),
            "{name}: {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "{name} hung");
    }
}

#[test]
fn control_characters_in_a_file_name_are_escaped_in_the_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let name = "bad\u{1b}[2J\nname.png";
    let file = write(dir.path(), name, b"not a png");
    let (code, _, err) = run_limited(&[
        "preprocess",
        file.to_str().unwrap(),
        "--out",
        dir.path().join("o.png").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert!(err.contains("bad\\u{1b}[2J"), "{err:?}");
}

/// A watched folder: the hostile files are skipped and logged, the good
/// one after them is processed, and the idle run then answers SIGTERM
/// within a second with every `--jsonl` line flushed. The folder and the
/// log are the service's: files 0600.
#[test]
fn a_watched_folder_skips_hostile_files_and_stops_promptly_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("in");
    std::fs::create_dir(&watched).unwrap();
    let log = dir.path().join("frames.jsonl");
    let screens = dir.path().join("screens");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {LIMIT_KIB} && exec \"$@\""))
        .arg("sh")
        .args(bedside_argv())
        .args([
            "run",
            "-v",
            "--mode",
            "xray",
            "--source",
            &format!("watch:{}", watched.display()),
            "--display",
            &format!("headless:{}", screens.display()),
            "--jsonl",
            log.to_str().unwrap(),
            "--decode-budget",
            "16",
            "--stall-after",
            "60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Waiting for images: the screen says so before any file arrives.
    let waiting = wait_for(Duration::from_secs(300), || {
        std::fs::read_dir(&screens).is_ok_and(|d| d.count() > 0)
    });
    assert!(waiting, "no waiting screen");
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let mut names = Vec::new();
    for (name, bytes, _) in hostile_dicoms() {
        let p = write(&staging, name, bytes);
        std::fs::rename(&p, watched.join(name)).unwrap();
        names.push(*name);
    }
    // The good one: a real chest radiograph (a gradient would now be
    // refused by the X-ray bundle's pixel gate, after the model ran).
    let good = std::fs::read(crate::common::root().join("assets/demo/chest_cr.dcm")).unwrap();
    let p = write(&staging, "zz-good.dcm", &good);
    std::fs::rename(&p, watched.join("zz-good.dcm")).unwrap();
    // Every file accounted for: a skipped line each, then the good one.
    let lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let all_in = wait_for(Duration::from_secs(600), || {
        lines().iter().filter(|l| l["status"] == "skipped").count() == names.len()
            && lines().iter().any(|l| l["status"] == "processed")
    });
    assert!(all_in, "log: {:?}", std::fs::read_to_string(&log));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended by itself"
    );
    // Idle again (no file comes): SIGTERM must end it. The source returns
    // after every empty poll (250 ms), so it takes well under a second on
    // a board; the bound here only catches a run blocked on the folder,
    // and the time taken is printed (a loaded machine under qemu is slow).
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let asked = Instant::now();
    let stopped = wait_for(Duration::from_secs(30), || {
        child.try_wait().unwrap().is_some()
    });
    let took = asked.elapsed();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(stopped && out.status.success(), "{:?} {err}", out.status);
    eprintln!("idle watch: SIGTERM to exit took {took:?}");
    let skipped: Vec<String> = lines()
        .iter()
        .filter(|l| l["status"] == "skipped")
        .map(|l| l["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    for name in &names {
        assert!(
            skipped.iter().any(|r| r.contains(name)),
            "{name} not skipped: {skipped:?}"
        );
    }
    assert!(err.contains("waiting for new images"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(&screens), 0o700);
    for f in std::fs::read_dir(&screens).unwrap() {
        assert_eq!(mode(&f.unwrap().path()), 0o600);
    }
}

/// Polls `done` until it holds or `limit` passes.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// Under systemd, an idle hot folder is ready and alive: READY=1 once the
/// folder is watched, then WATCHDOG=1 while nothing arrives.
#[test]
fn an_idle_watched_folder_tells_systemd_it_is_ready_and_alive() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify");
    let listener = UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let watched = dir.path().join("in");
    std::fs::create_dir(&watched).unwrap();
    let mut child = common::bedside()
        .args([
            "run",
            "--mode",
            "xray",
            "--source",
            &format!("watch:{}", watched.display()),
        ])
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "1000000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.iter().filter(|m: &&String| *m == "WATCHDOG=1").count() < 2 {
        match listener.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) => {
                let _ = child.kill();
                panic!("{e}: heard only {got:?}");
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        got.first().map(String::as_str),
        Some("READY=1\nSTATUS=running"),
        "{got:?}"
    );
    assert!(
        got.iter().any(|m| m == "STATUS=waiting for images"),
        "{got:?}"
    );
}
