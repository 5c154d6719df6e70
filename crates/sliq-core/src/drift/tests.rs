use serde_json::json;

use super::*;
use crate::decode::{Decoder, FieldMap};
use crate::sli::Sli;
use crate::slo::Slo;

fn numeric(values: &[f64]) -> NumericSketch {
    let mut s = NumericSketch::default();
    values.iter().for_each(|v| s.record(*v));
    s
}

fn categorical(values: &[&str]) -> CategoricalSketch {
    let mut s = CategoricalSketch::default();
    values.iter().for_each(|v| s.record(v));
    s
}

#[test]
fn ks_on_a_hand_worked_pair_is_exact() {
    // F_ref and F_cur differ most between 2 and 3: ref has 2/4 below, cur 0/4 → D = 0.5.
    let (r, c) = (
        numeric(&[1.0, 2.0, 3.0, 4.0]),
        numeric(&[3.0, 4.0, 5.0, 6.0]),
    );
    let score = compare_numeric(Method::Ks, &r, &c, 10).expect("both sides have values");
    assert_eq!(score.value, 0.5);
    // Negative values and zero sit in value order: −2 < −1 < 0 < 1.
    let (r, c) = (numeric(&[-2.0, -1.0]), numeric(&[0.0, 1.0]));
    assert_eq!(
        compare_numeric(Method::Ks, &r, &c, 10).map(|s| s.value),
        Some(1.0)
    );
    let (r, c) = (numeric(&[-2.0, 0.0]), numeric(&[-1.0, 1.0]));
    assert_eq!(
        compare_numeric(Method::Ks, &r, &c, 10).map(|s| s.value),
        Some(0.5)
    );
}

#[test]
fn ks_p_value_follows_kolmogorovs_distribution() {
    // Q(1.358) = 0.0500 (the 5% critical value). With n = m = 2·10^6, ne = 10^6 and Stephens'
    // correction is negligible: d = 1.358 / 1000.
    let p = ks_p_value(1.358 / (1000.0 + 0.12 + 0.00011), 2_000_000, 2_000_000);
    assert!((p - 0.0500).abs() < 2e-4, "p = {p}");
    // Q(1.0) = 0.26999967.
    let p = ks_p_value(1.0 / (1000.0 + 0.12 + 0.00011), 2_000_000, 2_000_000);
    assert!((p - 0.2700).abs() < 1e-4, "p = {p}");
    assert_eq!(ks_p_value(0.0, 100, 100), 1.0);
}

#[test]
fn wasserstein_of_a_shift_is_the_shift_over_the_reference_std() {
    let r = numeric(&[1.0, 2.0, 3.0, 4.0]);
    let c = numeric(&[3.0, 4.0, 5.0, 6.0]);
    let score = compare_numeric(Method::Wasserstein, &r, &c, 10).expect("values");
    // W = 2 (every quantile moved by 2); std of {1,2,3,4} (ddof 0) = √1.25. Buckets are ~1%
    // wide, so spreading a value over its bucket moves W by well under 0.05.
    let expected = 2.0 / 1.25f64.sqrt();
    assert!((score.value - expected).abs() < 0.05, "{}", score.value);
    let same = compare_numeric(Method::Wasserstein, &r, &r, 10).expect("values");
    assert_eq!(same.value, 0.0);
}

#[test]
fn psi_and_jensen_shannon_on_hand_worked_proportions() {
    // (0.9−0.5)·ln(0.9/0.5) + (0.1−0.5)·ln(0.1/0.5) = 0.4·0.587787 + 0.4·1.609438
    let v = psi(&[0.5, 0.5], &[0.9, 0.1]);
    assert!((v - 0.878_890).abs() < 1e-6, "{v}");
    // An empty bin counts as 0.0001: 0.5·ln 2 + (0.0001 − 0.5)·ln(0.0001/0.5).
    let v = psi(&[0.5, 0.5], &[1.0, 0.0]);
    let expected = 0.5 * 2f64.ln() + (1e-4 - 0.5) * (1e-4f64 / 0.5).ln();
    assert!((v - expected).abs() < 1e-12, "{v}");
    // Disjoint supports: the maximum, √ln 2.
    let v = jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]);
    assert!((v - 2f64.ln().sqrt()).abs() < 1e-12);
    assert_eq!(jensen_shannon(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
}

#[test]
fn quantile_bins_cut_at_reference_deciles() {
    // Reference 1..=100: deciles cut after 10, 20, ...; a current all above 90 fills the last bin.
    let r = numeric(&(1..=100).map(f64::from).collect::<Vec<_>>());
    let c = numeric(&(91..=100).map(f64::from).collect::<Vec<_>>());
    let score = compare_numeric(Method::Psi, &r, &c, 10).expect("values");
    // Nine bins 0.1 → 0.0001 and one 0.1 → 1.0.
    let expected = 9.0 * (1e-4 - 0.1) * (1e-4f64 / 0.1).ln() + 0.9 * 10f64.ln();
    assert!((score.value - expected).abs() < 1e-9, "{}", score.value);
}

#[test]
fn chi_square_matches_the_hand_computed_table() {
    // [[10, 20], [20, 10]]: every expected count is 15; χ² = 4 · 25/15 = 6.667, 1 dof,
    // p = P(χ²₁ > 6.667) = 0.009823.
    let (stat, p) = chi_square(&[10, 20], &[20, 10]);
    assert!((stat - 20.0 / 3.0).abs() < 1e-12);
    assert!((p - 0.009_823).abs() < 1e-6, "{p}");
    let r = categorical(&[&["a"; 10][..], &["b"; 20][..]].concat());
    let c = categorical(&[&["a"; 20][..], &["b"; 10][..]].concat());
    let score = compare_categorical(Method::ChiSquare, &r, &c).expect("values");
    assert_eq!(score.p_value, Some(p));
    assert!(score.drifted(0.05));
    // A category new in the current side and one that vanished both count.
    let r = categorical(&["a", "a", "b", "b"]);
    let c = categorical(&["a", "a", "c", "c"]);
    let (stat, _) = chi_square(&[2, 2, 0], &[2, 0, 2]);
    let score = compare_categorical(Method::ChiSquare, &r, &c).expect("values");
    assert_eq!(score.value, stat);
    // Row totals 4/4, columns a 4, b 2, c 2: E = 2,1,1 per row → χ² = 0 + 1 + 1 + 1 + 1 = 4.
    assert!((stat - 4.0).abs() < 1e-12);
}

#[test]
fn merged_halves_equal_one_sketch_over_the_whole() {
    let values: Vec<f64> = (0..5000)
        .map(|i| ((i * 7919) % 1000) as f64 / 10.0 - 30.0)
        .collect();
    let whole = numeric(&values);
    let mut left = numeric(&values[..1234]);
    left.merge(&numeric(&values[1234..]));
    assert_eq!(left.count(), whole.count());
    assert_eq!(left.cells(), whole.cells());
    assert!((left.mean() - whole.mean()).abs() < 1e-9);
    assert!((left.std_dev() - whole.std_dev()).abs() < 1e-9);
    let reference = numeric(&values.iter().map(|v| v * 1.1).collect::<Vec<_>>());
    for method in [
        Method::Ks,
        Method::Psi,
        Method::JensenShannon,
        Method::Wasserstein,
    ] {
        let a = compare_numeric(method, &reference, &whole, 10).map(|s| s.value);
        let b = compare_numeric(method, &reference, &left, 10).map(|s| s.value);
        let (a, b) = (a.expect("values"), b.expect("values"));
        assert!((a - b).abs() < 1e-9, "{method:?}: {a} vs {b}");
    }
}

#[test]
fn a_wide_range_halves_resolution_instead_of_growing() {
    let mut s = NumericSketch::default();
    // 1e-6 … 1e12 spans 60 octaves: at scale 6 that is 3,840 buckets > MAX_BUCKETS.
    for v in [1e-6, 1.0, 1e12, 5.0, 5.0] {
        s.record(v);
    }
    assert_eq!(s.scale(), DEFAULT_SCALE - 1);
    assert_eq!(s.count(), 5);
    assert_eq!(s.cells().iter().map(|c| c.count).sum::<u64>(), 5);
    // Merging with a finer sketch brings it to the coarser scale.
    let mut fine = numeric(&[2.0, 3.0]);
    fine.merge(&s);
    assert_eq!(fine.scale(), DEFAULT_SCALE - 1);
    assert_eq!(fine.count(), 7);
    // The median (5) is still within one bucket (2.2% at scale 5).
    let median = s.quantile(0.5).expect("values");
    assert!((5.0..=5.0 * 1.022).contains(&median), "{median}");
}

#[test]
fn categorical_sketch_is_exact_then_coarsens_within_capacity() {
    let mut s = CategoricalSketch::new(3);
    for c in ["a", "a", "a", "a", "b", "b", "c"] {
        s.record(c);
    }
    assert!(s.is_exact());
    assert_eq!(s.named_counts(), vec![("a", 4), ("b", 2), ("c", 1)]);
    // A fourth category does not fit three cells: categories now share hash-prefix cells.
    s.record("d");
    assert!(!s.is_exact() && s.bits() < 64);
    assert_eq!(s.count(), 8);
    assert!(s.is_consistent());
    // Every value is still in some cell: the proportions sum to one.
    let counted: u64 = s.named_counts().iter().map(|c| c.1).sum();
    assert_eq!(counted, 8);
}

/// Categories drawn from a skewed distribution over `kinds` names, by a fixed sequence.
fn skewed_categories(kinds: u64, n: u64, seed: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let u = ((i * 2_654_435_761 + seed * 40_503) % 1_000_003) as f64 / 1_000_003.0;
            format!("c{}", (u.powi(3) * kinds as f64) as u64)
        })
        .collect()
}

#[test]
fn coarse_categorical_sketches_never_raise_a_divergence() {
    // The same samples, once exact (default capacity) and once in 16 cells: the coarse cells are
    // unions of whole categories, so JS and χ² can only go down (data-processing inequality).
    for (kinds, seed) in [(40, 1), (300, 2), (2_000, 3)] {
        let (r, c) = (
            skewed_categories(kinds, 20_000, seed),
            skewed_categories(kinds + kinds / 5, 20_000, seed + 10),
        );
        let exact = |v: &[String]| {
            let mut s = CategoricalSketch::default();
            v.iter().for_each(|x| s.record(x));
            s
        };
        let coarse = |v: &[String]| {
            let mut s = CategoricalSketch::new(16);
            v.iter().for_each(|x| s.record(x));
            s
        };
        let (er, ec, cr, cc) = (exact(&r), exact(&c), coarse(&r), coarse(&c));
        assert!(er.is_exact() && !cr.is_exact());
        for method in [Method::JensenShannon, Method::ChiSquare] {
            let e = compare_categorical(method, &er, &ec).expect("values").value;
            let k = compare_categorical(method, &cr, &cc).expect("values").value;
            assert!(
                k <= e * (1.0 + 1e-12),
                "{kinds} {method:?}: coarse {k} > exact {e}"
            );
            assert!(k > 0.0, "{kinds} {method:?}: the shift is still seen");
        }
        // One side exact, the other coarse: compared on the coarser cells, the same value as
        // two coarse sketches (the exact side is coarsened, not the other way round).
        let js = |a, b| compare_categorical(Method::JensenShannon, a, b).expect("values");
        let (one_exact, both_coarse) = if cr.bits() >= cc.bits() {
            (js(&er, &cc), js(&cr, &cc))
        } else {
            (js(&cr, &ec), js(&cr, &cc))
        };
        assert!((one_exact.value - both_coarse.value).abs() < 1e-12);
    }
}

#[test]
fn merged_categorical_parts_equal_the_sketch_of_the_whole() {
    let values = skewed_categories(5_000, 60_000, 4);
    let mut whole = CategoricalSketch::new(512);
    values.iter().for_each(|v| whole.record(v));
    let mut parts: Vec<CategoricalSketch> = (0..3).map(|_| CategoricalSketch::new(512)).collect();
    for (i, v) in values.iter().enumerate() {
        parts[i % 3].record(v);
    }
    // Merged in an order other than the parts' own.
    let mut merged = parts.remove(2);
    merged.merge(&parts[1]);
    merged.merge(&parts[0]);
    assert!(!whole.is_exact());
    assert_eq!(
        (merged.bits(), merged.count()),
        (whole.bits(), whole.count())
    );
    // Same prefix length and identical cell counts: χ² of homogeneity is exactly 0.
    let chi = compare_categorical(Method::ChiSquare, &whole, &merged).expect("values");
    assert_eq!(chi.value, 0.0);
    assert!(merged.is_consistent());
}

#[test]
fn a_categorical_sketch_stays_within_its_memory_bound() {
    // 100,000 distinct categories of 300 bytes (multi-byte characters), recorded and merged.
    let long = |i: u32| format!("{i:06}{}", "é".repeat(147));
    let mut a = CategoricalSketch::default();
    let mut b = CategoricalSketch::default();
    for i in 0..100_000 {
        (if i % 2 == 0 { &mut a } else { &mut b }).record(&long(i));
    }
    for s in [&a, &b] {
        assert!(s.heap_bytes() <= MAX_HEAP_BYTES, "{}", s.heap_bytes());
    }
    a.merge(&b);
    assert!(a.heap_bytes() <= MAX_HEAP_BYTES, "{}", a.heap_bytes());
    assert!(a.is_consistent());
    assert_eq!(a.count(), 100_000);
    // Display names are cut at a character boundary, within the byte bound.
    let names = a.named_counts();
    assert!((2..=DISPLAY_NAMES + 1).contains(&names.len()), "{names:?}");
    for (name, _) in names.iter().filter(|n| n.0 != OTHER_CATEGORY) {
        assert!(
            name.len() <= DISPLAY_NAME_BYTES && name.ends_with("é…"),
            "{name}"
        );
    }
    // Serialized: at most capacity cells of two u64 ([a,b], ≤ 43 bytes) and the names (a u64,
    // the name with at most 6 bytes per byte of JSON escaping, punctuation).
    let text = serde_json::to_string(&a).expect("serializes");
    let bound = DEFAULT_CAPACITY * 43 + DISPLAY_NAMES * (20 + 6 * DISPLAY_NAME_BYTES + 6) + 100;
    assert!(text.len() <= bound, "{} > {bound}", text.len());
    // The documented figure.
    assert_eq!(MAX_HEAP_BYTES, 143_064);
}

#[test]
fn sketches_survive_serialization() {
    let s = Sketch::Numeric(numeric(&[-3.5, 0.0, 0.25, 7.0, 7.0, 1e6]));
    let text = serde_json::to_string(&s).expect("serializes");
    let back: Sketch = serde_json::from_str(&text).expect("parses");
    assert_eq!(back, s);
    let s = Sketch::Categorical(categorical(&["x", "y", "y"]));
    let back: Sketch =
        serde_json::from_str(&serde_json::to_string(&s).expect("serializes")).expect("parses");
    assert_eq!(back, s);
}

#[test]
fn identical_samples_are_not_flagged_by_any_method() {
    // Two different samples of one distribution (interleaved halves of one sequence).
    let all: Vec<f64> = (0..20_000)
        .map(|i| (((i * 2_654_435_761u64) % 1_000_003) as f64 / 1_000_003.0).powi(2) * 50.0)
        .collect();
    let (a, b): (Vec<f64>, Vec<f64>) = all.chunks(2).map(|p| (p[0], p[1])).unzip();
    let (r, c) = (numeric(&a), numeric(&b));
    for method in [
        Method::Ks,
        Method::Psi,
        Method::JensenShannon,
        Method::Wasserstein,
    ] {
        let score = compare_numeric(method, &r, &c, 10).expect("values");
        assert!(
            !score.drifted(method.default_threshold()),
            "{method:?} flagged identical samples: {score:?}"
        );
    }
}

fn event_json(service: &str, tokens: f64, finish: &str) -> serde_json::Value {
    json!({
        "id": "r", "ts": "2026-11-22T10:00:00Z", "service": service, "operation": "chat",
        "status": "ok", "latency_ms": 100, "finish_reason": finish,
        "features": {"prompt_tokens": tokens}
    })
}

fn features() -> Vec<Feature> {
    vec![
        Feature {
            name: "prompt_tokens".into(),
            pointer: "/features/prompt_tokens".into(),
            kind: FeatureKind::Numeric,
            method: Some(Method::Wasserstein),
            threshold: None,
            bins: 10,
        },
        Feature {
            name: "finish_reason".into(),
            pointer: "/finish_reason".into(),
            kind: FeatureKind::Categorical,
            method: Some(Method::JensenShannon),
            threshold: None,
            bins: 10,
        },
    ]
}

#[test]
fn monitor_judges_windows_against_a_baseline_and_counts_the_drift_slo() {
    let decoder = drift_decoder();
    let mut builder = BaselineBuilder::new(features(), vec![Dimension::Service]);
    for i in 0..1000 {
        let v = event_json("chat", f64::from(100 + i % 50), "stop");
        decoded!(event = decoder, v);
        builder.add(&event);
    }
    let baseline = builder.finish("test".into());
    assert_eq!(baseline.features[0].series.len(), 1);
    assert_eq!(baseline.features[0].all.count(), 1000);

    let mut evaluator = Evaluator::new(vec![Slo::new(
        "no-drift",
        Sli::NoDrift,
        0.9,
        vec![Dimension::Service],
    )]);
    let mut monitor = DriftMonitor::new(
        Features::new(features(), vec![Dimension::Service]),
        DriftConfig {
            reference: Reference::Baseline(baseline),
            min_events: 50,
            slo: Some("no-drift".into()),
        },
    );
    let mut windows = crate::window::Windows::new(crate::window::WindowConfig {
        size_ms: 60_000,
        allowed_lateness_ms: 0,
        max_out_of_orderness_ms: 0,
    });
    let source = crate::window::SourceId(0);
    // Window 0: like the baseline. Window 1: prompts 3× longer ("chat"), and "search" with only
    // 10 events (below min_events: not judged).
    for i in 0..200i64 {
        for (window, service, factor) in [(0, "chat", 1.0), (1, "chat", 3.0), (1, "search", 1.0)] {
            if service == "search" && i >= 10 {
                continue;
            }
            let mut v = event_json(service, f64::from(100 + (i % 50) as i32) * factor, "stop");
            let ts = window * 60_000 + i * 10;
            v["ts"] = json!(ts);
            decoded!(event = decoder, v);
            let mut out = Vec::new();
            monitor.observe(&event, &mut out);
            windows.add(source, i, ts, &[], &[], None);
            windows.add_drift(source, i, ts, &out);
        }
    }
    let mut closed = windows.close_all();
    assert_eq!(closed.len(), 2);
    let p0 = monitor.judge(&mut closed[0], &mut evaluator);
    let p1 = monitor.judge(&mut closed[1], &mut evaluator);
    assert_eq!(p0.len(), 2);
    assert!(p0.iter().all(|p| !p.detected && p.value < 0.05), "{p0:?}");
    // Window 1, chat: prompt_tokens drifted (mean 3×: W/σ ≫ 0.1); finish_reason did not.
    assert_eq!(p1.len(), 2, "search is below min_events: {p1:?}");
    let tokens = p1
        .iter()
        .find(|p| p.method == Method::Wasserstein)
        .expect("tokens");
    assert!(tokens.detected && tokens.value > 10.0, "{tokens:?}");
    assert_eq!(tokens.current_count, 200);
    assert_eq!(tokens.reference_count, 1000);
    let finish = p1
        .iter()
        .find(|p| p.method == Method::JensenShannon)
        .expect("finish");
    assert!(!finish.detected && finish.value == 0.0);
    // The drift SLO: window 0 good, window 1 bad, for service=chat only.
    let slo_counts = |w: &WindowCounts| -> Vec<(u64, u64)> {
        w.counts
            .iter()
            .filter(|c| evaluator.series(c.series).values == vec![Box::<str>::from("chat")])
            .map(|c| (c.good, c.bad))
            .collect()
    };
    assert_eq!(slo_counts(&closed[0]), vec![(1, 0)]);
    assert_eq!(slo_counts(&closed[1]), vec![(0, 1)]);
    assert_eq!(closed[1].counts.len(), 1, "search was not judged");
}

#[test]
fn trailing_and_first_events_references_build_from_the_stream() {
    let decoder = drift_decoder();
    let config = |reference| DriftConfig {
        reference,
        min_events: 20,
        slo: None,
    };
    let mut trailing = DriftMonitor::new(
        Features::new(features(), vec![]),
        config(Reference::Trailing { span_ms: 120_000 }),
    );
    let mut first = DriftMonitor::new(
        Features::new(features(), vec![]),
        config(Reference::FirstEvents { events: 100 }),
    );
    let mut evaluator = Evaluator::new(vec![]);
    let mut windows_t = crate::window::Windows::new(crate::window::WindowConfig {
        size_ms: 60_000,
        allowed_lateness_ms: 0,
        max_out_of_orderness_ms: 0,
    });
    let mut windows_f = crate::window::Windows::new(windows_t.config());
    let mut judged_t = Vec::new();
    let mut judged_f = Vec::new();
    // Four windows of 100 events; the fourth drifts (tokens ×4).
    for window in 0..4i64 {
        for i in 0..100i64 {
            let factor = if window == 3 { 4.0 } else { 1.0 };
            let mut v = event_json("chat", f64::from(100 + (i % 25) as i32) * factor, "stop");
            let ts = window * 60_000 + i * 100;
            v["ts"] = json!(ts);
            decoded!(event = decoder, v);
            for (monitor, windows) in [
                (&mut trailing, &mut windows_t),
                (&mut first, &mut windows_f),
            ] {
                let mut out = Vec::new();
                monitor.observe(&event, &mut out);
                windows.add(crate::window::SourceId(0), i, ts, &[], &[], None);
                windows.add_drift(crate::window::SourceId(0), i, ts, &out);
            }
        }
        // Closing window `window` once the next one starts.
        for (monitor, windows, judged) in [
            (&mut trailing, &mut windows_t, &mut judged_t),
            (&mut first, &mut windows_f, &mut judged_f),
        ] {
            for mut w in windows.close_all() {
                let points = monitor.judge(&mut w, &mut evaluator);
                judged.push(
                    points
                        .iter()
                        .filter(|p| p.method == Method::Wasserstein)
                        .map(|p| (w.start_ms / 60_000, p.detected, p.reference_count))
                        .collect::<Vec<_>>(),
                );
            }
        }
    }
    // Trailing 2 min: window 0 has no reference; window 1 compares with window 0; window 3 with
    // windows 1 and 2 (200 values) and drifted.
    assert_eq!(
        judged_t,
        vec![
            vec![],
            vec![(1, false, 100)],
            vec![(2, false, 200)],
            vec![(3, true, 200)]
        ]
    );
    // First 100 events: complete after window 0, then fixed.
    assert_eq!(
        judged_f,
        vec![
            vec![(0, false, 100)],
            vec![(1, false, 100)],
            vec![(2, false, 100)],
            vec![(3, true, 100)]
        ]
    );
}

#[test]
fn a_recycled_observation_buffer_keeps_its_allocation() {
    let text = String::from("stop");
    let mut buffer: Vec<(u32, Observation<'_>)> = Vec::with_capacity(32);
    buffer.push((0, Observation::Category(Cow::Borrowed(&text))));
    let recycled: Vec<(u32, Observation<'static>)> = recycle(buffer);
    assert!(recycled.is_empty());
    assert!(recycled.capacity() >= 32, "{}", recycled.capacity());
}

#[test]
fn a_trailing_reference_keeps_a_bounded_number_of_steps() {
    // A day of 1-minute windows: steps of 1440/168 → 8 minutes, so at most 180 steps are kept
    // however many windows pass.
    let mut monitor = DriftMonitor::new(Features::new(features(), vec![]), trailing_day(1));
    let mut evaluator = Evaluator::new(vec![]);
    let mut judged = 0;
    for minute in 0..3000i64 {
        let mut sketch = NumericSketch::default();
        sketch.record(100.0 + (minute % 7) as f64);
        let mut window = WindowCounts {
            start_ms: minute * 60_000,
            end_ms: (minute + 1) * 60_000,
            counts: vec![],
            latencies: vec![],
            deferred: vec![],
            closed: true,
            drift: vec![(0, Sketch::Numeric(sketch))],
            holds: vec![],
        };
        // The series must exist in the monitor's interner.
        if minute == 0 {
            let decoder = drift_decoder();
            let v = event_json("chat", 1.0, "stop");
            let mut out = Vec::new();
            decoded!(event = decoder, v);
            monitor.observe(&event, &mut out);
        }
        let points = monitor.judge(&mut window, &mut evaluator);
        if let Some(p) = points.first() {
            judged += 1;
            // A full day of minutes in 8-minute steps: at least 1432 values once warmed up.
            if minute > 1500 {
                assert!(p.reference_count >= 1432 - 8, "{p:?}");
                assert!(p.reference_count <= 1440, "{p:?}");
            }
        }
    }
    assert!(monitor.trailing.len() <= 181, "{}", monitor.trailing.len());
    assert!(judged > 2900, "{judged}");
}

/// Feeds 100 events of one minute (prompt tokens × `factor`) and judges the closed window.
fn judge_minute(monitor: &mut DriftMonitor, minute: i64, factor: f64) -> Vec<DriftPoint> {
    let decoder = drift_decoder();
    let mut windows = crate::window::Windows::new(crate::window::WindowConfig {
        size_ms: 60_000,
        allowed_lateness_ms: 0,
        max_out_of_orderness_ms: 0,
    });
    for i in 0..100i64 {
        let mut v = event_json("chat", f64::from(100 + (i % 25) as i32) * factor, "stop");
        let ts = minute * 60_000 + i * 100;
        v["ts"] = json!(ts);
        decoded!(event = decoder, v);
        let mut out = Vec::new();
        monitor.observe(&event, &mut out);
        windows.add(crate::window::SourceId(0), i, ts, &[], &[], None);
        windows.add_drift(crate::window::SourceId(0), i, ts, &out);
    }
    let mut evaluator = Evaluator::new(vec![]);
    windows
        .close_all()
        .iter_mut()
        .flat_map(|w| monitor.judge(w, &mut evaluator))
        .filter(|p| p.method == Method::Wasserstein)
        .collect()
}

#[test]
fn stream_built_references_survive_a_restart() {
    let config = |reference| DriftConfig {
        reference,
        min_events: 20,
        slo: None,
    };
    for reference in [
        Reference::Trailing { span_ms: 120_000 },
        Reference::FirstEvents { events: 150 },
    ] {
        let mut before =
            DriftMonitor::new(Features::new(features(), vec![]), config(reference.clone()));
        judge_minute(&mut before, 0, 1.0);
        judge_minute(&mut before, 1, 1.0);
        assert!(before.take_reference_changed(), "{reference:?}");
        assert!(!before.take_reference_changed());
        let text = serde_json::to_string(&before.reference_state().expect("stream-built"))
            .expect("serializes");
        let state: ReferenceState = serde_json::from_str(&text).expect("parses");
        assert_eq!(state.format, REFERENCE_STATE_FORMAT);

        // A restarted monitor judges minute 2 (drifted) against the restored reference, exactly
        // as the one that never stopped.
        let mut after =
            DriftMonitor::new(Features::new(features(), vec![]), config(reference.clone()));
        assert_eq!(after.restore(&state), 0);
        let (a, b) = (
            judge_minute(&mut before, 2, 4.0),
            judge_minute(&mut after, 2, 4.0),
        );
        assert_eq!(a.len(), 1, "{reference:?}: {a:?}");
        assert_eq!(a, b, "{reference:?}");
        assert!(b[0].detected);
        // Without the restored state, a fresh monitor has no reference for minute 2 yet.
        let mut fresh = DriftMonitor::new(Features::new(features(), vec![]), config(reference));
        assert!(judge_minute(&mut fresh, 2, 4.0).is_empty());
    }
    // A baseline is its own persistence.
    let monitor = DriftMonitor::new(
        Features::new(features(), vec![]),
        config(Reference::Baseline(
            BaselineBuilder::new(features(), vec![]).finish("x".into()),
        )),
    );
    assert!(monitor.reference_state().is_none());
}

#[test]
fn extreme_values_stay_within_the_bucket_budget() {
    // 1e-300 and 1e300 span ~2000 octaves: many halvings in one record, never a panic.
    let s = numeric(&[
        1e-300,
        1e300,
        -1e300,
        0.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::NAN,
    ]);
    assert_eq!(s.count(), 6);
    assert!(s.cells().len() <= 6);
    assert!(s.scale() <= 0, "{}", s.scale());
    let c = numeric(&[1.0, 2.0]);
    // KS, PSI and JS only count; Wasserstein over ±1e300 overflows and declines to judge.
    for method in [Method::Ks, Method::Psi, Method::JensenShannon] {
        let score = compare_numeric(method, &s, &c, 10).expect("values");
        assert!(score.value.is_finite(), "{method:?}: {score:?}");
    }
    assert_eq!(compare_numeric(Method::Wasserstein, &s, &c, 10), None);
    // Large but representable values still compare.
    let big = numeric(&[1e150, 2e150, 3e150]);
    let w = compare_numeric(
        Method::Wasserstein,
        &big,
        &numeric(&[2e150, 3e150, 4e150]),
        10,
    );
    let w = w.expect("values").value;
    // W = 1e150, std of {1,2,3}e150 = 0.8165e150: W/σ = 1.2247 (buckets ~1% wide).
    assert!((w - 1.2247).abs() < 0.05, "{w}");
}

/// A trailing reference of a day: with 1-minute windows, steps of 8 minutes.
fn trailing_day(min_events: u64) -> DriftConfig {
    DriftConfig {
        reference: Reference::Trailing {
            span_ms: 24 * 60 * 60_000,
        },
        min_events,
        slo: None,
    }
}

fn trailing_day_monitor() -> DriftMonitor {
    DriftMonitor::new(Features::new(features(), vec![]), trailing_day(20))
}

#[test]
fn a_window_replayed_after_a_restart_joins_the_trailing_reference_once() {
    // The reference is saved after minute 0 is judged, before its offsets are committed; the
    // restarted instance reads minute 0 again.
    let mut steady = trailing_day_monitor();
    judge_minute(&mut steady, 0, 1.0);
    let saved = steady.reference_state().expect("stream-built");
    let mut restarted = trailing_day_monitor();
    assert_eq!(restarted.restore(&saved), 0);
    judge_minute(&mut restarted, 0, 1.0);
    for minute in 1..3 {
        judge_minute(&mut steady, minute, 1.0);
        judge_minute(&mut restarted, minute, 1.0);
    }
    // Minute 9 is judged against the step of minutes 0-7: 3 windows of 100 values, not 4.
    let (a, b) = (
        judge_minute(&mut steady, 9, 1.0),
        judge_minute(&mut restarted, 9, 1.0),
    );
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].reference_count, 300);
    assert_eq!(a, b);
}

#[test]
fn windows_closing_out_of_order_find_their_own_trailing_step() {
    let mut monitor = trailing_day_monitor();
    // Minute 9 (step 8-15), then minutes 2 and 3 (step 0-7), as after a restart.
    for minute in [9, 2, 3] {
        judge_minute(&mut monitor, minute, 1.0);
    }
    let starts: Vec<i64> = monitor
        .trailing
        .iter()
        .map(|s| s.start_ms / 60_000)
        .collect();
    assert_eq!(starts, vec![0, 8]);
    assert_eq!(monitor.trailing[0].windows.len(), 2);
    // Minute 17 sees both steps: 300 values.
    let points = judge_minute(&mut monitor, 17, 1.0);
    assert_eq!(points[0].reference_count, 300);
}

#[test]
fn a_saved_reference_under_other_dimensions_or_pointers_is_dropped() {
    let mut before = trailing_day_monitor();
    judge_minute(&mut before, 0, 1.0);
    let saved = before.reference_state().expect("stream-built");
    assert_eq!(saved.dimensions, Vec::<String>::new());
    let config = || trailing_day(20);
    // Now judged per service: the saved values (none) would mean something else.
    let mut per_service = DriftMonitor::new(
        Features::new(features(), vec![Dimension::Service]),
        config(),
    );
    assert_eq!(per_service.restore(&saved), 2);
    // prompt_tokens now read from another field: its sketch is dropped, finish_reason's kept.
    let mut moved = features();
    moved[0].pointer = "/usage/input_tokens".into();
    let mut repointed = DriftMonitor::new(Features::new(moved, vec![]), config());
    assert_eq!(repointed.restore(&saved), 1);
    // The same spec restores everything.
    assert_eq!(trailing_day_monitor().restore(&saved), 0);
}

/// Each edit of `good`'s JSON still parses but fails `consistent`.
fn assert_edits_refused<S: serde::Serialize + serde::de::DeserializeOwned>(
    good: &S,
    consistent: fn(&S) -> bool,
    edits: &[(&str, &str)],
) {
    assert!(consistent(good));
    let text = serde_json::to_string(good).expect("serializes");
    for (from, to) in edits {
        assert!(text.contains(from), "{text}");
        let edited: S = serde_json::from_str(&text.replace(from, to)).expect("still parses");
        assert!(!consistent(&edited), "{to}");
    }
}

#[test]
fn sketches_a_build_could_not_have_made_are_refused() {
    assert_edits_refused(
        &numeric(&[1.0, 2.0, 3.0]),
        NumericSketch::is_consistent,
        &[
            // A scale sliq never writes: re-bucketing would allocate without bound.
            ("\"scale\":6", "\"scale\":1000"),
            // A count that the buckets do not add up to.
            ("\"count\":3", "\"count\":4"),
        ],
    );
    assert_edits_refused(
        &categorical(&["a", "b"]),
        CategoricalSketch::is_consistent,
        &[
            // A total the cells do not add up to.
            ("\"total\":2", "\"total\":1"),
            // A prefix length beyond the hash, or one the cells do not fit.
            ("\"bits\":64", "\"bits\":65"),
            ("\"bits\":64", "\"bits\":8"),
            // A capacity past the memory bound.
            ("\"capacity\":7168", "\"capacity\":1000000"),
        ],
    );
}

#[test]
fn a_coarse_downscale_floors_every_index_without_overflow() {
    let mut b = crate::histogram::ExpBuckets::default();
    for i in [-70_000, -3, 5, 70_000] {
        b.add(i, 1);
    }
    b.downscale(40);
    assert_eq!(b.nonzero().collect::<Vec<_>>(), vec![(-1, 2), (0, 2)]);
}

#[test]
fn wasserstein_declines_when_the_reference_spread_overflows() {
    // σ of {±1e300} overflows to infinity: W/σ would read 0 (no drift) whatever the current.
    let r = numeric(&[1e300, -1e300]);
    assert!(r.std_dev().is_nan());
    assert_eq!(compare_numeric(Method::Wasserstein, &r, &r, 10), None);
}

#[test]
fn a_summary_names_the_largest_categories_and_groups_the_rest() {
    // 40 categories, counts 40 down to 1: the first 32 seen keep their names.
    let mut s = CategoricalSketch::default();
    for k in 0..40u64 {
        for _ in 0..(40 - k) {
            s.record(&format!("k{k:02}"));
        }
    }
    let named = s.named_counts();
    assert_eq!(named[0], ("k00", 40));
    assert_eq!(named.len(), DISPLAY_NAMES + 1);
    // k32..k39 have no names: 8 + 7 + … + 1 = 36 values under the other label.
    assert!(named.contains(&(OTHER_CATEGORY, 36)), "{named:?}");
}

/// A decoder that also reads the watched features' pointers.
fn drift_decoder() -> Decoder {
    Decoder::new(FieldMap::default(), 1 << 20)
        .reading(features().iter().map(|f| f.pointer.as_str()))
}
