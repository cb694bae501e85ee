//! The `bedside` command line. Parses, builds the pipeline from the library,
//! and turns every failure into one line on stderr and a non-zero exit code:
//! 1 for a runtime failure (bad file, device, model), 2 for bad usage.
#![deny(unsafe_code)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use bedside::budget::DecodeBudget;
use bedside::capture::{self, SourceOptions, SourceSpec};
use bedside::config::BoardProfile;
use bedside::display::{self, DisplaySpec};
use bedside::infer::{
    Bundle, InferOptions, Model, Precision, PrecisionPolicy, PublicKey, SecretKey, SignaturePolicy,
    SignatureStatus, TractModel, tract,
};
use bedside::pipeline::{Mode, Pipeline, RunOptions, RunSummary, STAGES};
use bedside::preprocess::{Chain, Preprocessor};

#[derive(Parser)]
#[command(
    name = "bedside",
    version,
    about = "Point-of-care imaging runtime for small Arm boards"
)]
struct Cli {
    /// Log progress and device details (RUST_LOG overrides).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// The most one input file may cost to read and decode, in MiB (default
    /// 256, or the board profile's [limits] decode_budget_mib): a file or
    /// picture that claims more is refused before anything is allocated.
    #[arg(long, global = true, value_name = "MIB")]
    decode_budget: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the `run` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Replay the bundled real echo cine and chest radiograph in both modes.
    Demo {
        /// Output folder for annotated frames, contact sheets and the summary.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// At most this many frames per mode.
        #[arg(long)]
        frames: Option<u64>,
    },
    /// Run the pipeline on a source and show the results.
    Run {
        /// Board profile (boards/*.toml), or "auto": detected from the device
        /// tree (Pi 4, Pi 5, Jetson Orin Nano, QEMU virt). Command-line
        /// options override it.
        #[arg(long)]
        board: Option<PathBuf>,
        /// v4l2:/dev/videoN | dicom:FILE | images:DIR | watch:DIR | synthetic
        #[arg(long)]
        source: Option<String>,
        /// fbdev:/dev/fbN | headless:DIR | none
        #[arg(long)]
        display: Option<String>,
        #[arg(long, value_enum)]
        mode: Option<Mode>,
        /// Model bundle folder (default: the bundled demonstration model of the mode).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Stop after this many frames.
        #[arg(long)]
        frames: Option<u64>,
        /// Write one JSON object per frame to this file.
        #[arg(long)]
        jsonl: Option<PathBuf>,
        /// Headless output: write every Nth frame.
        #[arg(long, default_value_t = 1)]
        every: u64,
        /// Model variant: auto times int8 and f32 here and keeps the faster
        /// (default: the board profile's, else auto).
        #[arg(long, value_enum)]
        precision: Option<PrecisionPolicy>,
        /// Threads for tract's matrix products (default: the board profile's, else 1).
        #[arg(long)]
        threads: Option<usize>,
        /// Recorded sources (dicom:, images:, synthetic): deliver frames at
        /// the recording's own rate (Frame Time) or as fast as possible.
        #[arg(long, value_enum, default_value = "fast")]
        pace: bedside::capture::replay::Pace,
        /// Recorded sources: start again at the end (soak runs on a bench).
        #[arg(long = "loop")]
        looping: bool,
        /// Inject seeded faults into the source, e.g.
        /// "drop=0.05,dup=0.02,corrupt=0.02,truncate=0.01,stall=0.01:300,seed=7".
        #[arg(long)]
        faults: Option<String>,
        /// Ultrasound rehearsal: draw anomalies into the source's frames,
        /// e.g. "frozen@60+30,blank@150+20" (KIND@FIRST_FRAME+FRAMES; kinds
        /// blank, frozen, gain, noise, shadow, modality; frames turn gray).
        #[arg(long, value_name = "SPEC")]
        inject: Option<String>,
        /// X-ray mode: when to classify (default: the board's; else stable
        /// for v4l2, every frame for files).
        #[arg(long, value_enum)]
        trigger: Option<bedside::pipeline::Trigger>,
        /// X-ray stable trigger: unchanged frames that make a picture stable
        /// (default: the board's, else 5).
        #[arg(long)]
        stable_frames: Option<u32>,
        /// Seconds a frame may be with the model before the screen says AI
        /// UNAVAILABLE (default: the board's, else 2).
        #[arg(long)]
        stall_after: Option<f64>,
        /// Seconds between the fps and per-stage latency lines in the log
        /// (default 60).
        #[arg(long, value_name = "SECONDS")]
        stats_every: Option<f64>,
        /// Rehearse a model that stalls or fails, e.g. "stall@20+3000,fail@50+5"
        /// (stall@RUN+MILLISECONDS, fail@RUN+RUNS; runs counted from 0).
        #[arg(long, value_name = "SPEC")]
        model_faults: Option<String>,
        /// Record from the start into a new session folder under DIR
        /// (frames may carry patient data: nothing is recorded without
        /// this or the board's [recording] and RECORD).
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
        /// What --record writes: pictures, results, or both (comma-separated).
        #[arg(
            long,
            value_name = "LIST",
            default_value = "pictures,results",
            requires = "record"
        )]
        record_what: String,
    },
    /// Classify PNG/JPEG/DICOM files with a model bundle.
    Classify {
        #[arg(long)]
        model: PathBuf,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per file instead of text.
        #[arg(long)]
        json: bool,
        /// Model variant (int8 is the one the manifest's evaluation measured).
        #[arg(long, value_enum, default_value = "int8")]
        precision: PrecisionPolicy,
    },
    /// Measure the ultrasound anomaly detector on a real cine: anomalies of
    /// each kind injected at seeded times, AUROC, detection delay and false
    /// alarms per hour on clean replay.
    EvalAnomaly {
        /// A multi-frame DICOM ultrasound cine (default: the bundled echo cine).
        cine: Option<PathBuf>,
        /// Ultrasound model bundle (default: the bundled demonstration model).
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Frames of the injected replay.
        #[arg(long, default_value_t = 6000)]
        frames: u64,
        /// Simulated hours of clean replay for the false-alarm rate.
        #[arg(long, default_value_t = 1.0)]
        clean_hours: f64,
        /// Kinds to inject (comma-separated: blank,frozen,gain,noise,shadow,modality).
        #[arg(long)]
        inject: Option<String>,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Also draw the score over time (injected segments shaded, alarms
        /// marked) into this PNG file.
        #[arg(long, value_name = "FILE.png")]
        plot: Option<PathBuf>,
    },
    /// Time every stage on this machine (capture, decoding, preprocessing,
    /// inference per variant and thread count, analysis, overlay, display)
    /// to compare boards.
    Bench {
        /// Board profile: its camera (with --source omitted: none is timed),
        /// screen size and thread count.
        #[arg(long)]
        board: Option<PathBuf>,
        /// A source to time, e.g. v4l2:/dev/video0 (default: none).
        #[arg(long)]
        source: Option<String>,
        /// Model bundles to time (default: the two bundled demonstration models).
        #[arg(long)]
        model: Vec<PathBuf>,
        /// Thread counts for inference (default: 1 and the board's or the core count).
        #[arg(long, value_delimiter = ',')]
        threads: Vec<usize>,
        /// Timed repetitions per stage (after one warm-up).
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Screen size for the overlay and display stages.
        #[arg(long, default_value = "640x480", value_name = "WxH")]
        screen: String,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// List video capture devices (formats, sizes, frame rates),
    /// framebuffers and SPI buses attached to this machine.
    Devices {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a preprocessing chain on a file and write the result as PNG.
    Preprocess {
        file: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Chain spec, e.g. "crop=0:0:400x300,resize=224x224,equalize".
        #[arg(long, default_value = "equalize")]
        chain: String,
    },
    /// Inspect or verify a model bundle.
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
}

#[derive(Subcommand)]
enum ModelAction {
    /// Print the manifest's facts and the signature status.
    Info { bundle: PathBuf },
    /// Check hashes, the signature (with --trusted-key) and that tract loads
    /// and runs every model of the bundle.
    Verify {
        bundle: PathBuf,
        /// A trusted signer's public key (64 hex digits, or a file holding
        /// them); repeatable. With it, the bundle must be signed by one of them.
        #[arg(long = "trusted-key")]
        trusted_keys: Vec<String>,
    },
    /// Sign the bundle's manifest (writes manifest.sig) with a secret key.
    Sign {
        bundle: PathBuf,
        /// Secret key file (made by `bedside model keygen`).
        #[arg(long)]
        key: PathBuf,
    },
    /// Make a signing key: writes the secret to FILE (mode 0600), prints the public key.
    Keygen { file: PathBuf },
    /// Make a bundle from a quantized ONNX model (onnxruntime's
    /// quantize_static output, QOperator or QDQ): normalizes the graph,
    /// reads the manifest's facts from it, then loads and runs the bundle.
    Import(Box<ImportArgs>),
    /// Time each node of the optimized model on this CPU (tract's per-node profile).
    Profile {
        bundle: PathBuf,
        #[arg(long, value_enum, default_value = "int8")]
        precision: PrecisionPolicy,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Timed runs (after one warm-up).
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The int8 model (QOperator or QDQ, int8 or uint8, float or int8 input).
    int8: PathBuf,
    /// The float model it was quantized from (for --precision f32 and auto).
    #[arg(long = "f32")]
    f32: Option<PathBuf>,
    #[arg(long, value_enum)]
    task: ImportTask,
    /// Class names in output order (classify), comma-separated.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Preprocessing chain (default `resize=WxH,quantize`; see docs/USAGE.md).
    #[arg(long)]
    chain: Option<String>,
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "0.1.0")]
    version: String,
    #[arg(long, default_value = "")]
    description: String,
    /// Mark it a demonstration model (synthetic or unvalidated training
    /// data): the screen says so on every frame.
    #[arg(long)]
    demonstration: bool,
    /// What it was trained on, for the manifest and `model info`.
    #[arg(long, default_value = "not stated")]
    trained_on: String,
    #[arg(long, default_value = "not stated")]
    licence: String,
    /// The model's input value of one pixel level (pixel 255 is 255 x this).
    #[arg(long, default_value_t = 1.0 / 255.0)]
    pixel_scale: f32,
    /// classify: a top probability below this is shown as uncertain.
    #[arg(long)]
    min_confidence: Option<f32>,
    /// reconstruct: the mean absolute error above which a frame is anomalous.
    #[arg(long)]
    anomaly_error: Option<f32>,
    /// The bundle folder to write (must not exist, or be empty).
    #[arg(long)]
    out: PathBuf,
    /// A network trained on colour: sum its first convolution's weights
    /// over the three channels so it takes gray (it then sees gray
    /// pictures only; check its accuracy on them).
    #[arg(long)]
    gray_from_rgb: bool,
    /// A folder of a few pictures from the target device: their model
    /// inputs go into the bundle's golden.json, for models/tools/golden.py
    /// to add onnxruntime's outputs and `model verify` to compare.
    #[arg(long)]
    reference: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ImportTask {
    Classify,
    Reconstruct,
}

fn model_import(a: ImportArgs) -> Result<()> {
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

// One parameter per command-line flag of `eval-anomaly`.
#[allow(clippy::too_many_arguments)]
fn eval_anomaly(
    cine: Option<PathBuf>,
    model: Option<PathBuf>,
    seed: u64,
    frames: u64,
    clean_hours: f64,
    inject: Option<String>,
    json: bool,
    plot: Option<PathBuf>,
) -> Result<()> {
    use bedside::analyze::inject::AnomalyKind;
    use bedside::evaluate::{EvalOptions, eval_anomaly};
    if !(1..=10_000_000).contains(&frames) {
        bail!("--frames must be between 1 and 10000000");
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
    // The bundled cine is compiled in: read from memory, nothing written.
    let (name, bytes) = match &cine {
        Some(p) => (
            p.clone(),
            std::fs::read(p).with_context(|| format!("{}", p.display()))?,
        ),
        None => (
            PathBuf::from("echo_cine.dcm (bundled)"),
            bedside::demo::ECHO_CINE.to_vec(),
        ),
    };
    let opts = EvalOptions {
        seed,
        frames,
        clean_hours,
        kinds,
        ..EvalOptions::default()
    };
    let tty = std::io::stderr().is_terminal();
    let report = eval_anomaly(&bundle, &name, &bytes, &opts, |done, total| {
        if tty {
            eprint!("\r  frame {done}/{total}");
            if done == total {
                eprintln!();
            }
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

/// The board profile's capture settings (size, rate, formats) over `opts`.
fn source_options(mut opts: SourceOptions, profile: Option<&BoardProfile>) -> SourceOptions {
    if let Some(p) = profile {
        opts.decode_budget = p.decode_budget;
    }
    if let Some(c) = profile.and_then(|p| p.capture.clone()) {
        opts.capture_size = (c.width, c.height);
        opts.capture_fps = c.fps;
        opts.capture_formats = c.formats;
    }
    opts
}

fn bench(
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

/// The error and its causes on one line, each cause once: many of our
/// errors already print their source ("path: reason"), and anyhow's chain
/// would repeat it.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Output piped into `head` and the like: die quietly of SIGPIPE, as Unix
/// tools do, instead of the panic Rust's ignored SIGPIPE turns a failed
/// `println!` into.
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; it only
    // restores the default disposition of one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // tract_linalg warns when /proc/cpuinfo has no Arm "Features" line, which is
    // always the case under qemu-user (it shows the host's cpuinfo); kernel
    // choice does not depend on it (HWCAP does), so that noise is kept out.
    let default = if cli.verbose {
        "info,tract_linalg=error"
    } else {
        "warn,tract_linalg=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: journald, a serial console or a file would
    // get the escape codes as text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| bedside::printable::EscapingWriter::new(std::io::stderr()))
        .with_target(false)
        .with_ansi(ansi)
        .init();
    let budget = match cli.decode_budget.map(DecodeBudget::from_mib).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bedside: error: --decode-budget: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli.command, budget) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "bedside: error: {}",
                bedside::printable::escape_controls(&one_line(&e))
            );
            ExitCode::FAILURE
        }
    }
}

/// `budget`: `--decode-budget`, which wins over the board profile's.
fn run(command: Command, budget: Option<DecodeBudget>) -> Result<()> {
    let file_options = SourceOptions {
        decode_budget: budget.unwrap_or_default(),
        ..SourceOptions::default()
    };
    match command {
        Command::Demo { out, frames } => demo(&out, frames),
        Command::Run {
            board,
            source,
            display,
            mode,
            model,
            duration,
            frames,
            jsonl,
            every,
            precision,
            threads,
            pace,
            looping,
            faults,
            inject,
            trigger,
            stable_frames,
            stall_after,
            stats_every,
            model_faults,
            record,
            record_what,
        } => {
            let record = record
                .map(|dir| {
                    let what: Vec<&str> = record_what.split(',').collect();
                    bedside::config::record_settings(dir, &what)
                })
                .transpose()
                .map_err(|e| anyhow::anyhow!("--record-what: {e}"))?;
            let model_faults = model_faults
                .map(|f| f.parse::<bedside::infer::faults::ModelFaultPlan>())
                .transpose()
                .context("--model-faults")?;
            let stall_after = match stall_after {
                Some(d) if !(d.is_finite() && d > 0.0 && d <= 3600.0) => {
                    bail!("--stall-after must be a number of seconds between 0 and 3600")
                }
                d => d.map(Duration::from_secs_f64),
            };
            let stats_every = match stats_every {
                Some(d) if !(d.is_finite() && (1.0..=86400.0).contains(&d)) => {
                    bail!("--stats-every must be a number of seconds between 1 and 86400")
                }
                d => d.map(Duration::from_secs_f64),
            };
            if stable_frames == Some(0) {
                bail!("--stable-frames must be at least 1");
            }
            let faults = faults
                .map(|f| f.parse::<bedside::capture::fault::FaultPlan>())
                .transpose()
                .context("--faults")?;
            let inject = inject
                .map(|f| f.parse::<bedside::capture::rehearse::Rehearsal>())
                .transpose()
                .context("--inject")?;
            let profile = board.as_deref().map(BoardProfile::load_arg).transpose()?;
            let mut infer = profile
                .as_ref()
                .map_or_else(InferOptions::default, |p| p.inference);
            if let Some(p) = precision {
                infer.precision = p;
            }
            if let Some(t) = threads {
                infer.threads = t;
            }
            let signatures = profile
                .as_ref()
                .map(|p| p.signatures.clone())
                .unwrap_or_default();
            let source: SourceSpec = match (source, &profile) {
                (Some(s), _) => s.parse()?,
                (None, Some(p)) => p.source.clone(),
                (None, None) => bail!(
                    "no source: give --source (v4l2:/dev/videoN, dicom:FILE, images:DIR, watch:DIR, synthetic) or --board"
                ),
            };
            let display: DisplaySpec = match (display, &profile) {
                (Some(d), _) => d.parse()?,
                (None, Some(p)) => p.display.clone(),
                (None, None) => DisplaySpec::None,
            };
            let mode = mode
                .or(profile.as_ref().map(|p| p.mode))
                .unwrap_or(Mode::Ultrasound);
            let model = model.or(profile.as_ref().and_then(|p| p.model.clone()));
            let mut opts = source_options(
                SourceOptions {
                    synthetic_frames: frames,
                    ..SourceOptions::default()
                },
                profile.as_ref(),
            );
            if let Some(b) = budget {
                opts.decode_budget = b;
            }
            let duration = match duration {
                Some(d) if !(d.is_finite() && d > 0.0) => {
                    bail!("--duration must be a positive number of seconds")
                }
                d => d.map(Duration::from_secs_f64),
            };
            run_pipeline(
                mode,
                &source,
                &display,
                ModelChoice {
                    bundle: model.as_deref(),
                    infer,
                    signatures: &signatures,
                },
                &opts,
                RunLimits {
                    duration,
                    frames,
                    jsonl,
                    every,
                    faults,
                    inject,
                    pace,
                    looping,
                    live: LiveOptions {
                        trigger,
                        stable_frames,
                        stall_after,
                        stats_every,
                        model_faults,
                        record,
                    },
                },
                profile.as_ref(),
            )
        }
        Command::Classify {
            model,
            files,
            json,
            precision,
        } => classify(&model, &files, json, precision, &file_options),
        Command::EvalAnomaly {
            cine,
            model,
            seed,
            frames,
            clean_hours,
            inject,
            json,
            plot,
        } => eval_anomaly(cine, model, seed, frames, clean_hours, inject, json, plot),
        Command::Bench {
            board,
            source,
            model,
            threads,
            runs,
            screen,
            json,
        } => bench(board, source, model, threads, runs, &screen, json),
        Command::Devices { json } => {
            let inventory = bedside::inventory::Inventory::scan();
            if json {
                println!("{}", serde_json::to_string_pretty(&inventory)?);
            } else {
                print!("{}", inventory.to_text());
            }
            Ok(())
        }
        Command::Preprocess { file, out, chain } => preprocess(&file, &out, &chain, &file_options),
        Command::Model { action } => match action {
            ModelAction::Info { bundle } => model_info(&bundle),
            ModelAction::Verify {
                bundle,
                trusted_keys,
            } => model_verify(&bundle, &trusted_keys),
            ModelAction::Sign { bundle, key } => model_sign(&bundle, &key),
            ModelAction::Import(args) => model_import(*args),
            ModelAction::Profile {
                bundle,
                precision,
                threads,
                runs,
            } => model_profile(&bundle, precision, threads, runs),
            ModelAction::Keygen { file } => {
                let key = SecretKey::generate_to(&file)?;
                println!("{}", key.public());
                eprintln!(
                    "wrote the secret key to {} (keep it off the boards); the line above is its public key for [inference] trusted_keys",
                    file.display()
                );
                Ok(())
            }
        },
    }
}

struct RunLimits {
    duration: Option<Duration>,
    frames: Option<u64>,
    jsonl: Option<PathBuf>,
    every: u64,
    faults: Option<bedside::capture::fault::FaultPlan>,
    inject: Option<bedside::capture::rehearse::Rehearsal>,
    pace: bedside::capture::replay::Pace,
    looping: bool,
    live: LiveOptions,
}

/// Command-line settings of the live pipeline (over the board's).
struct LiveOptions {
    trigger: Option<bedside::pipeline::Trigger>,
    stable_frames: Option<u32>,
    stall_after: Option<Duration>,
    stats_every: Option<Duration>,
    model_faults: Option<bedside::infer::faults::ModelFaultPlan>,
    /// `--record`: record from the start.
    record: Option<bedside::record::RecordSettings>,
}

/// The model of a run and the board's rules for it.
#[derive(Clone, Copy)]
struct ModelChoice<'a> {
    bundle: Option<&'a Path>,
    infer: InferOptions,
    signatures: &'a SignaturePolicy,
}

fn load_bundle(mode: Mode, choice: &ModelChoice) -> Result<Bundle> {
    let b = match choice.bundle {
        Some(dir) => Bundle::load(dir)?,
        None => {
            let b = bedside::demo::embedded_bundle(mode)?;
            tracing::info!(
                "no --model given: using the bundled demonstration model {}",
                b.manifest.model.name
            );
            b
        }
    };
    match b.check_signature(choice.signatures)? {
        SignatureStatus::Verified(key) => {
            tracing::info!("{}: signed by trusted key {key}", b.origin.display())
        }
        SignatureStatus::NotChecked => tracing::warn!(
            "{}: signed, but the board profile lists no trusted key to check it with",
            b.origin.display()
        ),
        SignatureStatus::Unsigned => {}
    }
    Ok(b)
}

/// The model was refused (signature policy, hash, manifest): the screen
/// says so and why before the run ends with the error, and `--jsonl` gets
/// one `model_refused` record. Failures here are logged, never hide `error`.
fn refuse_on_screen(
    mode: Mode,
    display: &DisplaySpec,
    model: &ModelChoice,
    lim: &RunLimits,
    refused: &bedside::infer::BundleError,
    error: &anyhow::Error,
) {
    let name = model.bundle.and_then(|p| p.file_name()).map_or_else(
        || "demonstration model".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let shown = display::open(display, 1).and_then(|mut sink| {
        bedside::display::refusal::show_refusal(
            sink.as_mut(),
            mode.name(),
            &name,
            refused.screen_reason(),
        )
    });
    if let Err(e) = shown {
        tracing::warn!("cannot show the refusal on the screen: {e}");
    }
    if let Some(path) = &lim.jsonl {
        let record = serde_json::json!({
            "status": "model_refused",
            "mode": mode.name(),
            "screen": refused.screen_reason(),
            "reason": one_line(error),
        });
        if let Err(e) = bedside::private_output::write(path, format!("{record}\n").as_bytes()) {
            tracing::warn!("{}: {e}", path.display());
        }
    }
}

fn run_pipeline(
    mode: Mode,
    source: &SourceSpec,
    display: &DisplaySpec,
    model: ModelChoice,
    opts: &SourceOptions,
    lim: RunLimits,
    profile: Option<&BoardProfile>,
) -> Result<()> {
    // The operator's buttons: a missing chip or a busy line is an error
    // now, not a dead button found on the cart.
    let presses = std::sync::Arc::new(bedside::buttons::Presses::default());
    let _buttons = match profile {
        Some(p) if !p.buttons.pins.is_empty() => Some(open_buttons(p, &presses)?),
        _ => None,
    };
    let stop = bedside::pipeline::stop_on_signals().context("cannot install signal handlers")?;
    // MODE switches to the other mode when the board names a model for it
    // (`[models]`); the run in one mode ends and the other starts.
    let mut mode = mode;
    let mut bundle_dir = model.bundle.map(Path::to_path_buf);
    let mut first = true;
    loop {
        let other = match mode {
            Mode::Ultrasound => Mode::Xray,
            Mode::Xray => Mode::Ultrasound,
        };
        let other_model = profile.and_then(|p| p.models.get(other));
        let choice = ModelChoice {
            bundle: bundle_dir.as_deref(),
            ..model
        };
        let summary = run_mode(
            mode,
            source,
            display,
            &choice,
            opts,
            &lim,
            profile,
            RunHooks {
                presses: &presses,
                stop: &stop,
                switch_to: other_model.map(|_| other),
                append_log: !first,
            },
        )?;
        print_summary(&summary);
        match (summary.switch_to, other_model) {
            (Some(next), Some(dir)) => {
                mode = next;
                bundle_dir = Some(dir.to_path_buf());
                first = false;
            }
            _ => return Ok(()),
        }
    }
}

/// What one mode's run shares with the next.
struct RunHooks<'a> {
    presses: &'a std::sync::Arc<bedside::buttons::Presses>,
    stop: &'a std::sync::Arc<std::sync::atomic::AtomicBool>,
    switch_to: Option<Mode>,
    /// The log file is appended to (a later mode of the same run).
    append_log: bool,
}

#[allow(clippy::too_many_arguments)]
fn run_mode(
    mode: Mode,
    source: &SourceSpec,
    display: &DisplaySpec,
    model: &ModelChoice,
    opts: &SourceOptions,
    lim: &RunLimits,
    profile: Option<&BoardProfile>,
    hooks: RunHooks,
) -> Result<RunSummary> {
    let bundle = match load_bundle(mode, model) {
        Ok(b) => b,
        Err(e) => {
            if let Some(refused) = e.downcast_ref::<bedside::infer::BundleError>() {
                refuse_on_screen(mode, display, model, lim, refused, &e);
            }
            return Err(e);
        }
    };
    let mut src = capture::open_replay(source, opts, lim.pace, lim.looping)?;
    if let Some(plan) = lim.inject.clone() {
        if mode != Mode::Ultrasound {
            bail!("--inject rehearses the ultrasound alarm: use it with --mode ultrasound");
        }
        src = Box::new(bedside::capture::rehearse::RehearsalSource::new(src, plan));
    }
    if let Some(plan) = lim.faults {
        src = Box::new(bedside::capture::fault::FaultInjector::new(src, plan));
    }
    let sink = display::open(display, lim.every)?;
    let mut pipeline = Pipeline::with_options(mode, src, bundle, sink, &model.infer)?;
    if let Some(plan) = lim.live.model_faults.clone() {
        pipeline.wrap_model(|m| Box::new(bedside::infer::faults::FaultyModel::new(m, plan)));
    }
    let live = matches!(source, SourceSpec::V4l2(_));
    let board_live = profile.map(|p| &p.live);
    let trigger = lim
        .live
        .trigger
        .or(board_live.and_then(|l| l.trigger))
        .unwrap_or(if live {
            bedside::pipeline::Trigger::Stable
        } else {
            bedside::pipeline::Trigger::Every
        });
    if mode == Mode::Xray {
        tracing::info!("X-ray mode trigger: {trigger:?}");
    }
    if let (Some(p), Some(params)) = (profile, pipeline.detector_params()) {
        pipeline.set_detector_params(p.alarm.apply(params));
    }
    let jsonl: Option<Box<dyn std::io::Write + Send>> = match &lim.jsonl {
        Some(p) => {
            let f = bedside::private_output::open(p, hooks.append_log)
                .with_context(|| format!("{}", p.display()))?;
            Some(Box::new(std::io::BufWriter::new(f)))
        }
        None => None,
    };
    Ok(pipeline.run(RunOptions {
        max_frames: lim.frames,
        duration: lim.duration,
        jsonl,
        jsonl_path: lim.jsonl.clone(),
        progress: None,
        stop: Some(std::sync::Arc::clone(hooks.stop)),
        // A camera (or a recording paced like one) is read at its own rate
        // and the newest frame wins; a fast replay waits for every frame.
        flow: match (source, lim.pace) {
            (SourceSpec::V4l2(_), _) | (_, bedside::capture::replay::Pace::File) => {
                bedside::pipeline::Flow::NewestWins
            }
            _ => bedside::pipeline::Flow::Lossless,
        },
        stall_after: lim
            .live
            .stall_after
            .or(board_live.and_then(|l| l.stall_after)),
        result_valid: board_live.and_then(|l| l.result_valid),
        trigger: Some(trigger),
        stable_frames: lim
            .live
            .stable_frames
            .or(board_live.and_then(|l| l.stable_frames)),
        buttons: Some(std::sync::Arc::clone(hooks.presses)),
        record_from_start: lim.live.record.is_some() && !hooks.append_log,
        recording: lim
            .live
            .record
            .clone()
            .or_else(|| profile.and_then(|p| p.recording.clone())),
        switch_mode_to: hooks.switch_to,
        report_every: lim.live.stats_every,
    })?)
}

/// Opens the board's button lines and starts reading them.
#[cfg(target_os = "linux")]
fn open_buttons(
    profile: &BoardProfile,
    presses: &std::sync::Arc<bedside::buttons::Presses>,
) -> Result<bedside::buttons::ButtonReader> {
    use bedside::buttons::{ButtonReader, DEFAULT_DEBOUNCE, open_cdev};
    let pins = profile
        .buttons
        .pins
        .iter()
        .map(|(b, spec)| open_cdev(*b, spec).map(|pin| (*b, pin)))
        .collect::<Result<Vec<_>, _>>()?;
    for (b, spec) in &profile.buttons.pins {
        tracing::info!("{} button on {spec}", b.name());
    }
    Ok(ButtonReader::start(
        pins,
        profile.buttons.debounce.unwrap_or(DEFAULT_DEBOUNCE),
        std::sync::Arc::clone(presses),
    )?)
}

#[cfg(not(target_os = "linux"))]
fn open_buttons(
    _: &BoardProfile,
    _: &std::sync::Arc<bedside::buttons::Presses>,
) -> Result<bedside::buttons::ButtonReader> {
    bail!("GPIO buttons need Linux's GPIO character device")
}

fn demo(out: &Path, frames: Option<u64>) -> Result<()> {
    let tty = std::io::stderr().is_terminal();
    eprintln!(
        "bedside demo: bundled real echo cine + chest radiograph, demonstration models, output in {}",
        out.display()
    );
    let progress = move |mode: &str, n: u64, total: u64| {
        if tty {
            eprint!("\r  {mode:<10} frame {n:>3}/{total}");
            if n == total {
                eprintln!();
            }
        } else if n == total || n.is_multiple_of(10) {
            eprintln!("  {mode:<10} frame {n:>3}/{total}");
        }
    };
    let summaries = bedside::demo::run(out, frames, progress)?;
    for s in &summaries {
        print_summary(s);
    }
    println!(
        "\nwrote {} (annotated frames, contact sheets, frames.jsonl per mode, summary.json)",
        out.display()
    );
    Ok(())
}

fn print_summary(s: &RunSummary) {
    println!(
        "\n== {} mode: {} frame(s) from {}",
        s.mode.name(),
        s.shown,
        s.source
    );
    if s.not_inferred > 0 {
        println!(
            "   judged by the model: {} ({} shown with the newest earlier result{})",
            s.frames,
            s.not_inferred,
            if s.mode == Mode::Xray {
                ", or no classification asked for"
            } else {
                ": the model was busy"
            }
        );
    }
    for r in &s.recordings {
        println!(
            "   recorded: {} picture(s), {} result(s) in {}{}{}",
            r.pictures,
            r.results,
            r.session.display(),
            if r.dropped > 0 {
                format!(
                    "; {} picture(s) not recorded (the card was behind)",
                    r.dropped
                )
            } else {
                String::new()
            },
            r.error
                .as_deref()
                .map(|e| format!("; FAILED: {e}"))
                .unwrap_or_default()
        );
    }
    if s.inference_stalls > 0 {
        println!(
            "   inference stalls: {} (AI UNAVAILABLE shown while they lasted)",
            s.inference_stalls
        );
    }
    println!(
        "   model {}{}",
        s.model,
        if s.demonstration {
            "  [DEMONSTRATION MODEL - NOT FOR DIAGNOSTIC USE]"
        } else {
            ""
        }
    );
    println!(
        "   display {}; preprocessing kernels: {}",
        s.sink, s.kernels
    );
    println!("   inference: {}", s.precision);
    if s.dropped > 0 {
        println!(
            "   dropped frames: {} (a newer frame arrived before processing was free)",
            s.dropped
        );
    }
    if s.skipped > 0 || s.model_failures > 0 {
        println!(
            "   skipped frames: {}, model failures: {}",
            s.skipped, s.model_failures
        );
    }
    if s.device_lost > 0 || s.device_damaged > 0 {
        println!(
            "   device: {} frame(s) dropped before bedside saw them, {} damaged buffer(s) skipped",
            s.device_lost, s.device_damaged
        );
    }
    if s.no_signal > 0 {
        println!(
            "   no-signal events (device lost, reopened with backoff): {}",
            s.no_signal
        );
    }
    println!(
        "   {:<11} {:>9} {:>9} {:>9}",
        "stage (ms)", "median", "p99", "max"
    );
    for (i, name) in STAGES.iter().enumerate() {
        let l = s.times.stage(i);
        println!(
            "   {:<11} {:>9.3} {:>9.3} {:>9.3}",
            name, l.median_ms, l.p99_ms, l.max_ms
        );
    }
    let t = s.times.total();
    println!(
        "   {:<11} {:>9.3} {:>9.3} {:>9.3}",
        "total", t.median_ms, t.p99_ms, t.max_ms
    );
    match s.mode {
        Mode::Ultrasound if s.alarms.is_empty() => println!("   alarms: none"),
        Mode::Ultrasound => {
            for (seq, why) in &s.alarms {
                println!("   ALARM at frame {seq}: {why}");
            }
        }
        Mode::Xray => {
            if let Some(bedside::analyze::Verdict::Classification(c)) = &s.last {
                let label = s.labels.get(c.top).map_or("?", |l| l.as_str());
                println!(
                    "   result: {label}{} ({})",
                    if c.confident { "" } else { " (uncertain)" },
                    percentages(&s.labels, &c.probabilities)
                );
            }
        }
    }
    for f in s.files.iter().filter(|f| {
        f.file_name()
            .is_some_and(|n| n == "contact_sheet.png" || n == "frames.jsonl")
    }) {
        println!("   {}", f.display());
    }
}

fn classify(
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
        let mut src = capture::open(&SourceSpec::Images(file.clone()), opts)?;
        let frame = src
            .next_frame()?
            .with_context(|| format!("{}: no image in file", file.display()))?;
        pre.process(&frame)?;
        let logits = tract.run(pre.model_input())?;
        let c = bedside::analyze::classify::classify(
            logits,
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
            println!(
                "{}",
                serde_json::json!({"file": file, "top": top, "confident": c.confident, "probabilities": probs,
                    "model": m.model.name, "version": m.model.version, "sha256": bundle.sha256_of(selection.chosen),
                    "precision": selection.chosen.name(), "demonstration_model": m.model.demonstration})
            );
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

fn preprocess(file: &Path, out: &Path, chain: &str, opts: &SourceOptions) -> Result<()> {
    let chain: Chain = chain.parse().context("--chain")?;
    if chain.quantizes() {
        bail!("--chain: 'quantize' produces model input, not an image; leave it out here");
    }
    let mut src = capture::open(&SourceSpec::Images(file.to_path_buf()), opts)?;
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

fn model_info(dir: &Path) -> Result<()> {
    use bedside::infer::reference;
    let b = Bundle::load(dir)?;
    let m = &b.manifest;
    println!("{} {} ({:?})", m.model.name, m.model.version, m.model.task);
    if m.model.demonstration {
        println!("  DEMONSTRATION MODEL - NOT FOR DIAGNOSTIC USE");
    }
    println!("  {}", m.model.description);
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
fn model_verify(dir: &Path, trusted_keys: &[String]) -> Result<()> {
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

fn model_profile(
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
fn print_time_table(what: &str, rows: std::collections::BTreeMap<&str, (f64, usize)>, total: f64) {
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
fn model_sign(dir: &Path, key: &Path) -> Result<()> {
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

/// "COVID 12.3%, Normal 80.1%, ..." for a classification.
fn percentages(labels: &[String], probabilities: &[f32]) -> String {
    let parts: Vec<String> = labels
        .iter()
        .zip(probabilities)
        .map(|(l, p)| format!("{l} {:.1}%", p * 100.0))
        .collect();
    parts.join(", ")
}
