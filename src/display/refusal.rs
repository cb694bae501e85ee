//! The screen of a run that cannot start because its model was refused (an
//! unsigned bundle on a board that requires signatures, a signature that
//! does not verify, a model file whose hash does not match): no picture and
//! no result, the AI UNAVAILABLE banner, and why. A cart's operator sees
//! what is wrong without reading the service log.

use super::overlay::{Overlay, OverlayInfo, Status};
use super::{DisplayError, FrameSink};
use crate::frame::FrameMeta;
use crate::preprocess::GrayImage;

/// Draws the refusal screen on `sink` once. `why` is a short reason for the
/// panel (e.g. `model refused: not signed`), `bundle` the bundle's name.
pub fn show_refusal(
    sink: &mut dyn FrameSink,
    mode: &str,
    bundle: &str,
    why: &str,
) -> Result<(), DisplayError> {
    let info = OverlayInfo {
        mode: mode.to_string(),
        model_line: format!("MODEL REFUSED: {bundle}"),
        demonstration: false,
        labels: Vec::new(),
    };
    let mut overlay = Overlay::new(sink.size(), info);
    overlay.set_diagonal_in(sink.diagonal_in());
    let black = GrayImage {
        width: 1,
        height: 1,
        data: vec![0],
    };
    let canvas = overlay.render(&black, Status::AiUnavailable(why), None);
    sink.show(canvas, &FrameMeta::default())?;
    sink.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::Canvas;
    use crate::display::overlay::CAUTION_YELLOW;
    use embedded_graphics::pixelcolor::RgbColor;

    struct Keep(Option<Canvas>);

    impl FrameSink for Keep {
        fn describe(&self) -> String {
            "test".into()
        }
        fn size(&self) -> (u32, u32) {
            (320, 240)
        }
        fn show(&mut self, canvas: &Canvas, _: &FrameMeta) -> Result<(), DisplayError> {
            self.0 = Some(canvas.clone());
            Ok(())
        }
    }

    #[test]
    fn refusal_screen_has_the_caution_banner_and_no_picture() {
        let mut sink = Keep(None);
        show_refusal(
            &mut sink,
            "ultrasound",
            "echo-ae-demo",
            "model refused: not signed",
        )
        .unwrap();
        let canvas = sink.0.unwrap();
        let yellow = [CAUTION_YELLOW.r(), CAUTION_YELLOW.g(), CAUTION_YELLOW.b()];
        let px: Vec<&[u8]> = canvas.rgb.chunks_exact(3).collect();
        assert!(px.iter().filter(|p| **p == yellow).count() > 500);
        // The picture area under the banner is black (no stale or live picture).
        let below = &px[(120 * 320)..(120 * 320 + 100)];
        assert!(below.iter().all(|p| *p == [0, 0, 0]));
    }
}
