//! Per-event cost of drift tracking: 10 numeric and 3 categorical features of generated records,
//! split by service, against parsing and decoding alone; the cost of judging one window; and the
//! memory each sketch holds after a window of traffic (printed). Read the figures as ratios within
//! one run; the machines are shared.

// The memory figures are a report for the person running the bench.
#![allow(clippy::print_stderr)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sliq_core::drift::{
    CategoricalSketch, Feature, FeatureKind, Features, Method, NumericSketch, Sketch,
    compare_categorical, compare_numeric, recycle,
};
use sliq_core::drift::{DriftConfig, DriftMonitor, Reference};
use sliq_core::slo::Dimension;
use sliq_core::{Decoder, FieldMap, SourceId, WindowConfig, Windows};
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

fn features() -> Vec<Feature> {
    let numeric = [
        ("latency_ms", "/latency_ms"),
        ("ttft_ms", "/ttft_ms"),
        ("request_tokens", "/request/tokens"),
        ("response_tokens", "/response/tokens"),
        ("prompt_chars", "/features/prompt_chars"),
        ("output_tokens", "/features/output_tokens"),
        ("temperature", "/features/temperature"),
        ("faithfulness", "/evals/faithfulness"),
        ("relevance", "/evals/relevance"),
        ("answer_quality", "/evals/answer_quality/score"),
    ];
    let categorical = [
        ("model", "/model"),
        ("finish_reason", "/response/finish_reason"),
        ("quality_label", "/evals/answer_quality/label"),
    ];
    let feature = |(name, pointer): (&str, &str), kind| Feature {
        name: name.into(),
        pointer: pointer.into(),
        kind,
        method: None,
        threshold: None,
        bins: 10,
    };
    numeric
        .into_iter()
        .map(|f| feature(f, FeatureKind::Numeric))
        .chain(
            categorical
                .into_iter()
                .map(|f| feature(f, FeatureKind::Categorical)),
        )
        .collect()
}

fn new_monitor() -> DriftMonitor {
    DriftMonitor::new(
        Features::new(features(), vec![Dimension::Service]),
        DriftConfig {
            reference: Reference::FirstEvents { events: 1000 },
            min_events: 100,
            slo: None,
        },
    )
}

fn window_config() -> WindowConfig {
    WindowConfig {
        size_ms: 60_000,
        allowed_lateness_ms: 0,
        max_out_of_orderness_ms: 0,
    }
}

fn drift(c: &mut Criterion) {
    let records = records();
    let decoder = Decoder::new(FieldMap::default(), 1 << 20)
        .reading(features().iter().map(|f| f.pointer.as_str()));
    let mut group = c.benchmark_group("drift");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("parse+decode", |b| {
        b.iter(|| {
            for r in &records {
                let v = decoder.parse(r).ok();
                black_box(v.as_ref().map(|v| decoder.decode(v).is_ok()));
            }
        });
    });
    let mut monitor = new_monitor();
    let mut windows = Windows::new(window_config());
    let mut buffer = Vec::new();
    group.bench_function("parse+decode+track_10_numeric_3_categorical", |b| {
        b.iter(|| {
            for (offset, r) in records.iter().enumerate() {
                let Ok(v) = decoder.parse(r) else { continue };
                let Ok(e) = decoder.decode(&v) else { continue };
                windows.add(SourceId(0), offset as i64, e.ts_ms, &[], &[], None);
                let mut observations = recycle(std::mem::take(&mut buffer));
                monitor.observe(&e, &mut observations);
                windows.add_drift(SourceId(0), offset as i64, e.ts_ms, &observations);
                black_box(observations.len());
                buffer = recycle(observations);
            }
        });
    });
    group.finish();

    // Memory after one pass over the records (10 s of event time at 1000/s: one window).
    let (mut fresh, mut windows) = (new_monitor(), Windows::new(window_config()));
    for (offset, r) in records.iter().enumerate() {
        let Ok(v) = decoder.parse(r) else { continue };
        let Ok(e) = decoder.decode(&v) else { continue };
        windows.add(SourceId(0), offset as i64, e.ts_ms, &[], &[], None);
        let mut observations = Vec::new();
        fresh.observe(&e, &mut observations);
        windows.add_drift(SourceId(0), offset as i64, e.ts_ms, &observations);
    }
    let closed = windows.close_all();
    let (mut numeric, mut categorical) = (Vec::new(), Vec::new());
    for (_, sketch) in closed.iter().flat_map(|w| &w.drift) {
        match sketch {
            Sketch::Numeric(_) => numeric.push((sketch.heap_bytes(), sketch.count())),
            Sketch::Categorical(_) => categorical.push((sketch.heap_bytes(), sketch.count())),
        }
    }
    let report = |kind: &str, v: &[(usize, u64)]| {
        let bytes: usize = v.iter().map(|s| s.0).sum();
        let values: u64 = v.iter().map(|s| s.1).sum();
        let max = v.iter().map(|s| s.0).max().unwrap_or(0);
        eprintln!(
            "memory: {} {kind} sketches, {:.0} values each on average: mean {} bytes, max {max} bytes",
            v.len(),
            values as f64 / v.len().max(1) as f64,
            bytes / v.len().max(1),
        );
    };
    report("numeric", &numeric);
    report("categorical", &categorical);

    // Judging: one numeric comparison of a 1,000-value window against a 100,000-value reference.
    let lognormal = |i: u64| ((i * 7919 % 10_007) as f64 / 10_007.0 * 4.0 - 2.0).exp() * 800.0;
    let mut reference = NumericSketch::default();
    (0..100_000).for_each(|i| reference.record(lognormal(i)));
    let mut current = NumericSketch::default();
    (0..1_000).for_each(|i| current.record(lognormal(i * 3 + 1) * 1.1));
    eprintln!(
        "memory: numeric sketch of 100,000 lognormal values: {} bytes",
        reference.heap_bytes()
    );
    // Judging a categorical feature of 5,000 Zipf-like categories: a 100,000-value reference
    // against a 10,000-value window.
    let category = |i: u64| {
        let u = (i * 7919 % 10_007) as f64 / 10_007.0;
        format!("template/{:05}", (u.powi(3) * 5_000.0) as u64)
    };
    let mut categories_ref = CategoricalSketch::default();
    (0..100_000).for_each(|i| categories_ref.record(&category(i)));
    let mut categories_cur = CategoricalSketch::default();
    (0..10_000).for_each(|i| categories_cur.record(&category(i * 3 + 1)));
    eprintln!(
        "memory: categorical sketch of 100,000 values in 5,000 categories: {} bytes",
        categories_ref.heap_bytes()
    );
    let mut group = c.benchmark_group("drift_judge");
    group.bench_function("categorical_jensen_shannon_5000", |b| {
        b.iter(|| {
            black_box(compare_categorical(
                Method::JensenShannon,
                &categories_ref,
                &categories_cur,
            ))
        });
    });
    for method in [
        Method::Ks,
        Method::Wasserstein,
        Method::Psi,
        Method::JensenShannon,
    ] {
        group.bench_function(method.as_str(), |b| {
            b.iter(|| black_box(compare_numeric(method, &reference, &current, 10)));
        });
    }
    group.finish();
}

criterion_group!(benches, drift);
criterion_main!(benches);
