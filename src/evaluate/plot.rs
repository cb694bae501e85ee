//! `eval-anomaly --plot FILE.png`: the score over time, injected segments
//! shaded by kind, the alarm marked under it, the threshold drawn at 1.0.
//!
//! Drawn with embedded-graphics on the overlay's [`Canvas`] and written
//! with `image` as PNG: no plotting dependency for one chart.

use std::path::Path;

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Line, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

use super::EvalReport;
use crate::analyze::inject::AnomalyKind;
use crate::display::overlay::Canvas;

const WIDTH: u32 = 1600;
const HEIGHT: u32 = 440;
const LEFT: i32 = 56;
const RIGHT: i32 = 16;
const TOP: i32 = 52;
const BOTTOM: i32 = 64;
/// Scores above this are drawn at the top edge.
const Y_MAX: f32 = 3.0;

const BACKGROUND: Rgb888 = Rgb888::new(255, 255, 255);
const AXIS: Rgb888 = Rgb888::new(60, 60, 60);
const GRID: Rgb888 = Rgb888::new(215, 215, 215);
const SCORE: Rgb888 = Rgb888::new(20, 60, 160);
const ALARM: Rgb888 = Rgb888::new(210, 30, 30);

fn kind_colour(k: AnomalyKind) -> Rgb888 {
    match k {
        AnomalyKind::Blank => Rgb888::new(190, 190, 190),
        AnomalyKind::Frozen => Rgb888::new(170, 210, 250),
        AnomalyKind::GainJump => Rgb888::new(255, 225, 150),
        AnomalyKind::NoiseBurst => Rgb888::new(250, 185, 185),
        AnomalyKind::Shadow => Rgb888::new(200, 180, 230),
        AnomalyKind::OtherModality => Rgb888::new(175, 225, 175),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("nothing to plot: the replay has no frames")]
    Empty,
    #[error("{path}: {source}")]
    Write {
        path: String,
        source: image::ImageError,
    },
}

/// Draws the report's injected replay into a picture.
pub fn render(report: &EvalReport) -> Result<Canvas, PlotError> {
    let n = report.trace.len();
    if n == 0 {
        return Err(PlotError::Empty);
    }
    let mut c = Canvas::new(WIDTH, HEIGHT);
    let _ = Rectangle::new(Point::zero(), Size::new(WIDTH, HEIGHT))
        .into_styled(PrimitiveStyle::with_fill(BACKGROUND))
        .draw(&mut c);
    let (x0, x1) = (LEFT, WIDTH as i32 - RIGHT);
    let (y_top, y_bottom) = (TOP, HEIGHT as i32 - BOTTOM);
    let plot_w = (x1 - x0) as usize;
    let x_of = |frame: usize| x0 + (frame * plot_w / n) as i32;
    let y_of = |score: f32| {
        let s = if score.is_finite() {
            score.clamp(0.0, Y_MAX)
        } else {
            Y_MAX
        };
        y_bottom - ((s / Y_MAX) * (y_bottom - y_top) as f32).round() as i32
    };
    let text = MonoTextStyle::new(&FONT_6X10, AXIS);
    let fill = |c: &mut Canvas, p: Point, s: Size, colour| {
        let _ = Rectangle::new(p, s)
            .into_styled(PrimitiveStyle::with_fill(colour))
            .draw(c);
    };
    let line = |c: &mut Canvas, a: Point, b: Point, colour| {
        let _ = Line::new(a, b)
            .into_styled(PrimitiveStyle::with_stroke(colour, 1))
            .draw(c);
    };

    // Injected segments.
    for s in &report.segments {
        let (a, b) = (
            x_of(s.start as usize),
            x_of(s.end() as usize).max(x_of(s.start as usize) + 1),
        );
        fill(
            &mut c,
            Point::new(a, y_top),
            Size::new((b - a) as u32, (y_bottom - y_top) as u32),
            kind_colour(s.kind),
        );
    }
    // Grid and threshold.
    for v in [0.5f32, 1.0, 1.5, 2.0, 2.5, 3.0] {
        let y = y_of(v);
        line(
            &mut c,
            Point::new(x0, y),
            Point::new(x1, y),
            if v == 1.0 { AXIS } else { GRID },
        );
        let _ = Text::with_baseline(
            &format!("{v:.1}"),
            Point::new(x0 - 28, y - 4),
            text,
            Baseline::Top,
        )
        .draw(&mut c);
    }
    let _ = Text::with_baseline(
        "threshold",
        Point::new(x1 - 58, y_of(1.0) - 11),
        text,
        Baseline::Top,
    )
    .draw(&mut c);
    // The score: per pixel column, the highest score of its frames.
    let mut last: Option<Point> = None;
    for px in 0..plot_w {
        let (a, b) = (
            px * n / plot_w,
            ((px + 1) * n / plot_w).max(px * n / plot_w + 1).min(n),
        );
        if a >= n {
            break;
        }
        let top = report.trace[a..b]
            .iter()
            .map(|t| t.score)
            .fold(0.0f32, |m, s| {
                if s.is_finite() {
                    m.max(s)
                } else {
                    f32::INFINITY
                }
            });
        let p = Point::new(x0 + px as i32, y_of(top));
        if let Some(q) = last {
            line(&mut c, q, p, SCORE);
        }
        last = Some(p);
    }
    // The alarm, as a strip under the axis.
    let strip = y_bottom + 4;
    for px in 0..plot_w {
        let (a, b) = (
            px * n / plot_w,
            ((px + 1) * n / plot_w).max(px * n / plot_w + 1).min(n),
        );
        if a < n && report.trace[a..b].iter().any(|t| t.alarm.is_some()) {
            fill(
                &mut c,
                Point::new(x0 + px as i32, strip),
                Size::new(1, 10),
                ALARM,
            );
        }
    }
    // Axes and frame ticks.
    line(
        &mut c,
        Point::new(x0, y_top),
        Point::new(x0, y_bottom),
        AXIS,
    );
    line(
        &mut c,
        Point::new(x0, y_bottom),
        Point::new(x1, y_bottom),
        AXIS,
    );
    let step = tick_step(n);
    for f in (0..=n).step_by(step) {
        let x = x_of(f);
        line(
            &mut c,
            Point::new(x, y_bottom),
            Point::new(x, y_bottom + 3),
            AXIS,
        );
        let _ = Text::with_baseline(
            &f.to_string(),
            Point::new(x - 8, y_bottom + 18),
            text,
            Baseline::Top,
        )
        .draw(&mut c);
    }
    let _ = Text::with_baseline(
        "frame",
        Point::new(x1 - 30, y_bottom + 32),
        text,
        Baseline::Top,
    )
    .draw(&mut c);
    let _ = Text::with_baseline(
        "alarm",
        Point::new(4, strip),
        MonoTextStyle::new(&FONT_6X10, ALARM),
        Baseline::Top,
    )
    .draw(&mut c);
    // Title and legend.
    let cine = Path::new(&report.cine)
        .file_name()
        .map_or(report.cine.clone(), |n| n.to_string_lossy().into_owned());
    let title = format!(
        "{cine}  |  model {}  |  combined score (clipped at {Y_MAX:.0}), injected segments shaded",
        report.model
    );
    let _ = Text::with_baseline(&title, Point::new(x0, 8), text, Baseline::Top).draw(&mut c);
    let mut x = x0;
    for k in AnomalyKind::ALL {
        fill(&mut c, Point::new(x, 26), Size::new(14, 10), kind_colour(k));
        let _ =
            Text::with_baseline(k.name(), Point::new(x + 18, 26), text, Baseline::Top).draw(&mut c);
        x += 18 + 6 * k.name().len() as i32 + 16;
    }
    line(&mut c, Point::new(x, 31), Point::new(x + 14, 31), SCORE);
    let _ = Text::with_baseline("score", Point::new(x + 18, 26), text, Baseline::Top).draw(&mut c);
    x += 18 + 30 + 16;
    fill(&mut c, Point::new(x, 26), Size::new(14, 10), ALARM);
    let _ =
        Text::with_baseline("alarm up", Point::new(x + 18, 26), text, Baseline::Top).draw(&mut c);
    Ok(c)
}

/// Frame ticks at a round step, about ten of them.
fn tick_step(n: usize) -> usize {
    let raw = (n / 10).max(1);
    let mag = 10usize.pow(raw.ilog10());
    [1, 2, 5, 10]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(raw)
}

/// Renders and writes the plot as PNG. This is the only file eval-anomaly
/// writes, and only when asked: the cine's pixels are not in it.
pub fn write_png(report: &EvalReport, path: &Path) -> Result<(), PlotError> {
    let c = render(report)?;
    image::RgbImage::from_raw(c.width, c.height, c.rgb)
        .ok_or(PlotError::Empty)?
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|source| PlotError::Write {
            path: path.display().to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(6000), 1000);
        assert_eq!(tick_step(130), 20);
        assert_eq!(tick_step(3), 1);
    }
}
