//! Drift statistics computed from sliq's sketches against the exact values numpy and scipy compute
//! from the same samples (`scripts/drift_exact.py`): within 0.01 for every method and pair, on
//! 1,000,000 samples per side. The current side's sketch is built from four interleaved parts,
//! merged, as partitions would be.
//!
//! The script's output is also compared with the committed fixtures `tests/fixtures/drift-exact.json`
//! and `tests/fixtures/drift-exact-categories.json` (same samples, same numbers);
//! `SLIQ_UPDATE_FIXTURES=1` rewrites them.
//!
//! Categories at realistic cardinalities (Zipf-like, 400, 5,000 and 30,000 names): exact up to the
//! sketch's capacity (7,168 cells), and beyond it never above the exact divergence.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal, Pareto, Poisson, Zipf};
use rand_pcg::Pcg64Mcg;
use serde_json::Value;
use sliq_core::drift::{
    CategoricalSketch, DEFAULT_CAPACITY, MAX_HEAP_BYTES, Method, NumericSketch, Score,
    compare_categorical, compare_numeric, ks_p_value,
};
use sliq_tests::python::script_json;

const N: usize = 1_000_000;
const BINS: usize = 10;
const TOLERANCE: f64 = 0.01;

fn sample(seed: u64, n: usize, mut draw: impl FnMut(&mut Pcg64Mcg) -> f64) -> Vec<f64> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    (0..n).map(|_| draw(&mut rng)).collect()
}

fn normal(mean: f64, sd: f64) -> Normal<f64> {
    Normal::new(mean, sd).expect("valid normal")
}

/// The numeric pairs: (name, reference, current).
fn numeric_pairs() -> Vec<(&'static str, Vec<f64>, Vec<f64>)> {
    let lognormal = LogNormal::new(0.0, 0.8).expect("valid lognormal");
    vec![
        (
            "identical",
            sample(1, N, |r| normal(0.0, 1.0).sample(r)),
            sample(2, N, |r| normal(0.0, 1.0).sample(r)),
        ),
        (
            "shifted_normal",
            sample(3, N, |r| normal(0.0, 1.0).sample(r)),
            sample(4, N, |r| normal(0.3, 1.0).sample(r)),
        ),
        (
            "lognormal_scaled",
            sample(5, N, |r| lognormal.sample(r)),
            sample(6, N, |r| 1.25 * lognormal.sample(r)),
        ),
        (
            "bimodal_vs_unimodal",
            sample(7, N, |r| {
                let mode = if r.random_bool(0.5) { -2.0 } else { 2.0 };
                normal(mode, 1.0).sample(r)
            }),
            // Same mean and variance (0 and 5) as the mixture.
            sample(8, N, |r| normal(0.0, 5f64.sqrt()).sample(r)),
        ),
        (
            "heavy_tailed",
            sample(9, N, |r| {
                Pareto::new(1.0, 3.0).expect("valid pareto").sample(r)
            }),
            sample(10, N, |r| {
                Pareto::new(1.0, 2.2).expect("valid pareto").sample(r)
            }),
        ),
        (
            "integer_counts",
            sample(11, N, |r| {
                Poisson::new(40.0).expect("valid poisson").sample(r)
            }),
            sample(12, N, |r| {
                Poisson::new(43.0).expect("valid poisson").sample(r)
            }),
        ),
    ]
}

fn categories(seed: u64, weights: &[(&'static str, f64)]) -> Vec<&'static str> {
    let total: f64 = weights.iter().map(|w| w.1).sum();
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    (0..N)
        .map(|_| {
            let mut x = rng.random::<f64>() * total;
            for (c, w) in weights {
                if x < *w {
                    return *c;
                }
                x -= w;
            }
            weights[weights.len() - 1].0
        })
        .collect()
}

fn categorical_pairs() -> Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)> {
    let base = [
        ("stop", 50.0),
        ("length", 20.0),
        ("tool_calls", 15.0),
        ("content_filter", 8.0),
        ("error", 5.0),
        ("timeout", 2.0),
    ];
    // "timeout" vanished, "recitation" is new, and shares moved.
    let moved = [
        ("stop", 44.0),
        ("length", 25.0),
        ("tool_calls", 15.0),
        ("content_filter", 9.0),
        ("error", 5.0),
        ("recitation", 2.0),
    ];
    vec![
        (
            "categories_identical",
            categories(21, &base),
            categories(22, &base),
        ),
        (
            "categories_new_and_vanished",
            categories(23, &base),
            categories(24, &moved),
        ),
    ]
}

fn write_f64(path: &Path, values: &[f64]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn write_lines(path: &Path, values: &[&str]) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for v in values {
        file.write_all(v.as_bytes())?;
        file.write_all(b"\n")?;
    }
    file.flush()?;
    Ok(())
}

/// A sketch of `values` built as four interleaved parts merged: what partitions would produce.
fn merged_numeric(values: &[f64]) -> NumericSketch {
    let mut parts: Vec<NumericSketch> = (0..4).map(|_| NumericSketch::default()).collect();
    for (i, v) in values.iter().enumerate() {
        parts[i % 4].record(*v);
    }
    let mut whole = parts.remove(0);
    parts.iter().for_each(|p| whole.merge(p));
    whole
}

fn merged_categorical<S: AsRef<str>>(values: impl Iterator<Item = S>) -> CategoricalSketch {
    let mut parts: Vec<CategoricalSketch> = (0..4).map(|_| CategoricalSketch::default()).collect();
    for (i, v) in values.enumerate() {
        parts[i % 4].record(v.as_ref());
    }
    let mut whole = parts.remove(0);
    parts.iter().for_each(|p| whole.merge(p));
    whole
}

fn number(v: &Value, path: &[&str]) -> f64 {
    let mut at = v;
    for key in path {
        at = &at[*key];
    }
    at.as_f64()
        .unwrap_or_else(|| panic!("no number at {path:?} in the script's output"))
}

/// The script's output equals the committed fixture: same samples (digests) and the same numbers.
fn check_fixture(exact: &Value, name: &str) -> anyhow::Result<()> {
    let fixture = sliq_tests::repo_root().join("tests/fixtures").join(name);
    if std::env::var_os("SLIQ_UPDATE_FIXTURES").is_some() {
        std::fs::write(&fixture, serde_json::to_string_pretty(exact)? + "\n")?;
        return Ok(());
    }
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(&fixture)
            .with_context(|| format!("reading {}", fixture.display()))?,
    )?;
    assert_eq!(
        committed["samples_sha256"],
        exact["samples_sha256"],
        "the samples differ from the ones the fixture was computed from; if the generator changed \
         on purpose, rerun with SLIQ_UPDATE_FIXTURES=1 and commit {}",
        fixture.display()
    );
    fn close(a: &Value, b: &Value, at: &str) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                assert_eq!(x.len(), y.len(), "keys differ at {at}");
                for (k, v) in x {
                    close(v, &y[k], &format!("{at}/{k}"));
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                assert_eq!(x.len(), y.len(), "lengths differ at {at}");
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    close(p, q, &format!("{at}/{i}"));
                }
            }
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                assert!(
                    (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                    "fixture {x} vs script {y} at {at}"
                );
            }
            _ => assert_eq!(a, b, "at {at}"),
        }
    }
    close(&committed, exact, "");
    Ok(())
}

#[test]
fn sketch_statistics_match_scipy_within_0_01_on_a_million_samples() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let numeric = numeric_pairs();
    let categorical = categorical_pairs();
    for (name, r, c) in &numeric {
        write_f64(&dir.path().join(format!("{name}.ref.f64")), r)?;
        write_f64(&dir.path().join(format!("{name}.cur.f64")), c)?;
    }
    for (name, r, c) in &categorical {
        write_lines(&dir.path().join(format!("{name}.ref.txt")), r)?;
        write_lines(&dir.path().join(format!("{name}.cur.txt")), c)?;
    }
    let exact = script_json("scripts/drift_exact.py", &[OsStr::new(dir.path())])?;
    check_fixture(&exact, "drift-exact.json")?;

    let mut failures = Vec::new();
    let mut report = |pair: &str, method: &str, sketch: f64, exact: f64| {
        let diff = (sketch - exact).abs();
        eprintln!(
            "{pair:<28} {method:<15} sketch {sketch:>12.6} exact {exact:>12.6} |Δ| {diff:.6}"
        );
        if diff.is_nan() || diff > TOLERANCE {
            failures.push(format!("{pair} {method}: sketch {sketch} vs exact {exact}"));
        }
    };
    for (name, r, c) in &numeric {
        let (reference, current) = (merged_numeric(r), merged_numeric(c));
        assert_eq!(current.count(), N as u64);
        // One sketch over the whole current side: the merged one gives the same statistics.
        let mut single = NumericSketch::default();
        c.iter().for_each(|v| single.record(*v));
        for (method, key) in [
            (Method::Ks, "ks"),
            (Method::Wasserstein, "wasserstein"),
            (Method::Psi, "psi"),
            (Method::JensenShannon, "jensen_shannon"),
        ] {
            let score = compare_numeric(method, &reference, &current, BINS)
                .context("sketches have values")?;
            report(
                name,
                key,
                score.value,
                number(&exact, &["numeric", name, key]),
            );
            let whole = compare_numeric(method, &reference, &single, BINS).context("values")?;
            assert!(
                (whole.value - score.value).abs() < 1e-9,
                "{name} {key}: merged {} vs single {}",
                score.value,
                whole.value
            );
            if *name == "identical" {
                assert!(
                    !score.drifted(method.default_threshold()),
                    "identical distributions flagged by {key}: {score:?}"
                );
            }
        }
    }
    for (name, r, c) in &categorical {
        let (reference, current) = (merged_categorical(r.iter()), merged_categorical(c.iter()));
        assert!(reference.is_exact() && current.is_exact());
        for (method, key) in [
            (Method::ChiSquare, "chi_square"),
            (Method::Psi, "psi"),
            (Method::JensenShannon, "jensen_shannon"),
        ] {
            let score = compare_categorical(method, &reference, &current)
                .context("sketches have values")?;
            report(
                name,
                key,
                score.value,
                number(&exact, &["categorical", name, key]),
            );
            if let Some(p) = score.p_value {
                let expected = number(&exact, &["categorical", name, "chi_square_p_value"]);
                report(name, "chi_square_p", p, expected);
            }
            if *name == "categories_identical" {
                assert!(
                    !score.drifted(method.default_threshold()),
                    "{key}: {score:?}"
                );
            }
        }
    }
    let cases = exact["ks_p_values"].as_array().context("ks_p_values")?;
    assert_eq!(cases.len(), 15);
    for case in cases {
        let d = case[0].as_f64().unwrap_or(f64::NAN);
        let (n, m) = (case[1].as_u64().unwrap_or(0), case[2].as_u64().unwrap_or(0));
        let expected = case[3].as_f64().unwrap_or(f64::NAN);
        report(
            &format!("ks p-value n={n} m={m}"),
            &format!("d={d:.5}"),
            ks_p_value(d, n, m),
            expected,
        );
    }
    assert!(
        failures.is_empty(),
        "beyond {TOLERANCE}:\n{}",
        failures.join("\n")
    );
    Ok(())
}

/// A Zipf-like sample: `N` draws over `kinds` names (rank k has weight k^−s), as indices into
/// [`category_names`].
fn zipf_sample(seed: u64, kinds: usize, s: f64) -> Vec<u32> {
    let zipf = Zipf::new(kinds as f64, s).expect("valid zipf");
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    (0..N).map(|_| zipf.sample(&mut rng) as u32 - 1).collect()
}

/// Names such as prompt templates' or tools'.
fn category_names(kinds: usize) -> Vec<String> {
    (0..kinds).map(|k| format!("template/{k:05}-v2")).collect()
}

fn named<'a>(names: &'a [String], sample: &[u32]) -> Vec<&'a str> {
    sample.iter().map(|i| names[*i as usize].as_str()).collect()
}

struct HighCardinalityPair {
    name: &'static str,
    kinds: usize,
    reference: Vec<u32>,
    current: Vec<u32>,
}

fn high_cardinality_pairs() -> Vec<HighCardinalityPair> {
    let pair = |name, kinds, (s_ref, s_cur), seed: u64| HighCardinalityPair {
        name,
        kinds,
        reference: zipf_sample(seed, kinds, s_ref),
        current: zipf_sample(seed + 1, kinds, s_cur),
    };
    vec![
        pair("zipf_400_identical", 400, (1.1, 1.1), 31),
        // The tail thickens: exact JS ≈ 0.13, over the 0.1 threshold.
        pair("zipf_400_flatter", 400, (1.1, 0.9), 33),
        pair("zipf_5000_identical", 5_000, (1.0, 1.0), 35),
        // The head sharpens: exact JS ≈ 0.12, over the threshold.
        pair("zipf_5000_steeper", 5_000, (1.0, 1.13), 37),
        // Beyond the capacity: the sketch coarsens.
        pair("zipf_30000_identical", 30_000, (1.0, 1.0), 39),
        pair("zipf_30000_steeper", 30_000, (1.0, 1.13), 41),
    ]
}

#[test]
fn categorical_sketches_match_scipy_at_400_5000_and_30000_categories() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pairs = high_cardinality_pairs();
    for p in &pairs {
        let names = category_names(p.kinds);
        write_lines(
            &dir.path().join(format!("{}.ref.txt", p.name)),
            &named(&names, &p.reference),
        )?;
        write_lines(
            &dir.path().join(format!("{}.cur.txt", p.name)),
            &named(&names, &p.current),
        )?;
    }
    let exact = script_json("scripts/drift_exact.py", &[OsStr::new(dir.path())])?;
    check_fixture(&exact, "drift-exact-categories.json")?;

    for p in &pairs {
        let names = category_names(p.kinds);
        let (r, c) = (named(&names, &p.reference), named(&names, &p.current));
        let reference = merged_categorical(r.iter());
        // The current side from four interleaved parts, merged, and from one sketch of the whole.
        let current = merged_categorical(c.iter());
        let mut single = CategoricalSketch::default();
        c.iter().for_each(|v| single.record(v));
        let exact_regime = p.kinds <= DEFAULT_CAPACITY;
        assert_eq!(reference.is_exact(), exact_regime, "{}", p.name);
        assert_eq!((current.count(), current.bits()), (N as u64, single.bits()));
        for s in [&reference, &current] {
            assert!(
                s.heap_bytes() <= MAX_HEAP_BYTES,
                "{}: {} bytes",
                p.name,
                s.heap_bytes()
            );
        }
        let at = |key: &str| number(&exact, &["categorical", p.name, key]);
        for (method, key) in [
            (Method::JensenShannon, "jensen_shannon"),
            (Method::Psi, "psi"),
            (Method::ChiSquare, "chi_square"),
        ] {
            let score = compare_categorical(method, &reference, &current).context("values")?;
            let whole = compare_categorical(method, &reference, &single).context("values")?;
            let expected = at(key);
            eprintln!(
                "{:<22} {key:<15} sketch {:>14.6} exact {expected:>14.6} |Δ| {:.6}{}",
                p.name,
                score.value,
                (score.value - expected).abs(),
                score
                    .p_value
                    .map(|s| format!("  p {s:.4} exact {:.4}", at("chi_square_p_value")))
                    .unwrap_or_default()
            );
            // Merged parts are the sketch of the whole: the same statistic to the last bits.
            assert!(
                (whole.value - score.value).abs() <= 1e-12 * score.value.max(1.0),
                "{} {key}: merged {} vs single {}",
                p.name,
                score.value,
                whole.value
            );
            check_high_cardinality(p, exact_regime, key, &score, expected, &at);
        }
    }
    Ok(())
}

/// Up to the capacity the sketch is exact: every statistic equals scipy's up to summation order.
/// Beyond it, cells are unions of whole categories, so JS and χ² can only come out lower than the
/// exact values (data-processing inequality), never higher. PSI is the exception: it floors
/// proportions at 0.0001, so the exact PSI does not see shifts among the many categories rarer
/// than that, while a coarse cell holding several of them can cross the floor. What that adds for
/// identical distributions is no more than the no-drift noise of k cells,
/// (k − 1)(1/n + 1/m) ≤ 7,167 × 2/10⁶ ≈ 0.0143 here. Either way identical distributions are not
/// flagged and a shift that exact counts flag is flagged.
fn check_high_cardinality(
    pair: &HighCardinalityPair,
    exact_regime: bool,
    key: &str,
    score: &Score,
    expected: f64,
    at: &dyn Fn(&str) -> f64,
) {
    let name = pair.name;
    let identical = pair.name.ends_with("identical");
    let method = score.method;
    let threshold = method.default_threshold();
    let exact_score = Score {
        method,
        value: expected,
        p_value: method.is_test().then(|| at("chi_square_p_value")),
    };
    if identical {
        assert!(!score.drifted(threshold), "{name} {key}: {score:?}");
    } else if exact_score.drifted(threshold) {
        assert!(score.drifted(threshold), "{name} {key}: {score:?}");
    }
    if exact_regime {
        assert!(
            (score.value - expected).abs() <= 1e-9 * expected.max(1.0),
            "{name} {key}: sketch {} vs exact {expected}",
            score.value
        );
        if let Some(p) = score.p_value {
            assert!(
                (p - at("chi_square_p_value")).abs() <= 1e-9,
                "{name}: p {p}"
            );
        }
    } else if method == Method::Psi {
        if identical {
            let noise = (DEFAULT_CAPACITY - 1) as f64 * 2.0 / N as f64;
            assert!(
                score.value <= expected + noise,
                "{name} psi: {score:?} vs {expected}"
            );
        }
    } else {
        assert!(
            score.value <= expected * (1.0 + 1e-12),
            "{name} {key}: sketch {} above exact {expected}",
            score.value
        );
    }
}
