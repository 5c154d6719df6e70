//! Heap allocations per record in the steady state of parse → decode → evaluate every SLO → drift
//! features, on the generated records and the example chatbot spec. The workspace forbids
//! `unsafe`, so no counting `#[global_allocator]` here: the binary runs `SLIQ_PASSES` passes over
//! the records (the first one meets every series) and valgrind counts the heap allocations; the
//! difference between two runs, over the records of one pass, is the steady-state figure:
//!
//! ```text
//! B=$(ls -t target/release/deps/allocations-* | grep -v '\.d$' | head -1)
//! for n in 2 3; do SLIQ_PASSES=$n valgrind $B 2>&1 | grep 'total heap usage'; done
//! ```
//!
//! `SLIQ_STAGES=decode` stops after parse → decode, to count the decoder's share alone.

use std::path::Path;

use sliq_core::Evaluator;
use sliq_core::drift::recycle;
use sliq_gen::{GenConfig, Generator, RecordKind};

#[allow(clippy::print_stdout)]
fn main() {
    let records: Vec<Vec<u8>> = Generator::new(GenConfig {
        malformed_ratio: 0.0,
        ..GenConfig::default()
    })
    .take(10_000)
    .filter(|r| r.kind == RecordKind::Valid)
    .map(|r| r.payload)
    .collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/chatbot.yaml");
    let spec = sliq_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let decoder = spec.decoder(1 << 20);
    let mut evaluator = Evaluator::new(spec.slos());
    let mut drift = spec
        .drift
        .as_ref()
        .map(|d| d.monitor(spec.drift_slo()))
        .transpose()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut verdicts = Vec::new();
    let mut observations = Vec::new();
    let passes: usize = std::env::var("SLIQ_PASSES")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(2);
    let decode_only = std::env::var("SLIQ_STAGES").is_ok_and(|s| s == "decode");
    let mut judged = 0u64;
    for _ in 0..passes {
        for r in &records {
            let Ok(record) = decoder.parse(r) else {
                continue;
            };
            let Ok(event) = decoder.decode(&record) else {
                continue;
            };
            judged += 1;
            if decode_only {
                continue;
            }
            verdicts.clear();
            evaluator.evaluate(&event, &mut verdicts);
            if let Some(monitor) = &mut drift {
                let mut buffer = recycle(std::mem::take(&mut observations));
                monitor.observe(&event, &mut buffer);
                observations = recycle(buffer);
            }
        }
    }
    println!(
        "{passes} passes over {} records, {judged} judged",
        records.len()
    );
}
