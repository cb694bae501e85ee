//! The `bedside` command line. Parses, builds the pipeline from the library,
//! and turns every failure into one line on stderr and a non-zero exit code:
//! 1 for a runtime failure (bad file, device, model), 2 for bad usage.
#![deny(unsafe_code)]

mod cli;
mod files;
mod measure;
mod model;
mod report;
mod run;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use bedside::budget::DecodeBudget;
use bedside::capture::SourceOptions;

use cli::{Cli, Command, ModelAction};

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
    match dispatch(cli.command, budget) {
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
fn dispatch(command: Command, budget: Option<DecodeBudget>) -> Result<()> {
    let file_options = SourceOptions {
        decode_budget: budget.unwrap_or_default(),
        ..SourceOptions::default()
    };
    match command {
        Command::Demo { out, frames } => run::demo(&out, frames),
        Command::Run(args) => run::run(args, budget),
        Command::Classify {
            model,
            files,
            json,
            precision,
        } => files::classify(&model, &files, json, precision, &file_options),
        Command::EvalAnomaly {
            cine,
            model,
            seed,
            frames,
            clean_hours,
            variations,
            inject,
            without_model_check,
            switch_to,
            json,
            plot,
        } => measure::eval_anomaly(
            cine,
            model,
            seed,
            frames,
            (clean_hours, variations),
            (inject, !without_model_check, switch_to),
            json,
            plot,
        ),
        Command::Bench {
            board,
            source,
            model,
            threads,
            runs,
            screen,
            json,
        } => measure::bench(board, source, model, threads, runs, &screen, json),
        Command::Devices { json } => {
            let inventory = bedside::inventory::Inventory::scan();
            if json {
                println!("{}", serde_json::to_string_pretty(&inventory)?);
            } else {
                print!("{}", inventory.to_text());
            }
            Ok(())
        }
        Command::Preprocess { file, out, chain } => {
            files::preprocess(&file, &out, &chain, &file_options)
        }
        Command::Model { action } => match action {
            ModelAction::Info { bundle } => model::model_info(&bundle),
            ModelAction::Verify {
                bundle,
                trusted_keys,
            } => model::model_verify(&bundle, &trusted_keys),
            ModelAction::Sign { bundle, key } => model::model_sign(&bundle, &key),
            ModelAction::Import(args) => model::model_import(*args),
            ModelAction::Profile {
                bundle,
                precision,
                threads,
                runs,
            } => model::model_profile(&bundle, precision, threads, runs),
            ModelAction::Keygen { file } => model::model_keygen(&file),
        },
    }
}

/// The error and its causes on one line, each cause once: many of our
/// errors already print their source ("path: reason"), and anyhow's chain
/// would repeat it.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
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
