//! The `drift:` section: watched features, their reference, and how windows are judged.
//!
//! ```yaml
//! drift:
//!   dimensions: [service]
//!   reference: { baseline: baselines/chatbot.json }   # or { trailing: 7d } or { first_events: 5000 }
//!   min_events: 100
//!   features:
//!     - { name: prompt_tokens, pointer: /usage/prompt_tokens, type: numeric }
//!     - { name: finish_reason, pointer: /finish_reason, type: categorical, method: chi_square }
//! ```
//! A drift SLO is an ordinary SLO with `sli: { drift: {} }` and the same dimensions.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use sliq_core::drift::{
    BASELINE_FORMAT, Baseline, DriftConfig, DriftMonitor, Feature, FeatureKind, Features, Method,
    Reference, stored_format,
};

use crate::KeyRef;
use crate::values::{DimensionSpec, JsonPointer, Span};

/// Drift detection over the stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftSpec {
    /// What drift is judged per (the drift SLO's dimensions too).
    #[serde(default)]
    pub dimensions: Vec<DimensionSpec>,
    /// What each window is compared with: `baseline`, `trailing` or `first_events`.
    pub reference: ReferenceSpec,
    /// A window (or a reference) with fewer values of a feature is not judged on it.
    #[serde(default = "default_min_events")]
    pub min_events: u64,
    /// The values watched for drift, each read from the record by JSON Pointer.
    #[schemars(length(min = 1))]
    pub features: Vec<FeatureSpec>,
}

fn default_min_events() -> u64 {
    100
}

/// The reference distribution: exactly one of the three.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct ReferenceSpec {
    /// A baseline file made by `sliq baseline`.
    pub baseline: Option<PathBuf>,
    /// The span of event time before each window, e.g. `7d`.
    pub trailing: Option<Span>,
    /// The first N events this pipeline reads.
    pub first_events: Option<u64>,
}

/// One watched feature.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Names the feature in metrics (`sliq.drift.feature`) and in baselines; unique.
    pub name: String,
    /// Where the value is in the record, e.g. `/usage/prompt_tokens`.
    pub pointer: JsonPointer,
    /// `numeric` (a number) or `categorical` (text, compared by category).
    #[serde(rename = "type")]
    pub kind: FeatureKind,
    /// psi, ks, jensen_shannon, wasserstein (numeric) or chi_square (categorical); default by type
    /// and reference size.
    pub method: Option<Method>,
    /// Default: 0.05 (p-value) for tests, 0.1 for distances.
    pub threshold: Option<f64>,
    /// Bins for PSI and Jensen-Shannon on numbers.
    #[serde(default = "default_bins")]
    #[schemars(range(min = 2))]
    pub bins: usize,
}

fn default_bins() -> usize {
    10
}

fn at(path: String, needle: &str) -> KeyRef {
    KeyRef {
        path,
        needle: Some(needle.to_owned()),
    }
}

impl DriftSpec {
    /// Checks that need the whole section.
    pub(crate) fn check(&self) -> Result<(), (KeyRef, String)> {
        let r = &self.reference;
        let kinds = [
            r.baseline.is_some(),
            r.trailing.is_some(),
            r.first_events.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err((
                at("drift.reference".into(), "reference:"),
                "declare exactly one of baseline (a file from `sliq baseline`), trailing (e.g. 7d) \
                 or first_events (e.g. 5000)"
                    .into(),
            ));
        }
        if r.trailing.is_some_and(|t| t.millis() == 0) || r.first_events == Some(0) {
            return Err((
                at("drift.reference".into(), "reference:"),
                "the reference must cover some events: a positive span or count".into(),
            ));
        }
        if self.features.is_empty() {
            return Err((
                at("drift.features".into(), "features:"),
                "list at least one feature to watch".into(),
            ));
        }
        let mut names = BTreeSet::new();
        for (i, f) in self.features.iter().enumerate() {
            let key = |field: &str| at(format!("drift.features[{i}]{field}"), &f.name);
            if f.name.trim().is_empty() || !names.insert(f.name.as_str()) {
                return Err((
                    key(".name"),
                    format!("feature name {:?} is empty or used twice", f.name),
                ));
            }
            let numeric = f.kind == FeatureKind::Numeric;
            if let Some(m) = f.method
                && !m.applies_to(numeric)
            {
                let allowed = if numeric {
                    "psi, ks, jensen_shannon or wasserstein"
                } else {
                    "psi, jensen_shannon or chi_square"
                };
                return Err((
                    key(".method"),
                    format!(
                        "{} does not apply to a {} feature; use {allowed}",
                        m.as_str(),
                        if numeric { "numeric" } else { "categorical" }
                    ),
                ));
            }
            if f.threshold.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
                return Err((key(".threshold"), "a threshold is a positive number".into()));
            }
            if f.bins < 2 {
                return Err((key(".bins"), "use at least 2 bins (10 is usual)".into()));
            }
        }
        Ok(())
    }

    /// The reference as the user wrote it, for messages.
    pub fn reference_label(&self) -> String {
        match (&self.reference.baseline, self.reference.trailing) {
            (Some(path), _) => format!("baseline {}", path.display()),
            (None, Some(span)) => format!("trailing {span}"),
            (None, None) => format!(
                "first {} events",
                self.reference.first_events.unwrap_or_default()
            ),
        }
    }

    pub fn features(&self) -> Vec<Feature> {
        self.features
            .iter()
            .map(|f| Feature {
                name: f.name.clone(),
                pointer: f.pointer.0.clone(),
                kind: f.kind,
                method: f.method,
                threshold: f.threshold,
                bins: f.bins,
            })
            .collect()
    }

    pub fn dimensions(&self) -> Vec<sliq_core::Dimension> {
        self.dimensions.iter().map(|d| d.0.clone()).collect()
    }

    /// The monitor for this section: reads the baseline file if the reference is one. `slo`: the
    /// name of the spec's drift SLO, if any.
    pub fn monitor(&self, slo: Option<String>) -> Result<DriftMonitor, String> {
        let reference = match (&self.reference.baseline, self.reference.trailing) {
            (Some(path), _) => Reference::Baseline(self.read_baseline(path)?),
            (None, Some(span)) => Reference::Trailing {
                span_ms: span.millis(),
            },
            (None, None) => Reference::FirstEvents {
                events: self.reference.first_events.unwrap_or(1),
            },
        };
        Ok(DriftMonitor::new(
            Features::new(self.features(), self.dimensions()),
            DriftConfig {
                reference,
                min_events: self.min_events,
                slo,
            },
        ))
    }

    /// Reads a baseline and checks it holds every watched feature, with the same type.
    fn read_baseline(&self, path: &Path) -> Result<Baseline, String> {
        let hint =
            "make one with `sliq baseline --config <spec> --input <events.jsonl> --out <file>`";
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "drift.reference.baseline: cannot read {}: {e}; {hint}",
                path.display()
            )
        })?;
        if let Some(format) = stored_format(text.as_bytes()).filter(|f| f != BASELINE_FORMAT) {
            return Err(format!(
                "drift.reference.baseline: {} has format {format:?}, this sliq reads \
                 {BASELINE_FORMAT:?}; rebuild it with `sliq baseline`",
                path.display(),
            ));
        }
        let baseline: Baseline = serde_json::from_str(&text).map_err(|e| {
            format!(
                "drift.reference.baseline: {} is not a sliq baseline ({e}); {hint}",
                path.display()
            )
        })?;
        let dimensions: Vec<&str> = self.dimensions.iter().map(|d| d.0.attribute()).collect();
        if baseline.dimensions != dimensions {
            return Err(format!(
                "drift.reference.baseline: {} was made per {}, drift.dimensions is {}; \
                 rebuild it with `sliq baseline` from this spec",
                path.display(),
                dimension_list(&baseline.dimensions),
                dimension_list(&dimensions)
            ));
        }
        if let Some(name) = baseline.inconsistent_feature() {
            return Err(format!(
                "drift.reference.baseline: the sketches of feature {name:?} in {} are damaged \
                 (counts that do not add up, or a scale sliq never writes); rebuild it with \
                 `sliq baseline`",
                path.display()
            ));
        }
        for f in &self.features {
            match baseline.features.iter().find(|b| b.name == f.name) {
                Some(b) if b.kind == f.kind => {}
                Some(_) => {
                    return Err(format!(
                        "drift.reference.baseline: feature {:?} has another type in {}; rebuild \
                         the baseline with `sliq baseline`",
                        f.name,
                        path.display()
                    ));
                }
                None => {
                    return Err(format!(
                        "drift.reference.baseline: {} has no feature {:?}; rebuild it with \
                         `sliq baseline` after adding the feature",
                        path.display(),
                        f.name
                    ));
                }
            }
        }
        Ok(baseline)
    }
}

/// Dimensions as a person lists them: `service, model`, or `no dimension`.
fn dimension_list(dimensions: &[impl AsRef<str>]) -> String {
    if dimensions.is_empty() {
        return "no dimension".to_owned();
    }
    dimensions
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}
