//! Recording what the cart showed, only when asked. Frames can carry
//! burned-in patient data, so nothing is written unless the board profile
//! has a `[recording]` section (or `run --record DIR` is given) and the
//! operator starts it (RECORD, or `--record` itself); it writes only what
//! `what` names: `pictures` (the picture as shown, before the overlay, as
//! 8-bit gray PNG: every picture in ultrasound mode, each classified image
//! in X-ray mode) and/or `results` (the per-frame records of the JSONL log:
//! no pixels, no patient attributes).
//!
//! A session is a new folder `session-<unix seconds>` (mode 0700, files
//! 0600) under the configured folder. Files are written by a thread of its
//! own through a bounded queue: a slow card drops recorded pictures (counted,
//! logged), never frames on screen. A write error (a full card) ends the
//! session: logged once, "REC FAILED" on screen, the pipeline goes on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::preprocess::GrayImage;

/// What a board records, from `[recording]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSettings {
    pub dir: PathBuf,
    pub pictures: bool,
    pub results: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("recording to {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How a session ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordReport {
    pub session: PathBuf,
    pub pictures: u64,
    pub results: u64,
    /// Pictures not recorded because the writer was behind.
    pub dropped: u64,
    pub error: Option<String>,
}

enum Entry {
    Picture {
        seq: u64,
        width: u32,
        height: u32,
        data: Vec<u8>,
    },
    Result(String),
}

/// Pictures queued for the writer at most.
const QUEUE: usize = 8;

/// A recording session in progress.
pub struct Recorder {
    tx: Option<SyncSender<Entry>>,
    /// Buffers the writer hands back, so recording reuses them.
    spare: Receiver<Vec<u8>>,
    settings: RecordSettings,
    shared: Arc<Mutex<RecordReport>>,
    handle: Option<JoinHandle<()>>,
    dropped: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Recorder {
    /// Creates the session folder and starts the writer.
    pub fn start(settings: &RecordSettings) -> Result<Recorder, RecordError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&settings.dir)
            .map_err(io(&settings.dir))?;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut session = settings.dir.join(format!("session-{secs}"));
        let mut n = 1;
        while session.exists() {
            n += 1;
            session = settings.dir.join(format!("session-{secs}-{n}"));
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&session)
            .map_err(io(&session))?;
        let results = if settings.results {
            let path = session.join("results.jsonl");
            Some(std::io::BufWriter::new(
                private_file(&path).map_err(io(&path))?,
            ))
        } else {
            None
        };
        let shared = Arc::new(Mutex::new(RecordReport {
            session: session.clone(),
            ..RecordReport::default()
        }));
        let (tx, rx) = std::sync::mpsc::sync_channel::<Entry>(QUEUE);
        let (give_back, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE + 2);
        let report = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("record".into())
            .spawn(move || write_entries(&session, results, rx, give_back, &report))
            .map_err(io(&settings.dir))?;
        tracing::info!(
            "recording {} to {}",
            what(settings),
            shared
                .lock()
                .map(|r| r.session.display().to_string())
                .unwrap_or_default()
        );
        Ok(Recorder {
            tx: Some(tx),
            spare,
            settings: settings.clone(),
            shared,
            handle: Some(handle),
            dropped: 0,
        })
    }

    /// Whether the session failed (the writer stopped on an error).
    pub fn failed(&self) -> bool {
        self.shared.lock().map_or(true, |r| r.error.is_some())
    }

    /// Queues a picture, if pictures are recorded; dropped when the writer is behind.
    pub fn picture(&mut self, seq: u64, img: &GrayImage) {
        let Some(tx) = self.tx.as_ref().filter(|_| self.settings.pictures) else {
            return;
        };
        let mut data = self.spare.try_recv().unwrap_or_default();
        data.clear();
        data.extend_from_slice(&img.data);
        let entry = Entry::Picture {
            seq,
            width: img.width,
            height: img.height,
            data,
        };
        match tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                if self.dropped.is_power_of_two() {
                    tracing::warn!(
                        "recording is behind: {} picture(s) not recorded so far",
                        self.dropped
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => self.tx = None,
        }
    }

    /// Queues a result record, if results are recorded (waits for room:
    /// results are small and must not be lost).
    pub fn result(&mut self, line: &serde_json::Value) {
        if let Some(tx) = self.tx.as_ref().filter(|_| self.settings.results)
            && tx.send(Entry::Result(line.to_string())).is_err()
        {
            self.tx = None;
        }
    }

    /// Ends the session and says what it wrote.
    pub fn finish(mut self) -> RecordReport {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let mut r = self.shared.lock().map(|r| r.clone()).unwrap_or_default();
        r.dropped = self.dropped;
        tracing::info!(
            "recording ended: {} picture(s), {} result(s) in {}{}",
            r.pictures,
            r.results,
            r.session.display(),
            r.error
                .as_deref()
                .map(|e| format!(" (failed: {e})"))
                .unwrap_or_default()
        );
        r
    }
}

fn what(s: &RecordSettings) -> &'static str {
    match (s.pictures, s.results) {
        (true, true) => "pictures and results",
        (true, false) => "pictures",
        (false, true) => "results",
        (false, false) => "nothing",
    }
}

/// A new file only its owner can read.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn write_entries(
    session: &Path,
    mut results: Option<std::io::BufWriter<std::fs::File>>,
    rx: Receiver<Entry>,
    give_back: SyncSender<Vec<u8>>,
    report: &Mutex<RecordReport>,
) {
    let fail = |e: String| {
        tracing::error!("recording stopped: {e}; the pipeline goes on without it");
        if let Ok(mut r) = report.lock() {
            r.error = Some(e);
        }
    };
    for entry in rx.iter() {
        let outcome = match entry {
            Entry::Picture {
                seq,
                width,
                height,
                data,
            } => {
                let path = session.join(format!("picture-{seq:08}.png"));
                let r = private_file(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|f| {
                        let mut w = std::io::BufWriter::new(f);
                        image::write_buffer_with_format(
                            &mut w,
                            &data,
                            width,
                            height,
                            image::ExtendedColorType::L8,
                            image::ImageFormat::Png,
                        )
                        .map_err(|e| e.to_string())?;
                        w.flush().map_err(|e| e.to_string())
                    })
                    .map_err(|e| format!("{}: {e}", path.display()));
                let _ = give_back.try_send(data);
                if r.is_ok()
                    && let Ok(mut rep) = report.lock()
                {
                    rep.pictures += 1;
                }
                r
            }
            Entry::Result(line) => match results.as_mut() {
                Some(w) => {
                    let r = writeln!(w, "{line}")
                        .and_then(|_| w.flush())
                        .map_err(|e| format!("{}: {e}", session.join("results.jsonl").display()));
                    if r.is_ok()
                        && let Ok(mut rep) = report.lock()
                    {
                        rep.results += 1;
                    }
                    r
                }
                None => Ok(()),
            },
        };
        if let Err(e) = outcome {
            fail(e);
            // Drain and discard the rest: nothing more is written this session.
            for _ in rx.iter() {}
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(v: u8) -> GrayImage {
        let mut g = GrayImage::default();
        g.reset(8, 4);
        g.data.fill(v);
        g
    }

    #[test]
    fn a_session_writes_only_what_was_asked_for_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let settings = RecordSettings {
            dir: dir.path().join("rec"),
            pictures: true,
            results: false,
        };
        let mut r = Recorder::start(&settings).unwrap();
        r.picture(7, &picture(9));
        r.result(&serde_json::json!({"seq": 7}));
        let report = r.finish();
        assert_eq!(
            (report.pictures, report.results, report.error),
            (1, 0, None)
        );
        let files: Vec<String> = std::fs::read_dir(&report.session)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, vec!["picture-00000007.png"], "no results file");
        let png = image::open(report.session.join("picture-00000007.png")).unwrap();
        assert_eq!((png.width(), png.height()), (8, 4));
        assert!(png.to_luma8().pixels().all(|p| p.0[0] == 9));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&report.session), 0o700);
        assert_eq!(mode(&report.session.join("picture-00000007.png")), 0o600);
    }

    #[test]
    fn a_write_error_ends_the_session_and_is_reported() {
        // /dev/full: every write fails with "no space left on device".
        let dir = tempfile::tempdir().unwrap();
        let s2 = dir.path().to_path_buf();
        // A writer on /dev/full directly.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let (give_back, _spare) = std::sync::mpsc::sync_channel(4);
        let report = Mutex::new(RecordReport::default());
        tx.send(Entry::Result("{\"seq\":1}".into())).unwrap();
        tx.send(Entry::Result("{\"seq\":2}".into())).unwrap();
        drop(tx);
        write_entries(
            &s2,
            Some(std::io::BufWriter::new(full)),
            rx,
            give_back,
            &report,
        );
        let rep = report.into_inner().unwrap();
        assert_eq!(rep.results, 0);
        let e = rep.error.expect("the error is kept");
        assert!(
            e.contains("results.jsonl") && e.contains("No space left"),
            "{e}"
        );
    }
}
