//! Arrow builders for one archive file: rows are appended straight from the borrowed event.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder,
    MapBuilder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use sliq_core::{Admission, Event};

use crate::SourcePosition;

type StringMap = MapBuilder<StringBuilder, StringBuilder>;
type NumberMap = MapBuilder<StringBuilder, Float64Builder>;
type FlagMap = MapBuilder<StringBuilder, BooleanBuilder>;

fn timestamps() -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::new().with_timezone("UTC")
}

/// One builder per archive column, in schema order.
#[derive(Debug)]
pub(crate) struct Columns {
    id: StringBuilder,
    ts: TimestampMillisecondBuilder,
    service: StringBuilder,
    operation: StringBuilder,
    model: StringBuilder,
    labels: StringMap,
    request_text: StringBuilder,
    request_tokens: Float64Builder,
    response_text: StringBuilder,
    response_tokens: Float64Builder,
    finish_reason: StringBuilder,
    status: StringBuilder,
    error_type: StringBuilder,
    error_message: StringBuilder,
    latency_ms: Float64Builder,
    ttft_ms: Float64Builder,
    evals: NumberMap,
    eval_labels: StringMap,
    flags: FlagMap,
    tests_passed: Float64Builder,
    tests_failed: Float64Builder,
    tests_skipped: Float64Builder,
    features: NumberMap,
    raw: BinaryBuilder,
    /// Whether the run refused the record as late for its window (null: not known).
    late: BooleanBuilder,
    kafka_topic: StringBuilder,
    kafka_partition: Int32Builder,
    kafka_offset: Int64Builder,
    ingested_at: TimestampMillisecondBuilder,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            id: StringBuilder::new(),
            ts: timestamps(),
            service: StringBuilder::new(),
            operation: StringBuilder::new(),
            model: StringBuilder::new(),
            labels: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            request_text: StringBuilder::new(),
            request_tokens: Float64Builder::new(),
            response_text: StringBuilder::new(),
            response_tokens: Float64Builder::new(),
            finish_reason: StringBuilder::new(),
            status: StringBuilder::new(),
            error_type: StringBuilder::new(),
            error_message: StringBuilder::new(),
            latency_ms: Float64Builder::new(),
            ttft_ms: Float64Builder::new(),
            evals: MapBuilder::new(None, StringBuilder::new(), Float64Builder::new()),
            eval_labels: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            flags: MapBuilder::new(None, StringBuilder::new(), BooleanBuilder::new()),
            tests_passed: Float64Builder::new(),
            tests_failed: Float64Builder::new(),
            tests_skipped: Float64Builder::new(),
            features: MapBuilder::new(None, StringBuilder::new(), Float64Builder::new()),
            raw: BinaryBuilder::new(),
            late: BooleanBuilder::new(),
            kafka_topic: StringBuilder::new(),
            kafka_partition: Int32Builder::new(),
            kafka_offset: Int64Builder::new(),
            ingested_at: timestamps(),
        }
    }
}

/// What one row costs besides its strings and raw bytes: ten 8-byte and one 4-byte fixed-width
/// value, a 4-byte offset for each of the 17 string, binary and map columns, validity and flag
/// bits.
const ROW_OVERHEAD_BYTES: usize = 160;

/// What one map entry costs besides its key and string value: the key's offset and up to an
/// 8-byte value with its offset.
const ENTRY_OVERHEAD_BYTES: usize = 16;

/// A map value counted in [`ENTRY_OVERHEAD_BYTES`] already (a number or a flag).
fn fixed_width<T>(_: T) -> usize {
    0
}

fn text(s: Option<&str>) -> usize {
    s.map_or(0, str::len)
}

/// Absent maps are written as empty maps, so queries need no null check before `map_keys`.
/// Returns the bytes appended (keys, plus what `value_bytes` says of each value).
fn push_map<'a, V: arrow::array::ArrayBuilder, T: Copy>(
    map: &mut MapBuilder<StringBuilder, V>,
    entries: impl Iterator<Item = (&'a str, T)>,
    value_bytes: impl Fn(T) -> usize,
    mut push_value: impl FnMut(&mut V, T),
) -> usize {
    let mut bytes = 0;
    for (k, v) in entries {
        bytes += k.len() + value_bytes(v) + ENTRY_OVERHEAD_BYTES;
        map.keys().append_value(k);
        push_value(map.values(), v);
    }
    // Appending to a MapBuilder only fails when keys and values disagree in length, which the
    // loop above rules out.
    let _ = map.append(true);
    bytes
}

impl Columns {
    /// Appends one row; returns the bytes it added by sliq's own count (strings, raw bytes and
    /// fixed widths), which sizes row groups and bounds the archive's memory.
    pub(crate) fn push(
        &mut self,
        at: SourcePosition<'_>,
        e: &Event<'_>,
        raw: Option<&[u8]>,
        admission: Option<Admission>,
        ingested_at_ms: i64,
    ) -> usize {
        let mut bytes = ROW_OVERHEAD_BYTES
            + raw.map_or(0, <[u8]>::len)
            + at.topic.len()
            + e.id.len()
            + e.service.len()
            + e.operation.len()
            + e.status.as_str().len()
            + [
                e.model,
                e.request_text,
                e.response_text,
                e.finish_reason,
                e.error_type,
                e.error_message,
            ]
            .into_iter()
            .map(text)
            .sum::<usize>();
        self.id.append_value(e.id);
        self.ts.append_value(e.ts_ms);
        self.service.append_value(e.service);
        self.operation.append_value(e.operation);
        self.model.append_option(e.model);
        bytes += push_map(&mut self.labels, e.labels(), str::len, |b, v| {
            b.append_value(v);
        });
        self.request_text.append_option(e.request_text);
        self.request_tokens.append_option(e.request_tokens);
        self.response_text.append_option(e.response_text);
        self.response_tokens.append_option(e.response_tokens);
        self.finish_reason.append_option(e.finish_reason);
        self.status.append_value(e.status.as_str());
        self.error_type.append_option(e.error_type);
        self.error_message.append_option(e.error_message);
        self.latency_ms.append_option(e.latency_ms);
        self.ttft_ms.append_option(e.ttft_ms);
        bytes += push_map(&mut self.evals, e.evals(), fixed_width, |b, r| {
            b.append_option(r.score);
        });
        bytes += push_map(
            &mut self.eval_labels,
            e.evals().filter_map(|(k, r)| r.label.map(|l| (k, l))),
            str::len,
            |b, l| b.append_value(l),
        );
        bytes += push_map(&mut self.flags, e.flags(), fixed_width, |b, v| {
            b.append_value(v);
        });
        let tests = e.tests.unwrap_or_default();
        self.tests_passed.append_option(tests.passed);
        self.tests_failed.append_option(tests.failed);
        self.tests_skipped.append_option(tests.skipped);
        bytes += push_map(&mut self.features, e.features(), fixed_width, |b, v| {
            b.append_value(v);
        });
        self.raw.append_option(raw);
        self.late
            .append_option(admission.map(|a| a == Admission::Late));
        self.kafka_topic.append_value(at.topic);
        self.kafka_partition.append_value(at.partition);
        self.kafka_offset.append_value(at.offset);
        self.ingested_at.append_value(ingested_at_ms);
        bytes
    }

    /// All rows as one batch; the schema follows from the builders, so it cannot drift from them.
    pub(crate) fn finish(mut self) -> RecordBatch {
        let required =
            |name: &str, a: ArrayRef| (Field::new(name, a.data_type().clone(), false), a);
        let optional = |name: &str, a: ArrayRef| (Field::new(name, a.data_type().clone(), true), a);
        let columns: Vec<(Field, ArrayRef)> = vec![
            required("id", Arc::new(self.id.finish())),
            required("ts", Arc::new(self.ts.finish())),
            required("service", Arc::new(self.service.finish())),
            required("operation", Arc::new(self.operation.finish())),
            optional("model", Arc::new(self.model.finish())),
            required("labels", Arc::new(self.labels.finish())),
            optional("request_text", Arc::new(self.request_text.finish())),
            optional("request_tokens", Arc::new(self.request_tokens.finish())),
            optional("response_text", Arc::new(self.response_text.finish())),
            optional("response_tokens", Arc::new(self.response_tokens.finish())),
            optional("finish_reason", Arc::new(self.finish_reason.finish())),
            required("status", Arc::new(self.status.finish())),
            optional("error_type", Arc::new(self.error_type.finish())),
            optional("error_message", Arc::new(self.error_message.finish())),
            optional("latency_ms", Arc::new(self.latency_ms.finish())),
            optional("ttft_ms", Arc::new(self.ttft_ms.finish())),
            required("evals", Arc::new(self.evals.finish())),
            required("eval_labels", Arc::new(self.eval_labels.finish())),
            required("flags", Arc::new(self.flags.finish())),
            optional("tests_passed", Arc::new(self.tests_passed.finish())),
            optional("tests_failed", Arc::new(self.tests_failed.finish())),
            optional("tests_skipped", Arc::new(self.tests_skipped.finish())),
            required("features", Arc::new(self.features.finish())),
            optional("raw", Arc::new(self.raw.finish())),
            optional("late", Arc::new(self.late.finish())),
            required("kafka_topic", Arc::new(self.kafka_topic.finish())),
            required("kafka_partition", Arc::new(self.kafka_partition.finish())),
            required("kafka_offset", Arc::new(self.kafka_offset.finish())),
            required("ingested_at", Arc::new(self.ingested_at.finish())),
        ];
        let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
        // The arrays were built row by row together, so lengths and types match their fields.
        #[allow(clippy::unwrap_used)]
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }
}
