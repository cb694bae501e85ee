//! What the command line prints: a run's summary, probabilities.

use bedside::pipeline::{Mode, RunSummary, STAGES};

pub(crate) fn print_summary(s: &RunSummary) {
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
    if s.refused > 0 {
        println!(
            "   not analyzed: {} frame(s) whose file says the model is not for them",
            s.refused
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
            for a in &s.alarms {
                match a.cleared {
                    Some((seq, up)) => println!(
                        "   ALARM at frame {}: {} (cleared at frame {seq}, up {up:.1} s)",
                        a.seq, a.reason
                    ),
                    None => println!(
                        "   ALARM at frame {}: {} (still up when the run ended)",
                        a.seq, a.reason
                    ),
                }
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

/// "COVID 12.3%, Normal 80.1%, ..." for a classification.
pub(crate) fn percentages(labels: &[String], probabilities: &[f32]) -> String {
    let parts: Vec<String> = labels
        .iter()
        .zip(probabilities)
        .map(|(l, p)| format!("{l} {:.1}%", p * 100.0))
        .collect();
    parts.join(", ")
}
