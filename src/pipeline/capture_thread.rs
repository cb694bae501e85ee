//! The capture stage on its own thread, handing frames to the processing
//! stage through a [`Mailbox`].
//!
//! A live camera must be read at its own pace: if a frame is still waiting
//! when the next one arrives, the waiting one is dropped (newest wins) and
//! the drop is reported in its place, so the log accounts for every frame.
//! A recording replayed as fast as possible waits instead (lossless), so a
//! replay gives the same frames every time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::capture::{CaptureError, FrameSource};
use crate::frame::{Frame, FrameMeta};

/// What to do when the processing stage is still busy with the last frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flow {
    /// Wait for it (recordings replayed as fast as possible).
    #[default]
    Lossless,
    /// Drop the waiting frame for the new one (live sources, paced replay).
    NewestWins,
}

/// What the capture thread hands over.
#[derive(Debug)]
pub enum Item {
    /// A frame and when the source delivered it.
    Frame(Frame, Instant),
    /// A frame that was replaced by a newer one before it was processed.
    Dropped(FrameMeta),
    /// A frame the source could not deliver; the source goes on.
    Skipped(CaptureError),
    /// The live device went away and is being reopened.
    NoSignal(CaptureError),
    /// A hot folder has nothing new (posted after each empty poll).
    Idle(CaptureError),
    /// The device dropped this many frames before bedside saw them (gaps
    /// in its sequence numbers).
    Lost(u64),
    /// The device delivered this many buffers flagged as damaged; skipped.
    Damaged(u64),
    /// The source failed for good.
    Failed(CaptureError),
}

#[derive(Default)]
struct State {
    items: VecDeque<Item>,
    /// No more items will come (the source ended, failed or was stopped).
    closed: bool,
    /// The consumer is gone: posting returns at once.
    abandoned: bool,
}

/// A queue holding at most one frame (plus the events around it).
#[derive(Default)]
pub struct Mailbox {
    state: Mutex<State>,
    changed: Condvar,
}

/// Frames on their way back to the source at most.
const RECYCLED: usize = 16;

/// Events queued beyond this make the capture thread wait (a source that
/// fails every frame must not fill memory).
const MAX_EVENTS: usize = 64;

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the queue intact.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Posts a frame; under [`Flow::NewestWins`] a frame still waiting is
    /// replaced by a [`Item::Dropped`] record and handed back to be reused.
    /// Under [`Flow::Lossless`] waits until no frame is waiting. Returns the
    /// frame itself when the consumer is gone.
    pub fn post_frame(&self, frame: Frame, at: Instant, flow: Flow) -> Option<Frame> {
        let mut s = self.lock();
        loop {
            if s.abandoned {
                return Some(frame);
            }
            let Some(i) = s.items.iter().position(|i| matches!(i, Item::Frame(..))) else {
                break;
            };
            if flow == Flow::Lossless {
                s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Newest wins: the waiting frame leaves a record in its place.
            match s.items.remove(i) {
                Some(Item::Frame(old, _)) => {
                    s.items.insert(i, Item::Dropped(old.meta));
                    s.items.push_back(Item::Frame(frame, at));
                    self.changed.notify_all();
                    return Some(old);
                }
                Some(other) => s.items.insert(i, other),
                None => {}
            }
            break;
        }
        s.items.push_back(Item::Frame(frame, at));
        self.changed.notify_all();
        None
    }

    /// Posts an event, waiting while too many are queued.
    pub fn post(&self, item: Item) {
        let mut s = self.lock();
        while !s.abandoned && s.items.len() >= MAX_EVENTS {
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if !s.abandoned {
            s.items.push_back(item);
            self.changed.notify_all();
        }
    }

    /// No more items.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// The consumer stops taking items: posting returns at once.
    pub fn abandon(&self) {
        self.lock().abandoned = true;
        self.changed.notify_all();
    }

    /// The next item; `None` once closed and empty.
    pub fn take(&self) -> Option<Item> {
        let mut s = self.lock();
        loop {
            if let Some(item) = s.items.pop_front() {
                self.changed.notify_all();
                return Some(item);
            }
            if s.closed {
                return None;
            }
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The running capture thread.
pub struct CaptureThread {
    pub mailbox: Arc<Mailbox>,
    /// Frames handed back to the source's pool (bounded: a full pool drops
    /// the frame rather than allocate a queue block per message).
    pub recycle: SyncSender<Frame>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl CaptureThread {
    /// Starts reading `source`; it stops after `max_items` deliveries
    /// (frames and skips), at the end of the source, on a failure, or when
    /// [`CaptureThread::stop`] is called.
    pub fn start(
        mut source: Box<dyn FrameSource>,
        flow: Flow,
        max_items: Option<u64>,
    ) -> std::io::Result<CaptureThread> {
        let mailbox = Arc::new(Mailbox::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (recycle, returned): (SyncSender<Frame>, Receiver<Frame>) =
            std::sync::mpsc::sync_channel(RECYCLED);
        let (mb, st) = (Arc::clone(&mailbox), Arc::clone(&stop));
        let handle = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let mut delivered = 0u64;
                let mut counted = source.device_counts().unwrap_or_default();
                while !st.load(Ordering::Relaxed) && max_items.is_none_or(|n| delivered < n) {
                    while let Ok(f) = returned.try_recv() {
                        source.recycle(f);
                    }
                    let got = source.next_frame();
                    // What the device lost on the way is reported before the frame after it.
                    if let Some(c) = source.device_counts() {
                        if c.dropped > counted.dropped {
                            mb.post(Item::Lost(c.dropped - counted.dropped));
                        }
                        if c.errored > counted.errored {
                            mb.post(Item::Damaged(c.errored - counted.errored));
                        }
                        counted = c;
                    }
                    match got {
                        Ok(Some(frame)) => {
                            delivered += 1;
                            if let Some(back) = mb.post_frame(frame, Instant::now(), flow) {
                                source.recycle(back);
                            }
                        }
                        Ok(None) => break,
                        Err(e) if e.is_frame_local() => {
                            delivered += 1;
                            mb.post(Item::Skipped(e));
                        }
                        Err(e) if e.is_no_signal() => mb.post(Item::NoSignal(e)),
                        Err(e) if e.is_idle() => mb.post(Item::Idle(e)),
                        Err(e) => {
                            mb.post(Item::Failed(e));
                            break;
                        }
                    }
                }
                mb.close();
            })?;
        Ok(CaptureThread {
            mailbox,
            recycle,
            stop,
            handle: Some(handle),
        })
    }

    /// Asks the thread to stop after its current frame; items already
    /// posted stay to be taken.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the thread (at most the source's own timeout, e.g. 2 s for
    /// V4L2). A panic in the source is reported, not passed on.
    pub fn join(mut self) -> bool {
        self.stop();
        self.mailbox.abandon();
        self.handle.take().is_some_and(|h| h.join().is_ok())
    }
}

impl Drop for CaptureThread {
    fn drop(&mut self) {
        self.stop();
        self.mailbox.abandon();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PixelFormat;

    fn frame(seq: u64) -> Frame {
        Frame::packed(
            vec![0; 4],
            PixelFormat::Gray8,
            2,
            2,
            FrameMeta {
                seq,
                timestamp_us: seq,
            },
        )
        .unwrap()
    }

    /// What a live device lost is posted before the frame after the loss.
    #[test]
    fn device_losses_are_posted_in_order() {
        use crate::capture::v4l2::assemble::CaptureCounts;
        struct Lossy {
            next: u64,
            counts: CaptureCounts,
        }
        impl FrameSource for Lossy {
            fn describe(&self) -> String {
                "lossy".into()
            }
            fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
                let seq = self.next;
                self.next += 1;
                match seq {
                    // Two frames lost before frame 1, a damaged buffer before frame 2.
                    1 => self.counts.dropped += 2,
                    2 => self.counts.errored += 1,
                    3 => return Ok(None),
                    _ => {}
                }
                Ok(Some(frame(seq)))
            }
            fn device_counts(&self) -> Option<CaptureCounts> {
                Some(self.counts)
            }
        }
        let source = Lossy {
            next: 0,
            counts: CaptureCounts::default(),
        };
        let t = CaptureThread::start(Box::new(source), Flow::Lossless, None).unwrap();
        let order: Vec<String> = std::iter::from_fn(|| t.mailbox.take())
            .map(|i| match i {
                Item::Frame(f, _) => format!("frame {}", f.meta.seq),
                Item::Lost(n) => format!("lost {n}"),
                Item::Damaged(n) => format!("damaged {n}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert!(t.join());
        assert_eq!(
            order,
            ["frame 0", "lost 2", "frame 1", "damaged 1", "frame 2"]
        );
    }

    #[test]
    fn newest_wins_records_the_drop_in_place() {
        let mb = Mailbox::default();
        let now = Instant::now();
        assert!(mb.post_frame(frame(0), now, Flow::NewestWins).is_none());
        mb.post(Item::Skipped(CaptureError::NotReplayable { what: "x" }));
        let back = mb.post_frame(frame(1), now, Flow::NewestWins).unwrap();
        assert_eq!(back.meta.seq, 0, "the replaced frame comes back for reuse");
        mb.close();
        let order: Vec<String> = std::iter::from_fn(|| mb.take())
            .map(|i| match i {
                Item::Frame(f, _) => format!("frame {}", f.meta.seq),
                Item::Dropped(m) => format!("dropped {}", m.seq),
                Item::Skipped(_) => "skipped".into(),
                _ => "other".into(),
            })
            .collect();
        assert_eq!(order, ["dropped 0", "skipped", "frame 1"]);
    }

    #[test]
    fn lossless_waits_for_the_consumer() {
        let mb = Arc::new(Mailbox::default());
        let producer = {
            let mb = Arc::clone(&mb);
            std::thread::spawn(move || {
                for s in 0..50 {
                    assert!(
                        mb.post_frame(frame(s), Instant::now(), Flow::Lossless)
                            .is_none()
                    );
                }
                mb.close();
            })
        };
        let mut seen = Vec::new();
        while let Some(Item::Frame(f, _)) = mb.take() {
            seen.push(f.meta.seq);
        }
        producer.join().unwrap();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn an_abandoned_mailbox_never_blocks_the_producer() {
        let mb = Mailbox::default();
        mb.post_frame(frame(0), Instant::now(), Flow::Lossless);
        mb.abandon();
        assert!(
            mb.post_frame(frame(1), Instant::now(), Flow::Lossless)
                .is_some()
        );
        for _ in 0..100 {
            mb.post(Item::Dropped(FrameMeta::default()));
        }
    }
}
