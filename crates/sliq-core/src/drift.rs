//! Drift: how far each watched feature's distribution in a window moved from its reference.
//!
//! Per event, [`Features::extract`] reads every watched feature (by JSON Pointer) and interns its
//! (feature, dimension values) *drift series*; the windows add the value to that series' sketch in
//! the event's window. When a window closes, [`DriftMonitor::judge`] compares each sketch with the
//! series' reference, emits one [`DriftPoint`] per series, and turns "did any feature of these
//! dimension values drift" into one good or bad event of the drift SLO: drift gets an objective
//! and an error budget like every other SLI.
//!
//! The reference is one of: a [`Baseline`] file (made by `sliq baseline`, versioned, reviewable),
//! the trailing event-time span before each window (built from the closed windows' own sketches),
//! or the first N events this pipeline read.

mod categorical;
mod methods;
mod numeric;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decode::Leaf;

pub use categorical::{
    CategoricalSketch, DEFAULT_CAPACITY, DISPLAY_NAME_BYTES, DISPLAY_NAMES, MAX_HEAP_BYTES,
    OTHER_CATEGORY,
};
pub use methods::{
    Method, PSI_EMPTY_BIN, Score, chi_square, compare_categorical, compare_numeric, jensen_shannon,
    ks_p_value, psi,
};
pub use numeric::{DEFAULT_SCALE, MAX_BUCKETS, NumericSketch};

use crate::event::Event;
use crate::intern::{KeyTable, write_key};
use crate::slo::{Dimension, Evaluator};
use crate::window::{SeriesCount, WindowCounts, merge_at};

/// Whether a feature is a number or a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    Numeric,
    Categorical,
}

/// One watched feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub name: String,
    /// JSON Pointer into the record.
    pub pointer: String,
    pub kind: FeatureKind,
    /// `None`: [`Method::default_for`] the feature's type and reference size.
    pub method: Option<Method>,
    /// `None`: [`Method::default_threshold`].
    pub threshold: Option<f64>,
    /// Bins for PSI and Jensen-Shannon on numbers.
    pub bins: usize,
}

/// A sketch of either kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sketch {
    Numeric(NumericSketch),
    Categorical(CategoricalSketch),
}

impl Sketch {
    pub(crate) fn empty(kind: FeatureKind) -> Sketch {
        match kind {
            FeatureKind::Numeric => Sketch::Numeric(NumericSketch::default()),
            FeatureKind::Categorical => Sketch::Categorical(CategoricalSketch::default()),
        }
    }

    pub fn count(&self) -> u64 {
        match self {
            Sketch::Numeric(s) => s.count(),
            Sketch::Categorical(s) => s.count(),
        }
    }

    /// Adds one observation; one of the wrong kind is ignored.
    pub fn record(&mut self, value: &Observation<'_>) {
        match (self, value) {
            (Sketch::Numeric(s), Observation::Number(v)) => s.record(*v),
            (Sketch::Categorical(s), Observation::Category(c)) => s.record(c),
            _ => {}
        }
    }

    /// Adds a sketch of the same kind (one of the other kind is ignored).
    pub fn merge(&mut self, other: &Sketch) {
        match (self, other) {
            (Sketch::Numeric(a), Sketch::Numeric(b)) => a.merge(b),
            (Sketch::Categorical(a), Sketch::Categorical(b)) => a.merge(b),
            _ => {}
        }
    }

    /// Whether a sketch read from a file is one this build could have made.
    pub fn is_consistent(&self) -> bool {
        match self {
            Sketch::Numeric(s) => s.is_consistent(),
            Sketch::Categorical(s) => s.is_consistent(),
        }
    }

    /// Bytes held, approximately: what a window pays per drift series.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Sketch::Numeric(s) => s.heap_bytes(),
            Sketch::Categorical(s) => s.heap_bytes(),
        }
    }

    /// Compares this (current) sketch with a reference of the same kind.
    pub fn compare(&self, method: Method, reference: &Sketch, bins: usize) -> Option<Score> {
        match (reference, self) {
            (Sketch::Numeric(r), Sketch::Numeric(c)) => compare_numeric(method, r, c, bins),
            (Sketch::Categorical(r), Sketch::Categorical(c)) => compare_categorical(method, r, c),
            _ => None,
        }
    }
}

/// One feature value of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation<'a> {
    Number(f64),
    Category(Cow<'a, str>),
}

impl Observation<'_> {
    /// This value, owning its text.
    pub fn into_owned(self) -> Observation<'static> {
        match self {
            Observation::Number(x) => Observation::Number(x),
            Observation::Category(c) => Observation::Category(Cow::Owned(c.into_owned())),
        }
    }

    /// The kind of feature this value belongs to.
    pub fn kind(&self) -> FeatureKind {
        match self {
            Observation::Number(_) => FeatureKind::Numeric,
            Observation::Category(_) => FeatureKind::Categorical,
        }
    }
}

/// Empties an observation buffer and hands its allocation back with a fresh lifetime, so one
/// buffer serves every event without borrowing across them (an empty `Vec` collected in place keeps
/// its capacity).
pub fn recycle<'b>(mut buffer: Vec<(u32, Observation<'_>)>) -> Vec<(u32, Observation<'b>)> {
    buffer.clear();
    buffer
        .into_iter()
        .map(|(series, value)| (series, value.into_owned()))
        .collect()
}

/// Identity of a drift series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DriftKey {
    pub feature: usize,
    pub values: Vec<Box<str>>,
}

/// The watched features, their dimensions, and the interned drift series.
///
/// An event's dimension values are interned once (one hash lookup on a reused buffer); each
/// feature's series is then an index into a dense table, so tracking many features costs no
/// string work per feature.
#[derive(Debug)]
pub struct Features {
    features: Vec<Feature>,
    dimensions: Vec<Dimension>,
    /// Dimension values (length-prefixed, joined) → dense id.
    dims_ids: KeyTable<u32>,
    dims_values: Vec<Vec<Box<str>>>,
    /// `dims id × features + feature` → drift series, `u32::MAX` until first seen.
    series_of: Vec<u32>,
    keys: Vec<DriftKey>,
    scratch: Vec<u8>,
}

impl Features {
    /// The attribute names of the dimensions, in order: how points, baselines and saved
    /// references label dimension values.
    pub fn dimension_attributes(&self) -> impl Iterator<Item = &str> {
        self.dimensions.iter().map(Dimension::attribute)
    }

    pub fn new(features: Vec<Feature>, dimensions: Vec<Dimension>) -> Self {
        Features {
            features,
            dimensions,
            dims_ids: KeyTable::default(),
            dims_values: Vec::new(),
            series_of: Vec::new(),
            keys: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    pub fn dimensions(&self) -> &[Dimension] {
        &self.dimensions
    }

    pub fn key(&self, series: u32) -> &DriftKey {
        &self.keys[series as usize]
    }

    /// Appends each watched feature the event carries, with its drift series, to `out`. A numeric
    /// feature takes numbers only; a categorical one takes strings, booleans and numbers (as their
    /// JSON text). Absent values, and values of the wrong type, are skipped.
    pub fn extract<'a>(&mut self, event: &Event<'a>, out: &mut Vec<(u32, Observation<'a>)>) {
        let mut dims: Option<u32> = None;
        for f in 0..self.features.len() {
            let Some(value) = event.value_at(&self.features[f].pointer) else {
                continue;
            };
            let observation = match (self.features[f].kind, value) {
                (FeatureKind::Numeric, Leaf::Number(n)) => match n.as_f64() {
                    Some(x) if x.is_finite() => Observation::Number(x),
                    _ => continue,
                },
                (FeatureKind::Categorical, Leaf::String(s)) => {
                    Observation::Category(Cow::Borrowed(s))
                }
                // As JSON text, like the number or boolean's `serde_json::Value`.
                (FeatureKind::Categorical, Leaf::Bool(b)) => {
                    Observation::Category(Cow::Borrowed(if b { "true" } else { "false" }))
                }
                (FeatureKind::Categorical, Leaf::Number(n)) => {
                    Observation::Category(Cow::Owned(n.to_string()))
                }
                _ => continue,
            };
            let d = match dims {
                Some(d) => d,
                None => *dims.insert(self.dims_id(event)),
            };
            out.push((self.series(d, f), observation));
        }
    }

    fn dims_id(&mut self, event: &Event<'_>) -> u32 {
        write_key(
            &mut self.scratch,
            0,
            self.dimensions.iter().map(|d| d.value(event)),
        );
        if let Some(id) = self.dims_ids.get(self.scratch.as_slice()) {
            return *id;
        }
        let values = self
            .dimensions
            .iter()
            .map(|d| d.value(event).into())
            .collect();
        self.insert_dims(values)
    }

    /// Interns dimension values whose key is in `scratch`.
    fn insert_dims(&mut self, values: Vec<Box<str>>) -> u32 {
        let id = self.dims_values.len() as u32;
        self.dims_ids.insert(Box::from(self.scratch.as_slice()), id);
        self.dims_values.push(values);
        self.series_of
            .resize(self.series_of.len() + self.features.len(), u32::MAX);
        id
    }

    /// The series of a feature (by name) and dimension values, as persisted; `None` when the
    /// feature is no longer watched or the number of values does not match the dimensions.
    pub fn intern(&mut self, feature: &str, values: &[String]) -> Option<u32> {
        let f = self.features.iter().position(|x| x.name == feature)?;
        if values.len() != self.dimensions.len() {
            return None;
        }
        write_key(&mut self.scratch, 0, values.iter().map(String::as_str));
        let dims = match self.dims_ids.get(self.scratch.as_slice()) {
            Some(id) => *id,
            None => self.insert_dims(values.iter().map(|v| v.as_str().into()).collect()),
        };
        Some(self.series(dims, f))
    }

    fn series(&mut self, dims: u32, feature: usize) -> u32 {
        let slot = dims as usize * self.features.len() + feature;
        if self.series_of[slot] == u32::MAX {
            self.series_of[slot] = self.keys.len() as u32;
            self.keys.push(DriftKey {
                feature,
                values: self.dims_values[dims as usize].clone(),
            });
        }
        self.series_of[slot]
    }
}

/// Where a drift series' reference distribution comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    /// A baseline file's sketches.
    Baseline(Baseline),
    /// The closed windows of the `span_ms` of event time before each window, merged in steps of
    /// `span / TRAILING_STEPS` (whole windows); a step counts once it is complete.
    Trailing { span_ms: i64 },
    /// The first `events` events this pipeline read.
    FirstEvents { events: u64 },
}

/// The version tag of baseline files this build reads and writes.
pub const BASELINE_FORMAT: &str = "sliq-baseline/2";

/// The `format` tag of a stored baseline, drift reference or checkpoint, read on its own: a file
/// of another format (whose sketches this build may not parse) is then reported as that format,
/// with what to do, not as a damaged file.
pub fn stored_format(json: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Tagged {
        format: String,
    }
    serde_json::from_slice::<Tagged>(json)
        .ok()
        .map(|t| t.format)
}

/// A reviewable, versioned reference: per feature, a sketch over all events and one per dimension
/// values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub format: String,
    /// Where the events came from (a file, an archive and a time range), for the reviewer.
    pub source: String,
    /// Event-time range covered, milliseconds since the epoch.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// The dimension attributes of `series` entries.
    pub dimensions: Vec<String>,
    pub features: Vec<BaselineFeature>,
}

/// One feature in a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineFeature {
    pub name: String,
    pub pointer: String,
    pub kind: FeatureKind,
    /// Human-readable facts about `all` (count, mean, quantiles or top categories), so a review of
    /// the file shows what changed without decoding sketches.
    pub summary: BTreeMap<String, Value>,
    pub all: Sketch,
    pub series: Vec<BaselineSeries>,
}

/// One dimension-values entry of a baseline feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineSeries {
    pub values: Vec<String>,
    pub sketch: Sketch,
}

impl Baseline {
    /// The first feature holding a sketch this build could not have made (a hand edit, a
    /// damaged file), if any.
    pub fn inconsistent_feature(&self) -> Option<&str> {
        self.features
            .iter()
            .find(|f| !f.all.is_consistent() || f.series.iter().any(|s| !s.sketch.is_consistent()))
            .map(|f| f.name.as_str())
    }

    /// The reference of a feature for some dimension values: theirs when the baseline has it,
    /// else the feature's sketch over all events.
    fn lookup(&self, feature: &str, values: &[Box<str>]) -> Option<&Sketch> {
        let f = self.features.iter().find(|f| f.name == feature)?;
        let own = f.series.iter().find(|s| {
            s.values.len() == values.len() && s.values.iter().zip(values).all(|(a, b)| **a == **b)
        });
        Some(own.map_or(&f.all, |s| &s.sketch))
    }
}

/// Builds a [`Baseline`] from events (`sliq baseline`).
#[derive(Debug)]
pub struct BaselineBuilder {
    features: Features,
    sketches: Vec<Sketch>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

impl BaselineBuilder {
    pub fn new(features: Vec<Feature>, dimensions: Vec<Dimension>) -> Self {
        BaselineBuilder {
            features: Features::new(features, dimensions),
            sketches: Vec::new(),
            from_ms: None,
            to_ms: None,
        }
    }

    pub fn add(&mut self, event: &Event<'_>) {
        let mut out = Vec::new();
        self.features.extract(event, &mut out);
        for (series, value) in out {
            let kind = self.features.features[self.features.key(series).feature].kind;
            let i = series as usize;
            if self.sketches.len() <= i {
                self.sketches.resize_with(i + 1, || Sketch::empty(kind));
            }
            if !matches!(
                (&self.sketches[i], kind),
                (Sketch::Numeric(_), FeatureKind::Numeric)
                    | (Sketch::Categorical(_), FeatureKind::Categorical)
            ) {
                self.sketches[i] = Sketch::empty(kind);
            }
            self.sketches[i].record(&value);
        }
        self.from_ms = Some(self.from_ms.map_or(event.ts_ms, |t| t.min(event.ts_ms)));
        self.to_ms = Some(self.to_ms.map_or(event.ts_ms, |t| t.max(event.ts_ms)));
    }

    pub fn finish(self, source: String) -> Baseline {
        let dimensions = self
            .features
            .dimension_attributes()
            .map(str::to_owned)
            .collect();
        let features = self
            .features
            .features
            .iter()
            .enumerate()
            .map(|(f, feature)| {
                let mut all = Sketch::empty(feature.kind);
                let mut series = Vec::new();
                for (id, key) in self.features.keys.iter().enumerate() {
                    if key.feature != f {
                        continue;
                    }
                    let Some(sketch) = self.sketches.get(id) else {
                        continue;
                    };
                    all.merge(sketch);
                    series.push(BaselineSeries {
                        values: key.values.iter().map(|v| v.to_string()).collect(),
                        sketch: sketch.clone(),
                    });
                }
                series.sort_by(|a, b| a.values.cmp(&b.values));
                BaselineFeature {
                    name: feature.name.clone(),
                    pointer: feature.pointer.clone(),
                    kind: feature.kind,
                    summary: summary(&all),
                    all,
                    series,
                }
            })
            .collect();
        Baseline {
            format: BASELINE_FORMAT.to_owned(),
            source,
            from_ms: self.from_ms,
            to_ms: self.to_ms,
            dimensions,
            features,
        }
    }
}

fn summary(sketch: &Sketch) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    out.insert("count".to_owned(), Value::from(sketch.count()));
    match sketch {
        Sketch::Numeric(s) => {
            out.insert("mean".to_owned(), Value::from(s.mean()));
            out.insert("std_dev".to_owned(), Value::from(s.std_dev()));
            for (name, q) in [("p05", 0.05), ("p50", 0.5), ("p95", 0.95)] {
                if let Some(v) = s.quantile(q) {
                    out.insert(name.to_owned(), Value::from(v));
                }
            }
        }
        Sketch::Categorical(s) => {
            let top = s.named_counts();
            let total = s.count().max(1) as f64;
            let shares: serde_json::Map<String, Value> = top
                .iter()
                .take(10)
                .map(|(k, n)| ((*k).to_owned(), Value::from(*n as f64 / total)))
                .collect();
            out.insert("top_shares".to_owned(), Value::Object(shares));
        }
    }
    out
}

/// The verdict on one drift series in one closed window.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftPoint {
    pub series: u32,
    pub end_ms: i64,
    pub method: Method,
    pub value: f64,
    pub p_value: Option<f64>,
    /// The threshold it was judged against (a p-value for tests, a distance otherwise).
    pub threshold: f64,
    pub detected: bool,
    /// Values in the window, and in the reference it was compared with.
    pub current_count: u64,
    pub reference_count: u64,
}

/// How drift is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftConfig {
    pub reference: Reference,
    /// Windows (and references) with fewer values of a feature than this are not judged on it.
    pub min_events: u64,
    /// The name of the drift SLO in the evaluator (window-level verdicts), if one is declared.
    pub slo: Option<String>,
}

/// Closed windows' drift sketches merged per step of the trailing span, by drift series.
#[derive(Debug)]
struct TrailingStep {
    start_ms: i64,
    end_ms: i64,
    /// Starts of the windows merged in, so a window replayed after a restart counts once.
    windows: Vec<i64>,
    sketches: Vec<Option<Sketch>>,
}

/// A trailing reference is kept in at most this many steps (a 7-day span: hourly steps), so its
/// memory does not grow with the number of windows in the span.
pub const TRAILING_STEPS: i64 = 168;

/// The version tag of persisted drift references.
pub const REFERENCE_STATE_FORMAT: &str = "sliq-drift-reference/2";

/// A trailing or first-N reference as persisted across restarts, keyed by feature name and
/// dimension values (series ids are per process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceState {
    pub format: String,
    /// The dimension attributes of the sketches' `values`: a reference kept under other
    /// dimensions does not apply and is dropped on restore.
    pub dimensions: Vec<String>,
    /// Feature name → JSON Pointer when saved: a feature now read elsewhere starts afresh.
    pub pointers: BTreeMap<String, String>,
    /// First-N: how many events the reference has taken.
    pub first_seen: u64,
    pub first: Vec<KeyedSketch>,
    pub trailing: Vec<StoredStep>,
}

/// One drift series' sketch, keyed for persistence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyedSketch {
    pub feature: String,
    pub values: Vec<String>,
    pub sketch: Sketch,
}

/// One step of a trailing reference, keyed for persistence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredStep {
    pub start_ms: i64,
    pub end_ms: i64,
    pub windows: Vec<i64>,
    pub sketches: Vec<KeyedSketch>,
}

/// Compares the closed windows' sketches with their references.
#[derive(Debug)]
pub struct DriftMonitor {
    pub features: Features,
    config: DriftConfig,
    /// First-N mode: the reference being collected, and whether it is complete.
    first: Vec<Option<Sketch>>,
    first_seen: u64,
    /// Trailing mode: the sketches of closed windows, oldest first, by window start.
    trailing: VecDeque<TrailingStep>,
    /// The reference changed in a way worth persisting: a trailing step began, first-N completed.
    changed: bool,
}

impl DriftMonitor {
    pub fn new(features: Features, config: DriftConfig) -> Self {
        DriftMonitor {
            features,
            config,
            first: Vec::new(),
            first_seen: 0,
            trailing: VecDeque::new(),
            changed: false,
        }
    }

    /// The stream-built reference (trailing or first-N) for persistence; `None` for a baseline.
    pub fn reference_state(&self) -> Option<ReferenceState> {
        let keyed = |sketches: &[Option<Sketch>]| -> Vec<KeyedSketch> {
            sketches
                .iter()
                .enumerate()
                .filter_map(|(series, s)| {
                    let key = self.features.key(series as u32);
                    s.as_ref().map(|sketch| KeyedSketch {
                        feature: self.features.features[key.feature].name.clone(),
                        values: key.values.iter().map(|v| v.to_string()).collect(),
                        sketch: sketch.clone(),
                    })
                })
                .collect()
        };
        match self.config.reference {
            Reference::Baseline(_) => None,
            Reference::FirstEvents { .. } | Reference::Trailing { .. } => Some(ReferenceState {
                format: REFERENCE_STATE_FORMAT.to_owned(),
                dimensions: self
                    .features
                    .dimension_attributes()
                    .map(str::to_owned)
                    .collect(),
                pointers: self.pointers(),
                first_seen: self.first_seen,
                first: keyed(&self.first),
                trailing: self
                    .trailing
                    .iter()
                    .map(|step| StoredStep {
                        start_ms: step.start_ms,
                        end_ms: step.end_ms,
                        windows: step.windows.clone(),
                        sketches: keyed(&step.sketches),
                    })
                    .collect(),
            }),
        }
    }

    /// Restores a persisted reference. Sketches of features no longer watched, or of another
    /// type, are dropped; returns how many.
    pub fn restore(&mut self, state: &ReferenceState) -> usize {
        let mut dropped = 0;
        let same_dimensions = state
            .dimensions
            .iter()
            .map(String::as_str)
            .eq(self.features.dimension_attributes());
        let pointers = self.pointers();
        let mut place =
            |features: &mut Features, slots: &mut Vec<Option<Sketch>>, k: &KeyedSketch| {
                let same_pointer = pointers.get(&k.feature) == state.pointers.get(&k.feature);
                let series = (same_dimensions && same_pointer)
                    .then(|| features.intern(&k.feature, &k.values))
                    .flatten();
                let kind = series.map(|s| features.features[features.key(s).feature].kind);
                let fits = k.sketch.is_consistent()
                    && matches!(
                        (&k.sketch, kind),
                        (Sketch::Numeric(_), Some(FeatureKind::Numeric))
                            | (Sketch::Categorical(_), Some(FeatureKind::Categorical))
                    );
                match series {
                    Some(series) if fits => {
                        let i = series as usize;
                        if slots.len() <= i {
                            slots.resize(i + 1, None);
                        }
                        slots[i] = Some(k.sketch.clone());
                    }
                    _ => dropped += 1,
                }
            };
        self.first_seen = state.first_seen;
        self.first.clear();
        for k in &state.first {
            place(&mut self.features, &mut self.first, k);
        }
        self.trailing.clear();
        for step in &state.trailing {
            let mut sketches = Vec::new();
            for k in &step.sketches {
                place(&mut self.features, &mut sketches, k);
            }
            self.trailing.push_back(TrailingStep {
                start_ms: step.start_ms,
                end_ms: step.end_ms,
                windows: step.windows.clone(),
                sketches,
            });
        }
        dropped
    }

    fn pointers(&self) -> BTreeMap<String, String> {
        self.features
            .features
            .iter()
            .map(|f| (f.name.clone(), f.pointer.clone()))
            .collect()
    }

    /// Whether the reference changed enough to persist since the last call (a trailing step
    /// began, or the first-N reference completed); resets the flag.
    pub fn take_reference_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Reads the event's features into `out` (see [`Features::extract`]); in first-N mode the
    /// first N events also build the reference.
    pub fn observe<'a>(&mut self, event: &Event<'a>, out: &mut Vec<(u32, Observation<'a>)>) {
        out.clear();
        self.features.extract(event, out);
        if let Reference::FirstEvents { events } = self.config.reference
            && self.first_seen < events
        {
            self.first_seen += 1;
            self.changed |= self.first_seen == events;
            for (series, value) in out.iter() {
                let kind = self.kind_of(*series);
                let i = *series as usize;
                if self.first.len() <= i {
                    self.first.resize(i + 1, None);
                }
                self.first[i]
                    .get_or_insert_with(|| Sketch::empty(kind))
                    .record(value);
            }
        }
    }

    fn kind_of(&self, series: u32) -> FeatureKind {
        self.features.features[self.features.key(series).feature].kind
    }

    /// The reference of `series` for a window starting at `start_ms`.
    fn reference(&self, series: u32, start_ms: i64) -> Option<Cow<'_, Sketch>> {
        match &self.config.reference {
            Reference::Baseline(b) => {
                let key = self.features.key(series);
                let name = &self.features.features[key.feature].name;
                b.lookup(name, &key.values).map(Cow::Borrowed)
            }
            Reference::FirstEvents { events } => {
                if self.first_seen < *events {
                    return None;
                }
                self.first
                    .get(series as usize)
                    .and_then(Option::as_ref)
                    .map(Cow::Borrowed)
            }
            Reference::Trailing { span_ms } => {
                let mut merged: Option<Sketch> = None;
                for step in &self.trailing {
                    if step.end_ms > start_ms || step.start_ms < start_ms - span_ms {
                        continue;
                    }
                    if let Some(Some(s)) = step.sketches.get(series as usize) {
                        merged
                            .get_or_insert_with(|| Sketch::empty(self.kind_of(series)))
                            .merge(s);
                    }
                }
                merged.map(Cow::Owned)
            }
        }
    }

    /// Judges a closed window's sketches: returns one point per judged drift series and, when a
    /// drift SLO is declared, adds one good (no judged feature drifted) or bad event per dimension
    /// values to the window's counts.
    pub fn judge(
        &mut self,
        window: &mut WindowCounts,
        evaluator: &mut Evaluator,
    ) -> Vec<DriftPoint> {
        let mut points = Vec::new();
        // Dimension values → whether any judged feature drifted.
        let mut verdicts: BTreeMap<Vec<Box<str>>, bool> = BTreeMap::new();
        for (series, sketch) in &window.drift {
            let key = self.features.key(*series);
            let feature = &self.features.features[key.feature];
            if sketch.count() < self.config.min_events {
                continue;
            }
            let Some(reference) = self.reference(*series, window.start_ms) else {
                continue;
            };
            if reference.count() < self.config.min_events {
                continue;
            }
            let method = feature.method.unwrap_or_else(|| {
                Method::default_for(feature.kind == FeatureKind::Numeric, reference.count())
            });
            let threshold = feature.threshold.unwrap_or(method.default_threshold());
            let Some(score) = sketch.compare(method, &reference, feature.bins) else {
                continue;
            };
            let detected = score.drifted(threshold);
            *verdicts.entry(key.values.clone()).or_default() |= detected;
            points.push(DriftPoint {
                series: *series,
                end_ms: window.end_ms,
                method,
                value: score.value,
                p_value: score.p_value,
                threshold,
                detected,
                current_count: sketch.count(),
                reference_count: reference.count(),
            });
        }
        if let Some(slo) = &self.config.slo {
            let attributes: Vec<&str> = self.features.dimension_attributes().collect();
            for (values, drifted) in verdicts {
                let dims: Vec<(&str, &str)> = attributes
                    .iter()
                    .zip(&values)
                    .map(|(k, v)| (*k, &**v))
                    .collect();
                if let Some(id) = evaluator.intern(slo, &dims) {
                    window.counts.push(SeriesCount {
                        series: id,
                        good: u64::from(!drifted),
                        bad: u64::from(drifted),
                    });
                }
            }
        }
        if let Reference::Trailing { span_ms } = self.config.reference
            && window.closed
        {
            // Steps of span/168, whole windows each: a window joins the step holding its start.
            let size = (window.end_ms - window.start_ms).max(1);
            let step_ms = (span_ms / TRAILING_STEPS / size).max(1) * size;
            let step_start = window.start_ms.div_euclid(step_ms) * step_ms;
            // After a restart, windows may come again (their offsets were not yet committed) or
            // out of order: find the step by its start and merge each window once.
            let at = self.trailing.partition_point(|s| s.start_ms < step_start);
            if self
                .trailing
                .get(at)
                .is_none_or(|s| s.start_ms != step_start)
            {
                self.changed = true;
                self.trailing.insert(
                    at,
                    TrailingStep {
                        start_ms: step_start,
                        end_ms: step_start + step_ms,
                        windows: Vec::new(),
                        sketches: Vec::new(),
                    },
                );
            }
            let step = &mut self.trailing[at];
            if !step.windows.contains(&window.start_ms) {
                step.windows.push(window.start_ms);
                for (series, sketch) in std::mem::take(&mut window.drift) {
                    merge_at(&mut step.sketches, series as usize, sketch, Sketch::merge);
                }
            }
            let newest = self.trailing.back().map_or(step_start, |s| s.start_ms);
            while self
                .trailing
                .front()
                .is_some_and(|s| s.start_ms < newest - span_ms)
            {
                self.trailing.pop_front();
            }
        }
        points
    }
}
