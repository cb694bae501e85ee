//! `watch:DIR`, a hot folder: the export folder of an imaging console. New
//! PNG/JPEG/TIFF/DICOM files that appear in it are processed once each, in
//! the order they become complete.
//!
//! A file is complete when its size and modification time have not changed
//! over [`WatchOptions::settle_polls`] polls (consoles write exports in
//! pieces); names starting with `.` or ending in `.part`, `.tmp` or `.partial`
//! (in-progress copies) are ignored until renamed. Files already in the
//! folder when watching starts are taken as seen: a restart does not replay
//! the archive. A file that cannot be read or decoded is skipped with
//! [`CaptureError::BadFile`] (the pipeline logs it and goes on); the folder
//! itself disappearing ends the source with an error.
//!
//! A hot folder is idle most of the day: while nothing is ready,
//! [`FrameSource::next_frame`] returns [`CaptureError::Idle`] after one poll
//! instead of blocking, so the pipeline keeps its watchdog fed, shows that it
//! is waiting, and stops within a poll of being asked to.
//!
//! A file is read once, through one descriptor opened without following a
//! symlink and checked with `fstat` (regular file, within the decode
//! budget): a file swapped for a symlink or a FIFO between the listing and
//! the read is refused, not followed (`crate::safe_read`).
//!
//! Memory: one path per file seen, for the life of the run.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::images::{self, looks_like_dicom};
use super::{CaptureError, FrameSource, dicom::DicomSource};
use crate::budget::DecodeBudget;
use crate::frame::{Frame, FrameMeta};
use crate::safe_read::{Links, read_file};

/// Polling of the folder.
#[derive(Clone, Copy, Debug)]
pub struct WatchOptions {
    pub poll: Duration,
    /// Unchanged polls before a file counts as complete.
    pub settle_polls: u32,
    /// What one file may cost (its size, its decoded picture).
    pub budget: DecodeBudget,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            poll: Duration::from_millis(250),
            settle_polls: 2,
            budget: DecodeBudget::default(),
        }
    }
}

/// What tells a file has stopped changing: its size and modification time.
type Stamp = (u64, Option<SystemTime>);

pub struct WatchSource {
    dir: PathBuf,
    opts: WatchOptions,
    seen: HashSet<PathBuf>,
    /// Candidates: (size, mtime) at the last poll and how many polls it held.
    settling: HashMap<PathBuf, (Stamp, u32)>,
    ready: VecDeque<PathBuf>,
    current: Option<DicomSource>,
    start: Instant,
    seq: u64,
    processed: u64,
}

fn in_progress(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with('.')
        || [".part", ".tmp", ".partial"]
            .iter()
            .any(|s| name.to_ascii_lowercase().ends_with(s))
}

fn wanted(p: &Path) -> bool {
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    !in_progress(p) && ["png", "jpg", "jpeg", "tif", "tiff", "dcm"].contains(&ext.as_str())
}

impl WatchSource {
    pub fn open(dir: &Path, opts: WatchOptions) -> Result<WatchSource, CaptureError> {
        let mut w = WatchSource {
            dir: dir.to_path_buf(),
            opts,
            seen: HashSet::new(),
            settling: HashMap::new(),
            ready: VecDeque::new(),
            current: None,
            start: Instant::now(),
            seq: 0,
            processed: 0,
        };
        if !std::fs::metadata(dir)
            .map_err(|e| CaptureError::io(dir, e))?
            .is_dir()
        {
            return Err(CaptureError::Device {
                device: dir.to_path_buf(),
                reason: "not a folder (watch: takes a folder)".into(),
            });
        }
        w.seen = w.listing()?.into_iter().map(|(p, _)| p).collect();
        Ok(w)
    }

    /// Wanted files of the folder with their (size, mtime).
    fn listing(&self) -> Result<Vec<(PathBuf, Stamp)>, CaptureError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| CaptureError::io(&self.dir, e))? {
            let Ok(entry) = entry else { continue };
            let p = entry.path();
            if !wanted(&p) {
                continue;
            }
            if let Ok(m) = entry.metadata()
                && m.is_file()
            {
                out.push((p, (m.len(), m.modified().ok())));
            }
        }
        out.sort();
        Ok(out)
    }

    /// One look at the folder: files that held still long enough become ready.
    fn poll(&mut self) -> Result<(), CaptureError> {
        let now = self.listing()?;
        let present: HashSet<&PathBuf> = now.iter().map(|(p, _)| p).collect();
        self.settling.retain(|p, _| present.contains(p));
        for (p, stamp) in now {
            if self.seen.contains(&p) {
                continue;
            }
            let entry = self.settling.entry(p.clone()).or_insert((stamp, 0));
            if entry.0 == stamp && stamp.0 > 0 {
                entry.1 += 1;
            } else {
                *entry = (stamp, 0);
            }
            if entry.1 >= self.opts.settle_polls {
                self.settling.remove(&p);
                self.seen.insert(p.clone());
                self.ready.push_back(p);
            }
        }
        Ok(())
    }

    fn meta(&self) -> FrameMeta {
        FrameMeta {
            seq: self.seq,
            timestamp_us: self.start.elapsed().as_micros() as u64,
        }
    }

    /// The file's first frame (DICOM cines: all of them, one per call).
    fn open_file(&mut self, path: &Path) -> Result<Option<Frame>, CaptureError> {
        let bad = |e: CaptureError| CaptureError::skipped_file(path, e);
        let budget = self.opts.budget;
        let bytes = read_file(
            path,
            budget.bytes(),
            Links::Refuse,
            "an image in a watched folder",
        )
        .map_err(|e| bad(e.into()))?;
        self.processed += 1;
        if looks_like_dicom(&bytes) {
            let mut dcm = DicomSource::from_bytes_within(path, &bytes, budget).map_err(bad)?;
            let meta = self.meta();
            dcm.continue_from(meta.seq, meta.timestamp_us);
            self.current = Some(dcm);
            return Ok(None);
        }
        let frame = images::decode_image(path, &bytes, self.meta(), budget).map_err(bad)?;
        self.seq += 1;
        Ok(Some(frame))
    }
}

impl FrameSource for WatchSource {
    fn describe(&self) -> String {
        format!("watched folder {}", self.dir.display())
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        loop {
            if let Some(dcm) = self.current.as_mut() {
                match dcm.next_frame() {
                    Ok(Some(f)) => {
                        self.seq = f.meta.seq + 1;
                        return Ok(Some(f));
                    }
                    Ok(None) => self.current = None,
                    Err(e) => {
                        self.current = None;
                        return Err(CaptureError::BadFile {
                            path: self.dir.clone(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
            if let Some(path) = self.ready.pop_front() {
                match self.open_file(&path)? {
                    Some(frame) => return Ok(Some(frame)),
                    None => continue,
                }
            }
            self.poll()?;
            if self.ready.is_empty() {
                std::thread::sleep(self.opts.poll);
                return Err(CaptureError::Idle {
                    path: self.dir.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> WatchOptions {
        WatchOptions {
            poll: Duration::from_millis(5),
            settle_polls: 2,
            budget: DecodeBudget::default(),
        }
    }

    /// The next frame or skip, polling through idle returns: a file becomes
    /// ready after a few polls, however slowly this machine runs them.
    fn next(w: &mut WatchSource) -> Result<Option<Frame>, CaptureError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match w.next_frame() {
                Err(CaptureError::Idle { .. }) if Instant::now() < deadline => continue,
                other => return other,
            }
        }
    }

    fn png(path: &Path, shade: u8) {
        image::GrayImage::from_pixel(8, 6, image::Luma([shade]))
            .save_with_format(path, image::ImageFormat::Png)
            .unwrap();
    }

    #[test]
    fn new_complete_files_come_once_each_and_old_ones_never() {
        let dir = tempfile::tempdir().unwrap();
        png(&dir.path().join("old.png"), 1);
        let mut w = WatchSource::open(dir.path(), fast()).unwrap();
        png(&dir.path().join("a.png"), 10);
        std::fs::write(dir.path().join("b.png.part"), b"half a file").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not an image").unwrap();
        let f = next(&mut w).unwrap().unwrap();
        assert_eq!((f.meta.seq, f.row(0)[0]), (0, 10));
        // The in-progress copy is renamed into place: now it counts.
        png(&dir.path().join("b.png.part"), 20);
        std::fs::rename(dir.path().join("b.png.part"), dir.path().join("b.png")).unwrap();
        let f = next(&mut w).unwrap().unwrap();
        assert_eq!((f.meta.seq, f.row(0)[0]), (1, 20));
        // Nothing new: the next poll finds nothing ready.
        w.poll().unwrap();
        w.poll().unwrap();
        w.poll().unwrap();
        assert!(w.ready.is_empty() && w.settling.is_empty());
        assert_eq!(w.processed, 2);
    }

    #[test]
    fn a_file_still_growing_waits_and_a_bad_file_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WatchSource::open(dir.path(), fast()).unwrap();
        let growing = dir.path().join("c.png");
        std::fs::write(&growing, b"\x89PNG").unwrap();
        w.poll().unwrap();
        std::fs::write(&growing, b"\x89PNG\r\n\x1a\nmore").unwrap();
        w.poll().unwrap();
        assert!(w.ready.is_empty(), "changed between polls: not complete");
        w.poll().unwrap();
        w.poll().unwrap();
        assert_eq!(w.ready.len(), 1);
        let e = next(&mut w).unwrap_err();
        assert!(e.is_frame_local(), "{e}");
        assert!(e.to_string().contains("c.png"), "{e}");
        png(&dir.path().join("d.png"), 30);
        assert_eq!(next(&mut w).unwrap().unwrap().row(0)[0], 30);
    }

    #[test]
    fn a_dicom_cine_arriving_gives_all_its_frames() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WatchSource::open(dir.path(), fast()).unwrap();
        let cine = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/echo_cine.dcm");
        std::fs::copy(cine, dir.path().join("echo.dcm")).unwrap();
        for seq in 0..30 {
            assert_eq!(next(&mut w).unwrap().unwrap().meta.seq, seq);
        }
        assert!(w.current.is_none() || w.current.as_mut().unwrap().next_frame().unwrap().is_none());
    }

    #[test]
    fn an_idle_folder_returns_after_one_poll_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WatchSource::open(dir.path(), fast()).unwrap();
        let e = w.next_frame().unwrap_err();
        assert!(matches!(e, CaptureError::Idle { .. }), "{e}");
        assert!(!e.is_frame_local() && !e.is_no_signal(), "{e}");
        assert!(e.to_string().ends_with(": waiting for new images"), "{e}");
    }

    #[test]
    fn a_file_swapped_for_a_symlink_or_fifo_after_listing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WatchSource::open(dir.path(), fast()).unwrap();
        png(&dir.path().join("a.png"), 10);
        // Listed and settled as a regular file...
        while w.ready.is_empty() {
            w.poll().unwrap();
        }
        // ...then replaced by a link to an endless device before it is read.
        std::fs::remove_file(dir.path().join("a.png")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("a.png")).unwrap();
        let e = next(&mut w).unwrap_err();
        assert!(e.is_frame_local(), "{e}");
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        // And a file over the budget is skipped without being read whole.
        let mut small = fast();
        small.budget = DecodeBudget::from_mib(16).unwrap();
        let mut w = WatchSource::open(dir.path(), small).unwrap();
        let big = std::fs::File::create(dir.path().join("big.dcm")).unwrap();
        big.set_len(17 << 20).unwrap();
        let e = next(&mut w).unwrap_err();
        assert!(e.to_string().contains("over the 16 MiB limit"), "{e}");
    }

    #[test]
    fn a_missing_folder_is_a_clear_error() {
        let e = WatchSource::open(Path::new("/no/such/folder"), fast())
            .err()
            .unwrap();
        assert!(e.to_string().contains("/no/such/folder"), "{e}");
    }
}
