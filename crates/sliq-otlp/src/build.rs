//! From window counts to `ExportMetricsServiceRequest`.

use std::collections::HashMap;

use crate::names;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use sliq_core::drift::{DriftPoint, Features};
use sliq_core::{
    BudgetStatus, Evaluator, ExpHistogram, LatencySeries, Outcome, SeriesId, WindowCounts,
};

/// How `sliq.slo.events` points count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    /// Running totals since the series' first window (its start time never moves).
    Cumulative,
    /// Each point holds one window's counts; start is the window's start.
    Delta,
}

/// Processing counters for `sliq.records`, totals since the lineage started (see
/// [`MetricsBuilder::new`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCounts {
    pub accepted: u64,
    pub dead_lettered: u64,
    pub late: u64,
    /// Records read again after another instance had already read them (a partition taken over
    /// after a crash): counted in their windows, possibly a second time. The error bar.
    pub replayed: u64,
}

/// The cumulative state of one `sliq.slo.events` series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesTotal {
    /// Fixed for the life of the series.
    pub start_ns: u64,
    /// The newest point's time: a later point is never stamped earlier.
    pub time_ns: u64,
    pub good: u64,
    pub bad: u64,
}

/// The cumulative state of one latency histogram series.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyTotal {
    pub start_ns: u64,
    pub time_ns: u64,
    pub histogram: ExpHistogram,
}

/// What one checkpoint exports.
#[derive(Debug, Clone, Copy)]
pub struct ExportBatch<'a> {
    /// Windows closed (or drained) since the last export, oldest first.
    pub windows: &'a [WindowCounts],
    /// Budget state of every series, computed at `budget_time_ms`.
    pub budgets: &'a [(SeriesId, BudgetStatus)],
    /// Event time of the budgets: the end of the newest window exported so far.
    pub budget_time_ms: i64,
    pub records: RecordCounts,
    /// Per SLO of the evaluator: events folded into `other` by the cardinality limit, so far.
    pub folded: &'a [u64],
    /// Names the latency series of the windows' histograms.
    pub latency_series: Option<&'a LatencySeries>,
    /// Wall-clock time of the export (for `sliq.records`).
    pub now_ms: i64,
    /// Drift verdicts of the closed windows, and the features that name their series.
    pub drift: Option<(&'a [DriftPoint], &'a Features)>,
    /// Bytes each stage holds in memory, by stage name (`archive`, `export`), for
    /// `sliq.buffered.bytes`: how close each is to its bound.
    pub buffered: &'a [(&'a str, u64)],
}

/// Builds export requests and keeps the cumulative state of every series.
#[derive(Debug)]
pub struct MetricsBuilder {
    resource: Resource,
    temporality: Temporality,
    started_ms: i64,
    started_ns: u64,
    /// How far before its first window a new series starts: differs between lineages, so a
    /// series begun again after lost state has a new start time and backends see the reset.
    lineage_shift_ns: u64,
    totals: HashMap<SeriesId, SeriesTotal>,
    latency_totals: HashMap<u32, LatencyTotal>,
}

const NANOS_PER_MS: u64 = 1_000_000;

fn ms_to_ns(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(NANOS_PER_MS)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

impl MetricsBuilder {
    /// `instance_id` becomes `service.instance.id`: a series must have one writer, and partitions
    /// move between instances. The ledger has none: it is the one writer of its group's series,
    /// whichever process runs it. `started_ms` is when this lineage of cumulative series began:
    /// the process start, or the start a checkpoint recorded when the process resumes one.
    pub fn new(instance_id: Option<&str>, temporality: Temporality, started_ms: i64) -> Self {
        let mut attributes = vec![kv("service.name", "sliq")];
        attributes.extend(instance_id.map(|id| kv("service.instance.id", id)));
        attributes.push(kv("service.version", env!("CARGO_PKG_VERSION")));
        MetricsBuilder {
            resource: Resource {
                attributes,
                ..Resource::default()
            },
            temporality,
            started_ms,
            started_ns: ms_to_ns(started_ms),
            lineage_shift_ns: (1 + started_ms.rem_euclid(999)) as u64 * NANOS_PER_MS,
            totals: HashMap::new(),
            latency_totals: HashMap::new(),
        }
    }

    /// When this lineage began (what a checkpoint keeps to continue it).
    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    /// The cumulative state of every `sliq.slo.events` series, for a checkpoint.
    pub fn totals(&self) -> impl Iterator<Item = (SeriesId, &SeriesTotal)> {
        self.totals.iter().map(|(id, t)| (*id, t))
    }

    /// The cumulative state of every latency series, for a checkpoint.
    pub fn latency_totals(&self) -> impl Iterator<Item = (u32, &LatencyTotal)> {
        self.latency_totals.iter().map(|(id, t)| (*id, t))
    }

    /// Continues a series from a checkpoint.
    pub fn restore_total(&mut self, series: SeriesId, total: SeriesTotal) {
        self.totals.insert(series, total);
    }

    /// Continues a latency series from a checkpoint.
    pub fn restore_latency_total(&mut self, series: u32, total: LatencyTotal) {
        self.latency_totals.insert(series, total);
    }

    fn series_start_ns(&self, window_start_ms: i64) -> u64 {
        ms_to_ns(window_start_ms).saturating_sub(self.lineage_shift_ns)
    }

    fn aggregation(&self) -> AggregationTemporality {
        match self.temporality {
            Temporality::Cumulative => AggregationTemporality::Cumulative,
            Temporality::Delta => AggregationTemporality::Delta,
        }
    }

    /// Histogram points of the windows' latencies, named after the GenAI conventions.
    fn latency_points(
        &mut self,
        windows: &[WindowCounts],
        series: &LatencySeries,
    ) -> Vec<ExponentialHistogramDataPoint> {
        let mut points = Vec::new();
        for w in windows {
            for (id, h) in &w.latencies {
                let end_ns = ms_to_ns(w.end_ms);
                let (start_ns, time_ns, hist) = match self.temporality {
                    Temporality::Cumulative => {
                        let start = self.series_start_ns(w.start_ms);
                        let total = self.latency_totals.entry(*id).or_insert(LatencyTotal {
                            start_ns: start,
                            time_ns: end_ns,
                            histogram: ExpHistogram::new(h.scale),
                        });
                        total.histogram.merge(h);
                        total.time_ns = total.time_ns.max(end_ns);
                        (total.start_ns, total.time_ns, total.histogram.clone())
                    }
                    Temporality::Delta => (ms_to_ns(w.start_ms), end_ns, h.clone()),
                };
                let key = series.key(*id);
                let mut attributes = vec![
                    kv("service", &key.service),
                    kv("gen_ai.operation.name", &key.operation),
                    kv("gen_ai.request.model", &key.model),
                ];
                if let Some(e) = &key.error_type {
                    attributes.push(kv("error.type", e));
                }
                points.push(ExponentialHistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start_ns,
                    time_unix_nano: time_ns,
                    count: hist.count,
                    sum: Some(hist.sum),
                    scale: hist.scale,
                    zero_count: hist.zero_count,
                    positive: Some(Buckets {
                        offset: hist.positive.offset,
                        bucket_counts: hist.positive.counts,
                    }),
                    min: hist.min.is_finite().then_some(hist.min),
                    max: hist.max.is_finite().then_some(hist.max),
                    ..ExponentialHistogramDataPoint::default()
                });
            }
        }
        points
    }

    /// One request holding the points of a checkpoint.
    pub fn build(
        &mut self,
        batch: &ExportBatch<'_>,
        evaluator: &Evaluator,
    ) -> ExportMetricsServiceRequest {
        let ExportBatch {
            windows,
            budgets,
            budget_time_ms,
            records,
            folded,
            latency_series,
            now_ms,
            drift,
            buffered,
        } = *batch;
        let mut event_points = Vec::new();
        for w in windows {
            let end_ns = ms_to_ns(w.end_ms);
            for c in &w.counts {
                let start = self.series_start_ns(w.start_ms);
                let total = self.totals.entry(c.series).or_insert(SeriesTotal {
                    start_ns: start,
                    time_ns: end_ns,
                    good: 0,
                    bad: 0,
                });
                total.good = total.good.saturating_add(c.good);
                total.bad = total.bad.saturating_add(c.bad);
                // A window handed out again (reopened) is stamped no earlier than the series'
                // newest point: a cumulative series never goes back in time.
                total.time_ns = total.time_ns.max(end_ns);
                let (start, time, values) = match self.temporality {
                    Temporality::Cumulative => {
                        (total.start_ns, total.time_ns, [total.good, total.bad])
                    }
                    Temporality::Delta => (ms_to_ns(w.start_ms), end_ns, [c.good, c.bad]),
                };
                for (outcome, value) in [(Outcome::Good, values[0]), (Outcome::Bad, values[1])] {
                    event_points.push(point(
                        series_attributes(evaluator, c.series, outcome),
                        start,
                        time,
                        value,
                    ));
                }
            }
        }
        let now_ns = ms_to_ns(now_ms);
        let record_points = [
            ("accepted", records.accepted),
            ("dead_lettered", records.dead_lettered),
            ("late", records.late),
            ("replayed", records.replayed),
        ]
        .into_iter()
        .map(|(outcome, n)| {
            point(
                vec![kv("sliq.record.outcome", outcome)],
                self.started_ns,
                now_ns,
                n,
            )
        })
        .collect();

        let mut metrics = Vec::with_capacity(2);
        if !event_points.is_empty() {
            metrics.push(sum(
                names::SLO_EVENTS,
                "Events judged by each SLO, by outcome, counted in the event-time window they belong to.",
                names::SLO_EVENTS_UNIT,
                event_points,
                self.aggregation(),
            ));
        }
        if let Some(series) = latency_series {
            let points = self.latency_points(windows, series);
            if !points.is_empty() {
                metrics.push(Metric {
                    name: "gen_ai.client.operation.duration".into(),
                    description: "GenAI operation duration, from the records' latency_ms, in the event-time window the request belongs to.".into(),
                    unit: "s".into(),
                    data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: points,
                        aggregation_temporality: self.aggregation() as i32,
                    })),
                    ..Metric::default()
                });
            }
        }
        if !budgets.is_empty() {
            metrics.extend(budget_gauges(budgets, evaluator, ms_to_ns(budget_time_ms)));
        }
        if let Some((points, features)) = drift
            && !points.is_empty()
        {
            metrics.extend(drift_gauges(points, features));
        }
        let mut folded_by_name: Vec<(&str, u64)> = Vec::new();
        for (slo, n) in evaluator.slos().iter().zip(folded).filter(|(_, n)| **n > 0) {
            match folded_by_name
                .iter_mut()
                .find(|(name, _)| *name == slo.name)
            {
                Some(entry) => entry.1 += n,
                None => folded_by_name.push((&slo.name, *n)),
            }
        }
        if !folded_by_name.is_empty() {
            let points = folded_by_name
                .iter()
                .map(|(name, n)| {
                    point(vec![kv(names::SLO_NAME, name)], self.started_ns, now_ns, *n)
                })
                .collect();
            metrics.push(sum(
                "sliq.slo.series_folded",
                "Events counted into the `other` series because the SLO reached its max_series.",
                "{event}",
                points,
                AggregationTemporality::Cumulative,
            ));
        }
        if !buffered.is_empty() {
            let points = buffered
                .iter()
                .map(|(stage, bytes)| {
                    gauge_point(
                        vec![kv("sliq.stage", stage)],
                        now_ns,
                        number_data_point::Value::AsInt(i64::try_from(*bytes).unwrap_or(i64::MAX)),
                    )
                })
                .collect();
            metrics.push(gauge(
                "sliq.buffered.bytes",
                "Bytes a stage holds in memory (archive: the most since the previous point), \
                 bounded by archive.max_buffered_bytes and export.otlp.max_backlog_bytes.",
                "By",
                points,
            ));
        }
        metrics.push(sum(
            "sliq.records",
            "Records read by this instance: accepted, dead-lettered, or too late for their window.",
            "{record}",
            record_points,
            AggregationTemporality::Cumulative,
        ));
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "sliq".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..InstrumentationScope::default()
                    }),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }
}

fn series_attributes(evaluator: &Evaluator, series: SeriesId, outcome: Outcome) -> Vec<KeyValue> {
    let mut attrs = slo_attributes(evaluator, series);
    attrs.insert(1, kv(names::SLO_OUTCOME, outcome.as_str()));
    attrs
}

/// `sliq.slo.name` and the series' dimensions.
fn slo_attributes(evaluator: &Evaluator, series: SeriesId) -> Vec<KeyValue> {
    let key = evaluator.series(series);
    let slo = evaluator.slo_of(series);
    let mut attrs = Vec::with_capacity(3 + key.values.len());
    attrs.push(kv(names::SLO_NAME, &slo.name));
    for (d, v) in slo.dimensions.iter().zip(key.values.iter()) {
        attrs.push(kv(d.attribute(), v));
    }
    attrs
}

fn point(attributes: Vec<KeyValue>, start_ns: u64, time_ns: u64, value: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start_ns,
        time_unix_nano: time_ns,
        value: Some(number_data_point::Value::AsInt(
            i64::try_from(value).unwrap_or(i64::MAX),
        )),
        ..NumberDataPoint::default()
    }
}

/// A window length as people write it: `5m`, `1h`, `3d`.
pub fn window_label(ms: i64) -> String {
    const MINUTE: i64 = 60_000;
    match ms {
        _ if ms % (24 * 60 * MINUTE) == 0 => format!("{}d", ms / (24 * 60 * MINUTE)),
        _ if ms % (60 * MINUTE) == 0 => format!("{}h", ms / (60 * MINUTE)),
        _ if ms % MINUTE == 0 => format!("{}m", ms / MINUTE),
        _ => format!("{}s", ms / 1000),
    }
}

fn gauge_point(
    attributes: Vec<KeyValue>,
    time_ns: u64,
    value: number_data_point::Value,
) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: time_ns,
        value: Some(value),
        ..NumberDataPoint::default()
    }
}

fn gauge(name: &str, description: &str, unit: &str, data_points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(metric::Data::Gauge(Gauge { data_points })),
        ..Metric::default()
    }
}

/// The drift gauges of closed windows, at each window's end: the method's value, the p-value of
/// tests, and whether the feature drifted (0/1 against its threshold).
fn drift_gauges(points: &[DriftPoint], features: &Features) -> Vec<Metric> {
    use number_data_point::Value::{AsDouble, AsInt};
    let (mut values, mut p_values, mut detected) = (Vec::new(), Vec::new(), Vec::new());
    for p in points {
        let key = features.key(p.series);
        let mut attrs = vec![
            kv(names::FEATURE, &features.features()[key.feature].name),
            kv("sliq.drift.method", p.method.as_str()),
        ];
        for (d, v) in features.dimensions().iter().zip(&key.values) {
            attrs.push(kv(d.attribute(), v));
        }
        let time_ns = ms_to_ns(p.end_ms);
        values.push(gauge_point(attrs.clone(), time_ns, AsDouble(p.value)));
        if let Some(pv) = p.p_value {
            p_values.push(gauge_point(attrs.clone(), time_ns, AsDouble(pv)));
        }
        detected.push(gauge_point(attrs, time_ns, AsInt(i64::from(p.detected))));
    }
    let mut metrics = vec![gauge(
        "sliq.drift.value",
        "Drift of a feature in an event-time window against its reference: the method's statistic or distance.",
        "1",
        values,
    )];
    if !p_values.is_empty() {
        metrics.push(gauge(
            "sliq.drift.p_value",
            "P-value of the drift test (KS, chi-square) of a feature in an event-time window.",
            "1",
            p_values,
        ));
    }
    metrics.push(gauge(
        names::DRIFT_DETECTED,
        "1 when the feature drifted in the window (value above, or p-value below, its threshold), else 0.",
        names::RATIO_UNIT,
        detected,
    ));
    metrics
}

/// The budget gauges: objective, SLA, budget remaining, burn rates, alert conditions, policy
/// state. They carry the SLO's owner and runbook beside its name and dimensions (the counters do
/// not, so editing them never starts new counter series).
fn budget_gauges(
    budgets: &[(SeriesId, BudgetStatus)],
    evaluator: &Evaluator,
    time_ns: u64,
) -> Vec<Metric> {
    use number_data_point::Value::{AsDouble, AsInt};
    let (mut objective, mut sla, mut remaining, mut burn, mut alert, mut policy) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (series, status) in budgets {
        let slo = evaluator.slo_of(*series);
        let mut attrs = slo_attributes(evaluator, *series);
        let contract = &slo.contract;
        for (key, value) in [
            (names::SLO_OWNER, &contract.owner),
            (names::SLO_RUNBOOK, &contract.runbook),
        ] {
            if let Some(value) = value {
                attrs.push(kv(key, value));
            }
        }
        let with = |extra: &[(&str, &str)]| {
            let mut a = attrs.clone();
            a.extend(extra.iter().map(|(k, v)| kv(k, v)));
            a
        };
        objective.push(gauge_point(attrs.clone(), time_ns, AsDouble(slo.objective)));
        if let Some(contract_objective) = contract.sla {
            sla.push(gauge_point(
                attrs.clone(),
                time_ns,
                AsDouble(contract_objective),
            ));
        }
        remaining.push(gauge_point(
            attrs.clone(),
            time_ns,
            AsDouble(status.budget_remaining),
        ));
        for (window, rate) in &status.burn_rates {
            if let Some(rate) = rate {
                burn.push(gauge_point(
                    with(&[(names::WINDOW, &window_label(*window))]),
                    time_ns,
                    AsDouble(*rate),
                ));
            }
        }
        for (rule, fires) in &status.alerts {
            let windows = format!(
                "{}/{}",
                window_label(rule.long_ms),
                window_label(rule.short_ms)
            );
            let a = with(&[
                ("sliq.severity", rule.severity.as_str()),
                (names::WINDOW, &windows),
            ]);
            alert.push(gauge_point(a, time_ns, AsInt(i64::from(*fires))));
        }
        if let Some(state) = slo.budget.policy.get(status.policy_state) {
            let a = with(&[("sliq.policy.state", &state.name)]);
            policy.push(gauge_point(a, time_ns, AsInt(status.policy_state as i64)));
        }
    }
    let mut metrics = vec![gauge(
        names::SLO_OBJECTIVE,
        "The SLO's target good ratio.",
        names::RATIO_UNIT,
        objective,
    )];
    if !sla.is_empty() {
        metrics.push(gauge(
            names::SLO_SLA,
            "The SLO's contract objective (SLA): what is promised outside, at most the objective.",
            names::RATIO_UNIT,
            sla,
        ));
    }
    metrics.extend([
        gauge(
            "sliq.slo.budget.remaining",
            "Share of the error budget left over the SLO's period: 1 untouched, 0 spent, negative overspent.",
            "1",
            remaining,
        ),
        gauge(
            "sliq.slo.burn_rate",
            "Bad ratio over the window divided by the error budget (1 spends the budget exactly over the period).",
            "1",
            burn,
        ),
        gauge(
            "sliq.slo.alert",
            "1 while the multi-window burn-rate condition of sliq.severity over sliq.window (long/short) holds.",
            "1",
            alert,
        ),
        gauge(
            "sliq.slo.policy_state",
            "Error-budget policy state, by index (0 = least severe); sliq.policy.state names it.",
            "1",
            policy,
        ),
    ]);
    metrics
}

fn sum(
    name: &str,
    description: &str,
    unit: &str,
    data_points: Vec<NumberDataPoint>,
    temporality: AggregationTemporality,
) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: temporality as i32,
            is_monotonic: true,
        })),
        ..Metric::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sliq_core::{Decoder, Dimension, FieldMap, SeriesCount, Sli, Slo, SloContract};

    fn evaluator_with_two_series() -> Evaluator {
        evaluator_with_two_series_under(SloContract::default())
    }

    fn evaluator_with_two_series_under(contract: SloContract) -> Evaluator {
        let mut slo = Slo::new(
            "avail",
            Sli::Availability {
                exclude_error_types: vec![],
            },
            0.99,
            vec![Dimension::Service, Dimension::Label("tier".into())],
        );
        slo.contract = contract;
        let mut ev = Evaluator::new(vec![slo]);
        let d = Decoder::new(FieldMap::default(), 1 << 20);
        let mut out = Vec::new();
        for rec in [
            &br#"{"id": "1", "ts": 0, "service": "chat", "labels": {"tier": "gold"}}"#[..],
            br#"{"id": "2", "ts": 0, "service": "code"}"#,
        ] {
            let rec = d.parse(rec).unwrap();
            ev.evaluate(&d.decode(&rec).unwrap(), &mut out);
        }
        ev
    }

    fn window(start_s: i64, counts: &[(u32, u64, u64)]) -> WindowCounts {
        WindowCounts {
            start_ms: start_s * 1000,
            end_ms: (start_s + 60) * 1000,
            counts: counts
                .iter()
                .map(|&(s, good, bad)| SeriesCount {
                    series: SeriesId(s),
                    good,
                    bad,
                })
                .collect(),
            latencies: Vec::new(),
            deferred: Vec::new(),
            closed: true,
            drift: Vec::new(),
            holds: Vec::new(),
        }
    }

    fn batch(windows: &[WindowCounts], records: RecordCounts, now_ms: i64) -> ExportBatch<'_> {
        ExportBatch {
            windows,
            budgets: &[],
            budget_time_ms: 0,
            records,
            folded: &[],
            latency_series: None,
            now_ms,
            drift: None,
            buffered: &[],
        }
    }

    type Flat = (Vec<(String, String)>, u64, u64, i64);

    fn flat(req: &ExportMetricsServiceRequest, name: &str) -> Vec<Flat> {
        let m = req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap();
        let Some(metric::Data::Sum(s)) = &m.data else {
            panic!("not a sum")
        };
        s.data_points
            .iter()
            .map(|p| {
                let attrs = p
                    .attributes
                    .iter()
                    .map(|kv| {
                        let Some(any_value::Value::StringValue(v)) =
                            kv.value.as_ref().and_then(|v| v.value.clone())
                        else {
                            panic!("string attribute")
                        };
                        (kv.key.clone(), v)
                    })
                    .collect();
                let Some(number_data_point::Value::AsInt(v)) = p.value else {
                    panic!("int")
                };
                (attrs, p.start_time_unix_nano, p.time_unix_nano, v)
            })
            .collect()
    }

    fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cumulative_points_keep_the_first_start_and_run_totals() {
        let ev = evaluator_with_two_series();
        let mut b = MetricsBuilder::new(Some("i-1"), Temporality::Cumulative, 5_000);
        let first = b.build(
            &batch(&[window(60, &[(0, 3, 1)])], RecordCounts::default(), 9_000),
            &ev,
        );
        let records = RecordCounts {
            accepted: 11,
            dead_lettered: 2,
            late: 1,
            replayed: 4,
        };
        let second = b.build(
            &batch(&[window(120, &[(0, 2, 0), (1, 5, 5)])], records, 200_000),
            &ev,
        );
        let s = 1_000_000_000;
        // Lineage started at 5 000 ms: series start 1 + 5000 mod 999 = 6 ms before their window.
        let shift = 6_000_000;
        let gold = |o| {
            attrs(&[
                ("sliq.slo.name", "avail"),
                ("sliq.slo.outcome", o),
                ("service", "chat"),
                ("tier", "gold"),
            ])
        };
        assert_eq!(
            flat(&first, "sliq.slo.events"),
            vec![
                (gold("good"), 60 * s - shift, 120 * s, 3),
                (gold("bad"), 60 * s - shift, 120 * s, 1)
            ]
        );
        let code = |o| {
            attrs(&[
                ("sliq.slo.name", "avail"),
                ("sliq.slo.outcome", o),
                ("service", "code"),
                ("tier", "unknown"),
            ])
        };
        assert_eq!(
            flat(&second, "sliq.slo.events"),
            vec![
                (gold("good"), 60 * s - shift, 180 * s, 5),
                (gold("bad"), 60 * s - shift, 180 * s, 1),
                (code("good"), 120 * s - shift, 180 * s, 5),
                (code("bad"), 120 * s - shift, 180 * s, 5),
            ]
        );
        assert_eq!(
            flat(&second, "sliq.records"),
            vec![
                (
                    attrs(&[("sliq.record.outcome", "accepted")]),
                    5 * s,
                    200 * s,
                    11
                ),
                (
                    attrs(&[("sliq.record.outcome", "dead_lettered")]),
                    5 * s,
                    200 * s,
                    2
                ),
                (attrs(&[("sliq.record.outcome", "late")]), 5 * s, 200 * s, 1),
                (
                    attrs(&[("sliq.record.outcome", "replayed")]),
                    5 * s,
                    200 * s,
                    4
                ),
            ]
        );
        // A window handed out again after a newer one (reopened: a partition taken over) adds to
        // the totals and is stamped at the newest point's time, never earlier.
        let third = b.build(&batch(&[window(60, &[(0, 1, 1)])], records, 201_000), &ev);
        assert_eq!(
            flat(&third, "sliq.slo.events"),
            vec![
                (gold("good"), 60 * s - shift, 180 * s, 6),
                (gold("bad"), 60 * s - shift, 180 * s, 2)
            ]
        );
        // A builder resumed from a checkpoint continues the same series; one of another lineage
        // starts them at another time, so a backend sees the reset.
        let mut resumed = MetricsBuilder::new(Some("i-1"), Temporality::Cumulative, b.started_ms());
        for (id, total) in b.totals() {
            resumed.restore_total(id, *total);
        }
        let fourth = resumed.build(&batch(&[window(180, &[(0, 1, 0)])], records, 300_000), &ev);
        assert_eq!(
            flat(&fourth, "sliq.slo.events")[0],
            (gold("good"), 60 * s - shift, 240 * s, 7)
        );
        let mut fresh = MetricsBuilder::new(Some("i-1"), Temporality::Cumulative, 7_000);
        let other = fresh.build(&batch(&[window(60, &[(0, 3, 1)])], records, 300_000), &ev);
        assert_ne!(flat(&other, "sliq.slo.events")[0].1, 60 * s - shift);
        let res = first.resource_metrics[0].resource.as_ref().unwrap();
        assert!(
            res.attributes
                .iter()
                .any(|a| a.key == "service.instance.id")
        );
    }

    #[test]
    fn delta_points_hold_one_window_each() {
        let ev = evaluator_with_two_series();
        let mut b = MetricsBuilder::new(Some("i"), Temporality::Delta, 0);
        b.build(
            &batch(&[window(0, &[(0, 3, 1)])], RecordCounts::default(), 1),
            &ev,
        );
        let req = b.build(
            &batch(&[window(60, &[(0, 2, 0)])], RecordCounts::default(), 1),
            &ev,
        );
        let points = flat(&req, "sliq.slo.events");
        let s = 1_000_000_000;
        assert_eq!(
            points.iter().map(|p| (p.1, p.2, p.3)).collect::<Vec<_>>(),
            vec![(60 * s, 120 * s, 2), (60 * s, 120 * s, 0)]
        );
    }

    #[test]
    fn official_json_encoding_writes_int64_as_strings() {
        let ev = evaluator_with_two_series();
        let mut b = MetricsBuilder::new(Some("i"), Temporality::Cumulative, 0);
        let req = b.build(
            &batch(&[window(60, &[(0, 3, 1)])], RecordCounts::default(), 1),
            &ev,
        );
        let json = serde_json::to_value(&req).unwrap();
        let p =
            &json["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"][0];
        assert_eq!(p["timeUnixNano"], "120000000000");
        assert_eq!(p["asInt"], "3");
    }

    #[test]
    fn budget_gauges_name_windows_severities_and_policy_states() {
        use sliq_core::{AlertRule, BudgetStatus};
        let ev = evaluator_with_two_series_under(SloContract {
            sla: Some(0.98),
            owner: Some("team-chat".into()),
            runbook: Some("https://runbooks.example.com/avail".into()),
            escalation: vec!["on-call".into()],
        });
        let rules = AlertRule::workbook();
        let status = BudgetStatus {
            good: 990,
            bad: 10,
            budget_remaining: 0.25,
            burn_rates: vec![(300_000, Some(2.5)), (3_600_000, None)],
            alerts: vec![(rules[0], true), (rules[3], false)],
            policy_state: 1,
        };
        let budgets = [(SeriesId(0), status)];
        let batch = ExportBatch {
            windows: &[],
            budgets: &budgets,
            budget_time_ms: 120_000,
            records: RecordCounts::default(),
            folded: &[4],
            latency_series: None,
            now_ms: 1,
            drift: None,
            buffered: &[("archive", 4096), ("export", 512)],
        };
        let req = MetricsBuilder::new(Some("i"), Temporality::Cumulative, 0).build(&batch, &ev);
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        type GaugePoint = (Vec<(String, String)>, u64, f64);
        let gauge = |name: &str| -> Vec<GaugePoint> {
            let m = metrics
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("{name}"));
            let Some(metric::Data::Gauge(g)) = &m.data else {
                panic!("{name} is a gauge")
            };
            g.data_points
                .iter()
                .map(|p| {
                    let attrs = p
                        .attributes
                        .iter()
                        .map(|kv| match kv.value.as_ref().and_then(|v| v.value.clone()) {
                            Some(any_value::Value::StringValue(v)) => (kv.key.clone(), v),
                            _ => panic!("string attribute"),
                        })
                        .collect();
                    let v = match p.value {
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        None => f64::NAN,
                    };
                    (attrs, p.time_unix_nano, v)
                })
                .collect()
        };
        let base = [
            ("sliq.slo.name", "avail"),
            ("service", "chat"),
            ("tier", "gold"),
            ("sliq.slo.owner", "team-chat"),
            ("sliq.slo.runbook", "https://runbooks.example.com/avail"),
        ];
        let with = |extra: &[(&str, &str)]| attrs(&[&base[..], extra].concat());
        let t = 120_000_000_000;
        assert_eq!(
            gauge("sliq.buffered.bytes"),
            vec![
                (attrs(&[("sliq.stage", "archive")]), 1_000_000, 4096.0),
                (attrs(&[("sliq.stage", "export")]), 1_000_000, 512.0)
            ]
        );
        assert_eq!(gauge("sliq.slo.objective"), vec![(with(&[]), t, 0.99)]);
        assert_eq!(gauge("sliq.slo.sla"), vec![(with(&[]), t, 0.98)]);
        assert_eq!(
            gauge("sliq.slo.budget.remaining"),
            vec![(with(&[]), t, 0.25)]
        );
        // No events in the 1 h window: no burn-rate point for it.
        assert_eq!(
            gauge("sliq.slo.burn_rate"),
            vec![(with(&[("sliq.window", "5m")]), t, 2.5)]
        );
        assert_eq!(
            gauge("sliq.slo.alert"),
            vec![
                (
                    with(&[("sliq.severity", "page"), ("sliq.window", "1h/5m")]),
                    t,
                    1.0
                ),
                (
                    with(&[("sliq.severity", "ticket"), ("sliq.window", "3d/6h")]),
                    t,
                    0.0
                ),
            ]
        );
        assert_eq!(
            gauge("sliq.slo.policy_state"),
            vec![(with(&[("sliq.policy.state", "warn")]), t, 1.0)]
        );
        assert_eq!(
            flat(&req, "sliq.slo.series_folded"),
            vec![(attrs(&[("sliq.slo.name", "avail")]), 0, 1_000_000, 4)]
        );
    }
}
