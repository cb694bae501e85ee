//! The screen in every state, at a 320x240 SPI panel's size and a 640x480
//! monitor's, compared pixel for pixel with reviewed golden images in
//! `tests/golden/overlay/`.
//!
//! After a deliberate change to the overlay, regenerate them with
//! `BEDSIDE_UPDATE_GOLDEN=1 cargo test --test integration overlay_golden`, look at every
//! image that changed (`git diff --stat tests/golden/overlay`, then open
//! them), and commit them with the change.

use crate::common;
use bedside::analyze::{AlarmReason, AnomalyVerdict, Classification, Verdict};
use bedside::capture::FrameSource;
use bedside::capture::dicom::DicomSource;
use bedside::display::{Canvas, Overlay, OverlayInfo, Recording, Status};
use bedside::preprocess::GrayImage;
use bedside::preprocess::convert::Converter;
use bedside::preprocess::kernels::kernels;

/// The demo echo cine's first frame as 8-bit gray, stored as PNG beside the
/// goldens: the cine is JPEG, and JPEG decoders may round differently per
/// CPU (jpeg-decoder has its own NEON IDCT), while the goldens must be
/// exact everywhere. Written with the goldens.
fn echo_frame() -> GrayImage {
    let path = common::root().join("tests/golden/overlay/input_echo_gray.png");
    if std::env::var_os("BEDSIDE_UPDATE_GOLDEN").is_some() {
        let g = gray("echo_cine.dcm");
        image::GrayImage::from_raw(g.width, g.height, g.data.clone())
            .unwrap()
            .save(&path)
            .unwrap();
        return g;
    }
    let img = image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_luma8();
    GrayImage {
        width: img.width(),
        height: img.height(),
        data: img.into_raw(),
    }
}

fn gray(file: &str) -> GrayImage {
    let frame = DicomSource::open(&common::root().join("assets/demo").join(file))
        .unwrap()
        .next_frame()
        .unwrap()
        .unwrap();
    let mut g = GrayImage::default();
    Converter::default().run(kernels(), &frame, &mut g);
    g
}

fn info(mode: &str, demonstration: bool) -> OverlayInfo {
    OverlayInfo {
        mode: mode.into(),
        model_line: format!("{mode}-demo 0.3.0 4f2a9c1e"),
        demonstration,
        labels: ["normal", "pneumonia", "covid", "lung opacity"]
            .map(String::from)
            .to_vec(),
    }
}

fn anomaly(score: f32, warming_up: bool, alarm: Option<AlarmReason>) -> Verdict {
    Verdict::Anomaly(AnomalyVerdict {
        score,
        warming_up,
        alarm,
        ..Default::default()
    })
}

fn to_png(c: &Canvas) -> image::RgbImage {
    image::RgbImage::from_raw(c.width, c.height, c.rgb.clone()).unwrap()
}

/// Renders `name` and compares it with its golden image (or writes it).
fn check(name: &str, canvas: &Canvas) {
    let dir = common::root().join("tests/golden/overlay");
    let path = dir.join(format!("{name}.png"));
    let got = to_png(canvas);
    if std::env::var_os("BEDSIDE_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        got.save(&path).unwrap();
        return;
    }
    let want = image::open(&path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (BEDSIDE_UPDATE_GOLDEN=1 writes it)",
                path.display()
            )
        })
        .to_rgb8();
    assert_eq!(want.dimensions(), got.dimensions(), "{name}");
    let differing = want
        .pixels()
        .zip(got.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing,
        0,
        "{name}: {differing} pixels differ from {}",
        path.display()
    );
}

#[test]
fn every_state_at_two_sizes() {
    let echo = echo_frame();
    let chest = gray("chest_cr.dcm");
    for (w, h) in [(320, 240), (640, 480)] {
        let tag = format!("{w}x{h}");
        let timing = Some((29.7, 41.3));
        // X-ray: a confident result, an uncertain one, a validated model (no banner).
        let mut o = Overlay::new((w, h), info("xray", true));
        let sure = Verdict::Classification(Classification::from_probabilities(
            &[0.07, 0.81, 0.04, 0.08],
            1,
            true,
        ));
        check(
            &format!("xray_result_{tag}"),
            o.render(&chest, Status::Result(&sure), timing),
        );
        let unsure = Verdict::Classification(Classification::from_probabilities(
            &[0.31, 0.29, 0.12, 0.28],
            0,
            false,
        ));
        check(
            &format!("xray_uncertain_{tag}"),
            o.render(&chest, Status::Result(&unsure), timing),
        );
        let mut validated = Overlay::new((w, h), info("xray", false));
        check(
            &format!("xray_validated_model_{tag}"),
            validated.render(&chest, Status::Result(&sure), timing),
        );
        // Ultrasound: warming up, a run of normal frames drawing the trace, then an alarm.
        let mut o = Overlay::new((w, h), info("ultrasound", true));
        o.record_score(0.4);
        check(
            &format!("us_warming_up_{tag}"),
            o.render(&echo, Status::Result(&anomaly(0.4, true, None)), timing),
        );
        for i in 0..60 {
            let score = 0.5 + 0.3 * ((i as f32) / 6.0).sin();
            o.record_score(score);
            o.render(&echo, Status::Result(&anomaly(score, false, None)), timing);
        }
        o.record_score(0.6);
        check(
            &format!("us_normal_{tag}"),
            o.render(&echo, Status::Result(&anomaly(0.6, false, None)), timing),
        );
        for _ in 0..5 {
            o.record_score(2.4);
            o.render(
                &echo,
                Status::Result(&anomaly(2.4, false, Some(AlarmReason::NoContact))),
                timing,
            );
        }
        o.record_score(2.6);
        check(
            &format!("us_alarm_{tag}"),
            o.render(
                &echo,
                Status::Result(&anomaly(2.6, false, Some(AlarmReason::NoContact))),
                timing,
            ),
        );
        // Fail-safe states.
        check(
            &format!("ai_unavailable_{tag}"),
            o.render(
                &echo,
                Status::AiUnavailable("model output is not finite"),
                timing,
            ),
        );
        // Recording, and a recording that failed (a full card).
        o.set_recording(Recording::On);
        check(
            &format!("us_recording_{tag}"),
            o.render(&echo, Status::Result(&anomaly(0.6, false, None)), timing),
        );
        o.set_recording(Recording::Failed);
        check(
            &format!("us_recording_failed_{tag}"),
            o.render(&echo, Status::Result(&anomaly(0.6, false, None)), timing),
        );
        o.set_recording(Recording::Off);
        // X-ray before the first classification: what it waits for.
        let mut x = Overlay::new((w, h), info("xray", true));
        check(
            &format!("xray_waiting_{tag}"),
            x.render(
                &chest,
                Status::Waiting(bedside::pipeline::Trigger::Stable.prompt()),
                timing,
            ),
        );
        // Ultrasound mode forced on a file that says it is an X-ray: a
        // standing caution under the model line.
        let mut forced = Overlay::new((w, h), info("ultrasound", true));
        forced.set_caution(Some("file: Modality CR".into()));
        forced.record_score(0.4);
        check(
            &format!("us_mode_caution_{tag}"),
            forced.render(&echo, Status::Result(&anomaly(0.4, false, None)), timing),
        );
        // X-ray mode given a picture whose file says it is something else.
        let refusal = bedside::analyze::gate::Refusal::NotXray {
            modality: "CT".into(),
        };
        check(
            &format!("xray_not_analyzed_{tag}"),
            x.render(&chest, Status::NotAnalyzed(&refusal), timing),
        );
        check(
            &format!("no_signal_{tag}"),
            o.render(
                &echo,
                Status::NoSignal("/dev/video0: no frame within 2000 ms"),
                None,
            ),
        );
    }
}

/// On a 1080p monitor the UI is drawn at twice the size: the side panel is
/// twice as wide, text blocks are 2x2 pixels.
#[test]
fn the_ui_scales_on_large_screens() {
    let echo = echo_frame();
    let mut small = Overlay::new((640, 480), info("ultrasound", true));
    let mut large = Overlay::new((1280, 960), info("ultrasound", true));
    let a = small
        .render(&echo, Status::AiUnavailable("x"), None)
        .clone();
    let b = large
        .render(&echo, Status::AiUnavailable("x"), None)
        .clone();
    // The panel (right 210 units) in the large canvas is the small one's, doubled.
    let px = |c: &Canvas, x: u32, y: u32| {
        let i = ((y * c.width + x) * 3) as usize;
        [c.rgb[i], c.rgb[i + 1], c.rgb[i + 2]]
    };
    let mut same = 0;
    for y in 0..480 {
        for x in 430..640 {
            let v = px(&a, x, y);
            assert_eq!(v, px(&b, 2 * x, 2 * y), "({x},{y})");
            assert_eq!(v, px(&b, 2 * x + 1, 2 * y + 1), "({x},{y})");
            same += 1;
        }
    }
    assert_eq!(same, 210 * 480);
}
