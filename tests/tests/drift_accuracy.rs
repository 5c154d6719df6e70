//! Drift statistics computed from sliq's sketches against the exact values numpy and scipy compute
//! from the same samples (`scripts/drift_exact.py`): within 0.01 for every method and pair, on
//! 1,000,000 samples per side. The current side's sketch is built from four interleaved parts,
//! merged, as partitions would be.
//!
//! The script's output is also compared with the committed fixture `tests/fixtures/drift-exact.json`
//! (same samples, same numbers); `SLIQ_UPDATE_FIXTURES=1` rewrites the fixture.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal, Pareto, Poisson};
use rand_pcg::Pcg64Mcg;
use serde_json::Value;
use sliq_core::drift::{
    CategoricalSketch, Method, NumericSketch, compare_categorical, compare_numeric, ks_p_value,
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

fn merged_categorical(values: &[&str]) -> CategoricalSketch {
    let mut parts: Vec<CategoricalSketch> = (0..4).map(|_| CategoricalSketch::default()).collect();
    for (i, v) in values.iter().enumerate() {
        parts[i % 4].record(v);
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
fn check_fixture(exact: &Value) -> anyhow::Result<()> {
    let fixture = sliq_tests::repo_root().join("tests/fixtures/drift-exact.json");
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
    check_fixture(&exact)?;

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
        let (reference, current) = (merged_categorical(r), merged_categorical(c));
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
