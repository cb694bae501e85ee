//! `bedside run` and `bedside demo`. A run's settings are resolved once
//! ([`RunSettings::resolve`]: the command line over the board profile,
//! every range checked) before anything opens; then the model is loaded
//! (or refused on screen), the pipeline runs, and MODE switches to the
//! other mode's model.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use bedside::buttons::Presses;
use bedside::capture::fault::FaultPlan;
use bedside::capture::rehearse::{Rehearsal, RehearsalSource};
use bedside::capture::replay::Pace;
use bedside::capture::{self, SourceOptions, SourceSpec};
use bedside::config::{AlarmSettings, BoardProfile, ButtonSettings, ModeModels};
use bedside::display::{self, DisplaySpec};
use bedside::infer::faults::{FaultyModel, ModelFaultPlan};
use bedside::infer::{Bundle, BundleError, InferOptions, SignaturePolicy, SignatureStatus};
use bedside::pipeline::{Flow, Mode, Pipeline, RunOptions, RunSummary, Trigger};
use bedside::record::RecordSettings;
use bedside::settings;

use crate::cli::{ModeChoice, RunArgs};
use crate::one_line;
use crate::report::print_summary;

/// `bedside run`: the settings resolved, then the run (and, on MODE, the
/// next mode's).
pub(crate) fn run(args: RunArgs, budget: Option<bedside::budget::DecodeBudget>) -> Result<()> {
    let settings = RunSettings::resolve(args, budget)?;
    run_modes(&settings)
}

/// Everything a run needs, from the board profile and the command line
/// (the command line wins), checked once before anything opens: the
/// ranges shared by both through [`bedside::settings`], the profile's own
/// keys when it was loaded.
struct RunSettings {
    mode: Mode,
    /// Shown on the screen while the starting mode runs: the file's
    /// Modality contradicts it.
    mode_caution: Option<String>,
    source: SourceSpec,
    display: DisplaySpec,
    /// The profile's `[display] diagonal_in`, when the display is the profile's.
    display_diagonal_in: Option<f32>,
    /// The bundle of the starting mode (`None`: the embedded demonstration model).
    model: Option<PathBuf>,
    /// Each mode's bundle (`[models]`), for MODE.
    models: ModeModels,
    infer: InferOptions,
    signatures: SignaturePolicy,
    source_options: SourceOptions,
    duration: Option<Duration>,
    frames: Option<u64>,
    jsonl: Option<PathBuf>,
    /// Rotation of `--jsonl`: bytes per file, rotated files kept.
    jsonl_rotate: (u64, u32),
    every: u64,
    faults: Option<FaultPlan>,
    inject: Option<Rehearsal>,
    pace: Pace,
    looping: bool,
    /// X-ray mode: when to classify.
    trigger: Trigger,
    stable_frames: Option<u32>,
    stall_after: Option<Duration>,
    result_valid: Option<Duration>,
    stats_every: Option<Duration>,
    model_faults: Option<ModelFaultPlan>,
    /// What RECORD (or `--record`) writes; `None`: nothing, ever.
    recording: Option<RecordSettings>,
    /// `--record`: record from the start.
    record_from_start: bool,
    alarm: AlarmSettings,
    buttons: ButtonSettings,
    /// The board profile this run read (name, path, SHA-256 of its text),
    /// for the log's `run_start`; `null` without one.
    board: serde_json::Value,
}

impl RunSettings {
    /// The settings that shape what the screen says, as the run used them
    /// (the command line over the board profile), for the log's
    /// `run_start`: an audit can tell how the run was configured.
    fn audit_settings(&self) -> serde_json::Value {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let a = &self.alarm;
        serde_json::json!({
            "trigger": format!("{:?}", self.trigger),
            "stable_frames": self.stable_frames,
            "stall_after_s": secs(self.stall_after),
            "result_valid_s": secs(self.result_valid),
            "stats_every_s": secs(self.stats_every),
            "duration_s": secs(self.duration),
            "frames": self.frames,
            "pace": format!("{:?}", self.pace),
            "loop": self.looping,
            "precision": format!("{:?}", self.infer.precision),
            "threads": self.infer.threads,
            "alarm": {
                "raise_after": a.raise_after,
                "window": a.window,
                "clear_after": a.clear_after,
                "warmup_ms": a.warmup_ms,
                "error_threshold": a.error_threshold,
            },
            "recording": self.recording.as_ref().map(|r| r.dir.display().to_string()),
            "record_from_start": self.record_from_start,
            "rehearsal": self.inject.is_some() || self.faults.is_some() || self.model_faults.is_some(),
        })
    }

    fn resolve(a: RunArgs, budget: Option<bedside::budget::DecodeBudget>) -> Result<RunSettings> {
        let profile = a.board.as_deref().map(BoardProfile::load_arg).transpose()?;
        let board = profile.as_ref();
        let cli_record = a
            .record
            .map(|dir| {
                let what: Vec<&str> = a.record_what.split(',').collect();
                bedside::config::record_settings(dir, &what)
            })
            .transpose()
            .map_err(|e| anyhow::anyhow!("--record-what: {e}"))?;
        let source: SourceSpec = match (a.source.clone(), board) {
            (Some(s), _) => s.parse()?,
            (None, Some(p)) => p.source.clone(),
            (None, None) => bail!(
                "no source: give --source (v4l2:/dev/videoN, dicom:FILE, images:DIR, watch:DIR, synthetic) or --board"
            ),
        };
        let (display, display_diagonal_in): (DisplaySpec, _) = match (a.display, board) {
            (Some(d), _) => (d.parse()?, None),
            (None, Some(p)) => (p.display.clone(), p.display_diagonal_in),
            (None, None) => (DisplaySpec::None, None),
        };
        let mut infer = board.map_or_else(InferOptions::default, |p| p.inference);
        if let Some(p) = a.precision {
            infer.precision = p;
        }
        if let Some(t) = a.threads {
            infer.threads = t;
        }
        let mut source_options = source_options(
            SourceOptions {
                synthetic_frames: a.frames,
                ..SourceOptions::default()
            },
            board,
        );
        if let Some(b) = budget {
            source_options.decode_budget = b;
        }
        let duration = match a.duration {
            Some(d) if !(d.is_finite() && d > 0.0) => {
                bail!("--duration must be a positive number of seconds")
            }
            d => d.map(Duration::from_secs_f64),
        };
        let live = board.map(|p| &p.live);
        // A camera waits for a stable picture; files are each a picture.
        let trigger = a.trigger.or(live.and_then(|l| l.trigger)).unwrap_or(
            if matches!(source, SourceSpec::V4l2(_)) {
                Trigger::Stable
            } else {
                Trigger::Every
            },
        );
        let (mode, mode_caution) = choose_mode(a.mode, &source, board.map(|p| p.mode), budget);
        Ok(RunSettings {
            mode,
            mode_caution,
            model: a.model.or(board.and_then(|p| p.model.clone())),
            models: board.map(|p| p.models.clone()).unwrap_or_default(),
            source,
            display,
            display_diagonal_in,
            infer,
            signatures: board.map(|p| p.signatures.clone()).unwrap_or_default(),
            source_options,
            duration,
            frames: a.frames,
            jsonl: a.jsonl,
            jsonl_rotate: (a.jsonl_rotate_mib << 20, a.jsonl_keep),
            every: a.every,
            faults: a
                .faults
                .map(|f| f.parse::<FaultPlan>())
                .transpose()
                .context("--faults")?,
            inject: a
                .inject
                .map(|f| f.parse::<Rehearsal>())
                .transpose()
                .context("--inject")?,
            pace: a.pace,
            looping: a.looping,
            trigger,
            stable_frames: a
                .stable_frames
                .map(|n| settings::count("--stable-frames", n, settings::STABLE_FRAMES))
                .transpose()?
                .or(live.and_then(|l| l.stable_frames)),
            stall_after: a
                .stall_after
                .map(|s| settings::STALL_AFTER.from_seconds("--stall-after", s))
                .transpose()?
                .or(live.and_then(|l| l.stall_after)),
            result_valid: live.and_then(|l| l.result_valid),
            stats_every: a
                .stats_every
                .map(|s| settings::STATS_EVERY.from_seconds("--stats-every", s))
                .transpose()?,
            model_faults: a
                .model_faults
                .map(|f| f.parse::<ModelFaultPlan>())
                .transpose()
                .context("--model-faults")?,
            record_from_start: cli_record.is_some(),
            recording: cli_record.or_else(|| board.and_then(|p| p.recording.clone())),
            alarm: board.map(|p| p.alarm).unwrap_or_default(),
            buttons: board.map(|p| p.buttons.clone()).unwrap_or_default(),
            board: board.map_or(
                serde_json::Value::Null,
                |p| serde_json::json!({"name": p.board, "path": p.path, "sha256": p.sha256}),
            ),
        })
    }

    /// A camera (or a recording paced like one) is read at its own rate
    /// and the newest frame wins; a fast replay waits for every frame.
    fn flow(&self) -> Flow {
        match (&self.source, self.pace) {
            (SourceSpec::V4l2(_), _) | (_, Pace::File) => Flow::NewestWins,
            _ => Flow::Lossless,
        }
    }
}

/// The board profile's capture settings (size, rate, formats) over `opts`.
pub(crate) fn source_options(
    mut opts: SourceOptions,
    profile: Option<&BoardProfile>,
) -> SourceOptions {
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

/// The model of a run and the board's rules for it.
#[derive(Clone, Copy)]
struct ModelChoice<'a> {
    bundle: Option<&'a Path>,
    signatures: &'a SignaturePolicy,
}

/// What a DICOM Modality says about the mode.
enum ModalityMode {
    Is(Mode),
    /// CT, MR, ...: neither an ultrasound nor a radiograph.
    Neither,
}

fn mode_of_modality(modality: &str) -> ModalityMode {
    match modality {
        "US" | "IVUS" => ModalityMode::Is(Mode::Ultrasound),
        "CR" | "DX" | "DR" | "RG" => ModalityMode::Is(Mode::Xray),
        _ => ModalityMode::Neither,
    }
}

/// The run's mode: `--mode ultrasound|xray` as given (with one warning
/// when the file's Modality says otherwise); `--mode auto`, and no
/// `--mode` with a `dicom:` source, from the file's Modality, saying which
/// and why; otherwise the board's mode, else ultrasound.
fn choose_mode(
    asked: Option<ModeChoice>,
    source: &SourceSpec,
    board: Option<Mode>,
    budget: Option<bedside::budget::DecodeBudget>,
) -> (Mode, Option<String>) {
    let fallback = board.unwrap_or(Mode::Ultrasound);
    let file = match source {
        SourceSpec::Dicom(path) => Some(path),
        _ => None,
    };
    let given = match asked {
        Some(ModeChoice::Ultrasound) => Some(Mode::Ultrasound),
        Some(ModeChoice::Xray) => Some(Mode::Xray),
        Some(ModeChoice::Auto) | None => None,
    };
    // A file that cannot be read is reported when the source opens, and
    // nothing is said about its mode before that error.
    let opened = file
        .map(|p| bedside::capture::dicom::DicomSource::open_within(p, budget.unwrap_or_default()));
    let modality = match opened {
        Some(Err(_)) => return (given.unwrap_or(fallback), None),
        Some(Ok(d)) => d.modality(),
        None => None,
    };
    let name = |p: &PathBuf| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let say = |line: String| {
        tracing::info!("{line}");
        eprintln!("bedside: {line}");
    };
    // The log's own warning line is printed on stderr too.
    let warn = |line: String| tracing::warn!("{line}");
    if let Some(mode) = given {
        let (Some(p), Some(m)) = (file, modality.as_deref()) else {
            return (mode, None);
        };
        let contradiction = match mode_of_modality(m) {
            ModalityMode::Is(other) if other == mode => return (mode, None),
            ModalityMode::Is(other) => format!(
                "is {} image, but --mode {} was given; running {} mode",
                if other == Mode::Xray {
                    "an X-ray"
                } else {
                    "an ultrasound"
                },
                mode.name(),
                mode.name()
            ),
            ModalityMode::Neither => "is neither ultrasound (US) nor a radiograph (CR, DX, DR): the model was not made for it".into(),
        };
        warn(format!("{}: Modality {m} {contradiction}", name(p)));
        return (mode, Some(format!("file: Modality {m}")));
    }
    match (asked, file, modality.as_deref()) {
        (_, Some(p), Some(m)) => match mode_of_modality(m) {
            ModalityMode::Is(mode) => {
                say(format!(
                    "{} mode: {} has Modality {m}",
                    mode.name(),
                    name(p)
                ));
                (mode, None)
            }
            ModalityMode::Neither => {
                warn(format!(
                    "{}: Modality {m} is neither ultrasound (US) nor a radiograph (CR, DX, DR): {} mode ({}), and the model was not made for it",
                    name(p),
                    fallback.name(),
                    if board.is_some() {
                        "the board's"
                    } else {
                        "the default"
                    }
                ));
                (fallback, Some(format!("file: Modality {m}")))
            }
        },
        (Some(ModeChoice::Auto), ..) => {
            say(format!(
                "{} mode: {}, so {}",
                fallback.name(),
                if file.is_some() {
                    "the file states no Modality"
                } else {
                    "--mode auto reads a DICOM file's Modality, and the source is not one"
                },
                if board.is_some() {
                    "the board's mode"
                } else {
                    "the default"
                }
            ));
            (fallback, None)
        }
        _ => (fallback, None),
    }
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
    jsonl: Option<&Path>,
    refused: &BundleError,
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
    if let Some(path) = jsonl {
        let record = serde_json::json!({
            "status": "model_refused",
            "utc": bedside::pipeline::rfc3339_utc(std::time::SystemTime::now()),
            "mode": mode.name(),
            "screen": refused.screen_reason(),
            "reason": one_line(error),
        });
        if let Err(e) = bedside::private_output::write(path, format!("{record}\n").as_bytes()) {
            tracing::warn!("{}: {e}", path.display());
        }
    }
}

/// Runs the starting mode; when MODE is pressed and the board names a
/// model for the other mode (`[models]`), that mode runs next.
fn run_modes(s: &RunSettings) -> Result<()> {
    // The operator's buttons: a missing chip or a busy line is an error
    // now, not a dead button found on the cart.
    let presses = Arc::new(Presses::default());
    let _buttons = match s.buttons.pins.is_empty() {
        false => Some(open_buttons(&s.buttons, &presses)?),
        true => None,
    };
    let stop = bedside::pipeline::stop_on_signals().context("cannot install signal handlers")?;
    let mut mode = s.mode;
    let mut bundle = s.model.clone();
    let mut first = true;
    loop {
        let other = match mode {
            Mode::Ultrasound => Mode::Xray,
            Mode::Xray => Mode::Ultrasound,
        };
        let other_model = s.models.get(other);
        let hooks = RunHooks {
            presses: &presses,
            stop: &stop,
            switch_to: other_model.map(|_| other),
            append_log: !first,
        };
        let summary = run_mode(mode, bundle.as_deref(), s, hooks)?;
        print_summary(&summary);
        match (summary.switch_to, other_model) {
            (Some(next), Some(dir)) => {
                mode = next;
                bundle = Some(dir.to_path_buf());
                first = false;
            }
            _ => return Ok(()),
        }
    }
}

/// What one mode's run shares with the next.
struct RunHooks<'a> {
    presses: &'a Arc<Presses>,
    stop: &'a Arc<AtomicBool>,
    switch_to: Option<Mode>,
    /// The log file is appended to (a later mode of the same run).
    append_log: bool,
}

/// One mode's run, until the source ends, a limit or a signal, or MODE.
fn run_mode(
    mode: Mode,
    bundle: Option<&Path>,
    s: &RunSettings,
    hooks: RunHooks,
) -> Result<RunSummary> {
    let model = ModelChoice {
        bundle,
        signatures: &s.signatures,
    };
    let loaded = match load_bundle(mode, &model) {
        Ok(b) => b,
        Err(e) => {
            if let Some(refused) = e.downcast_ref::<BundleError>() {
                refuse_on_screen(mode, &s.display, &model, s.jsonl.as_deref(), refused, &e);
            }
            return Err(e);
        }
    };
    let mut options = s.source_options.clone();
    if mode == Mode::Ultrasound {
        options.still_interval_us = capture::ULTRASOUND_FOLDER_INTERVAL_US;
    }
    let mut src = capture::open_replay(&s.source, &options, s.pace, s.looping)?;
    if let Some(plan) = s.inject.clone() {
        if mode != Mode::Ultrasound {
            bail!("--inject rehearses the ultrasound alarm: use it with --mode ultrasound");
        }
        src = Box::new(RehearsalSource::new(src, plan));
    }
    if let Some(plan) = s.faults {
        src = Box::new(bedside::capture::fault::FaultInjector::new(src, plan));
    }
    let sink = display::open(&s.display, s.every)?;
    let mut pipeline = Pipeline::with_options(mode, src, loaded, sink, &s.infer)?;
    if let Some(plan) = s.model_faults.clone() {
        pipeline.wrap_model(|m| Box::new(FaultyModel::new(m, plan)));
    }
    if mode == s.mode {
        pipeline.set_caution(s.mode_caution.clone());
    }
    pipeline.set_screen_diagonal(s.display_diagonal_in);
    if mode == Mode::Xray {
        tracing::info!("X-ray mode trigger: {:?}", s.trigger);
    }
    if let Some(params) = pipeline.detector_params() {
        pipeline.set_detector_params(s.alarm.apply(params));
    }
    let jsonl: Option<Box<dyn std::io::Write + Send>> = match &s.jsonl {
        Some(p) => {
            let (max_bytes, keep) = s.jsonl_rotate;
            let log =
                bedside::rotating_log::RotatingLog::open(p, hooks.append_log, max_bytes, keep)
                    .with_context(|| format!("{}", p.display()))?;
            Some(Box::new(log))
        }
        None => None,
    };
    Ok(pipeline.run(RunOptions {
        max_frames: s.frames,
        duration: s.duration,
        jsonl,
        jsonl_path: s.jsonl.clone(),
        progress: None,
        stop: Some(Arc::clone(hooks.stop)),
        flow: s.flow(),
        stall_after: s.stall_after,
        result_valid: s.result_valid,
        trigger: Some(s.trigger),
        stable_frames: s.stable_frames,
        buttons: Some(Arc::clone(hooks.presses)),
        record_from_start: s.record_from_start && !hooks.append_log,
        recording: s.recording.clone(),
        switch_mode_to: hooks.switch_to,
        report_every: s.stats_every,
        audit: Some(serde_json::json!({"board": s.board, "settings": s.audit_settings()})),
        rehearsal: s.inject.is_some() || s.faults.is_some() || s.model_faults.is_some(),
    })?)
}

/// Opens the board's button lines and starts reading them.
#[cfg(target_os = "linux")]
fn open_buttons(
    buttons: &ButtonSettings,
    presses: &Arc<Presses>,
) -> Result<bedside::buttons::ButtonReader> {
    use bedside::buttons::{ButtonReader, DEFAULT_DEBOUNCE, open_cdev};
    let pins = buttons
        .pins
        .iter()
        .map(|(b, spec)| open_cdev(*b, spec).map(|pin| (*b, pin)))
        .collect::<Result<Vec<_>, _>>()?;
    for (b, spec) in &buttons.pins {
        tracing::info!("{} button on {spec}", b.name());
    }
    Ok(ButtonReader::start(
        pins,
        buttons.debounce.unwrap_or(DEFAULT_DEBOUNCE),
        Arc::clone(presses),
    )?)
}

#[cfg(not(target_os = "linux"))]
fn open_buttons(_: &ButtonSettings, _: &Arc<Presses>) -> Result<bedside::buttons::ButtonReader> {
    bail!("GPIO buttons need Linux's GPIO character device")
}

/// `bedside demo`: both modes on the embedded real data, with progress.
pub(crate) fn demo(out: &Path, frames: Option<u64>) -> Result<()> {
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
