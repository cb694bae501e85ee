//! Measurements: `bedside eval-anomaly` and `bedside bench`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use bedside::capture::{self, SourceOptions, SourceSpec};
use bedside::config::BoardProfile;
use bedside::infer::Bundle;
use bedside::pipeline::Mode;

use crate::run::source_options;

/// How often a long job logs a progress line when stderr is not a terminal.
const PROGRESS_LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

// One parameter per command-line flag of `eval-anomaly`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn eval_anomaly(
    cine: Option<PathBuf>,
    model: Option<PathBuf>,
    seed: u64,
    frames: u64,
    (clean_hours, variation_seconds): (f64, f64),
    (inject, model_check, switch_to): (Option<String>, bool, Option<PathBuf>),
    json: bool,
    plot: Option<PathBuf>,
) -> Result<()> {
    use bedside::analyze::inject::AnomalyKind;
    use bedside::evaluate::{EvalOptions, eval_anomaly};
    if !(1..=10_000_000).contains(&frames) {
        bail!("--frames must be between 1 and 10000000");
    }
    if !(0.0..=600.0).contains(&variation_seconds) {
        bail!("--variations must be between 0 and 600 seconds");
    }
    if !(0.0..=1000.0).contains(&clean_hours) {
        bail!("--clean-hours must be between 0 and 1000");
    }
    // Refuse an unwritable plot before minutes of replay, not after.
    if let Some(dir) = plot.as_deref().and_then(Path::parent)
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        bail!("--plot: {}: no such folder", dir.display());
    }
    let kinds = match inject {
        Some(list) => list
            .split(',')
            .map(|k| k.trim().parse::<AnomalyKind>())
            .collect::<Result<Vec<_>, _>>()
            .context("--inject")?,
        None => AnomalyKind::ALL.to_vec(),
    };
    let bundle = match &model {
        Some(dir) => Bundle::load(dir)?,
        None => bedside::demo::embedded_bundle(Mode::Ultrasound)?,
    };
    if bundle.manifest.model.task != Mode::Ultrasound.task() {
        bail!(
            "{}: not an ultrasound anomaly model",
            bundle.origin.display()
        );
    }
    // Files the user named: a symlink is followed, but what it leads to
    // must be a regular file within the DICOM decode budget.
    let read_cine = |p: &Path| {
        bedside::safe_read::read_file(
            p,
            bedside::budget::DecodeBudget::default().bytes(),
            bedside::safe_read::Links::Follow,
            "a DICOM file",
        )
    };
    // The bundled cine is compiled in: read from memory, nothing written.
    let (name, bytes) = match &cine {
        Some(p) => (p.clone(), read_cine(p)?),
        None => (
            PathBuf::from("echo_cine.dcm (bundled)"),
            bedside::demo::ECHO_CINE.to_vec(),
        ),
    };
    let switch_to = match switch_to {
        Some(p) => Some((
            p.display().to_string(),
            read_cine(&p).context("--switch-to")?.into(),
        )),
        None => None,
    };
    let opts = EvalOptions {
        switch_to,
        seed,
        frames,
        clean_hours,
        variation_seconds,
        kinds,
        model_check,
        ..EvalOptions::default()
    };
    let tty = std::io::stderr().is_terminal();
    // Off a terminal (a log, CI), a line every few seconds instead of the
    // redrawn counter, so a long evaluation is visibly alive.
    let mut last_line = std::time::Instant::now();
    let report = eval_anomaly(&bundle, &name, &bytes, &opts, |done, total| {
        if tty {
            eprint!("\r  frame {done}/{total}");
            if done == total {
                eprintln!();
            }
        } else if done == total || last_line.elapsed() >= PROGRESS_LINE_EVERY {
            eprintln!("  eval-anomaly: frame {done}/{total}");
            last_line = std::time::Instant::now();
        }
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    if let Some(path) = &plot {
        bedside::evaluate::plot::write_png(&report, path)?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}

pub(crate) fn bench(
    board: Option<PathBuf>,
    source: Option<String>,
    models: Vec<PathBuf>,
    mut threads: Vec<usize>,
    runs: usize,
    screen: &str,
    json: bool,
) -> Result<()> {
    if !(1..=100_000).contains(&runs) {
        bail!("--runs must be between 1 and 100000");
    }
    let (w, h) = screen
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|&(w, h)| (64..=7680).contains(&w) && (64..=4320).contains(&h))
        .with_context(|| format!("--screen {screen}: expected WxH between 64x64 and 7680x4320"))?;
    let profile = board.as_deref().map(BoardProfile::load_arg).transpose()?;
    if threads.is_empty() {
        let more = profile
            .as_ref()
            .map(|p| p.inference.threads)
            .filter(|&t| t > 1)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        threads = if more > 1 { vec![1, more] } else { vec![1] };
    }
    if threads.iter().any(|&t| !(1..=64).contains(&t)) {
        bail!("--threads must be between 1 and 64");
    }
    let bundles = if models.is_empty() {
        vec![
            bedside::demo::embedded_bundle(Mode::Ultrasound)?,
            bedside::demo::embedded_bundle(Mode::Xray)?,
        ]
    } else {
        models
            .iter()
            .map(|m| Bundle::load(m))
            .collect::<Result<Vec<_>, _>>()?
    };
    let source = match source {
        Some(s) => {
            let spec: SourceSpec = s.parse()?;
            let opts = source_options(SourceOptions::default(), profile.as_ref());
            let looping = !matches!(spec, SourceSpec::V4l2(_) | SourceSpec::Watch(_));
            Some(capture::open_replay(
                &spec,
                &opts,
                bedside::capture::replay::Pace::Fast,
                looping,
            )?)
        }
        None => None,
    };
    let tty = std::io::stderr().is_terminal();
    let report = bedside::bench::run(
        bedside::bench::BenchOptions {
            runs,
            threads,
            bundles,
            source,
            screen: (w, h),
        },
        |done, total, what| {
            if tty {
                let filled = done * 30 / total.max(1);
                eprint!(
                    "\r  [{}{}] {done}/{total} {what:<12}",
                    "#".repeat(filled),
                    " ".repeat(30 - filled)
                );
                if done == total {
                    eprintln!();
                }
            }
        },
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
