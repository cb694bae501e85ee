//! The on-screen picture: the image letterboxed on the left, a side panel with
//! mode, model, result and timing, a banner across the top for an alarm or a
//! technical condition, and a strip at the bottom for a demonstration model.
//! Drawn with embedded-graphics into an RGB888 [`Canvas`] that sinks convert
//! to their own pixel format.
//!
//! The banner's colours, markers and lettering follow IEC 60601-1-8; the
//! rules are in [`super::alarm_signal`]. The side panel is drawn in UI units
//! (2x2 pixels on a 1080p screen); the banner's lettering is sized in
//! millimetres on the panel, for reading at 1 m.

use embedded_graphics::mono_font::ascii::{FONT_5X8, FONT_6X10, FONT_7X13, FONT_10X20};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, Line, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

pub use super::alarm_signal::{ALARM_RED, CAUTION_YELLOW, INFO_CYAN};
use super::alarm_signal::{Kind, Lettering, REHEARSAL_MAGENTA, Signal, wrap};
use super::colour::ColourPicture;
use crate::analyze::Verdict;
use crate::preprocess::GrayImage;
use crate::preprocess::resize::ResizePlan;

const PANEL: Rgb888 = Rgb888::new(24, 24, 28);
const TEXT: Rgb888 = Rgb888::new(235, 235, 235);
const DIM: Rgb888 = Rgb888::new(150, 150, 150);
/// The demonstration notice: white, a colour no alarm uses.
pub const NOTICE_WHITE: Rgb888 = Rgb888::new(245, 245, 245);

/// An RGB888 picture, rows packed.
#[derive(Clone, Debug, Default)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            rgb: vec![0; width as usize * height as usize * 3],
        }
    }

    fn fill(&mut self, c: Rgb888) {
        self.fill_rect(0, 0, self.width, self.height, c);
    }

    /// Fills `w` x `h` pixels from (`x`, `y`), clipped to the canvas: the
    /// first row pixel by pixel, the others copied from it (a memcpy per
    /// row, not a call per pixel). Black is one memset.
    fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, c: Rgb888) {
        let x1 = x.saturating_add(w).min(self.width) as usize;
        let y1 = y.saturating_add(h).min(self.height) as usize;
        let (x, y) = (x as usize, y as usize);
        if x >= x1 || y >= y1 {
            return;
        }
        let stride = self.width as usize * 3;
        let span = x * 3..x1 * 3;
        if c == Rgb888::BLACK && x == 0 && x1 == self.width as usize {
            self.rgb[y * stride..y1 * stride].fill(0);
            return;
        }
        let first = y * stride;
        for px in self.rgb[first + span.start..first + span.end].chunks_exact_mut(3) {
            px.copy_from_slice(&[c.r(), c.g(), c.b()]);
        }
        for row in y + 1..y1 {
            self.rgb.copy_within(
                first + span.start..first + span.end,
                row * stride + span.start,
            );
        }
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                let i = (p.y as usize * self.width as usize + p.x as usize) * 3;
                self.rgb[i..i + 3].copy_from_slice(&[c.r(), c.g(), c.b()]);
            }
        }
        Ok(())
    }

    /// Rectangles by rows: embedded-graphics' default calls
    /// [`draw_iter`](Self::draw_iter) per pixel.
    fn fill_solid(&mut self, area: &Rectangle, color: Rgb888) -> Result<(), Self::Error> {
        let a = area.intersection(&self.bounding_box());
        if a.size.width > 0 && a.size.height > 0 {
            self.fill_rect(
                a.top_left.x as u32,
                a.top_left.y as u32,
                a.size.width,
                a.size.height,
                color,
            );
        }
        Ok(())
    }
}

/// What state the screen shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Status<'a> {
    /// A result for this frame.
    Result(&'a Verdict),
    /// The model failed or is stalled: no result may be shown.
    AiUnavailable(&'a str),
    /// The live device has no signal and is being reopened: no picture, no result.
    NoSignal(&'a str),
    /// No result yet, and none expected to be late: the model is starting, or
    /// X-ray mode waits for a stable image or the freeze button.
    Waiting(&'a str),
    /// The picture's own attributes say the model is not for it.
    NotAnalyzed(&'a crate::analyze::gate::Refusal),
}

impl Status<'_> {
    /// The state's name in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Result(_) => "result",
            Status::AiUnavailable(_) => "ai_unavailable",
            Status::NoSignal(_) => "no_signal",
            Status::Waiting(_) => "waiting",
            Status::NotAnalyzed(_) => "not_analyzed",
        }
    }
}

/// How long a result stays valid after its frame was captured. A result is
/// drawn only with a picture captured within this window after its own
/// frame; past it the screen says AI UNAVAILABLE rather than show an old
/// verdict over a new picture (a stalled or slow model).
pub const RESULT_VALIDITY_US: u64 = 500_000;

/// The state to show for `verdict`, computed on the frame captured at
/// `result_at_us`, over a picture captured at `picture_at_us`: the result
/// while the picture is at most `validity_us` newer ([`RESULT_VALIDITY_US`]
/// by default; an emulated board, where every stage is many times slower,
/// sets a longer window), AI UNAVAILABLE after.
pub fn result_status(
    verdict: &Verdict,
    result_at_us: u64,
    picture_at_us: u64,
    validity_us: u64,
) -> Status<'_> {
    if picture_at_us.saturating_sub(result_at_us) > validity_us {
        Status::AiUnavailable("result older than its frame's validity window")
    } else {
        Status::Result(verdict)
    }
}

/// Whether a recording is running (shown in the panel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recording {
    #[default]
    Off,
    On,
    /// The session stopped on a write error (a full card).
    Failed,
}

/// Static facts shown on every frame.
#[derive(Clone, Debug, Default)]
pub struct OverlayInfo {
    pub mode: String,
    /// Model name, version and short hash.
    pub model_line: String,
    pub demonstration: bool,
    pub labels: Vec<String>,
}

/// Draws frames; keeps its buffers and the score history.
pub struct Overlay {
    canvas: Canvas,
    info: OverlayInfo,
    scaled: GrayImage,
    /// The colour picture's planes, resized.
    scaled_rgb: [Vec<u8>; 3],
    plan: Option<ResizePlan>,
    scores: [f32; 120],
    n_scores: usize,
    recording: Recording,
    /// A standing caution for the whole run (the file's Modality
    /// contradicts the mode), drawn under the model line.
    caution: Option<String>,
    /// The banner's lettering on this panel.
    lettering: Lettering,
    /// Events in this run are rehearsed: the picture carries a watermark.
    rehearsal: bool,
}

/// Side panel width in UI units: a normal screen, and one narrower than
/// 480 units (a 320x240 SPI panel).
const PANEL_W: u32 = 210;
const PANEL_W_COMPACT: u32 = 124;

/// The fonts of one layout.
struct Fonts {
    big: &'static MonoFont<'static>,
    body: &'static MonoFont<'static>,
    small: &'static MonoFont<'static>,
    /// The demonstration notice: as large as the largest result text.
    notice: &'static MonoFont<'static>,
}

impl Fonts {
    /// Height of the demonstration strip, in UI units.
    fn notice_strip(&self) -> u32 {
        self.notice.character_size.height + 6
    }
}

const NORMAL: Fonts = Fonts {
    big: &FONT_10X20,
    body: &FONT_7X13,
    small: &FONT_6X10,
    notice: &FONT_10X20,
};

const COMPACT: Fonts = Fonts {
    big: &FONT_7X13,
    body: &FONT_6X10,
    small: &FONT_5X8,
    notice: &FONT_7X13,
};

/// Draws in units: each unit is a `scale` x `scale` block of canvas pixels
/// from `origin` (canvas pixels) on, so the 10x20 font stays readable on a
/// 1080p monitor and the banner's text reaches its height in millimetres.
struct Scaled<'a> {
    canvas: &'a mut Canvas,
    scale: u32,
    origin: Point,
}

impl<'a> Scaled<'a> {
    fn new(canvas: &'a mut Canvas, scale: u32) -> Scaled<'a> {
        Scaled {
            canvas,
            scale: scale.max(1),
            origin: Point::zero(),
        }
    }
}

impl OriginDimensions for Scaled<'_> {
    fn size(&self) -> Size {
        Size::new(
            self.canvas.width / self.scale,
            self.canvas.height / self.scale,
        )
    }
}

impl DrawTarget for Scaled<'_> {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        let s = self.scale as i32;
        let o = self.origin;
        if s == 1 {
            return self
                .canvas
                .draw_iter(pixels.into_iter().map(|Pixel(p, c)| Pixel(p + o, c)));
        }
        self.canvas
            .draw_iter(pixels.into_iter().flat_map(|Pixel(p, c)| {
                (0..s * s).map(move |k| Pixel(Point::new(p.x * s + k % s, p.y * s + k / s) + o, c))
            }))
    }

    /// Rectangles (the panel, bars, banners) by rows of canvas pixels.
    fn fill_solid(&mut self, area: &Rectangle, color: Rgb888) -> Result<(), Self::Error> {
        let s = self.scale;
        let scaled = Rectangle::new(
            area.top_left * s as i32 + self.origin,
            Size::new(area.size.width * s, area.size.height * s),
        );
        self.canvas.fill_solid(&scaled, color)
    }
}

impl Overlay {
    pub fn new(size: (u32, u32), info: OverlayInfo) -> Overlay {
        Overlay {
            canvas: Canvas::new(size.0, size.1),
            info,
            scaled: GrayImage::default(),
            scaled_rgb: Default::default(),
            plan: None,
            scores: [0.0; 120],
            n_scores: 0,
            recording: Recording::Off,
            caution: None,
            lettering: Lettering::for_panel(size, None),
            rehearsal: false,
        }
    }

    pub fn canvas(&self) -> &Canvas {
        &self.canvas
    }

    /// Shows from the next frame on whether a recording runs.
    pub fn set_recording(&mut self, r: Recording) {
        self.recording = r;
    }

    /// A caution shown for the rest of the run, e.g. "file: Modality CR".
    pub fn set_caution(&mut self, text: Option<String>) {
        self.caution = text;
    }

    /// The panel's diagonal in inches, which sizes the banner's lettering
    /// (`None`: unknown, [`super::alarm_signal::DEFAULT_PPI`] assumed).
    pub fn set_diagonal_in(&mut self, diagonal_in: Option<f32>) {
        self.lettering = Lettering::for_panel((self.canvas.width, self.canvas.height), diagonal_in);
    }

    /// The banner's lettering on this panel.
    pub fn lettering(&self) -> &Lettering {
        &self.lettering
    }

    /// Marks every frame from now on as a rehearsal (a watermark over the
    /// picture), so no rehearsed alarm passes for a real one.
    pub fn set_rehearsal(&mut self, rehearsal: bool) {
        self.rehearsal = rehearsal;
    }

    /// Adds a new result's anomaly score to the trace. Separate from
    /// [`render`](Self::render) because the live pipeline draws the newest
    /// result over several pictures while the model works on the next one.
    pub fn record_score(&mut self, score: f32) {
        self.scores[self.n_scores % self.scores.len()] = score;
        self.n_scores += 1;
    }

    /// Renders one frame over a gray picture. `timing` is (fps,
    /// capture-to-display ms) when known.
    pub fn render(
        &mut self,
        image: &GrayImage,
        status: Status<'_>,
        timing: Option<(f32, f32)>,
    ) -> &Canvas {
        self.render_picture(Picture::Gray(image), status, timing)
    }

    /// Renders one frame over a gray or colour picture.
    pub fn render_picture(
        &mut self,
        image: Picture<'_>,
        status: Status<'_>,
        timing: Option<(f32, f32)>,
    ) -> &Canvas {
        self.canvas.fill(Rgb888::BLACK);
        let (w_px, h_px) = (self.canvas.width, self.canvas.height);
        // The UI is laid out in units of `scale` pixels (2 on a 1080p monitor);
        // the picture is drawn at full resolution.
        let scale = (h_px / 480).clamp(1, 4);
        let (w, h) = (w_px / scale, h_px / scale);
        let compact = w < 480;
        let fonts = if compact { &COMPACT } else { &NORMAL };
        let panel_w = if compact { PANEL_W_COMPACT } else { PANEL_W };
        let img_w = w.saturating_sub(panel_w).max(1);
        let signal = signal_of(&status);
        let banner = signal.map(|s| Banner::layout(s, &self.lettering, w_px));
        let banner_px = banner.as_ref().map_or(0, |b| b.height);
        let notice_px = if self.info.demonstration {
            fonts.notice_strip() * scale
        } else {
            0
        };
        // Without a signal the last picture would pass for a live one: blank it.
        if !matches!(status, Status::NoSignal(_)) {
            // The demonstration notice gets its own strip instead of covering the picture.
            self.draw_image(image, img_w * scale, h_px.saturating_sub(notice_px));
        } else {
            cross_out(
                &mut self.canvas,
                img_w * scale,
                h_px.saturating_sub(notice_px),
            );
        }
        if self.rehearsal {
            watermark(
                &mut self.canvas,
                img_w * scale,
                banner_px,
                h_px.saturating_sub(notice_px),
            );
        }
        let top = banner_px.div_ceil(scale);
        self.draw_panel(&status, signal, fonts, scale, (w, h), panel_w, top, timing);
        if let Some(b) = banner {
            b.draw(&mut self.canvas, &self.lettering);
        }
        if self.info.demonstration {
            let mut ui = Scaled::new(&mut self.canvas, scale);
            let strip = fonts.notice_strip();
            let _ = Rectangle::new(
                Point::new(0, h.saturating_sub(strip) as i32),
                Size::new(w + 1, strip + 1),
            )
            .into_styled(PrimitiveStyle::with_fill(NOTICE_WHITE))
            .draw(&mut ui);
            let text = "DEMONSTRATION MODEL - NOT FOR DIAGNOSTIC USE";
            let tw = text.len() as i32 * fonts.notice.character_size.width as i32;
            let _ = Text::with_baseline(
                text,
                Point::new(((w as i32 - tw) / 2).max(2), (h - strip) as i32 + 3),
                MonoTextStyle::new(fonts.notice, Rgb888::BLACK),
                Baseline::Top,
            )
            .draw(&mut ui);
        }
        &self.canvas
    }

    /// The side panel: mode, model, the state and its detail, the trace,
    /// recording and timing. `top` (UI units) is what the banner covers.
    #[allow(clippy::too_many_arguments)]
    fn draw_panel(
        &mut self,
        status: &Status<'_>,
        signal: Option<Signal>,
        fonts: &Fonts,
        scale: u32,
        (w, h): (u32, u32),
        panel_w: u32,
        top: u32,
        timing: Option<(f32, f32)>,
    ) {
        let img_w = w.saturating_sub(panel_w).max(1);
        let compact = panel_w == PANEL_W_COMPACT;
        let Overlay {
            canvas,
            info,
            scores,
            n_scores,
            caution,
            recording,
            rehearsal,
            ..
        } = self;
        let mut ui = Scaled::new(canvas, scale);
        // The panel runs to the canvas edge, past the last whole unit.
        let _ = Rectangle::new(Point::new(img_w as i32, 0), Size::new(panel_w + 1, h + 1))
            .into_styled(PrimitiveStyle::with_fill(PANEL))
            .draw(&mut ui);
        let chars = |font: &MonoFont| ((panel_w - 16) / font.character_size.width) as usize;
        let x = img_w as i32 + 8;
        let big = MonoTextStyle::new(fonts.big, TEXT);
        let body = MonoTextStyle::new(fonts.body, TEXT);
        let dim = MonoTextStyle::new(fonts.small, DIM);
        let mut y = top as i32 + 8;
        let _ = Text::with_baseline(
            &line(format_args!("{}", Upper(&info.mode))),
            Point::new(x, y),
            MonoTextStyle::new(fonts.big, INFO_CYAN),
            Baseline::Top,
        )
        .draw(&mut ui);
        // On a compact panel the tag would run into the mode: the
        // watermark over the picture says it alone there.
        if *rehearsal && !compact {
            let tag = "REHEARSAL";
            let tw = (tag.len() as u32 * fonts.small.character_size.width) as i32;
            let _ = Text::with_baseline(
                tag,
                Point::new(img_w as i32 + panel_w as i32 - 8 - tw, y),
                MonoTextStyle::new(fonts.small, REHEARSAL_MAGENTA),
                Baseline::Top,
            )
            .draw(&mut ui);
        }
        y += 24;
        let _ = Text::with_baseline(
            &truncate(&info.model_line, chars(fonts.small)),
            Point::new(x, y),
            dim,
            Baseline::Top,
        )
        .draw(&mut ui);
        y += 18;
        if let Some(c) = caution {
            let _ = Text::with_baseline(
                &truncate(c, chars(fonts.small)),
                Point::new(x, y - 4),
                MonoTextStyle::new(fonts.small, CAUTION_YELLOW),
                Baseline::Top,
            )
            .draw(&mut ui);
            y += 12;
        }

        match status {
            // The fail-safe states: the technical condition's banner, what
            // is happening in the panel, and why, never a result.
            Status::AiUnavailable(why) | Status::NoSignal(why) => {
                let headline = match status {
                    Status::NoSignal(_) => "reconnecting",
                    _ => "no result",
                };
                let colour = signal.map_or(TEXT, |s| s.colour());
                let _ = Text::with_baseline(
                    headline,
                    Point::new(x, y),
                    MonoTextStyle::new(fonts.big, colour),
                    Baseline::Top,
                )
                .draw(&mut ui);
                let _ = Text::with_baseline(
                    &truncate(why, chars(fonts.small)),
                    Point::new(x, y + 24),
                    dim,
                    Baseline::Top,
                )
                .draw(&mut ui);
            }
            Status::Result(Verdict::Classification(c)) => {
                let label: TextLine = match info.labels.get(c.top) {
                    Some(l) => line(format_args!("{l}")),
                    None => line(format_args!("class {}", c.top)),
                };
                let head = if c.confident {
                    label
                } else {
                    line(format_args!("uncertain ({label})"))
                };
                let _ = Text::with_baseline(
                    &truncate(&head, chars(fonts.big)),
                    Point::new(x, y),
                    big,
                    Baseline::Top,
                )
                .draw(&mut ui);
                y += 28;
                if info.demonstration {
                    // A demonstration model's percentages would read as a
                    // measured confidence, in text as large as the notice
                    // that says not to trust them: the ranking alone.
                    let p = &c.probabilities;
                    for (i, &pi) in p.iter().enumerate() {
                        let rank = p
                            .iter()
                            .enumerate()
                            .filter(|&(j, &pj)| pj > pi || (pj == pi && j < i))
                            .count();
                        let name = info.labels.get(i).map_or("?", |s| s.as_str());
                        let style = if i == c.top { body } else { dim };
                        let _ = Text::with_baseline(
                            &line(format_args!(
                                "{}. {}",
                                rank + 1,
                                truncate(name, chars(fonts.body).saturating_sub(4))
                            )),
                            Point::new(x, y + rank as i32 * 16),
                            style,
                            Baseline::Top,
                        )
                        .draw(&mut ui);
                    }
                    y += p.len() as i32 * 16 + 4;
                    let _ = Text::with_baseline(
                        &truncate("ranking only (demo)", chars(fonts.small)),
                        Point::new(x, y),
                        dim,
                        Baseline::Top,
                    )
                    .draw(&mut ui);
                }
                for (i, p) in c
                    .probabilities
                    .iter()
                    .enumerate()
                    .filter(|_| !info.demonstration)
                {
                    let name = info.labels.get(i).map_or("?", |s| s.as_str());
                    // The name column takes what the "100.0%" column leaves.
                    let nw = chars(fonts.body).saturating_sub(7);
                    let _ = Text::with_baseline(
                        &line(format_args!(
                            "{:<nw$} {:>5.1}%",
                            truncate(name, nw),
                            p * 100.0
                        )),
                        Point::new(x, y),
                        body,
                        Baseline::Top,
                    )
                    .draw(&mut ui);
                    y += 14;
                    let full = panel_w - 16;
                    let bar = (p.clamp(0.0, 1.0) * full as f32) as u32;
                    let _ = Rectangle::new(Point::new(x, y), Size::new(full, 6))
                        .into_styled(PrimitiveStyle::with_stroke(DIM, 1))
                        .draw(&mut ui);
                    let colour = if i == c.top { INFO_CYAN } else { DIM };
                    let _ = Rectangle::new(Point::new(x, y), Size::new(bar, 6))
                        .into_styled(PrimitiveStyle::with_fill(colour))
                        .draw(&mut ui);
                    y += 12;
                }
            }
            Status::NotAnalyzed(r) => {
                let _ = Text::with_baseline("no result", Point::new(x, y), big, Baseline::Top)
                    .draw(&mut ui);
                let _ = Text::with_baseline(
                    &truncate(r.reason(), chars(fonts.body)),
                    Point::new(x, y + 24),
                    body,
                    Baseline::Top,
                )
                .draw(&mut ui);
                let _ = Text::with_baseline(
                    &truncate(&line(format_args!("{}", r.detail())), chars(fonts.small)),
                    Point::new(x, y + 40),
                    dim,
                    Baseline::Top,
                )
                .draw(&mut ui);
            }
            Status::Waiting(what) => {
                let _ = Text::with_baseline("waiting", Point::new(x, y), big, Baseline::Top)
                    .draw(&mut ui);
                let _ = Text::with_baseline(
                    &truncate(what, chars(fonts.small)),
                    Point::new(x, y + 24),
                    dim,
                    Baseline::Top,
                )
                .draw(&mut ui);
            }
            Status::Result(Verdict::Anomaly(a)) => {
                let state = anomaly_state(a);
                let colour = signal.map_or(TEXT, |s| s.colour());
                let _ = Text::with_baseline(
                    state,
                    Point::new(x, y),
                    MonoTextStyle::new(fonts.big, colour),
                    Baseline::Top,
                )
                .draw(&mut ui);
                y += 26;
                if let Some(r) = a.alarm {
                    let _ = Text::with_baseline(
                        &truncate(r.text(), chars(fonts.body)),
                        Point::new(x, y),
                        body,
                        Baseline::Top,
                    )
                    .draw(&mut ui);
                    y += 16;
                }
                let _ = Text::with_baseline(
                    &line(format_args!("score {:.2}", a.score)),
                    Point::new(x, y),
                    body,
                    Baseline::Top,
                )
                .draw(&mut ui);
                y += 18;
                if a.alarm.is_some() && a.warming_up {
                    let _ = Text::with_baseline(
                        "still learning baseline",
                        Point::new(x, y),
                        dim,
                        Baseline::Top,
                    )
                    .draw(&mut ui);
                    y += 14;
                }
                if a.model_check_off {
                    // Standing, in yellow: the model cannot judge this
                    // picture, and the screen says so instead of alarming.
                    let _ = Text::with_baseline(
                        &truncate(MODEL_CHECK_OFF, chars(fonts.small)),
                        Point::new(x, y),
                        MonoTextStyle::new(fonts.small, CAUTION_YELLOW),
                        Baseline::Top,
                    )
                    .draw(&mut ui);
                    y += 14;
                }
                y = draw_trace(&mut ui, scores, *n_scores, x, y, panel_w as i32 - 16, 60);
            }
        }
        let rec_y = (h as i32 - 48).max(y);
        match recording {
            Recording::Off => {}
            Recording::On => {
                // A red dot is the recorder's convention; the text stays
                // white so that red means a high-priority alarm alone.
                let d = fonts.body.character_size.height.saturating_sub(4).max(4);
                let _ = Circle::new(Point::new(x, rec_y + 2), d)
                    .into_styled(PrimitiveStyle::with_fill(ALARM_RED))
                    .draw(&mut ui);
                let _ = Text::with_baseline(
                    "REC",
                    Point::new(x + d as i32 + 4, rec_y),
                    MonoTextStyle::new(fonts.body, TEXT),
                    Baseline::Top,
                )
                .draw(&mut ui);
            }
            Recording::Failed => {
                let _ = Text::with_baseline(
                    "REC FAILED",
                    Point::new(x, rec_y),
                    MonoTextStyle::new(fonts.body, CAUTION_YELLOW),
                    Baseline::Top,
                )
                .draw(&mut ui);
            }
        }
        if let Some((fps, latency)) = timing {
            let _ = Text::with_baseline(
                &line(format_args!("{fps:.1} fps  {latency:.1} ms")),
                Point::new(x, (h as i32 - 34).max(y)),
                dim,
                Baseline::Top,
            )
            .draw(&mut ui);
        }
    }
}

/// The banner a state shows, if any.
fn signal_of(status: &Status<'_>) -> Option<Signal> {
    match status {
        Status::NoSignal(_) => Some(Signal::NO_SIGNAL),
        Status::AiUnavailable(_) => Some(Signal::AI_UNAVAILABLE),
        Status::NotAnalyzed(_) => Some(Signal::NOT_ANALYZED),
        Status::Result(Verdict::Anomaly(a)) => a.alarm.map(Signal::of_alarm),
        Status::Result(Verdict::Classification(_)) | Status::Waiting(_) => None,
    }
}

/// The top banner: the condition's marker and title across the whole
/// width, in lettering sized for reading at 1 m, on one or two lines.
struct Banner {
    signal: Signal,
    lines: heapless::Vec<heapless::String<64>, 4>,
    /// Canvas pixels from the top.
    height: u32,
}

impl Banner {
    fn layout(signal: Signal, lettering: &Lettering, width: u32) -> Banner {
        let mut text: heapless::String<64> = heapless::String::new();
        if let Some(p) = signal.priority {
            let _ = text.push_str(p.marker());
            let _ = text.push(' ');
        }
        let _ = text.push_str(signal.title);
        let frame = Banner::frame(lettering);
        let per_line = (width.saturating_sub(4 * frame) / lettering.char_width()).max(1);
        let lines = wrap(&text, per_line as usize, 2);
        let height = lines.len() as u32 * lettering.line_height() + 2 * Banner::pad(lettering);
        Banner {
            signal,
            lines,
            height,
        }
    }

    /// The frame of a technical condition's banner, in canvas pixels.
    fn frame(lettering: &Lettering) -> u32 {
        (lettering.line_height() / 10).max(2)
    }

    fn pad(lettering: &Lettering) -> u32 {
        Banner::frame(lettering) + lettering.line_height() / 5
    }

    fn draw(&self, canvas: &mut Canvas, lettering: &Lettering) {
        let look = self.signal.look();
        let w = canvas.width;
        let frame = Banner::frame(lettering);
        let _ = Rectangle::new(Point::zero(), Size::new(w, self.height))
            .into_styled(PrimitiveStyle::with_fill(look.frame))
            .draw(canvas);
        let _ = Rectangle::new(
            Point::new(frame as i32, frame as i32),
            Size::new(
                w.saturating_sub(2 * frame),
                self.height.saturating_sub(2 * frame),
            ),
        )
        .into_styled(PrimitiveStyle::with_fill(look.fill))
        .draw(canvas);
        let s = lettering.scale;
        let style = MonoTextStyle::new(lettering.font, look.text);
        let pad = Banner::pad(lettering);
        for (i, l) in self.lines.iter().enumerate() {
            let tw = l.len() as u32 * lettering.char_width();
            let mut big = Scaled::new(canvas, s);
            big.origin = Point::new(
                (w.saturating_sub(tw) / 2) as i32,
                (pad + i as u32 * lettering.line_height()) as i32,
            );
            let _ = Text::with_baseline(l, Point::zero(), style, Baseline::Top).draw(&mut big);
        }
    }
}

/// NO SIGNAL: the picture area crossed out, so an empty screen is not
/// taken for a black picture.
fn cross_out(canvas: &mut Canvas, w: u32, h: u32) {
    let stroke = PrimitiveStyle::with_stroke(DIM, (h / 160).max(1));
    let (w, h) = (w as i32 - 1, h as i32 - 1);
    let _ = Line::new(Point::new(0, 0), Point::new(w, h))
        .into_styled(stroke)
        .draw(canvas);
    let _ = Line::new(Point::new(0, h), Point::new(w, 0))
        .into_styled(stroke)
        .draw(canvas);
}

/// REHEARSAL across the middle of the picture area (below the banner), in
/// letters a third of the area's width, over the picture.
fn watermark(canvas: &mut Canvas, w: u32, top: u32, bottom: u32) {
    let text = "REHEARSAL";
    let cw = FONT_10X20.character_size.width;
    let scale = (w * 2 / 3 / (cw * text.len() as u32)).max(1);
    let tw = cw * text.len() as u32 * scale;
    let th = FONT_10X20.character_size.height * scale;
    let y = (top + bottom.saturating_sub(top).saturating_sub(th) / 2) as i32;
    let mut big = Scaled::new(canvas, scale);
    big.origin = Point::new((w.saturating_sub(tw) / 2) as i32, y);
    let _ = Text::with_baseline(
        text,
        Point::zero(),
        MonoTextStyle::new(&FONT_10X20, REHEARSAL_MAGENTA),
        Baseline::Top,
    )
    .draw(&mut big);
}

/// The anomaly score over the last frames, with the alarm threshold.
fn draw_trace(
    ui: &mut Scaled<'_>,
    scores: &[f32],
    n_scores: usize,
    x: i32,
    y: i32,
    w: i32,
    h: i32,
) -> i32 {
    let _ = Rectangle::new(Point::new(x, y), Size::new(w as u32, h as u32))
        .into_styled(PrimitiveStyle::with_stroke(DIM, 1))
        .draw(ui);
    // Threshold (score 1.0) at mid-height; scores above 2 are clipped.
    let to_y = |s: f32| y + h - 1 - ((s.clamp(0.0, 2.0) / 2.0) * (h - 2) as f32) as i32;
    let _ = Line::new(Point::new(x, to_y(1.0)), Point::new(x + w - 1, to_y(1.0)))
        .into_styled(PrimitiveStyle::with_stroke(ALARM_RED, 1))
        .draw(ui);
    let n = n_scores.min(scores.len());
    let cap = scores.len();
    let mut prev: Option<Point> = None;
    for i in 0..n {
        let s = scores[(n_scores - n + i) % cap];
        let p = Point::new(x + 1 + (i as i32 * (w - 2)) / cap as i32, to_y(s));
        if let Some(q) = prev {
            let _ = Line::new(q, p)
                .into_styled(PrimitiveStyle::with_stroke(INFO_CYAN, 1))
                .draw(ui);
        }
        prev = Some(p);
    }
    y + h + 6
}

impl Overlay {
    fn draw_image(&mut self, picture: Picture<'_>, area_w: u32, area_h: u32) {
        let (width, height) = picture.size();
        if width == 0 || height == 0 {
            return;
        }
        // Fit inside the area keeping the aspect ratio (integer arithmetic).
        let (iw, ih) = (u64::from(width), u64::from(height));
        let (mut dw, mut dh) = (u64::from(area_w), u64::from(area_w) * ih / iw);
        if dh > u64::from(area_h) {
            dh = u64::from(area_h);
            dw = u64::from(area_h) * iw / ih;
        }
        let (dw, dh) = (dw.max(1) as u32, dh.max(1) as u32);
        if self
            .plan
            .as_ref()
            .is_none_or(|p| p.src_size() != (width, height) || p.dst_size() != (dw, dh))
        {
            self.plan = Some(ResizePlan::new((width, height), (dw, dh)));
        }
        let Some(plan) = self.plan.as_mut() else {
            return;
        };
        let k = crate::preprocess::kernels::kernels();
        let (ox, oy) = ((area_w - dw) / 2, (area_h - dh) / 2);
        let cw = self.canvas.width as usize;
        let n = dw as usize * dh as usize;
        match picture {
            Picture::Gray(image) => {
                self.scaled.reset(dw, dh);
                plan.run(k, &image.data, &mut self.scaled.data);
                for (y, row) in self.scaled.data.chunks_exact(dw as usize).enumerate() {
                    let start = ((oy as usize + y) * cw + ox as usize) * 3;
                    for (px, &g) in self.canvas.rgb[start..start + dw as usize * 3]
                        .chunks_exact_mut(3)
                        .zip(row)
                    {
                        px.copy_from_slice(&[g, g, g]);
                    }
                }
            }
            Picture::Colour(c) => {
                // Each plane with the gray kernels; the buffers stay between frames.
                for (src, dst) in c.planes.iter().zip(&mut self.scaled_rgb) {
                    dst.resize(n, 0);
                    plan.run(k, src, dst);
                }
                let [r, g, b] = &self.scaled_rgb;
                for y in 0..dh as usize {
                    let start = ((oy as usize + y) * cw + ox as usize) * 3;
                    let row = y * dw as usize..(y + 1) * dw as usize;
                    let rows = r[row.clone()].iter().zip(&g[row.clone()]).zip(&b[row]);
                    for (px, ((&r, &g), &b)) in self.canvas.rgb[start..start + dw as usize * 3]
                        .chunks_exact_mut(3)
                        .zip(rows)
                    {
                        px.copy_from_slice(&[r, g, b]);
                    }
                }
            }
        }
    }
}

/// The picture the overlay draws: gray, or in colour when the source is.
#[derive(Clone, Copy, Debug)]
pub enum Picture<'a> {
    Gray(&'a GrayImage),
    Colour(&'a ColourPicture),
}

impl Picture<'_> {
    fn size(&self) -> (u32, u32) {
        match self {
            Picture::Gray(g) => (g.width, g.height),
            Picture::Colour(c) => (c.width, c.height),
        }
    }
}

/// One line of on-screen text, on the stack: drawing a frame allocates nothing.
type TextLine = heapless::String<128>;

/// Formats into a [`TextLine`]; text past its capacity is dropped (no screen
/// line is that long).
fn line(args: std::fmt::Arguments<'_>) -> TextLine {
    use std::fmt::Write;
    let mut l = TextLine::new();
    let _ = l.write_fmt(args);
    l
}

/// Upper case when displayed, without a new string.
struct Upper<'a>(&'a str);

impl std::fmt::Display for Upper<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        self.0
            .chars()
            .flat_map(char::to_uppercase)
            .try_for_each(|c| f.write_char(c))
    }
}

/// The panel's note when the model does not know the picture (another
/// machine's) and only the model-free checks run.
pub const MODEL_CHECK_OFF: &str = "model: unknown picture, check off";

/// The panel's headline for an anomaly verdict. An alarm always reads as
/// the alarm; learning the baseline is then a small note under the score.
fn anomaly_state(a: &crate::analyze::AnomalyVerdict) -> &'static str {
    if let Some(r) = a.alarm {
        // A lifted probe is the operator's to fix, not an alarm about the picture.
        match Signal::of_alarm(r).kind {
            Kind::Technical => "CHECK PROBE",
            _ => "ALARM",
        }
    } else if a.warming_up {
        "learning baseline"
    } else {
        "normal"
    }
}

/// `s` cut to `n` characters, the last one `~` when cut.
fn truncate(s: &str, n: usize) -> TextLine {
    let mut l = TextLine::new();
    if s.chars().count() <= n {
        let _ = l.push_str(s);
    } else {
        for c in s.chars().take(n.saturating_sub(1)).chain(['~']) {
            let _ = l.push(c);
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{AlarmReason, AnomalyVerdict, Classification};

    /// A validated ultrasound model's facts.
    fn ultrasound_info() -> OverlayInfo {
        OverlayInfo {
            mode: "ultrasound".into(),
            model_line: "m".into(),
            demonstration: false,
            labels: Vec::new(),
        }
    }

    fn pixel(c: &Canvas, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * c.width + x) * 3) as usize;
        [c.rgb[i], c.rgb[i + 1], c.rgb[i + 2]]
    }

    #[test]
    fn draws_image_banner_and_alarm() {
        let info = OverlayInfo {
            mode: "ultrasound".into(),
            model_line: "m 1 abcd".into(),
            demonstration: true,
            labels: vec![],
        };
        let mut o = Overlay::new((640, 480), info);
        let img = GrayImage {
            width: 4,
            height: 3,
            data: vec![200; 12],
        };
        let v = Verdict::Anomaly(AnomalyVerdict {
            score: 3.0,
            warming_up: false,
            alarm: Some(AlarmReason::Frozen),
            ..Default::default()
        });
        let c = o.render(&img, Status::Result(&v), Some((30.0, 12.0)));
        assert_eq!(
            pixel(c, 215, 240),
            [200, 200, 200],
            "image in the middle of the image area"
        );
        assert_eq!(
            pixel(c, 2, 2),
            [ALARM_RED.r(), ALARM_RED.g(), ALARM_RED.b()],
            "alarm banner on top"
        );
        assert_eq!(
            pixel(c, 2, 470),
            [NOTICE_WHITE.r(), NOTICE_WHITE.g(), NOTICE_WHITE.b()],
            "demo notice"
        );
        // The alarm banner spans the panel too.
        assert_eq!(
            pixel(c, 637, 2),
            [ALARM_RED.r(), ALARM_RED.g(), ALARM_RED.b()]
        );
    }

    #[test]
    fn a_model_check_turned_off_is_a_standing_yellow_note() {
        let info = OverlayInfo {
            mode: "ultrasound".into(),
            model_line: "echo-ae-demo".into(),
            demonstration: false,
            labels: Vec::new(),
        };
        let mut o = Overlay::new((640, 480), info);
        let img = GrayImage {
            width: 2,
            height: 2,
            data: vec![50; 4],
        };
        let yellow = [CAUTION_YELLOW.r(), CAUTION_YELLOW.g(), CAUTION_YELLOW.b()];
        let count = |c: &Canvas| c.rgb.chunks(3).filter(|p| *p == yellow).count();
        let mut v = AnomalyVerdict::default();
        let on = count(o.render(&img, Status::Result(&Verdict::Anomaly(v.clone())), None));
        v.model_check_off = true;
        let off = count(o.render(&img, Status::Result(&Verdict::Anomaly(v)), None));
        assert_eq!(on, 0);
        assert!(off > 100, "{off} yellow pixels");
    }

    #[test]
    fn an_alarm_during_warm_up_shows_as_the_alarm() {
        let v = |warming_up, alarm| AnomalyVerdict {
            warming_up,
            alarm,
            ..Default::default()
        };
        assert_eq!(anomaly_state(&v(true, Some(AlarmReason::Frozen))), "ALARM");
        assert_eq!(anomaly_state(&v(false, Some(AlarmReason::Frozen))), "ALARM");
        assert_eq!(
            anomaly_state(&v(false, Some(AlarmReason::NoContact))),
            "CHECK PROBE"
        );
        assert_eq!(anomaly_state(&v(true, None)), "learning baseline");
        assert_eq!(anomaly_state(&v(false, None)), "normal");
    }

    #[test]
    fn a_rehearsal_is_watermarked_on_every_frame() {
        let info = ultrasound_info();
        let img = GrayImage {
            width: 4,
            height: 3,
            data: vec![60; 12],
        };
        let magenta = [
            REHEARSAL_MAGENTA.r(),
            REHEARSAL_MAGENTA.g(),
            REHEARSAL_MAGENTA.b(),
        ];
        let count = |c: &Canvas| c.rgb.chunks(3).filter(|p| *p == magenta).count();
        let normal = Verdict::Anomaly(AnomalyVerdict::default());
        let mut o = Overlay::new((640, 480), info);
        assert_eq!(count(o.render(&img, Status::Result(&normal), None)), 0);
        o.set_rehearsal(true);
        assert!(count(o.render(&img, Status::Result(&normal), None)) > 2000);
        let alarm = Verdict::Anomaly(AnomalyVerdict {
            alarm: Some(AlarmReason::Frozen),
            ..Default::default()
        });
        assert!(count(o.render(&img, Status::Result(&alarm), None)) > 2000);
        assert!(count(o.render(&img, Status::NoSignal("gone"), None)) > 2000);
    }

    #[test]
    fn a_colour_picture_is_drawn_in_colour() {
        let info = ultrasound_info();
        let mut o = Overlay::new((640, 480), info);
        let c = ColourPicture {
            width: 2,
            height: 2,
            planes: [vec![200; 4], vec![40; 4], vec![30; 4]],
            is_colour: true,
        };
        let normal = Verdict::Anomaly(AnomalyVerdict::default());
        let canvas = o.render_picture(Picture::Colour(&c), Status::Result(&normal), None);
        assert_eq!(pixel(canvas, 215, 240), [200, 40, 30]);
    }

    #[test]
    fn a_result_is_not_shown_past_its_validity_window() {
        let v = Verdict::Classification(Classification::from_probabilities(&[1.0], 0, true));
        let w = RESULT_VALIDITY_US;
        assert_eq!(
            result_status(&v, 1_000_000, 1_000_000, w),
            Status::Result(&v)
        );
        assert_eq!(
            result_status(&v, 1_000_000, 1_500_000, w),
            Status::Result(&v)
        );
        assert!(matches!(
            result_status(&v, 1_000_000, 1_500_001, w),
            Status::AiUnavailable(_)
        ));
        // A picture older than the result (reordered) is fine.
        assert_eq!(
            result_status(&v, 2_000_000, 1_000_000, w),
            Status::Result(&v)
        );
        // A board's longer window (qemu-virt: 3 s).
        assert_eq!(
            result_status(&v, 1_000_000, 4_000_000, 3_000_000),
            Status::Result(&v)
        );
        assert!(matches!(
            result_status(&v, 1_000_000, 4_000_001, 3_000_000),
            Status::AiUnavailable(_)
        ));
    }

    #[test]
    fn classification_and_ai_unavailable() {
        let info = OverlayInfo {
            mode: "xray".into(),
            model_line: "m".into(),
            demonstration: false,
            labels: vec!["a".into(), "b".into()],
        };
        let mut o = Overlay::new((320, 240), info);
        let img = GrayImage {
            width: 2,
            height: 2,
            data: vec![50; 4],
        };
        let v = Verdict::Classification(Classification::from_probabilities(&[0.2, 0.8], 1, true));
        let c = o.render(&img, Status::Result(&v), None);
        assert_eq!(pixel(c, 55, 120), [50, 50, 50], "image letterboxed");
        assert_eq!(
            pixel(c, 2, 235),
            [0, 0, 0],
            "no demo banner for a validated model"
        );
        let c = o.render(&img, Status::AiUnavailable("stalled"), None);
        assert_eq!(
            pixel(c, 2, 2),
            [CAUTION_YELLOW.r(), CAUTION_YELLOW.g(), CAUTION_YELLOW.b()]
        ); // No signal: the caution banner, and the stale picture is not shown.
        let c = o.render(
            &img,
            Status::NoSignal("/dev/video0: no frame within 2000 ms"),
            None,
        );
        assert_eq!(
            pixel(c, 2, 2),
            [CAUTION_YELLOW.r(), CAUTION_YELLOW.g(), CAUTION_YELLOW.b()]
        );
        assert_eq!(pixel(c, 55, 120), [0, 0, 0], "image blanked");
    }
}
