//! The command line: subcommands and their flags (clap derive). Every
//! flag's help says its default and, for numbers, its range.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use bedside::infer::PrecisionPolicy;

#[derive(Parser)]
#[command(
    name = "bedside",
    version,
    about = "Point-of-care imaging runtime for small Arm boards"
)]
pub(crate) struct Cli {
    /// Log progress and device details (RUST_LOG overrides).
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
    /// The most one input file may cost to read and decode, in MiB (default
    /// 256, or the board profile's [limits] decode_budget_mib): a file or
    /// picture that claims more is refused before anything is allocated.
    #[arg(long, global = true, value_name = "MIB")]
    pub(crate) decode_budget: Option<u64>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

// Parsed once at start: the size of the `run` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub(crate) enum Command {
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
    Run(RunArgs),
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
        /// Seconds of frame time for each normal change of the picture
        /// (gain, zoom, frame rate, the loop's seam); 0 skips them.
        #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
        variations: f64,
        /// Kinds to inject (comma-separated: blank,frozen,gain,noise,shadow,modality).
        #[arg(long)]
        inject: Option<String>,
        /// Leave the model's reconstruction (out-of-distribution) check
        /// out: what the model-free checks do on pictures the model was not
        /// trained for.
        #[arg(long)]
        without_model_check: bool,
        /// Another real cine: one more normal change switches to it
        /// (another view or patient) and holds it.
        #[arg(long, value_name = "FILE")]
        switch_to: Option<PathBuf>,
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

/// `--mode`: a mode, or the mode from the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ModeChoice {
    Ultrasound,
    Xray,
    Auto,
}

/// `bedside run`: the source, screen, model and limits of a run; each
/// overrides the board profile's.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// Board profile (boards/*.toml), or "auto": detected from the device
    /// tree (Pi 4, Pi 5, Jetson Orin Nano, QEMU virt). Command-line
    /// options override it.
    #[arg(long)]
    pub(crate) board: Option<PathBuf>,
    /// v4l2:/dev/videoN | dicom:FILE | images:DIR | watch:DIR | synthetic
    #[arg(long)]
    pub(crate) source: Option<String>,
    /// fbdev:/dev/fbN | spi:/dev/spidevB.C?panel=... | headless:DIR[?size=WxH&diagonal_in=D] | none
    #[arg(long)]
    pub(crate) display: Option<String>,
    /// ultrasound | xray | auto: from a DICOM file's Modality (US:
    /// ultrasound; CR, DX, DR: X-ray). The default for a dicom: source;
    /// otherwise the board's mode, else ultrasound.
    #[arg(long, value_enum)]
    pub(crate) mode: Option<ModeChoice>,
    /// Model bundle folder (default: the bundled demonstration model of the mode).
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub(crate) duration: Option<f64>,
    /// Stop after this many frames.
    #[arg(long)]
    pub(crate) frames: Option<u64>,
    /// Write one JSON object per frame to this file.
    #[arg(long)]
    pub(crate) jsonl: Option<PathBuf>,
    /// Start a new --jsonl file when it reaches this many MiB (the full
    /// one becomes FILE.1, FILE.1 becomes FILE.2, ...).
    #[arg(long, default_value_t = bedside::rotating_log::DEFAULT_MAX_MIB,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub(crate) jsonl_rotate_mib: u64,
    /// How many rotated --jsonl files to keep beside the current one (the
    /// oldest goes).
    #[arg(long, default_value_t = bedside::rotating_log::DEFAULT_KEEP,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub(crate) jsonl_keep: u32,
    /// Headless output: write every Nth frame.
    #[arg(long, default_value_t = 1)]
    pub(crate) every: u64,
    /// Model variant: auto times int8 and f32 here and keeps the faster
    /// (default: the board profile's, else auto).
    #[arg(long, value_enum)]
    pub(crate) precision: Option<PrecisionPolicy>,
    /// Threads for tract's matrix products (default: the board profile's, else 1).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Recorded sources (dicom:, images:, synthetic): deliver frames at
    /// the recording's own rate (Frame Time) or as fast as possible.
    #[arg(long, value_enum, default_value = "fast")]
    pub(crate) pace: bedside::capture::replay::Pace,
    /// Recorded sources: start again at the end (soak runs on a bench).
    #[arg(long = "loop")]
    pub(crate) looping: bool,
    /// Inject seeded faults into the source, e.g.
    /// "drop=0.05,dup=0.02,corrupt=0.02,truncate=0.01,stall=0.01:300,seed=7".
    #[arg(long)]
    pub(crate) faults: Option<String>,
    /// Ultrasound rehearsal: draw anomalies into the source's frames,
    /// e.g. "frozen@60+30,blank@150+20" (KIND@FIRST_FRAME+FRAMES; kinds
    /// blank, frozen, gain, noise, shadow, modality; frames turn gray).
    #[arg(long, value_name = "SPEC")]
    pub(crate) inject: Option<String>,
    /// X-ray mode: when to classify (default: the board's; else stable
    /// for v4l2, every frame for files).
    #[arg(long, value_enum)]
    pub(crate) trigger: Option<bedside::pipeline::Trigger>,
    /// X-ray stable trigger: unchanged frames that make a picture stable,
    /// 1 to 600 (default: the board's, else 5).
    #[arg(long)]
    pub(crate) stable_frames: Option<u32>,
    /// Seconds a frame may be with the model before the screen says AI
    /// UNAVAILABLE, 0.1 to 3600 (default: the board's, else 2).
    #[arg(long)]
    pub(crate) stall_after: Option<f64>,
    /// Seconds between the fps and per-stage latency lines in the log,
    /// 1 to 86400 (default 60).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) stats_every: Option<f64>,
    /// Rehearse a model that stalls or fails, e.g. "stall@20+3000,fail@50+5"
    /// (stall@RUN+MILLISECONDS, fail@RUN+RUNS; runs counted from 0).
    #[arg(long, value_name = "SPEC")]
    pub(crate) model_faults: Option<String>,
    /// Record from the start into a new session folder under DIR
    /// (frames may carry patient data: nothing is recorded without
    /// this or the board's [recording] and RECORD).
    #[arg(long, value_name = "DIR")]
    pub(crate) record: Option<PathBuf>,
    /// What --record writes: pictures, results, or both (comma-separated).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "pictures,results",
        requires = "record"
    )]
    pub(crate) record_what: String,
}

#[derive(Subcommand)]
pub(crate) enum ModelAction {
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
pub(crate) struct ImportArgs {
    /// The int8 model (QOperator or QDQ, int8 or uint8, float or int8 input).
    pub(crate) int8: PathBuf,
    /// The float model it was quantized from (for --precision f32 and auto).
    #[arg(long = "f32")]
    pub(crate) f32: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub(crate) task: ImportTask,
    /// Class names in output order (classify), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) labels: Vec<String>,
    /// Preprocessing chain (default `resize=WxH,quantize`; see docs/USAGE.md).
    #[arg(long)]
    pub(crate) chain: Option<String>,
    #[arg(long)]
    pub(crate) name: String,
    #[arg(long, default_value = "0.1.0")]
    pub(crate) version: String,
    #[arg(long, default_value = "")]
    pub(crate) description: String,
    /// Mark it a demonstration model (synthetic or unvalidated training
    /// data): the screen says so on every frame.
    #[arg(long)]
    pub(crate) demonstration: bool,
    /// What it was trained on, for the manifest and `model info`.
    #[arg(long, default_value = "not stated")]
    pub(crate) trained_on: String,
    #[arg(long, default_value = "not stated")]
    pub(crate) licence: String,
    /// The model's input value of one pixel level (pixel 255 is 255 x this).
    #[arg(long, default_value_t = 1.0 / 255.0)]
    pub(crate) pixel_scale: f32,
    /// classify: a top probability below this is shown as uncertain.
    #[arg(long)]
    pub(crate) min_confidence: Option<f32>,
    /// reconstruct: the mean absolute error above which a frame is anomalous.
    #[arg(long)]
    pub(crate) anomaly_error: Option<f32>,
    /// The bundle folder to write (must not exist, or be empty).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// A network trained on colour: sum its first convolution's weights
    /// over the three channels so it takes gray (it then sees gray
    /// pictures only; check its accuracy on them).
    #[arg(long)]
    pub(crate) gray_from_rgb: bool,
    /// A folder of a few pictures from the target device: their model
    /// inputs go into the bundle's golden.json, for models/tools/golden.py
    /// to add onnxruntime's outputs and `model verify` to compare.
    #[arg(long)]
    pub(crate) reference: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum ImportTask {
    Classify,
    Reconstruct,
}
