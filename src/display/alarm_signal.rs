//! What the screen announces at the top, and how: the visual alarm signals
//! after IEC 60601-1-8's conventions.
//!
//! - **Priority by colour and marker**: high red, medium yellow, low cyan,
//!   and the standard's `!!!`, `!!`, `!` before the text, so the priority
//!   reads without colour vision too. Each condition's priority is fixed
//!   here and tabled in `docs/SCREEN.md`.
//! - **Alarms and technical conditions look different**: an alarm about
//!   the picture (frozen, artefact, unexpected content) is a solid banner
//!   in its priority's colour; a technical condition (no signal, AI
//!   unavailable, probe lifted) is a black banner framed and lettered in
//!   its colour. NO SIGNAL also crosses out the picture area; the panel
//!   says which condition it is. A refusal to analyze a picture is
//!   information, not an alarm: a gray banner. The demonstration notice is
//!   a white strip at the bottom, in no alarm colour.
//! - **Legible at 1 m**: the banner spans the screen and its capital
//!   letters are at least [`MIN_CAP_MM`] high on the panel, computed from
//!   its physical size (`[display] diagonal_in` in the board profile, or
//!   `headless:DIR?diagonal_in=`); without one, 96 pixels per inch (a
//!   desktop monitor) is assumed. A line of it may take an eighth of the
//!   screen's height (two lines and margins about a third); a panel too
//!   small for legible capitals within that gets the largest that fit, and
//!   the run's log and `run_start` record say how high they are.
//! - **No flashing**: the standard flashes high and medium priority
//!   indicators. A flashing banner would hide the picture half the time,
//!   and bedside never sounds an alarm either: it is a screening aid
//!   beside an operator who is looking at the screen, not a monitor that
//!   calls someone from the corridor.

use embedded_graphics::mono_font::MonoFont;
use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_7X13, FONT_10X20};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;

use crate::analyze::AlarmReason;

pub const ALARM_RED: Rgb888 = Rgb888::new(220, 30, 30);
pub const CAUTION_YELLOW: Rgb888 = Rgb888::new(250, 200, 0);
pub const INFO_CYAN: Rgb888 = Rgb888::new(90, 200, 250);
/// The refusal banner: neutral, no alarm colour.
pub const INFO_GRAY: Rgb888 = Rgb888::new(70, 70, 76);
/// The rehearsal watermark: a colour that no alarm uses.
pub const REHEARSAL_MAGENTA: Rgb888 = Rgb888::new(230, 60, 230);

/// The least height of a capital letter for reading at 1 m: 20 minutes of
/// arc (ISO 9241-303 recommends 20 to 22 for text read at work; 16 is its
/// floor). IEC 60601-1-8 asks the alarm's text to be legible at 1 m.
pub const MIN_CAP_MM: f32 = 5.8;

/// Pixels per inch assumed when the panel's size is not known.
pub const DEFAULT_PPI: f32 = 96.0;

/// IEC 60601-1-8 alarm priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    High,
    Medium,
    Low,
}

impl Priority {
    pub fn colour(self) -> Rgb888 {
        match self {
            Priority::High => ALARM_RED,
            Priority::Medium => CAUTION_YELLOW,
            Priority::Low => INFO_CYAN,
        }
    }

    /// The standard's marker, written before the text.
    pub fn marker(self) -> &'static str {
        match self {
            Priority::High => "!!!",
            Priority::Medium => "!!",
            Priority::Low => "!",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

/// What kind of condition a banner announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Something is wrong with the picture of the patient.
    Alarm,
    /// Something is wrong with the equipment or its use.
    Technical,
    /// Not an alarm: the screen says why there is no result.
    Information,
}

/// One condition the top banner can announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal {
    pub kind: Kind,
    /// `None` for information.
    pub priority: Option<Priority>,
    /// The banner's text, short: the panel gives the detail.
    pub title: &'static str,
}

impl Signal {
    /// The live device gave no frame: no picture, no result.
    pub const NO_SIGNAL: Signal = Signal {
        kind: Kind::Technical,
        priority: Some(Priority::Medium),
        title: "NO SIGNAL",
    };
    /// The model failed, stalled or was refused: the picture is live, but
    /// no result is shown.
    pub const AI_UNAVAILABLE: Signal = Signal {
        kind: Kind::Technical,
        priority: Some(Priority::Medium),
        title: "AI UNAVAILABLE",
    };
    /// The picture is not one the model may judge.
    pub const NOT_ANALYZED: Signal = Signal {
        kind: Kind::Information,
        priority: None,
        title: "NOT ANALYZED",
    };

    /// The ultrasound detector's alarms. Frozen is high: the screen no
    /// longer shows the patient as they are, and an operator guiding the
    /// probe (or a needle) by it acts on a still picture. Artefact and
    /// unexpected content are medium: the picture needs a prompt look, not
    /// an immediate one. A lifted probe is a technical condition of low
    /// priority: it is the operator's own action nearly always.
    pub fn of_alarm(reason: AlarmReason) -> Signal {
        match reason {
            AlarmReason::Frozen => Signal {
                kind: Kind::Alarm,
                priority: Some(Priority::High),
                title: "FROZEN IMAGE",
            },
            AlarmReason::Artefact => Signal {
                kind: Kind::Alarm,
                priority: Some(Priority::Medium),
                title: "ARTEFACT OR NOISE",
            },
            AlarmReason::UnexpectedContent => Signal {
                kind: Kind::Alarm,
                priority: Some(Priority::Medium),
                title: "UNEXPECTED CONTENT",
            },
            AlarmReason::NoContact => Signal {
                kind: Kind::Technical,
                priority: Some(Priority::Low),
                title: "PROBE LIFTED",
            },
        }
    }

    /// The colour the condition is drawn in.
    pub fn colour(&self) -> Rgb888 {
        self.priority.map_or(INFO_GRAY, Priority::colour)
    }

    /// The banner's fill, frame and text colours.
    pub fn look(&self) -> Look {
        let c = self.colour();
        match self.kind {
            Kind::Alarm => Look {
                fill: c,
                frame: c,
                text: if self.priority == Some(Priority::High) {
                    Rgb888::WHITE
                } else {
                    Rgb888::BLACK
                },
            },
            Kind::Technical => Look {
                fill: Rgb888::BLACK,
                frame: c,
                text: c,
            },
            Kind::Information => Look {
                fill: c,
                frame: c,
                text: Rgb888::WHITE,
            },
        }
    }
}

/// A banner's colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Look {
    pub fill: Rgb888,
    pub frame: Rgb888,
    pub text: Rgb888,
}

/// The banner's lettering on one screen: a font drawn at an integer scale.
#[derive(Clone, Copy, Debug)]
pub struct Lettering {
    pub font: &'static MonoFont<'static>,
    pub scale: u32,
    /// Height of a capital letter on the panel, in millimetres.
    pub cap_mm: f32,
    /// Pixels per millimetre assumed for the panel.
    pub px_per_mm: f32,
    /// Whether the panel's size was known (else [`DEFAULT_PPI`]).
    pub measured: bool,
}

/// Fonts the banner may use, with the height of their capitals in pixels
/// (measured: `cap_heights_are_the_fonts_own` below).
const FONTS: [(&MonoFont<'static>, u32); 3] = [(&FONT_6X10, 7), (&FONT_7X13, 9), (&FONT_10X20, 13)];

impl Lettering {
    /// The smallest lettering whose capitals are at least [`MIN_CAP_MM`]
    /// high on a `size` canvas of `diagonal_in` inches, and whose line is at
    /// most an eighth of the screen's height; if none is, the largest that
    /// is.
    pub fn for_panel(size: (u32, u32), diagonal_in: Option<f32>) -> Lettering {
        let diag_px = f64::from(size.0).hypot(f64::from(size.1)) as f32;
        let measured = diagonal_in.is_some_and(|d| d.is_finite() && d > 0.0);
        let ppi = match diagonal_in {
            Some(d) if measured => diag_px / d,
            _ => DEFAULT_PPI,
        };
        let px_per_mm = ppi / 25.4;
        let need = MIN_CAP_MM * px_per_mm;
        let max_line = (size.1 / 8).max(10);
        let mut options: Vec<(&'static MonoFont<'static>, u32, u32)> = Vec::new();
        for (font, cap) in FONTS {
            for scale in 1..=12 {
                if font.character_size.height * scale <= max_line {
                    options.push((font, scale, cap * scale));
                }
            }
        }
        // Smallest capitals that are tall enough; among equals the larger
        // font (fewer blocky steps). Else the tallest that fits.
        let pick = options
            .iter()
            .filter(|o| o.2 as f32 >= need)
            .min_by_key(|o| (o.2, std::cmp::Reverse(o.0.character_size.height)))
            .or_else(|| {
                options
                    .iter()
                    .max_by_key(|o| (o.2, o.0.character_size.height))
            })
            .copied()
            .unwrap_or((&FONT_6X10, 1, 7));
        Lettering {
            font: pick.0,
            scale: pick.1,
            cap_mm: pick.2 as f32 / px_per_mm,
            px_per_mm,
            measured,
        }
    }

    /// Whether the capitals reach [`MIN_CAP_MM`].
    pub fn legible_at_1m(&self) -> bool {
        self.cap_mm + 1e-3 >= MIN_CAP_MM
    }

    /// A character's width and a line's height, in canvas pixels.
    pub fn char_width(&self) -> u32 {
        (self.font.character_size.width + self.font.character_spacing) * self.scale
    }

    pub fn line_height(&self) -> u32 {
        self.font.character_size.height * self.scale
    }

    /// One line for the log: what the alarm text measures on this panel.
    pub fn describe(&self, size: (u32, u32)) -> String {
        let source = if self.measured {
            format!("{:.1} px/mm", self.px_per_mm)
        } else {
            format!("panel size unknown, {DEFAULT_PPI} ppi assumed (set [display] diagonal_in)")
        };
        let verdict = if self.legible_at_1m() {
            format!("at least {MIN_CAP_MM} mm: legible at 1 m")
        } else {
            format!("under the {MIN_CAP_MM} mm needed at 1 m: the panel is too small")
        };
        format!(
            "screen {}x{} ({source}): alarm capitals {:.1} mm high, {verdict}",
            size.0, size.1, self.cap_mm
        )
    }
}

/// Splits `text` into lines of at most `width` characters at spaces (a word
/// longer than a line is cut), at most `max` lines; the last line ends in
/// `~` when text was left out.
pub fn wrap(text: &str, width: usize, max: usize) -> heapless::Vec<heapless::String<64>, 4> {
    let mut lines: heapless::Vec<heapless::String<64>, 4> = heapless::Vec::new();
    let width = width.clamp(1, 64);
    let max = max.clamp(1, 4);
    let mut current: heapless::String<64> = heapless::String::new();
    let mut cut = false;
    for word in text.split_whitespace() {
        let need = if current.is_empty() {
            word.len()
        } else {
            current.len() + 1 + word.len()
        };
        if need > width && !current.is_empty() {
            if lines.len() + 1 == max {
                cut = true;
                break;
            }
            let _ = lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            let _ = current.push(' ');
        }
        for c in word.chars() {
            if current.len() >= width {
                cut = true;
                break;
            }
            let _ = current.push(c);
        }
        if cut {
            break;
        }
    }
    if cut {
        while current.len() >= width {
            current.pop();
        }
        let _ = current.push('~');
    }
    if !current.is_empty() || lines.is_empty() {
        let _ = lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::mono_font::MonoTextStyle;
    use embedded_graphics::text::{Baseline, Text};

    /// Rows an upper-case H covers, drawn with `font`.
    fn cap_rows(font: &MonoFont<'static>) -> u32 {
        let mut rows = std::collections::BTreeSet::new();
        struct Rows<'a>(&'a mut std::collections::BTreeSet<i32>);
        impl OriginDimensions for Rows<'_> {
            fn size(&self) -> Size {
                Size::new(100, 100)
            }
        }
        impl DrawTarget for Rows<'_> {
            type Color = Rgb888;
            type Error = core::convert::Infallible;
            fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
                &mut self,
                pixels: I,
            ) -> Result<(), Self::Error> {
                for Pixel(p, c) in pixels {
                    if c == Rgb888::WHITE {
                        self.0.insert(p.y);
                    }
                }
                Ok(())
            }
        }
        let _ = Text::with_baseline(
            "H",
            Point::zero(),
            MonoTextStyle::new(font, Rgb888::WHITE),
            Baseline::Top,
        )
        .draw(&mut Rows(&mut rows));
        rows.len() as u32
    }

    #[test]
    fn cap_heights_are_the_fonts_own() {
        for (font, cap) in FONTS {
            assert_eq!(cap_rows(font), cap, "{:?}", font.character_size);
        }
    }

    #[test]
    fn a_seven_inch_panel_gets_capitals_legible_at_one_metre() {
        // 800x480 at 7 in: 133 ppi, 5.25 px/mm: 30.4 px capitals needed.
        let l = Lettering::for_panel((800, 480), Some(7.0));
        assert!(l.legible_at_1m(), "{l:?}");
        assert!(l.cap_mm < 7.5, "no larger than needed: {l:?}");
        assert!(l.measured);
        // 1024x600 at 7 in: denser, so more pixels for the same height.
        let d = Lettering::for_panel((1024, 600), Some(7.0));
        assert!(d.legible_at_1m());
        assert!(d.cap_mm * d.px_per_mm > l.cap_mm * l.px_per_mm);
    }

    #[test]
    fn a_small_panel_gets_the_largest_text_that_fits_and_says_so() {
        // A 2.8-inch 320x240 SPI panel: 143 ppi needs 33 px capitals, more
        // than an eighth of its 240 rows allows.
        let l = Lettering::for_panel((320, 240), Some(2.8));
        assert!(!l.legible_at_1m());
        assert!(l.line_height() <= 30);
        assert!(l.describe((320, 240)).contains("too small"));
    }

    #[test]
    fn an_unknown_panel_is_assumed_a_desktop_monitor() {
        let l = Lettering::for_panel((1920, 1080), None);
        assert!(!l.measured);
        assert!((l.px_per_mm - 96.0 / 25.4).abs() < 1e-3);
        assert!(l.legible_at_1m());
        assert!(l.describe((1920, 1080)).contains("diagonal_in"));
        // Nonsense sizes are not believed.
        assert!(!Lettering::for_panel((800, 480), Some(0.0)).measured);
        assert!(!Lettering::for_panel((800, 480), Some(f32::NAN)).measured);
    }

    #[test]
    fn every_condition_has_its_priority_and_look() {
        use AlarmReason::*;
        assert_eq!(Signal::of_alarm(Frozen).priority, Some(Priority::High));
        assert_eq!(Signal::of_alarm(Artefact).priority, Some(Priority::Medium));
        assert_eq!(
            Signal::of_alarm(UnexpectedContent).priority,
            Some(Priority::Medium)
        );
        assert_eq!(Signal::of_alarm(NoContact).kind, Kind::Technical);
        assert_eq!(Signal::of_alarm(NoContact).priority, Some(Priority::Low));
        // Alarms are solid; technical conditions framed on black; each of
        // the technical conditions differs from the others in title or colour.
        assert_eq!(Signal::of_alarm(Frozen).look().fill, ALARM_RED);
        for t in [
            Signal::NO_SIGNAL,
            Signal::AI_UNAVAILABLE,
            Signal::of_alarm(NoContact),
        ] {
            assert_eq!(t.look().fill, Rgb888::BLACK);
            assert_ne!(t.look().frame, Rgb888::BLACK);
        }
        assert_eq!(Signal::NOT_ANALYZED.look().fill, INFO_GRAY);
        for r in AlarmReason::ALL {
            assert!(Signal::of_alarm(r).title.len() <= 20);
        }
    }

    #[test]
    fn wrapping_keeps_words_and_marks_a_cut() {
        let l = wrap("!! ARTEFACT OR NOISE", 12, 2);
        assert_eq!(l.as_slice(), ["!! ARTEFACT", "OR NOISE"]);
        let l = wrap("!!! FROZEN IMAGE", 40, 2);
        assert_eq!(l.as_slice(), ["!!! FROZEN IMAGE"]);
        let l = wrap("AAAA BBBB CCCC", 4, 2);
        assert_eq!(l.as_slice(), ["AAAA", "BBB~"]);
        let l = wrap("ABCDEFGHIJ", 4, 2);
        assert_eq!(l.as_slice(), ["ABC~"]);
        assert_eq!(wrap("", 4, 2).len(), 1);
    }
}
