//! Drift methods: a reference sketch and a current sketch in, one score out.
//!
//! Numeric sketches are compared on one bucket grid (the coarser of the two scales), where both
//! CDFs are exact at every bucket boundary:
//!
//! - **KS**: the largest CDF gap over the boundaries (never above the exact statistic), and its
//!   asymptotic p-value (Kolmogorov's series with Stephens' finite-sample correction).
//! - **Wasserstein-1**: `∫|F_ref − F_cur|`, each sketch's mass spread evenly inside its buckets,
//!   divided by the reference's standard deviation (exact, from the moments).
//! - **PSI** and **Jensen-Shannon**: over `bins` bins whose edges are the reference's quantiles
//!   (each edge the upper boundary of the bucket holding that quantile, so both sides' bin counts
//!   are exact). PSI smooths an empty bin's proportion to 0.0001 (Evidently's convention; without
//!   it one empty bin makes PSI infinite); Jensen-Shannon needs no smoothing. JS uses natural
//!   logarithms, like `scipy.spatial.distance.jensenshannon`: its range is `[0, √ln 2 ≈ 0.833]`.
//!
//! Categorical sketches compare proportions over their common cells (one per category while both
//! are exact; shared hash prefixes beyond [`DEFAULT_CAPACITY`](super::DEFAULT_CAPACITY)
//! categories, the same cells on both sides): PSI, Jensen-Shannon, and the χ² test of homogeneity
//! on the 2 × k contingency table (no continuity correction; with two categories it is the
//! two-proportion z-test squared).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::categorical::{CategoricalSketch, common_cells};
use super::numeric::{Cell, NumericSketch};

/// A drift method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Population stability index over reference-quantile bins.
    Psi,
    /// Two-sample Kolmogorov-Smirnov: statistic and p-value.
    Ks,
    /// Jensen-Shannon distance (natural log).
    JensenShannon,
    /// Wasserstein-1 distance divided by the reference's standard deviation.
    Wasserstein,
    /// χ² test of homogeneity: statistic and p-value.
    ChiSquare,
}

impl Method {
    /// The name used in configuration and in the `sliq.drift.method` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Psi => "psi",
            Method::Ks => "ks",
            Method::JensenShannon => "jensen_shannon",
            Method::Wasserstein => "wasserstein",
            Method::ChiSquare => "chi_square",
        }
    }

    /// Tests judge by p-value (drift when `p < threshold`); distances by value (`value > threshold`).
    pub fn is_test(self) -> bool {
        matches!(self, Method::Ks | Method::ChiSquare)
    }

    /// The default threshold: p < 0.05 for tests, 0.1 for distances (Evidently's defaults; PSI
    /// 0.1 is also where the usual "moderate shift" band starts).
    pub fn default_threshold(self) -> f64 {
        if self.is_test() { 0.05 } else { 0.1 }
    }

    /// Whether the method applies to a numeric (`true`) or categorical (`false`) feature.
    pub fn applies_to(self, numeric: bool) -> bool {
        match self {
            Method::Psi | Method::JensenShannon => true,
            Method::Ks | Method::Wasserstein => numeric,
            Method::ChiSquare => !numeric,
        }
    }

    /// The default method for a feature, by its type and the reference's size. Following
    /// Evidently: up to 1000 reference values, a statistical test (KS for numbers, χ² for
    /// categories); above, a distance (Wasserstein for numbers, Jensen-Shannon for categories),
    /// because at large samples a test flags differences too small to matter.
    pub fn default_for(numeric: bool, reference_count: u64) -> Method {
        match (numeric, reference_count <= 1000) {
            (true, true) => Method::Ks,
            (true, false) => Method::Wasserstein,
            (false, true) => Method::ChiSquare,
            (false, false) => Method::JensenShannon,
        }
    }
}

/// What a method says about a current distribution against its reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub method: Method,
    /// The statistic or distance.
    pub value: f64,
    /// For tests: the p-value.
    pub p_value: Option<f64>,
}

impl Score {
    /// Whether this score means drift at `threshold` (see [`Method::is_test`]).
    pub fn drifted(&self, threshold: f64) -> bool {
        match self.p_value {
            Some(p) if self.method.is_test() => p < threshold,
            _ => self.value > threshold,
        }
    }
}

/// Proportion used for an empty bin in PSI.
pub const PSI_EMPTY_BIN: f64 = 1e-4;

/// Compares two numeric sketches. `bins` is used by PSI and Jensen-Shannon. `None` when a side is
/// empty, the method does not apply to numbers, or the values overflow the arithmetic.
pub fn compare_numeric(
    method: Method,
    reference: &NumericSketch,
    current: &NumericSketch,
    bins: usize,
) -> Option<Score> {
    if reference.count() == 0 || current.count() == 0 || !method.applies_to(true) {
        return None;
    }
    let grid = Grid::new(reference, current);
    let (value, p_value) = match method {
        Method::Ks => {
            let d = grid.ks();
            (d, Some(ks_p_value(d, reference.count(), current.count())))
        }
        Method::Wasserstein => {
            let w = grid.wasserstein();
            let sd = reference.std_dev();
            let value = if sd.is_nan() {
                return None;
            } else if sd > 0.0 {
                w / sd
            } else if w == 0.0 {
                0.0
            } else {
                f64::INFINITY
            };
            (value, None)
        }
        Method::Psi => {
            let (p, q) = grid.quantile_bins(bins);
            (psi(&p, &q), None)
        }
        Method::JensenShannon => {
            let (p, q) = grid.quantile_bins(bins);
            (jensen_shannon(&p, &q), None)
        }
        Method::ChiSquare => return None,
    };
    // Values so extreme that moments or widths overflow (near ±f64::MAX) cannot be compared.
    if value.is_nan() {
        return None;
    }
    Some(Score {
        method,
        value,
        p_value,
    })
}

/// Compares two categorical sketches. `None` when a side is empty or the method does not apply.
pub fn compare_categorical(
    method: Method,
    reference: &CategoricalSketch,
    current: &CategoricalSketch,
) -> Option<Score> {
    if reference.count() == 0 || current.count() == 0 || !method.applies_to(false) {
        return None;
    }
    let (a, b) = common_cells(reference, current);
    let proportions =
        |v: &[u64], n: u64| -> Vec<f64> { v.iter().map(|c| *c as f64 / n as f64).collect() };
    let (p, q) = (
        proportions(&a, reference.count()),
        proportions(&b, current.count()),
    );
    let (value, p_value) = match method {
        Method::Psi => (psi(&p, &q), None),
        Method::JensenShannon => (jensen_shannon(&p, &q), None),
        Method::ChiSquare => {
            let (stat, p) = chi_square(&a, &b);
            (stat, Some(p))
        }
        Method::Ks | Method::Wasserstein => return None,
    };
    Some(Score {
        method,
        value,
        p_value,
    })
}

/// Two numeric sketches on one bucket grid.
struct Grid {
    cells: Vec<(f64, f64, u64, u64)>,
    na: f64,
    nb: f64,
}

impl Grid {
    fn new(a: &NumericSketch, b: &NumericSketch) -> Grid {
        let scale = a.scale().min(b.scale());
        let (ca, cb) = (a.at_scale(scale).cells(), b.at_scale(scale).cells());
        let mut cells = Vec::with_capacity(ca.len().max(cb.len()));
        let (mut i, mut j) = (0, 0);
        let pick = |c: &Cell| (c.lo, c.hi);
        while i < ca.len() || j < cb.len() {
            let order = match (ca.get(i), cb.get(j)) {
                (Some(x), Some(y)) => x.key.cmp(&y.key),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    let (lo, hi) = pick(&ca[i]);
                    cells.push((lo, hi, ca[i].count, 0));
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let (lo, hi) = pick(&cb[j]);
                    cells.push((lo, hi, 0, cb[j].count));
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (lo, hi) = pick(&ca[i]);
                    cells.push((lo, hi, ca[i].count, cb[j].count));
                    i += 1;
                    j += 1;
                }
            }
        }
        Grid {
            cells,
            na: a.count() as f64,
            nb: b.count() as f64,
        }
    }

    fn ks(&self) -> f64 {
        let (mut ca, mut cb, mut d) = (0u64, 0u64, 0f64);
        for (_, _, a, b) in &self.cells {
            ca += a;
            cb += b;
            d = d.max((ca as f64 / self.na - cb as f64 / self.nb).abs());
        }
        d
    }

    /// `∫|F_a − F_b| dx` with each side's mass uniform inside a bucket: the CDF gap is linear
    /// across a bucket and constant across the empty stretches between buckets.
    fn wasserstein(&self) -> f64 {
        let (mut ca, mut cb) = (0u64, 0u64);
        let mut total = 0.0;
        let mut prev_hi: Option<f64> = None;
        for (lo, hi, a, b) in &self.cells {
            let before = ca as f64 / self.na - cb as f64 / self.nb;
            if let Some(p) = prev_hi
                && before != 0.0
            {
                total += before.abs() * (lo - p).max(0.0);
            }
            ca += a;
            cb += b;
            let after = ca as f64 / self.na - cb as f64 / self.nb;
            let mean_gap = integral_abs_linear(before, after);
            // An unbounded bucket (values near f64::MAX) adds nothing where the CDFs agree.
            if mean_gap > 0.0 {
                total += (hi - lo) * mean_gap;
            }
            prev_hi = Some(*hi);
        }
        total
    }

    /// Proportions of both sides in up to `bins` bins cut at the reference's quantiles.
    fn quantile_bins(&self, bins: usize) -> (Vec<f64>, Vec<f64>) {
        let bins = bins.max(2);
        let mut edges: Vec<usize> = Vec::with_capacity(bins);
        let mut seen = 0u64;
        let mut next = 1;
        for (k, (_, _, a, _)) in self.cells.iter().enumerate() {
            seen += a;
            // Every quantile j/bins this cell reaches puts an edge at its upper boundary.
            let mut cut = false;
            while next < bins && seen as f64 >= next as f64 * self.na / bins as f64 {
                cut = true;
                next += 1;
            }
            if cut {
                edges.push(k);
            }
        }
        let mut p = vec![0.0; edges.len() + 1];
        let mut q = vec![0.0; edges.len() + 1];
        let mut bin = 0;
        for (k, (_, _, a, b)) in self.cells.iter().enumerate() {
            p[bin] += *a as f64 / self.na;
            q[bin] += *b as f64 / self.nb;
            if edges.get(bin) == Some(&k) {
                bin += 1;
            }
        }
        (p, q)
    }
}

/// `∫₀¹ |x + (y − x)t| dt`: the mean absolute value of a linear function between `x` and `y`.
fn integral_abs_linear(x: f64, y: f64) -> f64 {
    if x * y >= 0.0 {
        (x.abs() + y.abs()) / 2.0
    } else {
        (x * x + y * y) / (2.0 * (x.abs() + y.abs()))
    }
}

/// PSI over proportions, empty bins smoothed to [`PSI_EMPTY_BIN`].
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    reference
        .iter()
        .zip(current)
        .map(|(p, q)| {
            let (p, q) = (p.max(PSI_EMPTY_BIN), q.max(PSI_EMPTY_BIN));
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// Jensen-Shannon distance (square root of the divergence, natural log) between proportions.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let kl_to_mid = |x: f64, m: f64| if x > 0.0 { x * (x / m).ln() } else { 0.0 };
    let divergence: f64 = p
        .iter()
        .zip(q)
        .map(|(x, y)| {
            let m = (x + y) / 2.0;
            kl_to_mid(*x, m) + kl_to_mid(*y, m)
        })
        .sum::<f64>()
        / 2.0;
    divergence.max(0.0).sqrt()
}

/// χ² test of homogeneity of two count vectors: (statistic, p-value). Categories empty on both
/// sides do not count towards the degrees of freedom.
pub fn chi_square(a: &[u64], b: &[u64]) -> (f64, f64) {
    let (na, nb) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    let n = na + nb;
    let mut stat = 0.0;
    let mut categories = 0;
    for (x, y) in a.iter().zip(b) {
        let total = (x + y) as f64;
        if total == 0.0 {
            continue;
        }
        categories += 1;
        let (ea, eb) = (na * total / n, nb * total / n);
        stat += (*x as f64 - ea).powi(2) / ea + (*y as f64 - eb).powi(2) / eb;
    }
    if categories < 2 {
        return (0.0, 1.0);
    }
    let p = ChiSquared::new(f64::from(categories - 1))
        .map(|d| d.sf(stat))
        .unwrap_or(f64::NAN);
    (stat, p)
}

/// The asymptotic two-sided p-value of a two-sample KS statistic `d` on samples of `n` and `m`:
/// Kolmogorov's distribution `Q(λ) = 2 Σ (−1)^(k−1) e^(−2k²λ²)` at
/// `λ = (√ne + 0.12 + 0.11/√ne)·d`, `ne = nm/(n+m)` (Stephens, 1970).
pub fn ks_p_value(d: f64, n: u64, m: u64) -> f64 {
    let ne = (n as f64 * m as f64) / (n + m) as f64;
    let root = ne.sqrt();
    let lambda = (root + 0.12 + 0.11 / root) * d;
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for k in 1..=100 {
        let k = f64::from(k);
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += sign * term;
        if term < 1e-12 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}
