//! When X-ray mode classifies. A radiograph is one picture, not a video:
//! a grabber on the console's monitor sees the same image for seconds, then
//! the next one. Classifying every frame would flicker between results of
//! the same image and waste the board; instead X-ray mode classifies
//!
//! - every frame, for files (`dicom:`, `images:`, `watch:`: each is an image);
//! - once the picture has been stable for N frames after a change (a new
//!   image on the console), for live video;
//! - whenever the operator presses FREEZE, in any of these.
//!
//! Change is measured on a 32x24 thumbnail of block means (noise averages
//! out), as the mean absolute difference to the previous frame's thumbnail.
//! A black picture (the console between images) is never classified.

use crate::preprocess::GrayImage;

/// The X-ray trigger policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Each frame is a new image (files, folders, watch:).
    Every,
    /// After the picture has been stable for N frames following a change; and FREEZE.
    Stable,
    /// Only when FREEZE is pressed.
    Button,
}

impl Trigger {
    /// What the screen says under "waiting" while no result is up (short:
    /// it fits the compact panel of a 320x240 screen).
    pub fn prompt(self) -> &'static str {
        match self {
            Trigger::Every => "for an image",
            Trigger::Stable => "for a steady image",
            Trigger::Button => "for FREEZE",
        }
    }
}

const THUMB_W: usize = 32;
const THUMB_H: usize = 24;

/// Mean absolute thumbnail difference (gray levels) above which a frame counts as changed.
pub const CHANGE_LEVEL: f32 = 3.0;
/// Thumbnail mean under which the picture is taken as blank.
pub const BLANK_LEVEL: f32 = 8.0;

/// Decides, frame by frame, whether to classify.
pub struct TriggerState {
    policy: Trigger,
    stable_frames: u32,
    thumb: [u16; THUMB_W * THUMB_H],
    previous: [u16; THUMB_W * THUMB_H],
    has_previous: bool,
    stable_for: u32,
    /// A change was seen and its image is not classified yet.
    armed: bool,
    /// FREEZE was pressed and is not served yet.
    pressed: bool,
}

impl TriggerState {
    /// `stable_frames`: how many unchanged frames make a picture stable (at least 1).
    pub fn new(policy: Trigger, stable_frames: u32) -> TriggerState {
        TriggerState {
            policy,
            stable_frames: stable_frames.max(1),
            thumb: [0; THUMB_W * THUMB_H],
            previous: [0; THUMB_W * THUMB_H],
            has_previous: false,
            stable_for: 0,
            armed: true,
            pressed: false,
        }
    }

    pub fn policy(&self) -> Trigger {
        self.policy
    }

    /// FREEZE: classify the next frame whatever the policy.
    pub fn press(&mut self) {
        self.pressed = true;
    }

    /// Looks at the next picture; true when it is to be classified. A
    /// trigger that could not be served (the model still busy) stays
    /// pending: call [`defer`](Self::defer).
    pub fn update(&mut self, picture: &GrayImage) -> bool {
        let mean = self.thumbnail(picture);
        let changed = !self.has_previous
            || self
                .thumb
                .iter()
                .zip(&self.previous)
                .map(|(&a, &b)| u32::from(a.abs_diff(b)))
                .sum::<u32>() as f32
                / (THUMB_W * THUMB_H) as f32
                > CHANGE_LEVEL;
        std::mem::swap(&mut self.thumb, &mut self.previous);
        self.has_previous = true;
        if changed {
            self.armed = true;
            self.stable_for = 0;
        } else {
            self.stable_for = self.stable_for.saturating_add(1);
        }
        if std::mem::take(&mut self.pressed) {
            self.armed = false;
            return true;
        }
        let fire = match self.policy {
            Trigger::Every => true,
            Trigger::Button => false,
            Trigger::Stable => {
                self.armed && self.stable_for >= self.stable_frames && mean >= BLANK_LEVEL
            }
        };
        if fire {
            self.armed = false;
        }
        fire
    }

    /// The frame [`update`](Self::update) fired for could not be classified
    /// (the model was busy): fire again on the next frame.
    pub fn defer(&mut self) {
        self.pressed = true;
    }

    /// Fills `self.thumb` with block means; returns the picture's mean.
    fn thumbnail(&mut self, img: &GrayImage) -> f32 {
        let (w, h) = (img.width as usize, img.height as usize);
        self.thumb.fill(0);
        if w == 0 || h == 0 {
            return 0.0;
        }
        let mut total = 0u64;
        for ty in 0..THUMB_H {
            let (y0, y1) = (
                ty * h / THUMB_H,
                ((ty + 1) * h / THUMB_H).max(ty * h / THUMB_H + 1),
            );
            for tx in 0..THUMB_W {
                let (x0, x1) = (
                    tx * w / THUMB_W,
                    ((tx + 1) * w / THUMB_W).max(tx * w / THUMB_W + 1),
                );
                // Every other row and column is plenty for a mean.
                let (mut sum, mut n) = (0u32, 0u32);
                for y in (y0..y1.min(h)).step_by(2) {
                    let row = &img.data[y * w..y * w + w];
                    for &v in row[x0..x1.min(w)].iter().step_by(2) {
                        sum += u32::from(v);
                        n += 1;
                    }
                }
                let m = sum.checked_div(n).unwrap_or(0) as u16;
                self.thumb[ty * THUMB_W + tx] = m;
                total += u64::from(m);
            }
        }
        total as f32 / (THUMB_W * THUMB_H) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(seed: u8, noise: u8) -> GrayImage {
        let mut img = GrayImage::default();
        img.reset(160, 120);
        let mut r = 12345u32 ^ u32::from(noise);
        for (i, p) in img.data.iter_mut().enumerate() {
            r = r.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let base = ((i % 160) as u32 * u32::from(seed) / 4 + (i / 160) as u32) as u8;
            *p = base
                .wrapping_add(40)
                .saturating_add(((r >> 16) % (u32::from(noise) + 1)) as u8);
        }
        img
    }

    #[test]
    fn a_new_image_is_classified_once_it_is_stable() {
        let mut t = TriggerState::new(Trigger::Stable, 3);
        let a = picture(1, 0);
        let b = picture(3, 0);
        // The first picture: stable after 3 unchanged frames, classified once.
        let fired: Vec<bool> = (0..6).map(|_| t.update(&a)).collect();
        assert_eq!(fired, [false, false, false, true, false, false]);
        // A new image: again after 3 unchanged frames.
        let fired: Vec<bool> = (0..6).map(|_| t.update(&b)).collect();
        assert_eq!(fired, [false, false, false, true, false, false]);
    }

    #[test]
    fn sensor_noise_is_not_a_change_and_a_blank_screen_is_not_classified() {
        let mut t = TriggerState::new(Trigger::Stable, 2);
        // Pixel noise of +-6 levels averages out in the thumbnail.
        let fired: Vec<bool> = (0..5).map(|i| t.update(&picture(2, 6 + i % 2))).collect();
        assert_eq!(fired.iter().filter(|&&f| f).count(), 1, "{fired:?}");
        let mut black = GrayImage::default();
        black.reset(160, 120);
        let fired: Vec<bool> = (0..6).map(|_| t.update(&black)).collect();
        assert!(fired.iter().all(|f| !f), "blank: {fired:?}");
    }

    #[test]
    fn freeze_fires_at_once_and_a_deferred_trigger_fires_next_frame() {
        let mut t = TriggerState::new(Trigger::Button, 3);
        let a = picture(1, 0);
        assert!(
            !(0..5).any(|_| t.update(&a)),
            "button policy waits for FREEZE"
        );
        t.press();
        assert!(t.update(&a));
        assert!(!t.update(&a));
        t.defer();
        assert!(t.update(&a), "a deferred trigger fires on the next frame");
        let mut every = TriggerState::new(Trigger::Every, 3);
        assert!((0..3).all(|_| every.update(&a)));
    }
}
