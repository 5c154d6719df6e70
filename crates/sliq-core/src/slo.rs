//! SLOs and their series: an SLI, an objective, and the dimensions its counters are split by.
//!
//! Each distinct (SLO, dimension values) pair is a series, interned once to a dense [`SeriesId`] so the
//! windows count into plain integers and never hash strings per event after the first sighting.

use std::collections::HashMap;

use crate::budget::BudgetConfig;
use crate::decode::Leaf;
use crate::event::Event;
use crate::intern::{KeyTable, write_key};
use crate::sli::{Sli, Verdict};
use crate::window::{SeriesCount, WindowCounts};

/// What an SLO's counters are split by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dimension {
    Service,
    Model,
    Operation,
    /// A key of the event's `labels` (e.g. `tier`, `tenant`).
    Label(String),
}

impl Dimension {
    /// Parses the spec spelling: `service`, `model`, `operation` or `labels.<key>`.
    pub fn parse(s: &str) -> Option<Dimension> {
        match s {
            "service" => Some(Dimension::Service),
            "model" => Some(Dimension::Model),
            "operation" => Some(Dimension::Operation),
            _ => s
                .strip_prefix("labels.")
                .filter(|k| !k.is_empty())
                .map(|k| Dimension::Label(k.to_owned())),
        }
    }

    /// The metric attribute key: `service`, `model`, `operation`, or the label's key.
    pub fn attribute(&self) -> &str {
        match self {
            Dimension::Service => "service",
            Dimension::Model => "model",
            Dimension::Operation => "operation",
            Dimension::Label(k) => k,
        }
    }

    /// The event's value for this dimension; [`UNKNOWN`] when it has none.
    pub fn value<'a>(&self, event: &Event<'a>) -> &'a str {
        let v = match self {
            Dimension::Service => Some(event.service),
            Dimension::Model => event.model,
            Dimension::Operation => Some(event.operation),
            Dimension::Label(k) => event.label(k),
        };
        v.unwrap_or(UNKNOWN)
    }
}

/// The dimension value of events that lack the field.
pub const UNKNOWN: &str = "unknown";

/// The dimension value of series folded by the cardinality limit.
pub const OTHER: &str = "other";

/// Restricts an SLO to events whose dimension value is (or, negated, is not) one of `values`:
/// how a tiered SLO gives each tier its own objective and threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub dimension: Dimension,
    pub values: Vec<String>,
    pub negate: bool,
}

impl Filter {
    fn admits(&self, event: &Event<'_>) -> bool {
        let v = self.dimension.value(event);
        self.values.iter().any(|x| x == v) != self.negate
    }
}

/// One SLO as the core evaluates it.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub name: String,
    pub sli: Sli,
    /// Target good ratio, in (0, 1).
    pub objective: f64,
    pub dimensions: Vec<Dimension>,
    /// Only events this admits are judged.
    pub filter: Option<Filter>,
    /// Series beyond this many fold into one whose dimension values are all [`OTHER`].
    pub max_series: usize,
    /// Indices of SLOs whose bad verdict on any record of the same request makes this SLO's
    /// verdicts on that request's records bad (cascading budgets: a failing retriever spends the
    /// answer service's budget too).
    pub depends_on: Vec<usize>,
    /// The JSON Pointer whose value identifies a request across records (default: the id field).
    pub correlate_by: String,
    /// Period, burn-rate windows, alert rules and policy of this SLO's budget.
    pub budget: BudgetConfig,
    /// What the SLO promises outside and who answers for it.
    pub contract: SloContract,
}

/// An SLO's terms for people: the contract objective (SLA) and who answers for it. No arithmetic
/// reads it; it travels to the rules' labels and annotations, the reports and the exported
/// attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SloContract {
    /// The objective promised to customers, at most the SLO's own objective.
    pub sla: Option<f64>,
    /// The team or rota that answers for the SLO.
    pub owner: Option<String>,
    /// Where on-call reads what to do (an http(s) URL).
    pub runbook: Option<String>,
    /// Who to call next, in order.
    pub escalation: Vec<String>,
}

impl Slo {
    /// An SLO with no filter, the default series limit and no dependencies.
    pub fn new(name: &str, sli: Sli, objective: f64, dimensions: Vec<Dimension>) -> Slo {
        Slo {
            name: name.to_owned(),
            sli,
            objective,
            dimensions,
            filter: None,
            max_series: DEFAULT_MAX_SERIES,
            depends_on: Vec::new(),
            correlate_by: "/id".to_owned(),
            budget: BudgetConfig::default(),
            contract: SloContract::default(),
        }
    }
}

/// The default per-SLO series limit.
pub const DEFAULT_MAX_SERIES: usize = 1000;

/// Dense index of one (SLO, dimension values) series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub u32);

/// A series' identity, resolved for export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesKey {
    /// Index into the evaluator's SLO list.
    pub slo: usize,
    /// Dimension values, in the SLO's dimension order.
    pub values: Vec<Box<str>>,
}

/// A verdict of an SLO with dependencies whose request had no bad dependency yet when it was judged:
/// it waits in its window until the window closes, when [`Evaluator::resolve`] makes it bad if a
/// dependency's bad record for the same request arrived meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    pub series: SeriesId,
    pub verdict: Verdict,
    /// Index of the correlation pointer, and the request's key under it.
    pub pointer: usize,
    pub key: Box<str>,
}

/// A request that a dependency judged bad, as a checkpoint keeps it: by correlation pointer and
/// SLO names, since indices belong to one spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub pointer: String,
    pub key: Box<str>,
    /// Event time of its newest bad record.
    pub ts_ms: i64,
    pub slos: Vec<String>,
}

/// Evaluates every SLO on each event and interns the series it lands in.
#[derive(Debug)]
pub struct Evaluator {
    slos: Vec<Slo>,
    /// SLO indices with dependencies before their dependants.
    cascade_order: Vec<usize>,
    ids: KeyTable<SeriesId>,
    keys: Vec<SeriesKey>,
    series_per_slo: Vec<usize>,
    folded_per_slo: Vec<u64>,
    verdicts: Vec<Option<Verdict>>,
    scratch: Vec<u8>,
    /// Distinct correlation pointers of SLOs with dependencies.
    pointers: Vec<String>,
    /// Per SLO: the index of its correlation pointer (meaningful for SLOs with dependencies).
    pointer_of: Vec<usize>,
    /// Per SLO: the pointers it must record its bad requests under (it is a dependency there).
    bad_pointers: Vec<Vec<usize>>,
    /// (pointer, request key) → event time of the newest bad record and the SLOs it was bad for.
    bad_requests: HashMap<(usize, Box<str>), (i64, Vec<usize>)>,
    deferred: Vec<Deferred>,
}

/// The request key of an event under a correlation pointer: a string, or a number's text.
fn correlation_key(event: &Event<'_>, pointer: &str) -> Option<Box<str>> {
    match event.value_at(pointer)? {
        Leaf::String(s) => Some(s.into()),
        Leaf::Number(n) => Some(n.to_string().into()),
        Leaf::Bool(_) => None,
    }
}

impl Evaluator {
    /// `slos`' dependencies must not form a cycle (the spec check refuses one); a cycle's edges
    /// would be applied in declaration order.
    pub fn new(slos: Vec<Slo>) -> Self {
        let n = slos.len();
        let mut cascade_order = Vec::with_capacity(n);
        let mut state = vec![0u8; n]; // 0 new, 1 visiting, 2 done
        fn visit(i: usize, slos: &[Slo], state: &mut [u8], order: &mut Vec<usize>) {
            if state[i] != 0 {
                return;
            }
            state[i] = 1;
            for &d in &slos[i].depends_on {
                if d < slos.len() {
                    visit(d, slos, state, order);
                }
            }
            state[i] = 2;
            order.push(i);
        }
        for i in 0..n {
            visit(i, &slos, &mut state, &mut cascade_order);
        }
        let mut pointers: Vec<String> = Vec::new();
        let mut bad_pointers = vec![Vec::new(); n];
        let mut pointer_of = vec![0; n];
        for (i, slo) in slos
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.depends_on.is_empty())
        {
            let p = match pointers.iter().position(|p| *p == slo.correlate_by) {
                Some(p) => p,
                None => {
                    pointers.push(slo.correlate_by.clone());
                    pointers.len() - 1
                }
            };
            pointer_of[i] = p;
            for &d in &slo.depends_on {
                if d < n && !bad_pointers[d].contains(&p) {
                    bad_pointers[d].push(p);
                }
            }
        }
        Evaluator {
            pointers,
            pointer_of,
            bad_pointers,
            bad_requests: HashMap::new(),
            deferred: Vec::new(),
            cascade_order,
            ids: KeyTable::default(),
            keys: Vec::new(),
            series_per_slo: vec![0; n],
            folded_per_slo: vec![0; n],
            verdicts: vec![None; n],
            scratch: Vec::new(),
            slos,
        }
    }

    pub fn slos(&self) -> &[Slo] {
        &self.slos
    }

    /// Judges `event` against every SLO, pushing `(series, verdict)` for each SLO that judged it.
    /// Allocates only the first time a series is seen.
    pub fn evaluate(&mut self, event: &Event<'_>, out: &mut Vec<(SeriesId, Verdict)>) {
        for (slo, verdict) in self.slos.iter().zip(self.verdicts.iter_mut()) {
            *verdict = match &slo.filter {
                Some(f) if !f.admits(event) => None,
                _ => slo.sli.evaluate(event),
            };
        }
        // Bad dependency verdicts are remembered by request, in cascade order so a dependant
        // turned bad is itself remembered for its own dependants.
        self.deferred.clear();
        let mut deferred_slos: Vec<(usize, usize, Box<str>, Verdict)> = Vec::new();
        for &i in &self.cascade_order {
            let slo = &self.slos[i];
            if !slo.depends_on.is_empty()
                && let Some(verdict) = self.verdicts[i]
            {
                let p = self.pointer_of[i];
                if let Some(key) = correlation_key(event, &self.pointers[p]) {
                    let known_bad = self
                        .bad_requests
                        .get(&(p, key.clone()))
                        .is_some_and(|(_, bad)| slo.depends_on.iter().any(|d| bad.contains(d)));
                    if known_bad {
                        self.verdicts[i] = Some(Verdict::BAD);
                    } else if !verdict.is_bad() {
                        // Judged now; may still turn bad at window close.
                        deferred_slos.push((i, p, key, verdict));
                        self.verdicts[i] = None;
                    }
                }
            }
            if self.verdicts[i].is_some_and(Verdict::is_bad) {
                for &p in &self.bad_pointers[i] {
                    if let Some(key) = correlation_key(event, &self.pointers[p]) {
                        let entry = self
                            .bad_requests
                            .entry((p, key))
                            .or_insert((event.ts_ms, Vec::new()));
                        entry.0 = entry.0.max(event.ts_ms);
                        if !entry.1.contains(&i) {
                            entry.1.push(i);
                        }
                    }
                }
            }
        }
        for (i, pointer, key, verdict) in deferred_slos {
            let series = self.series_id(i, event);
            self.deferred.push(Deferred {
                series,
                verdict,
                pointer,
                key,
            });
        }
        for slo_index in 0..self.slos.len() {
            if let Some(verdict) = self.verdicts[slo_index] {
                let id = self.series_id(slo_index, event);
                out.push((id, verdict));
            }
        }
    }

    fn series_id(&mut self, slo_index: usize, event: &Event<'_>) -> SeriesId {
        let slo = &self.slos[slo_index];
        write_key(
            &mut self.scratch,
            slo_index,
            slo.dimensions.iter().map(|d| d.value(event)),
        );
        if let Some(id) = self.ids.get(self.scratch.as_slice()) {
            return *id;
        }
        if self.series_per_slo[slo_index] < slo.max_series {
            let values = slo
                .dimensions
                .iter()
                .map(|d| Box::from(d.value(event)))
                .collect();
            return self.insert_series(slo_index, values);
        }
        self.folded_per_slo[slo_index] += 1;
        write_key(
            &mut self.scratch,
            slo_index,
            slo.dimensions.iter().map(|_| OTHER),
        );
        if let Some(id) = self.ids.get(self.scratch.as_slice()) {
            return *id;
        }
        let values = slo.dimensions.iter().map(|_| Box::from(OTHER)).collect();
        self.insert_series(slo_index, values)
    }

    /// Registers a new series under the key in `scratch`.
    fn insert_series(&mut self, slo_index: usize, values: Vec<Box<str>>) -> SeriesId {
        let id = SeriesId(self.keys.len() as u32);
        self.keys.push(SeriesKey {
            slo: slo_index,
            values,
        });
        self.series_per_slo[slo_index] += 1;
        self.ids.insert(Box::from(self.scratch.as_slice()), id);
        id
    }

    /// The series of SLO `name` with these (attribute, value) dimensions, as persisted; interned
    /// when new. Among SLOs sharing a name (tiers), the one whose filter admits the values is
    /// chosen. `None` when no SLO of the current spec has that name and those dimensions.
    pub fn intern(&mut self, name: &str, dimensions: &[(&str, &str)]) -> Option<SeriesId> {
        let values: Vec<&str> = dimensions.iter().map(|(_, v)| *v).collect();
        let slo_index = self.slos.iter().position(|slo| {
            slo.name == name
                && slo.dimensions.len() == values.len()
                && slo
                    .dimensions
                    .iter()
                    .zip(dimensions)
                    .all(|(d, (k, _))| d.attribute() == *k)
                && slo.filter.as_ref().is_none_or(|f| {
                    slo.dimensions
                        .iter()
                        .position(|d| *d == f.dimension)
                        .is_some_and(|i| f.values.iter().any(|v| v == values[i]) != f.negate)
                })
        })?;
        write_key(&mut self.scratch, slo_index, values.iter().copied());
        if let Some(id) = self.ids.get(self.scratch.as_slice()) {
            return Some(*id);
        }
        Some(self.insert_series(slo_index, values.iter().map(|v| Box::from(*v)).collect()))
    }

    /// Verdicts of the last [`Evaluator::evaluate`] call that wait for their window's close.
    pub fn deferred(&self) -> &[Deferred] {
        &self.deferred
    }

    /// Settles a closed (or drained) window's deferred verdicts into its counts: bad when a
    /// dependency was bad for the same request meanwhile, as judged otherwise.
    pub fn resolve(&mut self, window: &mut WindowCounts) {
        for d in std::mem::take(&mut window.deferred) {
            let slo_index = self.series(d.series).slo;
            let slo = &self.slos[slo_index];
            let bad = self
                .bad_requests
                .get(&(d.pointer, d.key.clone()))
                .is_some_and(|(_, bad)| slo.depends_on.iter().any(|x| bad.contains(x)));
            if bad {
                // Now known bad: its own dependants see it from here on.
                for &p in &self.bad_pointers[slo_index] {
                    if p == d.pointer {
                        let entry = self
                            .bad_requests
                            .entry((p, d.key.clone()))
                            .or_insert((window.start_ms, Vec::new()));
                        if !entry.1.contains(&slo_index) {
                            entry.1.push(slo_index);
                        }
                    }
                }
            }
            let (good, bad) = if bad {
                (0, d.verdict.good.saturating_add(d.verdict.bad))
            } else {
                (d.verdict.good, d.verdict.bad)
            };
            match window.counts.iter_mut().find(|c| c.series == d.series) {
                Some(c) => {
                    c.good = c.good.saturating_add(good);
                    c.bad = c.bad.saturating_add(bad);
                }
                None => window.counts.push(SeriesCount {
                    series: d.series,
                    good,
                    bad,
                }),
            }
        }
        window.counts.sort_by_key(|c| c.series);
    }

    /// Forgets bad requests last seen before `before_ms` (event time): their dependants' windows
    /// have all closed.
    pub fn forget_requests_before(&mut self, before_ms: i64) {
        self.bad_requests.retain(|_, (ts, _)| *ts >= before_ms);
    }

    /// The requests remembered as bad for a dependency, for a checkpoint.
    pub fn bad_requests(&self) -> Vec<BadRequest> {
        self.bad_requests
            .iter()
            .map(|((pointer, key), (ts_ms, slos))| BadRequest {
                pointer: self.pointers[*pointer].clone(),
                key: key.clone(),
                ts_ms: *ts_ms,
                slos: slos.iter().map(|i| self.slos[*i].name.clone()).collect(),
            })
            .collect()
    }

    /// Hands over every remembered bad request and forgets them here: a reader ships them to the
    /// ledger with its partials (the ledger resolves the deferred verdicts), and keeps none, so
    /// its memory does not grow with traffic.
    pub fn take_bad_requests(&mut self) -> Vec<BadRequest> {
        let taken = self.bad_requests();
        self.bad_requests.clear();
        taken
    }

    /// Remembers a bad request from a checkpoint; SLOs or pointers the spec no longer has are
    /// dropped. Returns whether anything of it was kept.
    pub fn restore_bad_request(&mut self, request: &BadRequest) -> bool {
        let Some(pointer) = self.pointers.iter().position(|p| *p == request.pointer) else {
            return false;
        };
        let slos: Vec<usize> = request
            .slos
            .iter()
            .flat_map(|name| {
                self.slos
                    .iter()
                    .enumerate()
                    .filter(move |(_, s)| s.name == *name)
                    .map(|(i, _)| i)
            })
            .collect();
        if slos.is_empty() {
            return false;
        }
        let entry = self
            .bad_requests
            .entry((pointer, request.key.clone()))
            .or_insert((request.ts_ms, Vec::new()));
        entry.0 = entry.0.max(request.ts_ms);
        for i in slos {
            if !entry.1.contains(&i) {
                entry.1.push(i);
            }
        }
        true
    }

    /// Events of an SLO counted into its `other` series because of the cardinality limit.
    pub fn folded_events(&self, slo: usize) -> u64 {
        self.folded_per_slo[slo]
    }

    /// The identity of a series this evaluator handed out.
    pub fn series(&self, id: SeriesId) -> &SeriesKey {
        &self.keys[id.0 as usize]
    }

    /// The SLO a series belongs to.
    pub fn slo_of(&self, id: SeriesId) -> &Slo {
        &self.slos[self.series(id).slo]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, FieldMap};
    use serde_json::json;

    fn availability(name: &str, dims: &[&str]) -> Slo {
        Slo::new(
            name,
            Sli::Availability {
                exclude_error_types: vec![],
            },
            0.99,
            dims.iter().map(|d| Dimension::parse(d).unwrap()).collect(),
        )
    }

    #[test]
    fn dimensions_parse_and_name_attributes() {
        assert_eq!(
            Dimension::parse("labels.tier"),
            Some(Dimension::Label("tier".into()))
        );
        assert_eq!(Dimension::parse("labels."), None);
        assert_eq!(Dimension::parse("tenant"), None);
        assert_eq!(Dimension::parse("model").unwrap().attribute(), "model");
        assert_eq!(Dimension::Label("tier".into()).attribute(), "tier");
    }

    #[test]
    fn series_are_interned_per_slo_and_values() {
        let mut ev = Evaluator::new(vec![
            availability("a", &["service", "labels.tier"]),
            availability("b", &[]),
        ]);
        let d = Decoder::new(FieldMap::default(), 1 << 20);
        let recs = [
            json!({"id": "1", "ts": 0, "service": "chat", "labels": {"tier": "gold"}}),
            json!({"id": "2", "ts": 0, "service": "chat", "labels": {"tier": "gold"}, "status": "error"}),
            json!({"id": "3", "ts": 0, "service": "chat"}),
            // A value holding the separator must not collide with two values.
            json!({"id": "4", "ts": 0, "service": "chat\u{1f}1:x"}),
        ];
        let mut out = Vec::new();
        for r in &recs {
            decoded!(e = d, r);
            ev.evaluate(&e, &mut out);
        }
        let ids: Vec<u32> = out.iter().map(|(id, _)| id.0).collect();
        assert_eq!(ids, vec![0, 1, 0, 1, 2, 1, 3, 1]);
        assert_eq!(out[2].1, Verdict::BAD);
        let k = ev.series(SeriesId(2));
        assert_eq!(
            (k.slo, k.values.as_slice()),
            (0, &["chat".into(), "unknown".into()][..])
        );
        assert_eq!(ev.slo_of(SeriesId(1)).name, "b");
    }

    #[test]
    fn filters_give_each_tier_its_own_slo() {
        let tier = Dimension::Label("tier".into());
        let fast = |t: f64| Sli::Latency {
            measure: crate::LatencyMeasure::Total,
            threshold_ms: t,
        };
        let mut platinum = Slo::new("lat", fast(1000.0), 0.999, vec![tier.clone()]);
        platinum.filter = Some(Filter {
            dimension: tier.clone(),
            values: vec!["platinum".into()],
            negate: false,
        });
        let mut rest = Slo::new("lat", fast(5000.0), 0.99, vec![tier.clone()]);
        rest.filter = Some(Filter {
            dimension: tier,
            values: vec!["platinum".into()],
            negate: true,
        });
        let mut ev = Evaluator::new(vec![platinum, rest]);
        let d = Decoder::new(FieldMap::default(), 1 << 20);
        let mut out = Vec::new();
        let p = json!({"id": "1", "ts": 0, "service": "s", "labels": {"tier": "platinum"}, "latency_ms": 2000});
        let s = json!({"id": "2", "ts": 0, "service": "s", "labels": {"tier": "silver"}, "latency_ms": 2000});
        decoded!(e = d, p);
        ev.evaluate(&e, &mut out);
        decoded!(e = d, s);
        ev.evaluate(&e, &mut out);
        // 2 s is too slow for platinum (1 s) and fine for silver (5 s); each event judged once.
        assert_eq!(
            out,
            vec![(SeriesId(0), Verdict::BAD), (SeriesId(1), Verdict::GOOD)]
        );
        assert_eq!(ev.slo_of(SeriesId(1)).objective, 0.99);
    }

    #[test]
    fn series_beyond_the_limit_fold_into_other_and_are_counted() {
        let mut slo = availability("a", &["labels.tenant"]);
        slo.max_series = 2;
        let mut ev = Evaluator::new(vec![slo]);
        let d = Decoder::new(FieldMap::default(), 1 << 20);
        let mut out = Vec::new();
        for tenant in ["t1", "t2", "t3", "t4", "t1", "t3"] {
            let r = json!({"id": "1", "ts": 0, "service": "s", "labels": {"tenant": tenant}});
            decoded!(e = d, r);
            ev.evaluate(&e, &mut out);
        }
        let ids: Vec<u32> = out.iter().map(|(id, _)| id.0).collect();
        assert_eq!(ids, vec![0, 1, 2, 2, 0, 2]);
        assert_eq!(&*ev.series(SeriesId(2)).values[0], "other");
        assert_eq!(ev.folded_events(0), 3);
    }

    /// `answer` (availability) depends on `retrieval` (recall ≥ 0.5), correlated by
    /// `/request_id`; the dependant comes first, so the cascade order, not the declaration order,
    /// applies.
    fn answer_after_retrieval() -> Evaluator {
        let retrieval = Slo::new(
            "retrieval",
            Sli::Score {
                evaluator: "recall".into(),
                pass: crate::ScorePass::AtLeast(0.5),
                missing: crate::Missing::Skip,
            },
            0.99,
            vec![],
        );
        let mut answer = availability("answer", &[]);
        answer.depends_on = vec![1];
        answer.correlate_by = "/request_id".into();
        Evaluator::new(vec![answer, retrieval])
    }

    #[test]
    fn remembered_bad_requests_survive_a_restart() {
        let d = Decoder::new(FieldMap::default(), 1 << 20).reading(["/request_id"]);
        let mut before = answer_after_retrieval();
        let bad = json!({"id": "b1", "request_id": "q1", "ts": 2000, "service": "r", "evals": {"recall": 0.2}});
        decoded!(e = d, bad);
        before.evaluate(&e, &mut Vec::new());
        let stored = before.bad_requests();
        assert_eq!(
            stored,
            vec![BadRequest {
                pointer: "/request_id".into(),
                key: "q1".into(),
                ts_ms: 2000,
                slos: vec!["retrieval".into()],
            }]
        );
        // After the restart the dependant's record of q1 is bad at once, as it was before.
        let mut after = answer_after_retrieval();
        assert!(stored.iter().all(|r| after.restore_bad_request(r)));
        let answer = json!({"id": "a1", "request_id": "q1", "ts": 3000, "service": "a"});
        let mut out = Vec::new();
        decoded!(e = d, answer);
        after.evaluate(&e, &mut out);
        assert_eq!(
            out.iter().map(|(_, v)| (v.good, v.bad)).collect::<Vec<_>>(),
            vec![(0, 1)]
        );
        // A spec without the dependency keeps nothing of it.
        let mut other = Evaluator::new(vec![availability("answer", &[])]);
        assert!(!other.restore_bad_request(&stored[0]));
    }

    #[test]
    fn a_bad_dependency_spends_the_dependants_budget_across_records_of_a_request() {
        use crate::window::{WindowConfig, Windows};
        let mut ev = answer_after_retrieval();
        let mut windows = Windows::new(WindowConfig {
            size_ms: 60_000,
            allowed_lateness_ms: 0,
            max_out_of_orderness_ms: 0,
        });
        let d = Decoder::new(FieldMap::default(), 1 << 20).reading(["/request_id"]);
        let records = [
            // q1: the answer first (judged good, waits), then its retrieval, bad.
            json!({"id": "a1", "request_id": "q1", "ts": 1000, "service": "answer"}),
            json!({"id": "b1", "request_id": "q1", "ts": 2000, "service": "retriever", "evals": {"recall": 0.2}}),
            // q2: everything fine.
            json!({"id": "a2", "request_id": "q2", "ts": 3000, "service": "answer"}),
            json!({"id": "b2", "request_id": "q2", "ts": 4000, "service": "retriever", "evals": {"recall": 0.9}}),
            // q3: one record carrying both, bad retrieval.
            json!({"id": "c3", "request_id": "q3", "ts": 5000, "service": "answer", "evals": {"recall": 0.1}}),
            // No request id: no cascade, judged as it is.
            json!({"id": "x", "ts": 6000, "service": "answer"}),
        ];
        let mut immediate = Vec::new();
        for (offset, r) in records.iter().enumerate() {
            decoded!(e = d, r);
            let mut out = Vec::new();
            ev.evaluate(&e, &mut out);
            immediate.push((out.len(), ev.deferred().len()));
            windows.add(
                crate::SourceId(0),
                offset as i64,
                e.ts_ms,
                &out,
                ev.deferred(),
                None,
            );
        }
        // a1 waits; b1 is bad for both at once; a2, b2 wait for answer; c3 bad for both; x waits
        // (its key is missing, so it is counted as judged, immediately).
        assert_eq!(
            immediate,
            vec![(0, 1), (2, 0), (0, 1), (1, 1), (2, 0), (1, 0)]
        );
        let mut closed = windows.close_all();
        assert_eq!(closed.len(), 1);
        ev.resolve(&mut closed[0]);
        let by_slo: Vec<(String, u64, u64)> = closed[0]
            .counts
            .iter()
            .map(|c| (ev.slo_of(c.series).name.clone(), c.good, c.bad))
            .collect();
        // answer: a1 bad (resolved), b1 bad, a2 good, b2 good, c3 bad, x good.
        // retrieval: b1 bad, b2 good, c3 bad.
        assert_eq!(
            by_slo,
            vec![("answer".into(), 3, 3), ("retrieval".into(), 1, 2)]
        );
        assert!(closed[0].deferred.is_empty());
        // Old requests are forgotten once their windows closed.
        ev.forget_requests_before(10_000);
        assert!(ev.bad_requests.is_empty());
    }
}
