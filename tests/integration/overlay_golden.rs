//! The screen in every state at six panel sizes (320x240 and 480x320 SPI
//! panels, 640x480, the 7-inch 800x480 and 1024x600 panels, a 1080p
//! monitor), each with its physical size, compared pixel for pixel with
//! reviewed goldens.
//!
//! A golden is the SHA-256 of the rendered RGB canvas, listed in
//! `tests/golden/overlay/SHA256SUMS`: 17 states at six sizes would be some
//! 18 MB of PNG. What they look like is reviewed on the contact sheets in
//! `docs/screens/` (one per size, every state), which are written with the
//! sums. A mismatch writes the frame it got as a PNG and names it.
//!
//! After a deliberate change to the overlay, regenerate both with
//! `BEDSIDE_UPDATE_GOLDEN=1 cargo test --test integration overlay_golden`,
//! look at every contact sheet that changed (and at the full-size frames in
//! `$CARGO_TARGET_TMPDIR/overlay/`), and commit them with the change.

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

fn sha256(c: &Canvas) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(&c.rgb)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The panels previewed: size and diagonal in inches.
const PANELS: [((u32, u32), f32); 6] = [
    ((320, 240), 2.8),
    ((480, 320), 3.5),
    ((640, 480), 5.7),
    ((800, 480), 7.0),
    ((1024, 600), 7.0),
    ((1920, 1080), 21.5),
];

/// Every state's frame at one size, in order.
fn every_state((w, h): (u32, u32), diagonal_in: f32) -> Vec<(String, Canvas)> {
    let echo = echo_frame();
    let chest = gray("chest_cr.dcm");
    let mut out = Vec::new();
    let mut keep = |name: &str, c: &Canvas| out.push((name.to_string(), c.clone()));
    let overlay = |mode: &str, demonstration: bool| {
        let mut o = Overlay::new((w, h), info(mode, demonstration));
        o.set_diagonal_in(Some(diagonal_in));
        o
    };
    let timing = Some((29.7, 41.3));
    // X-ray: a confident result, an uncertain one, a validated model (no banner).
    let mut o = overlay("xray", true);
    let sure = Verdict::Classification(Classification::from_probabilities(
        &[0.07, 0.81, 0.04, 0.08],
        1,
        true,
    ));
    keep(
        "xray_result",
        o.render(&chest, Status::Result(&sure), timing),
    );
    let unsure = Verdict::Classification(Classification::from_probabilities(
        &[0.31, 0.29, 0.12, 0.28],
        0,
        false,
    ));
    keep(
        "xray_uncertain",
        o.render(&chest, Status::Result(&unsure), timing),
    );
    let mut validated = overlay("xray", false);
    keep(
        "xray_validated_model",
        validated.render(&chest, Status::Result(&sure), timing),
    );
    // X-ray before the first classification: what it waits for.
    let mut x = overlay("xray", true);
    keep(
        "xray_waiting",
        x.render(
            &chest,
            Status::Waiting(bedside::pipeline::Trigger::Stable.prompt()),
            timing,
        ),
    );
    // X-ray mode given a picture whose file says it is something else.
    let refusal = bedside::analyze::gate::Refusal::NotXray {
        modality: "CT".into(),
    };
    keep(
        "xray_not_analyzed",
        x.render(&chest, Status::NotAnalyzed(&refusal), timing),
    );
    // Ultrasound: warming up, a run of normal frames drawing the trace, then
    // each alarm with its priority.
    let mut o = overlay("ultrasound", true);
    o.record_score(0.4);
    keep(
        "us_warming_up",
        o.render(&echo, Status::Result(&anomaly(0.4, true, None)), timing),
    );
    for i in 0..60 {
        let score = 0.5 + 0.3 * ((i as f32) / 6.0).sin();
        o.record_score(score);
        o.render(&echo, Status::Result(&anomaly(score, false, None)), timing);
    }
    o.record_score(0.6);
    keep(
        "us_normal",
        o.render(&echo, Status::Result(&anomaly(0.6, false, None)), timing),
    );
    for (name, reason) in [
        ("us_alarm_frozen", AlarmReason::Frozen),
        ("us_alarm_artefact", AlarmReason::Artefact),
        ("us_alarm_unexpected", AlarmReason::UnexpectedContent),
        ("us_probe_lifted", AlarmReason::NoContact),
    ] {
        o.record_score(2.6);
        keep(
            name,
            o.render(
                &echo,
                Status::Result(&anomaly(2.6, false, Some(reason))),
                timing,
            ),
        );
    }
    // Fail-safe states.
    keep(
        "ai_unavailable",
        o.render(
            &echo,
            Status::AiUnavailable("model output is not finite"),
            timing,
        ),
    );
    keep(
        "no_signal",
        o.render(
            &echo,
            Status::NoSignal("/dev/video0: no frame within 2000 ms"),
            None,
        ),
    );
    // Recording, and a recording that failed (a full card).
    o.set_recording(Recording::On);
    keep(
        "us_recording",
        o.render(&echo, Status::Result(&anomaly(0.6, false, None)), timing),
    );
    o.set_recording(Recording::Failed);
    keep(
        "us_recording_failed",
        o.render(&echo, Status::Result(&anomaly(0.6, false, None)), timing),
    );
    o.set_recording(Recording::Off);
    // A rehearsed alarm: the watermark says it is not real.
    o.set_rehearsal(true);
    keep(
        "us_rehearsal_alarm",
        o.render(
            &echo,
            Status::Result(&anomaly(2.6, false, Some(AlarmReason::Frozen))),
            timing,
        ),
    );
    // Ultrasound mode forced on a file that says it is an X-ray: a
    // standing caution under the model line.
    let mut forced = overlay("ultrasound", true);
    forced.set_caution(Some("file: Modality CR".into()));
    forced.record_score(0.4);
    keep(
        "us_mode_caution",
        forced.render(&echo, Status::Result(&anomaly(0.4, false, None)), timing),
    );
    out
}

/// Up to four frames a row, each scaled to at most 400 pixels wide.
fn contact_sheet(frames: &[(String, Canvas)]) -> image::RgbImage {
    let (w, h) = (frames[0].1.width, frames[0].1.height);
    let tw = w.min(400);
    let th = h * tw / w;
    let cols = 4;
    let rows = (frames.len() as u32).div_ceil(cols);
    let gap = 6;
    let mut sheet = image::RgbImage::from_pixel(
        cols * (tw + gap) + gap,
        rows * (th + gap) + gap,
        image::Rgb([128, 128, 128]),
    );
    for (i, (_, c)) in frames.iter().enumerate() {
        let t = image::imageops::resize(&to_png(c), tw, th, image::imageops::FilterType::Triangle);
        let (col, row) = (i as u32 % cols, i as u32 / cols);
        image::imageops::overlay(
            &mut sheet,
            &t,
            i64::from(gap + col * (tw + gap)),
            i64::from(gap + row * (th + gap)),
        );
    }
    sheet
}

#[test]
fn every_state_at_every_panel_size() {
    let dir = common::root().join("tests/golden/overlay");
    let sums_path = dir.join("SHA256SUMS");
    let update = std::env::var_os("BEDSIDE_UPDATE_GOLDEN").is_some();
    let frames_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("overlay");
    std::fs::create_dir_all(&frames_dir).unwrap();
    let want: std::collections::BTreeMap<String, String> = if update {
        Default::default()
    } else {
        std::fs::read_to_string(&sums_path)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (BEDSIDE_UPDATE_GOLDEN=1 writes it)",
                    sums_path.display()
                )
            })
            .lines()
            .filter_map(|l| l.split_once("  "))
            .map(|(h, n)| (n.to_string(), h.to_string()))
            .collect()
    };
    let mut sums = String::new();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (size, diagonal) in PANELS {
        let frames = every_state(size, diagonal);
        assert_eq!(frames.len(), 17);
        for (state, canvas) in &frames {
            assert_eq!((canvas.width, canvas.height), size);
            let name = format!("{state}_{}x{}", size.0, size.1);
            let got = sha256(canvas);
            sums.push_str(&format!("{got}  {name}\n"));
            if update {
                to_png(canvas)
                    .save(frames_dir.join(format!("{name}.png")))
                    .unwrap();
                continue;
            }
            checked += 1;
            match want.get(&name) {
                Some(h) if *h == got => {}
                _ => {
                    let png = frames_dir.join(format!("{name}.png"));
                    to_png(canvas).save(&png).unwrap();
                    wrong.push(format!("{name} (got {})", png.display()));
                }
            }
        }
        if update {
            let sheet = common::root().join(format!("docs/screens/{}x{}.jpg", size.0, size.1));
            std::fs::create_dir_all(sheet.parent().unwrap()).unwrap();
            let file = std::fs::File::create(&sheet).unwrap();
            let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(
                std::io::BufWriter::new(file),
                80,
            );
            enc.encode_image(&contact_sheet(&frames)).unwrap();
        }
    }
    if update {
        std::fs::write(&sums_path, sums).unwrap();
        return;
    }
    assert_eq!(
        checked,
        want.len(),
        "SHA256SUMS lists frames this test no longer draws"
    );
    assert!(
        wrong.is_empty(),
        "{} frames differ from their goldens: {}",
        wrong.len(),
        wrong.join(", ")
    );
}

/// The banner reads at 1 m on a 7-inch panel, and across its whole width.
#[test]
fn the_alarm_banner_spans_a_seven_inch_panel_in_legible_letters() {
    let echo = echo_frame();
    let mut o = Overlay::new((800, 480), info("ultrasound", false));
    o.set_diagonal_in(Some(7.0));
    assert!(o.lettering().legible_at_1m(), "{:?}", o.lettering());
    let c = o.render(
        &echo,
        Status::Result(&anomaly(2.0, false, Some(AlarmReason::Frozen))),
        None,
    );
    let red = [220, 30, 30];
    let px = |x: u32, y: u32| {
        let i = ((y * c.width + x) * 3) as usize;
        [c.rgb[i], c.rgb[i + 1], c.rgb[i + 2]]
    };
    // Red from the left edge to the right edge, over the panel too.
    assert_eq!(px(0, 2), red);
    assert_eq!(px(799, 2), red);
    assert_eq!(px(700, 2), red);
    // Letters in the banner: white pixels, in a band at least 30 rows high.
    let rows_with_text: Vec<u32> = (0..80)
        .filter(|&y| (0..800).any(|x| px(x, y) == [255, 255, 255]))
        .collect();
    let span = rows_with_text.last().unwrap() - rows_with_text.first().unwrap() + 1;
    assert!(span >= 30, "capitals {span} px high");
}

/// On a 1080p monitor the UI is drawn at twice the size: the side panel is
/// twice as wide, text blocks are 2x2 pixels.
#[test]
fn the_ui_scales_on_large_screens() {
    let echo = echo_frame();
    let mut small = Overlay::new((640, 480), info("ultrasound", true));
    let mut large = Overlay::new((1280, 960), info("ultrasound", true));
    // Without a banner: its lettering is sized in millimetres, not in UI units.
    let a = small.render(&echo, Status::Waiting("x"), None).clone();
    let b = large.render(&echo, Status::Waiting("x"), None).clone();
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
