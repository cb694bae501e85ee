//! The fault matrix (issue #12, point 4), one test per row: what the source,
//! the model, the screen or the recording card does wrong, and what bedside
//! must then do: keep running or fail safe, show the right state, and log
//! every frame in `--jsonl`. docs/EVALUATION.md's "Reliability" section lists the
//! rows and their results.
//!
//! | fault | expected |
//! |---|---|
//! | source drops frames | run goes on; each dropped frame is in a `lost` record |
//! | source duplicates a frame | both copies processed and logged under the same seq |
//! | corrupt frame (noise band) | processed and logged like any frame |
//! | truncated frame | `skipped` record naming the frame; run goes on |
//! | stalled frame (source late) | run goes on; the late frame is logged when it comes |
//! | all of the above at once, seeded | log accounts for each of the source's frames exactly |
//! | model fails mid-run | AI UNAVAILABLE for those frames (`ai_unavailable`), results after |
//! | model stalls mid-run | AI UNAVAILABLE on screen while pictures go on, then results |
//! | screen write fails | run ends with the display's error (exit 1); frames before it logged, and the failed one as `display_failed` |
//! | recording card full | REC FAILED, the session ends, the run goes on; every frame logged |

use crate::common;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::common::{Log, jsonl, run};
use bedside::capture::FrameSource;
use bedside::capture::fault::{FaultCounts, FaultInjector, FaultPlan};
use bedside::capture::synthetic::SyntheticSource;
use bedside::display::{Canvas, DisplayError, FrameSink};
use bedside::frame::FrameMeta;
use bedside::pipeline::{Flow, Mode, Pipeline, RunOptions};

/// What the seeded injector does to `frames` synthetic frames, worked out
/// here with the same plan and the pipeline's limit of `frames` items:
/// its counts, and the accounting its log must show.
fn expected_faults(plan: &str, frames: u64) -> (FaultCounts, Accounting) {
    let mut plan: FaultPlan = plan.parse().unwrap();
    plan.stall_time = std::time::Duration::ZERO;
    let inner = SyntheticSource::new(640, 480, 30, Some(frames));
    let mut src = FaultInjector::with_sleep(Box::new(inner), plan, Box::new(|_| {}));
    let mut want = Accounting {
        seen: BTreeMap::new(),
        lost: 0,
        skipped: Vec::new(),
    };
    let mut delivered = 0;
    while delivered < frames {
        match src.next_frame() {
            Ok(Some(f)) => *want.seen.entry(f.meta.seq).or_default() += 1,
            Ok(None) => break,
            Err(e) => want.skipped.push(frame_named(&e.to_string())),
        }
        delivered += 1;
    }
    want.lost = src.counts().dropped;
    (src.counts(), want)
}

/// The frame number an injected fault's message names ("... frame 7)").
fn frame_named(text: &str) -> u64 {
    text.split("frame ")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame named in: {text}"))
}

/// The log's records, by kind: seqs of frames with a record (each time it
/// appears), frames lost, and seqs of skipped frames (from their reason).
#[derive(Debug, PartialEq)]
struct Accounting {
    seen: BTreeMap<u64, usize>,
    lost: u64,
    skipped: Vec<u64>,
}

fn account(lines: &[serde_json::Value]) -> Accounting {
    let mut a = Accounting {
        seen: BTreeMap::new(),
        lost: 0,
        skipped: Vec::new(),
    };
    for l in lines {
        match l["status"].as_str().unwrap() {
            "lost" => a.lost += l["frames"].as_u64().unwrap(),
            "skipped" => a.skipped.push(frame_named(l["reason"].as_str().unwrap())),
            // An alarm's rise and end: events, not frames.
            "alarm_raised" | "alarm_cleared" => {}
            _ => *a.seen.entry(l["seq"].as_u64().unwrap()).or_default() += 1,
        }
    }
    a
}

/// Runs the synthetic source through `--faults PLAN` and checks the log
/// against what the seeded injector did.
fn faults_run(plan: &str, frames: u64) -> (FaultCounts, Accounting) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("frames.jsonl");
    let n = frames.to_string();
    let (code, stdout, err) = run(&[
        "run",
        "--source",
        "synthetic",
        "--frames",
        &n,
        "--mode",
        "ultrasound",
        "--faults",
        plan,
        "--jsonl",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (counts, want) = expected_faults(plan, frames);
    let got = account(&jsonl(&log));
    // Every frame the source made is in the log: with a record (twice when
    // duplicated), as a skipped record naming it, or counted in a lost record.
    assert_eq!(got, want, "{stdout}");
    (counts, got)
}

#[test]
fn source_drops_are_lost_records() {
    let (c, _) = faults_run("drop=0.25,seed=5", 40);
    assert!(c.dropped >= 5, "{c:?}");
}

#[test]
fn source_duplicates_are_logged_twice() {
    let (c, a) = faults_run("dup=0.25,seed=6", 40);
    assert!(c.duplicated >= 5, "{c:?}");
    assert!(a.seen.values().filter(|&&n| n == 2).count() >= 5, "{a:?}");
    assert_eq!(a.lost, 0);
}

#[test]
fn corrupt_frames_are_processed_and_logged() {
    let (c, a) = faults_run("corrupt=0.5,seed=7", 30);
    assert!(c.corrupted >= 8, "{c:?}");
    assert_eq!(a.seen.len(), 30);
}

#[test]
fn truncated_frames_are_skipped_records_naming_the_frame() {
    let (c, a) = faults_run("truncate=0.25,seed=8", 40);
    assert!(c.truncated >= 5, "{c:?}");
    assert_eq!(a.seen.len() as u64 + c.truncated, 40);
}

#[test]
fn stalled_frames_arrive_late_and_are_logged() {
    let (c, a) = faults_run("stall=0.2:150,seed=9", 30);
    assert!(c.stalled >= 3, "{c:?}");
    assert_eq!(a.seen.len(), 30);
}

#[test]
fn every_source_fault_at_once_is_accounted_for() {
    let (c, _) = faults_run(
        "drop=0.1,dup=0.1,corrupt=0.1,truncate=0.1,stall=0.05:100,seed=10",
        80,
    );
    assert!(c.dropped > 0 && c.duplicated > 0 && c.corrupted > 0 && c.truncated > 0);
}

#[test]
fn model_failure_mid_run_shows_ai_unavailable_for_those_frames() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("frames.jsonl");
    let (code, stdout, err) = run(&[
        "run",
        "--source",
        "synthetic",
        "--frames",
        "20",
        "--model-faults",
        "fail@8+4",
        "--jsonl",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("model failures: 4"), "{stdout}");
    let lines = jsonl(&log);
    assert_eq!(lines.len(), 20);
    for l in &lines {
        let seq = l["seq"].as_u64().unwrap();
        let want = if (8..12).contains(&seq) {
            "ai_unavailable"
        } else {
            "processed"
        };
        assert_eq!(l["status"], want, "{l}");
    }
}

/// The rehearsal flags on the command line: a 4 s stall over a 1 s bound
/// is seen, shown and recovered from. Only what holds at any speed is
/// asserted: how many pictures a machine shows during the stall, and
/// whether a normal run stays under the bound, are wall-clock business
/// (a loaded CI machine, qemu); live_pipeline's stall test checks those
/// with a stall released by what was shown.
#[test]
fn model_stall_mid_run_shows_ai_unavailable_while_the_picture_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("frames.jsonl");
    let (code, stdout, err) = run(&[
        "run",
        "--source",
        "synthetic",
        "--frames",
        "180",
        "--pace",
        "file",
        "--model-faults",
        "stall@3+4000",
        "--stall-after",
        "1",
        "--jsonl",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let stalls: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("inference stalls: "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no stall count: {stdout}"));
    assert!(stalls >= 1, "{stdout}");
    assert!(err.contains("inference stalled"), "{err}");
    assert!(err.contains("inference resumed after a stall"), "{err}");
    let lines = jsonl(&log);
    let stalled = lines
        .iter()
        .find(|l| {
            l["status"] == "processed" && l["latency_ms"]["infer"].as_f64().unwrap() >= 4000.0
        })
        .expect("a processed record carries the 4 s stall")["seq"]
        .as_u64()
        .unwrap();
    let unavailable: Vec<u64> = lines
        .iter()
        .filter(|l| l["status"] == "shown" && l["screen"] == "ai_unavailable")
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert!(
        unavailable.iter().any(|&s| s > stalled),
        "pictures shown as AI UNAVAILABLE during the stall: {unavailable:?}"
    );
}

/// A screen whose writes fail from the `fail_at`-th frame on.
struct FailingScreen {
    shown: Arc<Mutex<u64>>,
    fail_at: u64,
}

impl FrameSink for FailingScreen {
    fn describe(&self) -> String {
        "failing screen".into()
    }
    fn size(&self) -> (u32, u32) {
        (320, 240)
    }
    fn show(&mut self, _: &Canvas, _: &FrameMeta) -> Result<(), DisplayError> {
        let mut n = self.shown.lock().unwrap();
        if *n >= self.fail_at {
            return Err(DisplayError::Io {
                path: "/dev/fb0".into(),
                source: std::io::Error::from_raw_os_error(libc::EIO),
            });
        }
        *n += 1;
        Ok(())
    }
}

#[test]
fn screen_write_failure_ends_the_run_with_the_display_error() {
    let shown = Arc::new(Mutex::new(0));
    let screen = FailingScreen {
        shown: Arc::clone(&shown),
        fail_at: 5,
    };
    let bundle = bedside::demo::embedded_bundle(Mode::Ultrasound).unwrap();
    let source = SyntheticSource::new(320, 240, 30, Some(20));
    let pipeline =
        Pipeline::new(Mode::Ultrasound, Box::new(source), bundle, Box::new(screen)).unwrap();
    let log = Log::default();
    let result = pipeline.run(RunOptions {
        jsonl: Some(Box::new(log.clone())),
        flow: Flow::Lossless,
        // Past the bound a lossless run shows an extra AI UNAVAILABLE
        // picture, and this test counts pictures: far above any inference.
        stall_after: Some(std::time::Duration::from_secs(60)),
        ..RunOptions::default()
    });
    let Err(e) = result else {
        panic!("a failing screen ends the run");
    };
    let text = e.to_string();
    assert!(
        text.contains("/dev/fb0") && text.contains("Input/output error"),
        "{text}"
    );
    assert_eq!(*shown.lock().unwrap(), 5);
    let logged = log.text();
    let seqs: Vec<u64> = crate::common::records(&logged)
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    // The frames shown before the failure are logged, in order, and the
    // frame whose write failed has its own record with the reason.
    assert_eq!(seqs, (0..6).collect::<Vec<_>>(), "{logged}");
    let last = crate::common::records(&logged).pop().unwrap();
    assert_eq!(last["status"], "display_failed", "{logged}");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("Input/output error"),
        "{logged}"
    );
}

/// Runs bedside with files limited to `max_bytes` each (RLIMIT_FSIZE), so
/// writes past it fail as on a full card (EFBIG; SIGXFSZ ignored).
fn run_with_file_limit(args: &[&str], max_bytes: u64) -> (i32, String, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = common::bedside();
    cmd.args(args);
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: max_bytes,
                rlim_max: max_bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = cmd.output().expect("spawn bedside");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn full_recording_card_ends_the_session_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    std::fs::create_dir(&rec).unwrap();
    let log = dir.path().join("frames.jsonl");
    let (code, stdout, err) = run_with_file_limit(
        &[
            "run",
            "--source",
            "synthetic",
            "--frames",
            "12",
            "--jsonl",
            log.to_str().unwrap(),
            "--record",
            rec.to_str().unwrap(),
            "--record-what",
            "pictures,results",
        ],
        48 * 1024,
    );
    assert_eq!(code, 0, "{err}");
    // The session ends with the write error (the screen shows REC FAILED,
    // tests/golden/overlay); the run goes on to the last frame.
    assert!(
        err.contains("recording stopped") && err.contains("File too large"),
        "{err}"
    );
    assert!(
        stdout.contains("FAILED:") && stdout.contains("12 frame(s)"),
        "{stdout}"
    );
    let lines = jsonl(&log);
    let mut seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..12).collect::<Vec<_>>(), "every frame logged");
}
