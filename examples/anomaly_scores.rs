//! Per check, how the detector's scores spread on each injected kind and on
//! clean frames: the table used to choose `DetectorParams` (docs/EVALUATION.md:
//! "Anomaly detection"). Run on the bundled cine only, so that the other
//! cines stay unseen:
//!
//! `cargo run --release --example anomaly_scores [CINE]`

use bedside::analyze::anomaly::Check;
use bedside::analyze::inject::AnomalyKind;
use bedside::evaluate::{EvalOptions, eval_anomaly};
use bedside::pipeline::Mode;

fn quantile(v: &mut [f32], q: f64) -> f32 {
    if v.is_empty() {
        return f32::NAN;
    }
    v.sort_by(f32::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let bundle = bedside::demo::embedded_bundle(Mode::Ultrasound)?;
    let (name, bytes) = match std::env::args_os().nth(1) {
        Some(p) => (std::path::PathBuf::from(&p), std::fs::read(&p)?),
        None => (
            std::path::PathBuf::from("echo_cine.dcm"),
            bedside::demo::ECHO_CINE.to_vec(),
        ),
    };
    let mut opts = EvalOptions {
        clean_hours: 0.0,
        ..EvalOptions::default()
    };
    if std::env::var_os("CLEAN").is_some() {
        opts.kinds.clear();
        opts.frames = 30_000;
    }
    let report = eval_anomaly(&bundle, &name, &bytes, &opts, |_, _| {})?;
    print!("{:<10}", "check");
    println!("{:>16}", "clean p50/max");
    let clean: Vec<_> = report
        .trace
        .iter()
        .filter(|t| t.injected.is_none() && !t.warming_up)
        .collect();
    for (i, c) in Check::ALL.iter().enumerate() {
        let mut v: Vec<f32> = clean.iter().map(|t| t.scores[i]).collect();
        print!(
            "{:<15}{:>6.2}/{:<6.2}",
            c.name(),
            quantile(&mut v, 0.5),
            quantile(&mut v, 1.0)
        );
        for k in AnomalyKind::ALL {
            let mut v: Vec<f32> = report
                .trace
                .iter()
                .filter(|t| t.injected == Some(k))
                .map(|t| t.scores[i])
                .collect();
            print!(
                "  {}:{:.2}/{:.2}",
                k.name(),
                quantile(&mut v, 0.05),
                quantile(&mut v, 0.5)
            );
        }
        println!();
    }
    println!("(kinds: p05/p50 of the check's score on injected frames)\n");
    if std::env::var_os("DEBUG").is_some() {
        for (i, t) in report.trace.iter().enumerate().take(
            std::env::var("TAKE")
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(400),
        ) {
            println!(
                "{i} {:?} {:?} mean {:.1} diff {:?} rough {:.3} sc {:.3} out {:.1} dark {:.2} rec {:.4} s {:?}",
                t.injected.map(|k| k.name()),
                t.alarm.is_some(),
                t.features.mean,
                t.features.difference,
                t.features.roughness,
                t.features.speckle_contrast,
                t.features.outside,
                t.features.band_level,
                t.features.reconstruction_error,
                t.scores
                    .iter()
                    .map(|s| (s * 100.0).round() / 100.0)
                    .collect::<Vec<_>>()
            );
        }
    }
    print!("{}", report.to_text());
    Ok(())
}
