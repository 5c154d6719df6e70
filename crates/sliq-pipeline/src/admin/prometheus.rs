//! The self-metrics as Prometheus scrapes them: what the pull reader collected, written by
//! prometheus-client's OpenMetrics text encoder, with names translated the way OTel's
//! Prometheus compatibility rules say (dots to underscores, the unit as a suffix, `{annotations}`
//! dropped, `_total` on counters).

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Gauge, Metric, MetricData, ResourceMetrics,
};
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// The content type of what [`render`] writes.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The collected metrics as OpenMetrics text.
pub(crate) fn render(collected: ResourceMetrics) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Collected(collected)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// One collection, encoded once per scrape.
#[derive(Debug)]
struct Collected(ResourceMetrics);

impl prometheus_client::collector::Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for metric in self.0.scope_metrics().flat_map(|s| s.metrics()) {
            encode_metric(metric, &mut encoder)?;
        }
        Ok(())
    }
}

/// The Prometheus name of an OTel name and unit: `sliq.stage.duration` in `s` →
/// (`sliq_stage_duration`, seconds); the encoder appends the unit and `_total`.
fn prometheus_name(name: &str, unit: &str) -> (String, Option<Unit>) {
    let unit = match unit {
        "s" => Some(Unit::Seconds),
        "By" => Some(Unit::Bytes),
        // `{record}` and the like are annotations: not part of the name.
        u if u.is_empty() || u.starts_with('{') => None,
        u => Some(Unit::Other(
            u.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        )),
    };
    let mut base = name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
    // `sliq.buffered.bytes` in By is `sliq_buffered_bytes`, not `sliq_buffered_bytes_bytes`.
    if let Some(u) = &unit
        && let Some(stripped) = base.strip_suffix(&format!("_{}", u.as_str()))
    {
        base = stripped.to_owned();
    }
    (base, unit)
}

fn labels<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> Vec<(String, String)> {
    attributes
        .map(|kv| {
            (
                kv.key
                    .as_str()
                    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_"),
                kv.value.as_str().into_owned(),
            )
        })
        .collect()
}

fn encode_metric(
    metric: &Metric,
    encoder: &mut DescriptorEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    let (name, unit) = prometheus_name(metric.name(), metric.unit());
    let help = metric.description();
    match metric.data() {
        AggregatedMetrics::U64(MetricData::Sum(sum)) if sum.is_monotonic() => {
            let mut family =
                encoder.encode_descriptor(&name, help, unit.as_ref(), MetricType::Counter)?;
            for point in sum.data_points() {
                let labels = labels(point.attributes());
                family
                    .encode_family(&labels)?
                    .encode_counter::<Vec<(String, String)>, u64, f64>(&point.value(), None)?;
            }
        }
        AggregatedMetrics::U64(MetricData::Gauge(gauge)) => {
            let family =
                encoder.encode_descriptor(&name, help, unit.as_ref(), MetricType::Gauge)?;
            encode_gauge(family, gauge)?;
        }
        AggregatedMetrics::I64(MetricData::Gauge(gauge)) => {
            let family =
                encoder.encode_descriptor(&name, help, unit.as_ref(), MetricType::Gauge)?;
            encode_gauge(family, gauge)?;
        }
        AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
            let mut family =
                encoder.encode_descriptor(&name, help, unit.as_ref(), MetricType::Histogram)?;
            for point in histogram.data_points() {
                let labels = labels(point.attributes());
                let buckets: Vec<(f64, u64)> = point
                    .bounds()
                    .chain(std::iter::once(f64::INFINITY))
                    .zip(point.bucket_counts())
                    .collect();
                family
                    .encode_family(&labels)?
                    .encode_histogram::<Vec<(String, String)>>(
                        point.sum(),
                        point.count(),
                        &buckets,
                        None,
                    )?;
            }
        }
        // Only the kinds above are recorded (names.rs); anything else would be a new instrument
        // this function has not learned to write yet.
        _ => {}
    }
    Ok(())
}

fn encode_gauge<T: EncodeGaugeValue + Copy>(
    mut family: MetricEncoder<'_>,
    gauge: &Gauge<T>,
) -> Result<(), std::fmt::Error> {
    for point in gauge.data_points() {
        let labels = labels(point.attributes());
        family
            .encode_family(&labels)?
            .encode_gauge(&point.value())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_otel_to_prometheus_rules() {
        let cases = [
            ("sliq.records.read", "{record}", "sliq_records_read", None),
            (
                "sliq.stage.duration",
                "s",
                "sliq_stage_duration",
                Some("seconds"),
            ),
            ("sliq.buffered.bytes", "By", "sliq_buffered", Some("bytes")),
            (
                "sliq.archive.size",
                "By",
                "sliq_archive_size",
                Some("bytes"),
            ),
        ];
        for (name, unit, want, want_unit) in cases {
            let (got, got_unit) = prometheus_name(name, unit);
            assert_eq!(got, want);
            assert_eq!(got_unit.as_ref().map(Unit::as_str), want_unit);
        }
    }
}
