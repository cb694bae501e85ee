//! Inference latency of each bundle and variant on tract:
//! `infer/<bundle>/<int8|f32>` on one thread and `infer/<bundle>/<int8|f32>-t2`
//! with a 2-thread pool for the matrix products, on the first golden input of
//! the bundle (a real radiograph or echo frame, as the preprocessor makes it).
//!
//! `benches/compare/run` runs this bench and then onnxruntime on the same
//! bundles and inputs (`benches/compare/infer.py`), and prints ratios.
//!
//! With `BEDSIDE_BENCH_NETS` set (`benches/compare/run` sets it to what
//! `models/bench/run` made), also `infer/net-<mobilenetv2|resnet18>/<int8|f32>`
//! on one thread, on a seeded input it writes beside each network
//! (`input.i8`) for onnxruntime to take.
//!
//! `cargo bench --bench infer [-- FILTER]`

use std::path::PathBuf;
use std::time::Duration;

use bedside::infer::{Bundle, Model, Precision, TractModel};
use criterion::{Criterion, criterion_group, criterion_main};

fn golden_input(dir: &std::path::Path) -> Vec<i8> {
    let text = std::fs::read_to_string(dir.join("golden.json")).expect("golden.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("golden.json is JSON");
    v["cases"][0]["input"]
        .as_array()
        .expect("cases[0].input")
        .iter()
        .map(|x| x.as_i64().expect("integer") as i8)
        .collect()
}

fn infer(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut g = c.benchmark_group("infer");
    for bundle in ["xray-demo", "echo-ae-demo"] {
        let dir = root.join(bundle);
        let b = Bundle::load(&dir).expect("bundle loads");
        let input = golden_input(&dir);
        for (label, precision) in [("int8", Precision::Int8), ("f32", Precision::F32)] {
            for (suffix, threads) in [("", 1), ("-t2", 2)] {
                let mut m = TractModel::load_with(&b, precision, threads).expect("model loads");
                g.bench_function(format!("{bundle}/{label}{suffix}"), |bench| {
                    bench.iter(|| m.run(&input).expect("runs").len())
                });
            }
        }
    }
    if let Some(nets) = std::env::var_os("BEDSIDE_BENCH_NETS") {
        for net in ["mobilenetv2", "resnet18"] {
            let dir = PathBuf::from(&nets).join(net);
            let b = Bundle::load(&dir).expect("benchmark network loads (models/bench/run)");
            let n: usize = b.manifest.input.shape.iter().product();
            let mut state = 0x2545_f491_u32;
            let input: Vec<i8> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state >> 24) as u8 as i8
                })
                .collect();
            let bytes: Vec<u8> = input.iter().map(|&v| v as u8).collect();
            std::fs::write(dir.join("input.i8"), bytes).expect("input.i8 written");
            for (label, precision) in [("int8", Precision::Int8), ("f32", Precision::F32)] {
                let mut m = TractModel::load_with(&b, precision, 1).expect("model loads");
                g.bench_function(format!("net-{net}/{label}"), |bench| {
                    bench.iter(|| m.run(&input).expect("runs").len())
                });
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = infer
}
criterion_main!(benches);
