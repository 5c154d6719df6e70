#!/usr/bin/env python3
"""Exact drift statistics, computed with numpy and scipy, for the sketch accuracy test.

Usage: drift_exact.py SAMPLES_DIR

SAMPLES_DIR holds, per distribution pair, `<pair>.ref.f64` and `<pair>.cur.f64` (little-endian
float64, numeric pairs) or `<pair>.ref.txt` and `<pair>.cur.txt` (one category per line). The test
`tests/tests/drift_accuracy.rs` writes them (Rust generates the samples; this script is the
independent computation), runs this script, and compares its output with the committed fixture
`tests/fixtures/drift-exact.json` and with the values sliq computes from its sketches.

Definitions (the ones sliq documents in crates/sliq-core/src/drift/methods.rs):
- KS: scipy.stats.ks_2samp (statistic; p-value with method="asymp").
- Wasserstein: scipy.stats.wasserstein_distance / numpy.std(reference) (ddof 0).
- PSI, Jensen-Shannon on numbers: BINS bins cut at numpy.quantile(reference, j/BINS), j = 1..BINS-1
  (duplicates removed), a value equal to an edge belongs to the bin below it; PSI with empty-bin
  proportions smoothed to 0.0001; scipy.spatial.distance.jensenshannon (natural log).
- On categories: proportions over the union of categories; chi-square: scipy.stats.chi2_contingency
  on the 2 x k table, correction=False.
Prints one JSON object on stdout.
"""

import hashlib
import json
import pathlib
import sys

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

BINS = 10
PSI_EMPTY_BIN = 1e-4


def psi(p, q):
    p = np.maximum(p, PSI_EMPTY_BIN)
    q = np.maximum(q, PSI_EMPTY_BIN)
    return float(np.sum((q - p) * np.log(q / p)))


def numeric(ref, cur):
    edges = np.unique(np.quantile(ref, np.arange(1, BINS) / BINS))
    bins = len(edges) + 1
    p = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=bins) / len(ref)
    q = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=bins) / len(cur)
    ks = stats.ks_2samp(ref, cur, method="asymp")
    return {
        "ks": float(ks.statistic),
        "ks_p_value": float(ks.pvalue),
        "wasserstein": float(stats.wasserstein_distance(ref, cur) / np.std(ref)),
        "psi": psi(p, q),
        "jensen_shannon": float(jensenshannon(p, q)),
    }


def categorical(ref, cur):
    categories = sorted(set(ref) | set(cur))
    index = {c: i for i, c in enumerate(categories)}
    a = np.bincount([index[c] for c in ref], minlength=len(categories))
    b = np.bincount([index[c] for c in cur], minlength=len(categories))
    chi = stats.chi2_contingency(np.array([a, b]), correction=False)
    p, q = a / a.sum(), b / b.sum()
    return {
        "chi_square": float(chi.statistic),
        "chi_square_p_value": float(chi.pvalue),
        "psi": psi(p, q),
        "jensen_shannon": float(jensenshannon(p, q)),
    }


def main():
    samples = pathlib.Path(sys.argv[1])
    out = {"numeric": {}, "categorical": {}, "samples_sha256": {}}
    for path in sorted(samples.iterdir()):
        out["samples_sha256"][path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    for ref_path in sorted(samples.glob("*.ref.f64")):
        pair = ref_path.name.removesuffix(".ref.f64")
        ref = np.fromfile(ref_path, dtype="<f8")
        cur = np.fromfile(samples / f"{pair}.cur.f64", dtype="<f8")
        out["numeric"][pair] = numeric(ref, cur)
    for ref_path in sorted(samples.glob("*.ref.txt")):
        pair = ref_path.name.removesuffix(".ref.txt")
        ref = ref_path.read_text().split("\n")[:-1]
        cur = (samples / f"{pair}.cur.txt").read_text().split("\n")[:-1]
        out["categorical"][pair] = categorical(ref, cur)
    # The asymptotic KS p-value scipy uses (kstwo at round(nm/(n+m))), on a grid of statistics and
    # sample sizes, for sliq's p-value function.
    out["ks_p_values"] = [
        [d, n, m, float(stats.kstwo.sf(d, round(n * m / (n + m))))]
        for n, m in [(1000, 1000), (5000, 20000), (1_000_000, 1_000_000)]
        for d in [0.5 / np.sqrt(n * m / (n + m)) * k for k in (1, 2, 2.5, 3, 4)]
    ]
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
