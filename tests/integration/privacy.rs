//! Privacy (issue #12, point 3): bedside's outputs carry no DICOM patient
//! attributes and no pixel data, and nothing is written that was not asked for.
//!
//! The two real DICOM files of the demo get made-up patient attributes that
//! cannot occur by chance, then every command that reads DICOM runs on them
//! with every output it has switched on (stdout, stderr with every log level,
//! `--jsonl`, recording of results and pictures, headless screen PNGs,
//! `preprocess` and `classify --json`, a failing file's error line). Every
//! byte written is searched for the planted values, case-insensitively.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{bedside, root};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;

/// Values planted in the files; none may appear in any output. The name's
/// components are searched apart (a person name may be shown reordered).
const FAMILY: &str = "Zyxwvutsrq";
const GIVEN: &str = "Qoplarnemk";
const PATIENT_ID: &str = "PID4417093XK";
const BIRTH_DATE: &str = "19421107";
const ADDRESS: &str = "Wqxzvbnm Street 41";
const ACCESSION: &str = "ACC7730912QW";
const SECRETS: [&str; 6] = [FAMILY, GIVEN, PATIENT_ID, BIRTH_DATE, ADDRESS, ACCESSION];

/// Copies a demo DICOM file with the planted patient attributes.
fn with_patient(demo: &str, to: &Path) -> PathBuf {
    let mut obj = dicom_object::open_file(root().join("assets/demo").join(demo)).unwrap();
    let name = format!("{FAMILY}^{GIVEN}");
    for (tag, vr, value) in [
        (tags::PATIENT_NAME, VR::PN, name.as_str()),
        (tags::PATIENT_ID, VR::LO, PATIENT_ID),
        (tags::PATIENT_BIRTH_DATE, VR::DA, BIRTH_DATE),
        (tags::PATIENT_ADDRESS, VR::LO, ADDRESS),
        (tags::ACCESSION_NUMBER, VR::SH, ACCESSION),
    ] {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    }
    let path = to.join(demo);
    obj.write_to_file(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for s in SECRETS {
        assert!(
            find(&bytes, s),
            "{demo}: planted {s} is not in the written file"
        );
    }
    path
}

/// Case-insensitive search of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.to_ascii_lowercase().into_bytes();
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(&needle))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A scratch place: inputs in `input/`, the run's working directory, HOME and
/// TMPDIR in `work/`, `home/` and `tmp/`, all empty at start.
struct Scratch {
    _dir: tempfile::TempDir,
    input: PathBuf,
    work: PathBuf,
    home: PathBuf,
    tmp: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| {
            let d = dir.path().join(n);
            std::fs::create_dir(&d).unwrap();
            d
        };
        Scratch {
            input: p("input"),
            work: p("work"),
            home: p("home"),
            tmp: p("tmp"),
            _dir: dir,
        }
    }

    /// bedside with everything logged and the scratch places as its world.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = bedside();
        c.args(args)
            .current_dir(&self.work)
            .env("HOME", &self.home)
            .env("TMPDIR", &self.tmp)
            .env("RUST_LOG", "trace");
        c
    }

    /// Runs bedside; returns (exit code, stdout + stderr bytes).
    fn run(&self, args: &[&str]) -> (i32, Vec<u8>) {
        let out = self.command(args).output().expect("spawn bedside");
        let mut text = out.stdout;
        text.extend_from_slice(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    }

    /// Everything written under work/, home/ and tmp/.
    fn written(&self) -> Vec<PathBuf> {
        [&self.work, &self.home, &self.tmp]
            .iter()
            .flat_map(|d| files_under(d))
            .collect()
    }
}

fn assert_clean(what: &str, bytes: &[u8]) {
    for s in SECRETS {
        assert!(
            !find(bytes, s),
            "{what} holds the patient attribute {s}: {}",
            String::from_utf8_lossy(bytes)
                .lines()
                .find(|l| find(l.as_bytes(), s))
                .unwrap_or("")
        );
    }
}

/// No JSON value in a record is long enough to carry pixels: arrays of at
/// most 64 numbers (the anomaly features, probabilities), strings under 300
/// characters.
fn assert_no_pixels(what: &str, v: &serde_json::Value) {
    match v {
        serde_json::Value::Array(a) => {
            assert!(a.len() <= 64, "{what}: an array of {} values", a.len());
            a.iter().for_each(|x| assert_no_pixels(what, x));
        }
        serde_json::Value::Object(o) => o.values().for_each(|x| assert_no_pixels(what, x)),
        serde_json::Value::String(s) => {
            assert!(s.len() < 300, "{what}: a string of {} bytes", s.len())
        }
        _ => {}
    }
}

fn assert_jsonl_clean(path: &Path, min_records: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_no_pixels(&path.display().to_string(), &v);
        n += 1;
    }
    assert!(
        n >= min_records,
        "{}: {n} records, expected at least {min_records}",
        path.display()
    );
}

#[test]
fn no_output_carries_patient_attributes_or_pixels() {
    let s = Scratch::new();
    let cine = with_patient("echo_cine.dcm", &s.input);
    let film = with_patient("chest_cr.dcm", &s.input);
    let cine_src = format!("dicom:{}", cine.display());
    let film_src = format!("dicom:{}", film.display());
    let w = |n: &str| s.work.join(n).display().to_string();

    let runs: Vec<Vec<String>> = vec![
        vec![
            "run",
            "-v",
            "--source",
            &cine_src,
            "--mode",
            "ultrasound",
            "--jsonl",
            &w("us.jsonl"),
            "--display",
            &format!("headless:{}", w("us-screen")),
            "--record",
            &w("us-rec"),
            "--record-what",
            "pictures,results",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "run",
            "-v",
            "--source",
            &film_src,
            "--mode",
            "xray",
            "--jsonl",
            &w("xray.jsonl"),
            "--display",
            &format!("headless:{}", w("xray-screen")),
            "--record",
            &w("xray-rec"),
            "--record-what",
            "pictures,results",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "classify".into(),
            "-v".into(),
            "--model".into(),
            root().join("models/xray-demo").display().to_string(),
            film.display().to_string(),
            "--json".into(),
        ],
        vec![
            "preprocess".into(),
            "-v".into(),
            film.display().to_string(),
            "--out".into(),
            w("film.png"),
            "--chain".into(),
            "crop=auto,resize=128x128,equalize".into(),
        ],
        vec![
            "eval-anomaly".into(),
            "-v".into(),
            cine.display().to_string(),
            "--frames".into(),
            "120".into(),
            "--clean-hours".into(),
            "0.001".into(),
            "--json".into(),
        ],
    ];
    for args in &runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, output) = s.run(&args);
        assert_eq!(code, 0, "{args:?}: {}", String::from_utf8_lossy(&output));
        assert_clean(&format!("stdout/stderr of {args:?}"), &output);
    }

    // Broken copies: the error line names the file and the reason, never a value.
    let bytes = std::fs::read(&cine).unwrap();
    let truncated = s.input.join("truncated.dcm");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let mut bad_vr = bytes.clone();
    let at = bad_vr
        .windows(FAMILY.len())
        .position(|w| w == FAMILY.as_bytes())
        .unwrap();
    // The patient name's length field (the 2 bytes before its value) made huge.
    bad_vr[at - 2] = 0xff;
    bad_vr[at - 1] = 0xff;
    let bad_len = s.input.join("bad_length.dcm");
    std::fs::write(&bad_len, &bad_vr).unwrap();
    for broken in [&truncated, &bad_len] {
        let src = format!("dicom:{}", broken.display());
        for args in [
            vec!["run", "-v", "--source", &src, "--mode", "ultrasound"],
            vec![
                "preprocess",
                "-v",
                broken.to_str().unwrap(),
                "--out",
                "x.png",
            ],
        ] {
            let (_code, output) = s.run(&args);
            assert_clean(&format!("output of {args:?}"), &output);
        }
    }

    // Every file written, pictures included, holds none of the attributes.
    let written = s.written();
    assert!(written.len() > 10, "{written:?}");
    for f in &written {
        assert_clean(&f.display().to_string(), &std::fs::read(f).unwrap());
    }
    // The logs and result records hold no pixels.
    assert_jsonl_clean(&s.work.join("us.jsonl"), 30);
    assert_jsonl_clean(&s.work.join("xray.jsonl"), 1);
    for f in written
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "jsonl" || e == "json"))
    {
        assert_jsonl_clean(f, 1);
    }
    // Only what was asked for: nothing in HOME or TMPDIR.
    assert!(
        written.iter().all(|f| f.starts_with(&s.work)),
        "written outside the working directory: {written:?}"
    );
}

#[test]
fn nothing_is_written_unless_configured() {
    let s = Scratch::new();
    let cine = with_patient("echo_cine.dcm", &s.input);
    let src = format!("dicom:{}", cine.display());
    for args in [
        vec!["run", "-v", "--source", &src, "--mode", "ultrasound"],
        vec!["run", "-v", "--source", &src, "--mode", "xray"],
        vec!["run", "-v", "--source", "synthetic", "--frames", "20"],
        vec![
            "classify",
            "--model",
            root().join("models/xray-demo").to_str().unwrap(),
            cine.to_str().unwrap(),
        ],
    ] {
        let (code, output) = s.run(&args);
        assert_eq!(code, 0, "{args:?}: {}", String::from_utf8_lossy(&output));
        assert_clean(&format!("stdout/stderr of {args:?}"), &output);
        let written = s.written();
        assert!(written.is_empty(), "{args:?} wrote {written:?}");
    }
}
