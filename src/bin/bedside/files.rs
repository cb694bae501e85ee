//! One-shot commands on files: `bedside classify` and `bedside preprocess`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use bedside::capture::{self, SourceOptions, SourceSpec};
use bedside::infer::{Bundle, InferOptions, Model, PrecisionPolicy, tract};
use bedside::preprocess::{Chain, Preprocessor};

use crate::report::percentages;

pub(crate) fn classify(
    model: &Path,
    files: &[PathBuf],
    json: bool,
    precision: PrecisionPolicy,
    opts: &SourceOptions,
) -> Result<()> {
    let bundle = Bundle::load(model)?;
    let m = &bundle.manifest;
    if m.model.task != bedside::infer::Task::Classify {
        bail!(
            "{}: not a classification model (task {:?})",
            model.display(),
            m.model.task
        );
    }
    let mut pre = Preprocessor::new(m.chain(), Some(m.input_quant()))?;
    let (mut tract, selection) = tract::select(
        &bundle,
        &InferOptions {
            precision,
            threads: 1,
        },
    )?;
    for file in files {
        let mut src = capture::open(&SourceSpec::images(file.clone()), opts)?;
        let frame = src
            .next_frame()?
            .with_context(|| format!("{}: no image in file", file.display()))?;
        // The gate before the model: a DICOM file that says it is
        // something else gets no class (a PNG says nothing, and passes).
        let none = bedside::analyze::gate::ImageFacts::default();
        let refused = |refusal: &bedside::analyze::gate::Refusal, score: Option<f32>| {
            if json {
                let mut line = serde_json::json!({"file": file, "refused": refusal.reason(),
                    "why": refusal.to_string(), "model": m.model.name,
                    "version": m.model.version});
                if let Some(s) = score {
                    line["gate_score"] = serde_json::json!(s);
                }
                println!("{line}");
            } else {
                println!("{}: refused: {refusal}", file.display());
            }
        };
        if let Err(refusal) =
            bedside::analyze::gate::chest_xray(frame.facts.as_deref().unwrap_or(&none))
        {
            refused(&refusal, None);
            continue;
        }
        pre.process(&frame)?;
        let (logits, score) = tract.run_gated(pre.model_input())?;
        // The pixels' gate, when the bundle has one: a picture unlike the
        // model's training images gets no class either.
        if let Some(g) = &m.gate {
            let s = score.filter(|s| s.is_finite()).with_context(|| {
                format!(
                    "{}: the model's gate score is missing or not finite",
                    file.display()
                )
            })?;
            if let Err(refusal) = bedside::analyze::gate::pixels(s, g.threshold) {
                refused(&refusal, Some(s));
                continue;
            }
        }
        let c = bedside::analyze::classify::classify(
            logits,
            m.temperature(),
            m.thresholds.min_confidence.unwrap_or(0.0),
        )
        .with_context(|| format!("{}: model output is not finite", file.display()))?;
        let top = m.output.labels.get(c.top).cloned().unwrap_or_default();
        if json {
            let probs: serde_json::Map<String, serde_json::Value> = m
                .output
                .labels
                .iter()
                .zip(&c.probabilities)
                .map(|(l, p)| (l.clone(), serde_json::json!(p)))
                .collect();
            let mut line = serde_json::json!({"file": file, "top": top, "confident": c.confident, "probabilities": probs,
                "model": m.model.name, "version": m.model.version, "sha256": bundle.sha256_of(selection.chosen),
                "precision": selection.chosen.name(), "demonstration_model": m.model.demonstration});
            if let Some(s) = score.filter(|_| m.gate.is_some()) {
                line["gate_score"] = serde_json::json!(s);
            }
            println!("{line}");
        } else {
            println!(
                "{}: {top}{} ({})",
                file.display(),
                if c.confident { "" } else { " (uncertain)" },
                percentages(&m.output.labels, &c.probabilities)
            );
        }
    }
    if m.model.demonstration {
        eprintln!(
            "note: {} is a DEMONSTRATION MODEL - NOT FOR DIAGNOSTIC USE ({})",
            m.model.name, m.provenance.trained_on
        );
    }
    Ok(())
}

pub(crate) fn preprocess(file: &Path, out: &Path, chain: &str, opts: &SourceOptions) -> Result<()> {
    let chain: Chain = chain.parse().context("--chain")?;
    if chain.quantizes() {
        bail!("--chain: 'quantize' produces model input, not an image; leave it out here");
    }
    let mut src = capture::open(&SourceSpec::images(file), opts)?;
    let frame = src
        .next_frame()?
        .with_context(|| format!("{}: no image in file", file.display()))?;
    let mut pre = Preprocessor::new(chain, None)?;
    pre.process(&frame)?;
    let img = pre.processed();
    // Into memory first, then to a file only its owner can read: a
    // preprocessed picture keeps any burned-in patient text.
    let mut png = Vec::new();
    image::GrayImage::from_raw(img.width, img.height, img.data.clone())
        .context("internal: image size mismatch")?
        .write_to(
            &mut std::io::Cursor::new(&mut png),
            image::ImageFormat::from_path(out).unwrap_or(image::ImageFormat::Png),
        )
        .with_context(|| format!("{}: cannot encode the picture", out.display()))?;
    bedside::private_output::write(out, &png).with_context(|| format!("{}", out.display()))?;
    println!(
        "{} -> {} ({}x{})",
        file.display(),
        out.display(),
        img.width,
        img.height
    );
    Ok(())
}
