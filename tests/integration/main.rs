//! The integration tests, gathered into one test binary: each links tract,
//! so one binary instead of twelve saves eleven links on every target
//! (host and aarch64) and the suite builds in a fraction of the time.
//! Tests that need a process of their own stay apart: `tests/no_alloc.rs`
//! and `tests/no_alloc_pipeline.rs` install a counting global allocator,
//! `tests/system.rs` boots a VM. Shared helpers and test doubles live in
//! `common`.

mod common;

mod bad_input;
mod dicom_files;
mod fault_matrix;
mod fuzz_regressions;
mod hostile_files;
mod import;
mod jsonl_schema;
mod live_pipeline;
mod model_loader;
mod opencv_fidelity;
mod overlay_golden;
mod privacy;
mod qdq;
mod quant_conv;
mod real_data;
mod run_and_demo;
mod signed_bundles;
