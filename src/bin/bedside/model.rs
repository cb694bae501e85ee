//! `bedside model ...`: import a network, show, verify, sign and profile
//! a bundle, make a signing key.

use std::path::Path;

use anyhow::{Context, Result, bail};

use bedside::infer::{
    Bundle, InferOptions, Model, Precision, PrecisionPolicy, PublicKey, SecretKey, SignaturePolicy,
    SignatureStatus, TractModel, tract,
};

use crate::cli::{ImportArgs, ImportTask};

pub(crate) fn model_import(a: ImportArgs) -> Result<()> {
    use bedside::infer::Task;
    use bedside::infer::import::{ImportOptions, import};
    let opts = ImportOptions {
        int8: a.int8,
        f32: a.f32,
        task: match a.task {
            ImportTask::Classify => Task::Classify,
            ImportTask::Reconstruct => Task::Reconstruct,
        },
        labels: a.labels,
        chain: a.chain,
        name: a.name,
        version: a.version,
        description: a.description,
        demonstration: a.demonstration,
        trained_on: a.trained_on,
        licence: a.licence,
        pixel_scale: a.pixel_scale,
        min_confidence: a.min_confidence,
        anomaly_error: a.anomaly_error,
        out: a.out,
        gray_from_rgb: a.gray_from_rgb,
        reference: a.reference,
    };
    let done = import(&opts)?;
    let n = &done.normalized;
    let m = &done.manifest;
    println!(
        "{}: {} {} written; tract loads and runs {}",
        opts.out.display(),
        m.model.name,
        m.model.version,
        done.ran.join(" and ")
    );
    println!(
        "  input {:?} int8, scale {} zero point {}{}",
        m.input.shape,
        m.input.scale,
        m.input.zero_point,
        if n.input_quantize_removed {
            " (its QuantizeLinear moved into the manifest)"
        } else {
            ""
        }
    );
    if n.shifted_to_int8 > 0 {
        println!(
            "  uint8 made int8: {} tensors shifted by -128",
            n.shifted_to_int8
        );
    }
    if let Some((folded, check)) = &done.rgb {
        println!(
            "  colour to gray: {} summed over its 3 input channels ({} output channels requantized){}",
            folded.conv,
            folded.requantized,
            match check {
                Some(d) => format!(
                    "; the float model agrees with its colour original on gray pictures to {d:.1e}"
                ),
                None => String::new(),
            }
        );
    }
    for (op, count) in &n.expanded {
        println!("  com.microsoft:{op} x{count} expanded to standard operators");
    }
    println!("  operators: {}", m.provenance.ops.join(", "));
    println!("  preprocess \"{}\"", m.input.preprocess);
    if done.reference_inputs > 0 {
        println!(
            "  {} reference inputs in {}/golden.json; add onnxruntime's outputs with\n    models/tools/golden.py {} {}{}\n  then check with: bedside model verify {}",
            done.reference_inputs,
            opts.out.display(),
            opts.out.display(),
            opts.int8.display(),
            opts.f32
                .as_ref()
                .map_or(String::new(), |f| format!(" --f32 {}", f.display())),
            opts.out.display()
        );
    }
    Ok(())
}

pub(crate) fn model_info(dir: &Path) -> Result<()> {
    use bedside::infer::reference;
    let b = Bundle::load(dir)?;
    let m = &b.manifest;
    println!("{} {} ({:?})", m.model.name, m.model.version, m.model.task);
    if m.model.demonstration {
        println!("  DEMONSTRATION MODEL - NOT FOR DIAGNOSTIC USE");
    }
    if !m.model.description.is_empty() {
        println!("  {}", m.model.description);
    }
    println!(
        "  input  {:?} {} scale {} zero point {}; preprocess \"{}\"",
        m.input.shape, m.input.dtype, m.input.scale, m.input.zero_point, m.input.preprocess
    );
    println!(
        "  output {:?} {}{}",
        m.output.shape,
        m.output.kind,
        if m.output.labels.is_empty() {
            String::new()
        } else {
            format!(" {:?}", m.output.labels)
        }
    );
    println!(
        "  int8 model {} sha256 {} (matches the manifest)",
        m.files.int8.path, m.files.int8.sha256
    );
    if let Some(f) = &m.files.f32 {
        println!(
            "  f32 model  {} sha256 {} (matches the manifest)",
            f.path, f.sha256
        );
    }
    if !m.provenance.ops.is_empty() {
        println!("  operators: {}", m.provenance.ops.join(", "));
    }
    if let Some(macs) = tract::macs(&b) {
        println!(
            "  {:.1} M multiply-accumulates per inference",
            macs as f64 / 1e6
        );
    }
    // What tract makes of each variant: an error here is the bundle's.
    let mut variants = vec![Precision::Int8];
    if b.f32_bytes.is_some() {
        variants.push(Precision::F32);
    }
    for p in variants {
        let model = TractModel::load_precision(&b, p)?;
        let mut integer: std::collections::BTreeMap<String, usize> = Default::default();
        let mut float: std::collections::BTreeMap<String, usize> = Default::default();
        for (op, is_integer) in model.node_kinds() {
            *(if is_integer { &mut integer } else { &mut float })
                .entry(op)
                .or_default() += 1;
        }
        let list = |ops: &std::collections::BTreeMap<String, usize>| {
            ops.iter()
                .map(|(op, n)| format!("{op} x{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  {} in tract: {} nodes; integer: {}; float: {}; matrix kernels: {}",
            p.name(),
            model.node_kinds().len(),
            if integer.is_empty() {
                "none".into()
            } else {
                list(&integer)
            },
            if float.is_empty() {
                "none".into()
            } else {
                list(&float)
            },
            model.matmul_kernels().join(", ")
        );
    }
    println!(
        "  signature: {}",
        match b.signature {
            Some(_) => "manifest.sig present (check it with `model verify --trusted-key`)",
            None => "none",
        }
    );
    if let Some(c) = &m.calibration {
        println!("  calibration: temperature {}", c.temperature);
    }
    match &m.gate {
        Some(g) => println!(
            "  pixel gate: output '{}', pictures scoring over {} refused as unfamiliar{}",
            g.output,
            g.threshold,
            if g.fitted_on.is_empty() {
                String::new()
            } else {
                format!(" ({})", g.fitted_on)
            }
        ),
        None if m.model.task == bedside::infer::Task::Classify => {
            println!("  pixel gate: none (every picture the attributes allow gets a class)")
        }
        None => {}
    }
    println!("  trained on: {}", m.provenance.trained_on);
    if !m.provenance.evaluation.is_empty() {
        println!("  evaluation: {}", m.provenance.evaluation);
    }
    if !m.provenance.made_by.is_empty() {
        println!("  made by: {}", m.provenance.made_by);
    }
    println!("  licence: {}", m.provenance.licence);
    let verdict = reference::check(&b)?;
    if verdict.agrees() {
        println!("  verified: {}", verdict.describe());
    } else {
        println!("  NOT verified: {}", verdict.describe());
    }
    Ok(())
}

/// Hashes, signature, and a run of every model variant through tract.
pub(crate) fn model_verify(dir: &Path, trusted_keys: &[String]) -> Result<()> {
    let b = Bundle::load(dir)?;
    let trusted = trusted_keys
        .iter()
        .map(|k| PublicKey::from_hex_or_file(k))
        .collect::<Result<Vec<_>, _>>()
        .context("--trusted-key")?;
    let policy = SignaturePolicy {
        required: !trusted.is_empty(),
        trusted,
    };
    let signature = match b.check_signature(&policy)? {
        SignatureStatus::Verified(k) => format!("signed by trusted key {k}"),
        SignatureStatus::NotChecked => "signed (not checked: no --trusted-key given)".into(),
        SignatureStatus::Unsigned => "not signed".into(),
    };
    let n: usize = b.manifest.input.shape.iter().product();
    let mut variants = vec![Precision::Int8];
    if b.f32_bytes.is_some() {
        variants.push(Precision::F32);
    }
    let mut ran = Vec::new();
    for p in variants {
        let mut m = TractModel::load_precision(&b, p)?;
        let out = m.run(&vec![0i8; n])?;
        ran.push(format!("{} ({} outputs)", p.name(), out.len()));
    }
    let verdict = bedside::infer::reference::check(&b)?;
    // References that exist must agree; missing ones are said, not failed.
    if matches!(verdict, bedside::infer::reference::Verdict::Checked(_)) && !verdict.agrees() {
        bail!("{}: {}", dir.display(), verdict.describe());
    }
    println!(
        "{}: OK (sha256 of every model matches, {signature}, tract loads and runs {}); {}",
        dir.display(),
        ran.join(" and "),
        verdict.describe()
    );
    Ok(())
}

pub(crate) fn model_profile(
    dir: &Path,
    precision: PrecisionPolicy,
    threads: usize,
    runs: usize,
) -> Result<()> {
    let b = Bundle::load(dir)?;
    let (mut m, selection) = tract::select(&b, &InferOptions { precision, threads })?;
    let n: usize = b.manifest.input.shape.iter().product();
    let input = vec![0i8; n];
    let nodes = m.profile(&input, runs)?;
    let total: f64 = nodes.iter().map(|t| t.mean.as_secs_f64()).sum();
    println!(
        "{}: {}, {threads} thread(s), mean of {runs} runs: {:.3} ms in {} nodes",
        dir.display(),
        selection.describe(),
        total * 1e3,
        nodes.len()
    );
    let mut by_op: std::collections::BTreeMap<&str, (f64, usize)> = Default::default();
    // What ran the arithmetic, and what only moved data for it.
    let mut by_kernel: std::collections::BTreeMap<&str, (f64, usize)> = Default::default();
    let mut overhead: std::collections::BTreeMap<&str, f64> = Default::default();
    for t in &nodes {
        let e = by_op.entry(t.op.as_str()).or_default();
        e.0 += t.mean.as_secs_f64();
        e.1 += 1;
        for k in &t.kernels {
            let e = by_kernel.entry(k.as_str()).or_default();
            e.0 += t.mean.as_secs_f64() / t.kernels.len() as f64;
            e.1 += 1;
        }
        if let Some(kind) = t.overhead() {
            *overhead.entry(kind).or_default() += t.mean.as_secs_f64();
        }
    }
    print_time_table("operator", by_op, total);
    print_time_table("kernel", by_kernel, total);
    let share = |kind: &str| 100.0 * overhead.get(kind).copied().unwrap_or(0.0) / total.max(1e-12);
    println!(
        "  packing {:.1}% and im2col {:.1}% of the time (a LazyIm2col gathers inside the matrix product: its time is the kernel's)",
        share("packing"),
        share("im2col")
    );
    println!("  slowest nodes:");
    for t in nodes.iter().take(12) {
        println!(
            "  {:>9.3} ms  {:<20} {}{}",
            t.mean.as_secs_f64() * 1e3,
            t.op,
            t.node,
            if t.kernels.is_empty() {
                String::new()
            } else {
                format!(" [{}]", t.kernels.join(", "))
            }
        );
    }
    Ok(())
}

/// One table of `model profile`: seconds and node counts per `what`
/// (operator, kernel), slowest first, with each one's share of `total`.
pub(crate) fn print_time_table(
    what: &str,
    rows: std::collections::BTreeMap<&str, (f64, usize)>,
    total: f64,
) {
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!("  {what:<24} {:>9} {:>6} {:>6}", "ms", "share", "nodes");
    for (name, (t, count)) in rows {
        println!(
            "  {name:<24} {:>9.3} {:>5.1}% {count:>6}",
            t * 1e3,
            100.0 * t / total.max(1e-12)
        );
    }
}

/// Signs a verified bundle: `manifest.sig` over the manifest's exact bytes.
pub(crate) fn model_sign(dir: &Path, key: &Path) -> Result<()> {
    let b = Bundle::load(dir)?;
    let key = SecretKey::load(key)?;
    let sig_path = dir.join(bedside::infer::signature::SIGNATURE_FILE);
    std::fs::write(&sig_path, key.sign(&b.manifest_bytes))
        .with_context(|| format!("{}", sig_path.display()))?;
    println!(
        "{}: signed by {} (wrote {})",
        dir.display(),
        key.public(),
        sig_path.display()
    );
    Ok(())
}

/// `bedside model keygen`: a signing key; the public half is printed.
pub(crate) fn model_keygen(file: &Path) -> Result<()> {
    let key = SecretKey::generate_to(file)?;
    println!("{}", key.public());
    eprintln!(
        "wrote the secret key to {} (keep it off the boards); the line above is its public key for [inference] trusted_keys",
        file.display()
    );
    Ok(())
}
