//! Per-event cost of the pure path, on generated records and the example chatbot spec:
//! parse only → + decode → + evaluate every SLO → + window counting → + archive row.
//! Read the figures as ratios within one run; the machines are shared.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sliq_archive::{Archive, ArchiveConfig, SourcePosition};
use sliq_core::{Evaluator, SourceId, Windows};
use sliq_gen::{GenConfig, Generator, RecordKind};

fn records() -> Vec<Vec<u8>> {
    Generator::new(GenConfig {
        malformed_ratio: 0.0,
        ..GenConfig::default()
    })
    .take(10_000)
    .filter(|r| r.kind == RecordKind::Valid)
    .map(|r| r.payload)
    .collect()
}

fn chatbot() -> sliq_config::PipelineSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/chatbot.yaml");
    match sliq_config::load(&path) {
        Ok(spec) => spec,
        Err(e) => panic!("{e}"),
    }
}

fn per_event(c: &mut Criterion) {
    let records = records();
    let spec = chatbot();
    let decoder = spec.decoder(1 << 20);
    let mut group = c.benchmark_group("per_event");
    group.throughput(Throughput::Elements(records.len() as u64));

    group.bench_function("parse", |b| {
        b.iter(|| {
            for r in &records {
                black_box(decoder.parse(r).ok());
            }
        });
    });
    group.bench_function("parse+decode", |b| {
        b.iter(|| {
            for r in &records {
                let v = decoder.parse(r).ok();
                black_box(v.as_ref().map(|v| decoder.decode(v).is_ok()));
            }
        });
    });
    let mut evaluator = Evaluator::new(spec.slos());
    let mut verdicts = Vec::new();
    group.bench_function("parse+decode+evaluate_chatbot", |b| {
        b.iter(|| {
            for r in &records {
                let Ok(v) = decoder.parse(r) else { continue };
                let Ok(e) = decoder.decode(&v) else { continue };
                verdicts.clear();
                evaluator.evaluate(&e, &mut verdicts);
                black_box(verdicts.len());
            }
        });
    });
    let mut windows = Windows::new(spec.windows.window_config());
    group.bench_function("parse+decode+evaluate+window", |b| {
        b.iter(|| {
            for (offset, r) in records.iter().enumerate() {
                let Ok(v) = decoder.parse(r) else { continue };
                let Ok(e) = decoder.decode(&v) else { continue };
                verdicts.clear();
                evaluator.evaluate(&e, &mut verdicts);
                black_box(windows.add(
                    SourceId(0),
                    offset as i64,
                    e.ts_ms,
                    &verdicts,
                    evaluator.deferred(),
                    None,
                ));
            }
        });
    });
    let dir = std::env::temp_dir().join(format!("sliq-bench-{}", std::process::id()));
    let mut archive = match Archive::new(
        ArchiveConfig {
            dir: dir.clone(),
            max_rows: usize::MAX,
            ..ArchiveConfig::default()
        },
        &[],
    ) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    group.bench_function("parse+decode+evaluate+window+archive_row", |b| {
        b.iter(|| {
            let now = Instant::now();
            for (offset, r) in records.iter().enumerate() {
                let Ok(v) = decoder.parse(r) else { continue };
                let Ok(e) = decoder.decode(&v) else { continue };
                verdicts.clear();
                evaluator.evaluate(&e, &mut verdicts);
                windows.add(
                    SourceId(0),
                    offset as i64,
                    e.ts_ms,
                    &verdicts,
                    evaluator.deferred(),
                    None,
                );
                let at = SourcePosition {
                    topic: "t",
                    partition: 0,
                    offset: offset as i64,
                };
                black_box(archive.append(at, &e, Some(r), None, 0, now).is_ok());
            }
            // Drop the rows without writing: this measures building them, not disk I/O.
            archive = Archive::new(
                ArchiveConfig {
                    dir: dir.clone(),
                    max_rows: usize::MAX,
                    ..ArchiveConfig::default()
                },
                &[],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        });
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, per_event);
criterion_main!(benches);
