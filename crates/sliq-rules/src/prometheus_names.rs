//! How sliq's OTel names arrive in Prometheus, through an OpenTelemetry Collector's `prometheus`
//! or `prometheusremotewrite` exporter or Prometheus's own OTLP receiver (default translation,
//! `UnderscoreEscapingWithSuffixes`): the rules of the OTel–Prometheus compatibility
//! specification, as `prometheus/otlptranslator` applies them.
//!
//! - a metric name is cut at every character outside `[a-zA-Z0-9:]`, and the pieces joined by
//!   `_`; then the unit's Prometheus word is appended (`s` → `seconds`, `By` → `bytes`; none for
//!   `1` or an `{annotation}`) unless the name holds it already, `_total` for a monotonic sum, and
//!   `_ratio` for a gauge of unit `1`: `sliq.slo.events` → `sliq_slo_events_total`,
//!   `sliq.drift.detected` → `sliq_drift_detected_ratio`;
//! - an attribute key has every character outside `[a-zA-Z0-9_]` replaced by `_` (runs of `_`
//!   collapsed), and `key_` put before a leading digit: `sliq.slo.name` → `sliq_slo_name`;
//! - the resource's `service.instance.id` becomes the `instance` label and `service.name` the
//!   `job` label, so each sliq instance writes its own series.

/// What kind of OTel metric a name belongs to: the suffix depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonic sum: `_total`.
    Counter,
    /// A gauge: `_ratio` when its unit is `1`.
    Gauge,
}

/// The Prometheus name of an OTel metric.
pub fn metric_name(name: &str, unit: &str, kind: MetricKind) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(word) = unit_word(unit)
        && !tokens.contains(&word)
    {
        tokens.push(word);
    }
    let mut push_last = |suffix: &str| {
        tokens.retain(|t| t != suffix);
        tokens.push(suffix.to_owned());
    };
    match kind {
        MetricKind::Counter => push_last("total"),
        MetricKind::Gauge if unit == "1" => push_last("ratio"),
        MetricKind::Gauge => {}
    }
    let joined = tokens.join("_");
    if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{joined}")
    } else {
        joined
    }
}

/// The word a unit adds to a metric name, if any.
fn unit_word(unit: &str) -> Option<String> {
    let word = match unit {
        "" | "1" => return None,
        u if u.starts_with('{') => return None,
        "s" => "seconds",
        "ms" => "milliseconds",
        "By" => "bytes",
        "%" => "percent",
        other => other,
    };
    Some(word.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
}

/// The Prometheus label of an OTel attribute key.
pub fn label_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_compatibility_rules() {
        use MetricKind::{Counter, Gauge};
        // Examples worked by hand from the rules in the module's doc.
        for (name, unit, kind, prometheus) in [
            (
                "sliq.slo.events",
                "{event}",
                Counter,
                "sliq_slo_events_total",
            ),
            (
                "sliq.drift.detected",
                "1",
                Gauge,
                "sliq_drift_detected_ratio",
            ),
            ("sliq.slo.objective", "1", Gauge, "sliq_slo_objective_ratio"),
            ("sliq.buffered.bytes", "By", Gauge, "sliq_buffered_bytes"),
            (
                "sliq.stage.duration",
                "s",
                Gauge,
                "sliq_stage_duration_seconds",
            ),
            ("requests.total", "1", Counter, "requests_total"),
        ] {
            assert_eq!(metric_name(name, unit, kind), prometheus);
        }
        for (key, label) in [
            ("sliq.slo.name", "sliq_slo_name"),
            ("customer-tier", "customer_tier"),
            ("a..b", "a_b"),
            ("2fa", "key_2fa"),
        ] {
            assert_eq!(label_name(key), label);
        }
    }
}
