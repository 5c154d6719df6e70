//! Bytes → JSON → [`Event`], with every refusal given a stable reason code for the dead-letter topic.
//!
//! Fields are found by JSON Pointer ([`FieldMap`]), so any record shape works; the defaults are the
//! canonical shape of `schemas/request-log.v1.schema.json`.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::event::{Event, Status, TestCounts};

/// The earliest event time sliq accepts: 0001-01-01T00:00:00Z, in ms since the Unix epoch.
///
/// Events must fit the range that every reader of the archive's millisecond (and microsecond)
/// timestamps holds — DuckDB, pyarrow (Python's `datetime` stops at years 1 and 9999) and Polars —
/// and keep window, hour and budget arithmetic (`± size`, `± 30 d`) about 2^15 times away from
/// `i64` overflow. Negative epochs (before 1970) are fine: windows use Euclidean division.
pub const MIN_EVENT_TS_MS: i64 = -62_135_596_800_000;
/// The latest event time sliq accepts: 9999-12-31T23:59:59.999Z, in ms since the Unix epoch.
pub const MAX_EVENT_TS_MS: i64 = 253_402_300_799_999;

/// Where each canonical field lives in a record, as JSON Pointers (RFC 6901).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    pub id: String,
    pub ts: String,
    pub service: String,
    pub operation: String,
    pub model: String,
    pub labels: String,
    pub request_text: String,
    pub request_tokens: String,
    pub response_text: String,
    pub response_tokens: String,
    pub finish_reason: String,
    pub status: String,
    pub error: String,
    pub error_type: String,
    pub error_message: String,
    pub latency_ms: String,
    pub ttft_ms: String,
    pub evals: String,
    pub flags: String,
    pub tests_passed: String,
    pub tests_failed: String,
    pub tests_skipped: String,
    pub features: String,
}

impl Default for FieldMap {
    fn default() -> Self {
        let p = |s: &str| s.to_owned();
        FieldMap {
            id: p("/id"),
            ts: p("/ts"),
            service: p("/service"),
            operation: p("/operation"),
            model: p("/model"),
            labels: p("/labels"),
            request_text: p("/request/text"),
            request_tokens: p("/request/tokens"),
            response_text: p("/response/text"),
            response_tokens: p("/response/tokens"),
            finish_reason: p("/response/finish_reason"),
            status: p("/status"),
            error: p("/error"),
            error_type: p("/error/type"),
            error_message: p("/error/message"),
            latency_ms: p("/latency_ms"),
            ttft_ms: p("/ttft_ms"),
            evals: p("/evals"),
            flags: p("/flags"),
            tests_passed: p("/tests/passed"),
            tests_failed: p("/tests/failed"),
            tests_skipped: p("/tests/skipped"),
            features: p("/features"),
        }
    }
}

/// Why a record was refused. `code()` is the stable value of the dead-letter `sliq.reason` header.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reject {
    #[error(
        "record is {size} bytes, over the limit of {max} bytes (source.kafka.max_record_bytes)"
    )]
    Oversized { size: usize, max: usize },
    #[error("record is not valid JSON: {0}")]
    NotJson(String),
    #[error("record is JSON but not an object")]
    NotObject,
    #[error("required field {pointer} is missing")]
    MissingField { pointer: String },
    #[error("field {pointer} should be {expected}, found {found}")]
    WrongType {
        pointer: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "field {pointer} is not a valid timestamp (RFC 3339 string or integer epoch milliseconds): {detail}"
    )]
    BadTimestamp { pointer: String, detail: String },
    /// A Kafka tombstone (no payload) or an empty (or whitespace-only) payload.
    #[error("record has no payload (a tombstone or an empty message); a record is one JSON object")]
    EmptyRecord,
    /// The same key twice in one JSON object: readers disagree on which value wins (serde_json
    /// keeps the last, others the first), so the record is ambiguous.
    #[error(
        "key {pointer} appears more than once in the same object; the record is ambiguous \
         (JSON readers disagree on which value wins), so it is refused"
    )]
    DuplicateKey { pointer: String },
    /// An event time ahead of this machine's clock by more than `windows.max_future_skew`.
    #[error(
        "event time {} is {} ahead of this machine's clock (windows.max_future_skew {})",
        fmt_ts(*ts_ms),
        fmt_span(*ahead_ms),
        fmt_span(*max_skew_ms)
    )]
    FutureTimestamp {
        ts_ms: i64,
        /// `ts_ms - now_ms`, saturated.
        ahead_ms: i64,
        max_skew_ms: i64,
    },
}

impl Reject {
    /// A short, stable machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            Reject::Oversized { .. } => "oversized",
            Reject::NotJson(_) => "not_json",
            Reject::NotObject => "not_object",
            Reject::MissingField { .. } => "missing_field",
            Reject::WrongType { .. } => "wrong_type",
            Reject::BadTimestamp { .. } => "bad_timestamp",
            Reject::EmptyRecord => "empty_record",
            Reject::DuplicateKey { .. } => "duplicate_key",
            Reject::FutureTimestamp { .. } => "future_timestamp",
        }
    }
}

/// Turns record bytes into events according to a [`FieldMap`].
#[derive(Debug, Clone)]
pub struct Decoder {
    fields: FieldMap,
    max_record_bytes: usize,
}

impl Decoder {
    pub fn new(fields: FieldMap, max_record_bytes: usize) -> Self {
        Decoder {
            fields,
            max_record_bytes,
        }
    }

    /// Parses the bytes of one record. The size check comes first so an oversized record costs
    /// nothing. An empty or whitespace-only payload is [`Reject::EmptyRecord`]; a key repeated in
    /// one object, at any depth, is [`Reject::DuplicateKey`].
    pub fn parse(&self, bytes: &[u8]) -> Result<Value, Reject> {
        if bytes.len() > self.max_record_bytes {
            return Err(Reject::Oversized {
                size: bytes.len(),
                max: self.max_record_bytes,
            });
        }
        // Short-circuits on the first byte of any real record (`{`).
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Reject::EmptyRecord);
        }
        let value = parse_unique(bytes)?;
        if !value.is_object() {
            return Err(Reject::NotObject);
        }
        Ok(value)
    }

    /// [`Decoder::parse`] for a Kafka payload as the client hands it: `None` (a tombstone) is
    /// [`Reject::EmptyRecord`].
    pub fn parse_payload(&self, payload: Option<&[u8]>) -> Result<Value, Reject> {
        self.parse(payload.ok_or(Reject::EmptyRecord)?)
    }

    /// Extracts and type-checks the canonical fields of a parsed record.
    pub fn decode<'a>(&self, record: &'a Value) -> Result<Event<'a>, Reject> {
        let f = &self.fields;
        let error = get(record, &f.error);
        let status = match opt_str(record, &f.status)? {
            Some("ok") => Status::Ok,
            Some("error") => Status::Error,
            Some(_) => {
                return Err(Reject::WrongType {
                    pointer: f.status.clone(),
                    expected: "\"ok\" or \"error\"",
                    found: "another string",
                });
            }
            None if error.is_some() => Status::Error,
            None => Status::Ok,
        };
        Ok(Event {
            record,
            id: required_str(record, &f.id)?,
            ts_ms: timestamp(record, &f.ts)?,
            service: required_str(record, &f.service)?,
            operation: opt_str(record, &f.operation)?.unwrap_or("default"),
            model: opt_str(record, &f.model)?,
            request_text: opt_str(record, &f.request_text)?,
            request_tokens: opt_num(record, &f.request_tokens)?,
            response_text: opt_str(record, &f.response_text)?,
            response_tokens: opt_num(record, &f.response_tokens)?,
            finish_reason: opt_str(record, &f.finish_reason)?,
            status,
            error_type: opt_str(record, &f.error_type)?,
            error_message: opt_str(record, &f.error_message)?,
            latency_ms: opt_num(record, &f.latency_ms)?,
            ttft_ms: opt_num(record, &f.ttft_ms)?,
            tests: tests(record, f)?,
            labels: opt_map(record, &f.labels, "a string or null", |v| {
                v.is_string() || v.is_null()
            })?,
            evals: opt_map(record, &f.evals, "a number or {score, label}", valid_eval)?,
            flags: opt_map(record, &f.flags, "a boolean or null", |v| {
                v.is_boolean() || v.is_null()
            })?,
            features: opt_map(record, &f.features, "a number or null", |v| {
                v.is_number() || v.is_null()
            })?,
        })
    }
}

/// A pointer lookup where JSON `null` counts as absent.
/// Resolves a JSON Pointer without allocating (serde_json's `Value::pointer` allocates a String per
/// segment, which dominated decoding); only segments with `~` escapes are unescaped into a copy.
pub(crate) fn get<'a>(record: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut value = record;
    if !pointer.is_empty() {
        for token in pointer.strip_prefix('/')?.split('/') {
            value = if token.contains('~') {
                step(value, &token.replace("~1", "/").replace("~0", "~"))?
            } else {
                step(value, token)?
            };
        }
    }
    Some(value).filter(|v| !v.is_null())
}

fn step<'a>(value: &'a Value, token: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(token),
        Value::Array(items) => {
            // RFC 6901 array indices: digits, no leading zero (except "0" itself).
            let canonical = !token.is_empty()
                && token.bytes().all(|b| b.is_ascii_digit())
                && (token == "0" || !token.starts_with('0'));
            canonical
                .then(|| token.parse::<usize>().ok())
                .flatten()
                .and_then(|i| items.get(i))
        }
        _ => None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(pointer: &str, expected: &'static str, found: &Value) -> Reject {
    Reject::WrongType {
        pointer: pointer.to_owned(),
        expected,
        found: type_name(found),
    }
}

fn opt_str<'a>(record: &'a Value, pointer: &str) -> Result<Option<&'a str>, Reject> {
    match get(record, pointer) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(pointer, "a string", other)),
    }
}

fn required_str<'a>(record: &'a Value, pointer: &str) -> Result<&'a str, Reject> {
    match opt_str(record, pointer)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(Reject::MissingField {
            pointer: pointer.to_owned(),
        }),
    }
}

fn opt_num(record: &Value, pointer: &str) -> Result<Option<f64>, Reject> {
    match get(record, pointer) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(wrong_type(pointer, "a number", other)),
    }
}

fn opt_map<'a>(
    record: &'a Value,
    pointer: &str,
    expected_values: &'static str,
    valid: fn(&Value) -> bool,
) -> Result<Option<&'a Map<String, Value>>, Reject> {
    match get(record, pointer) {
        None => Ok(None),
        Some(Value::Object(map)) => match map.values().find(|v| !valid(v)) {
            None => Ok(Some(map)),
            Some(bad) => Err(wrong_type(pointer, expected_values, bad)),
        },
        Some(other) => Err(wrong_type(pointer, "an object", other)),
    }
}

fn valid_eval(v: &Value) -> bool {
    match v {
        Value::Null | Value::Number(_) => true,
        Value::Object(o) => {
            o.get("score").is_none_or(|s| s.is_number() || s.is_null())
                && o.get("label").is_none_or(|l| l.is_string() || l.is_null())
        }
        _ => false,
    }
}

fn tests(record: &Value, f: &FieldMap) -> Result<Option<TestCounts>, Reject> {
    let counts = TestCounts {
        passed: opt_num(record, &f.tests_passed)?,
        failed: opt_num(record, &f.tests_failed)?,
        skipped: opt_num(record, &f.tests_skipped)?,
    };
    Ok((counts != TestCounts::default()).then_some(counts))
}

fn timestamp(record: &Value, pointer: &str) -> Result<i64, Reject> {
    let bad = |detail: String| Reject::BadTimestamp {
        pointer: pointer.to_owned(),
        detail,
    };
    match get(record, pointer) {
        None => Err(Reject::MissingField {
            pointer: pointer.to_owned(),
        }),
        Some(Value::String(s)) => {
            let ms = chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .map_err(|e| bad(format!("{s:?}: {e}")))?;
            in_range(ms).ok_or_else(|| bad(format!("{s:?} is {}", RANGE_TEXT)))
        }
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(ms), _, _) => in_range(ms).ok_or_else(|| bad(format!("{ms} ms is {RANGE_TEXT}"))),
            (None, Some(_), _) => Err(bad(format!("{n} ms is {RANGE_TEXT}"))),
            (None, None, Some(f)) if f.is_finite() && f.fract() == 0.0 => {
                Err(bad(format!("{n} ms is {RANGE_TEXT}")))
            }
            _ => Err(bad(format!("{n} is not an integer"))),
        },
        Some(other) => Err(wrong_type(pointer, "an RFC 3339 string or epoch ms", other)),
    }
}

const RANGE_TEXT: &str = "outside the supported range 0001-01-01T00:00:00Z ..= \
     9999-12-31T23:59:59.999Z (epoch ms -62135596800000 ..= 253402300799999)";

fn in_range(ms: i64) -> Option<i64> {
    (MIN_EVENT_TS_MS..=MAX_EVENT_TS_MS)
        .contains(&ms)
        .then_some(ms)
}

/// The wall-clock guard, once per poll batch: refuses an event time more than `max_skew_ms`
/// ahead of `now_ms` (this machine's clock) as [`Reject::FutureTimestamp`]. Such an event would
/// push its partition's watermark into the future and make every later, correct event late.
/// Saturating arithmetic: any `i64` inputs are safe.
pub fn check_future_skew(ts_ms: i64, now_ms: i64, max_skew_ms: i64) -> Result<(), Reject> {
    let ahead_ms = ts_ms.saturating_sub(now_ms);
    if ahead_ms > max_skew_ms.max(0) {
        return Err(Reject::FutureTimestamp {
            ts_ms,
            ahead_ms,
            max_skew_ms,
        });
    }
    Ok(())
}

/// An event time as RFC 3339 (UTC), or as raw epoch ms when chrono cannot represent it.
fn fmt_ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms since the epoch"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

/// A span the human way, in its largest one or two units: `7974y 12d`, `5m`, `1h 30m`, `250ms`.
fn fmt_span(ms: i64) -> String {
    const UNITS: [(i64, &str); 6] = [
        (365 * 86_400_000, "y"),
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    if ms <= 0 {
        return format!("{ms}ms");
    }
    let mut parts = Vec::with_capacity(2);
    let mut rest = ms;
    for (unit, name) in UNITS {
        if rest >= unit {
            parts.push(format!("{}{name}", rest / unit));
            rest %= unit;
        } else if !parts.is_empty() {
            // Only adjacent units: "1h 30m", never "1h 5s".
            break;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

/// Parses one JSON value like `serde_json::from_slice::<Value>`, but refuses a key that appears
/// twice in one object. The `Value` is built in the same pass (an occupied map entry is the
/// duplicate), so the cost is that of serde_json's own `Value` visitor.
fn parse_unique(bytes: &[u8]) -> Result<Value, Reject> {
    let mut duplicate: Option<Vec<String>> = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = UniqueValue {
        duplicate: &mut duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match (parsed, duplicate) {
        (Ok(v), _) => Ok(v),
        (Err(_), Some(mut path)) => {
            // Segments were pushed innermost first, as the error unwound.
            path.reverse();
            let mut pointer = String::new();
            for seg in path {
                pointer.push('/');
                pointer.push_str(&seg.replace('~', "~0").replace('/', "~1"));
            }
            Err(Reject::DuplicateKey { pointer })
        }
        (Err(e), None) => Err(Reject::NotJson(e.to_string())),
    }
}

/// A `Value` seed that records where a duplicate key was found (innermost segment first).
struct UniqueValue<'p> {
    duplicate: &'p mut Option<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for UniqueValue<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity; `from` would make them null.
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        loop {
            let seed = UniqueValue {
                duplicate: &mut *self.duplicate,
            };
            match seq.next_element_seed(seed) {
                Ok(Some(v)) => items.push(v),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => {
                    if let Some(path) = self.duplicate.as_mut() {
                        path.push(items.len().to_string());
                    }
                    return Err(e);
                }
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut values = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let seed = UniqueValue {
                duplicate: &mut *self.duplicate,
            };
            let value = match map.next_value_seed(seed) {
                Ok(v) => v,
                Err(e) => {
                    if let Some(path) = self.duplicate.as_mut() {
                        path.push(key);
                    }
                    return Err(e);
                }
            };
            match values.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(slot) => {
                    *self.duplicate = Some(vec![slot.key().clone()]);
                    return Err(serde::de::Error::custom("duplicate key"));
                }
            }
        }
        Ok(Value::Object(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decoder() -> Decoder {
        Decoder::new(FieldMap::default(), 1 << 20)
    }

    fn decode_ok(v: &Value) -> Event<'_> {
        decoder().decode(v).expect("valid record")
    }

    #[test]
    fn full_canonical_record_decodes_every_field() {
        let v = json!({
            "id": "r1", "ts": "2026-11-22T10:00:01.250Z", "service": "chat", "operation": "answer",
            "model": "m-large", "labels": {"tier": "gold", "region": null},
            "request": {"text": "hi", "tokens": 3}, "response": {"text": "hello", "tokens": 5, "finish_reason": "stop"},
            "latency_ms": 812.5, "ttft_ms": 120, "evals": {"faithfulness": 0.91, "tone": {"score": 0.5, "label": "neutral"}},
            "flags": {"hallucination": false}, "tests": {"passed": 9, "failed": 1}, "features": {"prompt_len": 42}
        });
        let e = decode_ok(&v);
        assert_eq!(e.id, "r1");
        assert_eq!(e.ts_ms, 1_795_341_601_250);
        assert_eq!(
            (e.service, e.operation, e.model),
            ("chat", "answer", Some("m-large"))
        );
        assert_eq!(e.status, Status::Ok);
        assert_eq!(e.latency_ms, Some(812.5));
        assert_eq!(e.ttft_ms, Some(120.0));
        assert_eq!(e.request_tokens, Some(3.0));
        assert_eq!(e.finish_reason, Some("stop"));
        assert_eq!(e.labels().collect::<Vec<_>>(), vec![("tier", "gold")]);
        assert_eq!(e.eval("faithfulness").and_then(|r| r.score), Some(0.91));
        assert_eq!(e.eval("tone").and_then(|r| r.label), Some("neutral"));
        assert_eq!(e.flag("hallucination"), Some(false));
        assert_eq!(
            e.tests,
            Some(TestCounts {
                passed: Some(9.0),
                failed: Some(1.0),
                skipped: None
            })
        );
        assert_eq!(e.features().collect::<Vec<_>>(), vec![("prompt_len", 42.0)]);
    }

    #[test]
    fn epoch_millis_and_defaults() {
        let v = json!({"id": "a", "ts": 1_700_000_000_123_i64, "service": "s"});
        let e = decode_ok(&v);
        assert_eq!(e.ts_ms, 1_700_000_000_123);
        assert_eq!(e.operation, "default");
        assert_eq!(e.status, Status::Ok);
        assert!(e.tests.is_none());
    }

    #[test]
    fn error_object_without_status_means_error() {
        let v = json!({"id": "a", "ts": 1, "service": "s", "error": {"type": "timeout"}});
        let e = decode_ok(&v);
        assert_eq!(e.status, Status::Error);
        assert_eq!(e.error_type, Some("timeout"));
        let v = json!({"id": "a", "ts": 1, "service": "s", "status": "ok", "error": {"type": "x"}});
        assert_eq!(decode_ok(&v).status, Status::Ok, "explicit status wins");
    }

    #[test]
    fn refusals_carry_stable_codes() {
        let d = decoder();
        let cases: Vec<(&[u8], &str)> = vec![
            (b"{not json", "not_json"),
            (b"[1,2]", "not_object"),
            (br#"{"ts": 1, "service": "s"}"#, "missing_field"),
            (br#"{"id": "", "ts": 1, "service": "s"}"#, "missing_field"),
            (br#"{"id": "a", "service": "s"}"#, "missing_field"),
            (br#"{"id": "a", "ts": 1, "service": 7}"#, "wrong_type"),
            (
                br#"{"id": "a", "ts": 1, "service": "s", "latency_ms": "fast"}"#,
                "wrong_type",
            ),
            (
                br#"{"id": "a", "ts": 1, "service": "s", "status": "maybe"}"#,
                "wrong_type",
            ),
            (
                br#"{"id": "a", "ts": 1, "service": "s", "labels": {"t": 1}}"#,
                "wrong_type",
            ),
            (
                br#"{"id": "a", "ts": 1, "service": "s", "flags": {"h": "yes"}}"#,
                "wrong_type",
            ),
            (
                br#"{"id": "a", "ts": 1, "service": "s", "evals": {"f": {"score": "hi"}}}"#,
                "wrong_type",
            ),
            (
                br#"{"id": "a", "ts": "yesterday", "service": "s"}"#,
                "bad_timestamp",
            ),
            (
                br#"{"id": "a", "ts": 1.5, "service": "s"}"#,
                "bad_timestamp",
            ),
        ];
        for (bytes, code) in cases {
            let got = d.parse(bytes).and_then(|v| d.decode(&v).map(|_| ()));
            assert_eq!(
                got.map_err(|r| r.code()),
                Err(code),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn oversized_is_refused_before_parsing() {
        let d = Decoder::new(FieldMap::default(), 10);
        assert_eq!(
            d.parse(b"{\"id\": \"abcdefgh\"}").map_err(|r| r.code()),
            Err("oversized")
        );
    }

    #[test]
    fn pointers_resolve_like_rfc_6901() {
        let v = json!({"a/b": {"m~n": [10, {"x": 1}]}, "arr": [5, 6], "n": null});
        for (p, want) in [
            ("/a~1b/m~0n/0", Some(json!(10))),
            ("/a~1b/m~0n/1/x", Some(json!(1))),
            ("/arr/1", Some(json!(6))),
            ("/arr/01", None),
            ("/arr/-", None),
            ("/arr/2", None),
            ("/n", None),
            ("/missing/deeper", None),
            ("no-slash", None),
        ] {
            assert_eq!(get(&v, p).cloned(), want, "{p}");
            if want.is_some() {
                assert_eq!(get(&v, p), v.pointer(p), "agrees with serde_json for {p}");
            }
        }
        assert_eq!(get(&v, "").cloned(), Some(v.clone()));
    }

    #[test]
    fn custom_pointers_map_another_shape() {
        let fields = FieldMap {
            id: "/meta/request_id".into(),
            ts: "/meta/time".into(),
            service: "/app".into(),
            latency_ms: "/timing/total".into(),
            ..FieldMap::default()
        };
        let v = json!({"meta": {"request_id": "x", "time": "2026-01-01T00:00:00Z"}, "app": "bot", "timing": {"total": 5}});
        let d = Decoder::new(fields, 1 << 20);
        let e = d.decode(&v).unwrap();
        assert_eq!((e.id, e.service, e.latency_ms), ("x", "bot", Some(5.0)));
        assert_eq!(e.ts_ms, 1_767_225_600_000);
    }

    fn refusal(bytes: &[u8]) -> Reject {
        let d = decoder();
        match d.parse(bytes).and_then(|v| d.decode(&v).map(|_| ())) {
            Ok(()) => panic!("accepted {}", String::from_utf8_lossy(bytes)),
            Err(r) => r,
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_with_their_pointer() {
        for (bytes, pointer) in [
            (&br#"{"id": "a", "id": "b", "ts": 1, "service": "s"}"#[..], "/id"),
            (
                br#"{"id": "a", "ts": 1, "service": "s", "evals": {"f": 0.1, "f": 0.9}}"#,
                "/evals/f",
            ),
            (
                br#"{"id": "a", "ts": 1, "service": "s", "tests": {"passed": 1, "failed": 0, "passed": 9}}"#,
                "/tests/passed",
            ),
            (
                br#"{"id": "a", "ts": 1, "service": "s", "request": {"x": {"deep": 1, "deep": 1}}}"#,
                "/request/x/deep",
            ),
            (br#"{"list": [0, {"k": 1, "k": 2}]}"#, "/list/1/k"),
            (br#"{"m": {"a/b~": 1, "a/b~": 2}}"#, "/m/a~1b~0"),
            // Escapes are decoded before keys are compared: "\u0061" is "a".
            (br#"{"a": 1, "\u0061": 2}"#, "/a"),
            // The duplicate is refused even if the record would be refused for another reason.
            (br#"{"ts": 1, "ts": 2}"#, "/ts"),
        ] {
            let r = refusal(bytes);
            assert_eq!(
                r,
                Reject::DuplicateKey {
                    pointer: pointer.into()
                },
                "{}",
                String::from_utf8_lossy(bytes)
            );
            assert_eq!(r.code(), "duplicate_key");
        }
        let msg = refusal(br#"{"id": "a", "id": "a"}"#).to_string();
        assert!(msg.contains("key /id appears more than once"), "{msg}");
        assert!(msg.contains("ambiguous"), "{msg}");
    }

    #[test]
    fn same_key_in_different_objects_is_fine_and_parse_matches_serde_json() {
        let bytes = br#"{"id": "a", "ts": 1, "service": "s", "labels": {"k": "1"},
            "evals": {"k": {"score": 1e308, "label": "x"}}, "arr": [{"k": 1}, {"k": 2}],
            "n": [-9223372036854775808, 18446744073709551615, -0.0, 1.5e-300, null, true]}"#;
        let ours = decoder().parse(bytes).expect("valid");
        let theirs: Value = serde_json::from_slice(bytes).expect("valid");
        assert_eq!(ours, theirs);
    }

    #[test]
    fn not_json_keeps_serde_json_s_message() {
        let d = decoder();
        let ours = d.parse(br#"{"a": 1,}"#).expect_err("trailing comma");
        let theirs = serde_json::from_slice::<Value>(br#"{"a": 1,}"#).expect_err("trailing comma");
        assert_eq!(ours, Reject::NotJson(theirs.to_string()));
        assert_eq!(
            d.parse(br#"{"a": 1} {"b": 2}"#).map_err(|r| r.code()),
            Err("not_json"),
            "trailing data after the object"
        );
    }

    #[test]
    fn deep_nesting_is_not_json_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let r = decoder().parse(deep.as_bytes()).expect_err("too deep");
        assert_eq!(r.code(), "not_json");
        assert!(r.to_string().contains("recursion limit exceeded"), "{r}");
    }

    #[test]
    fn tombstones_and_empty_payloads_are_empty_records() {
        let d = decoder();
        assert_eq!(d.parse(b""), Err(Reject::EmptyRecord));
        assert_eq!(d.parse(b" \n\t\r "), Err(Reject::EmptyRecord));
        assert_eq!(d.parse_payload(None), Err(Reject::EmptyRecord));
        assert_eq!(Reject::EmptyRecord.code(), "empty_record");
        assert!(d.parse_payload(Some(br#"{"id": "a"}"#)).is_ok());
        // Not whitespace: still JSON's business.
        assert_eq!(d.parse(b"\0").map_err(|r| r.code()), Err("not_json"));
    }

    fn ts_of(ts: Value) -> Result<i64, Reject> {
        let v = json!({"id": "a", "ts": ts, "service": "s"});
        decoder().decode(&v).map(|e| e.ts_ms)
    }

    #[test]
    fn event_times_outside_years_1_to_9999_are_bad_timestamps() {
        // Hand-worked: 0001-01-01T00:00:00Z is -62 135 596 800 s; 9999-12-31T23:59:59Z is
        // 253 402 300 799 s.
        assert_eq!(
            ts_of(json!("0001-01-01T00:00:00Z")),
            Ok(-62_135_596_800_000)
        );
        assert_eq!(
            ts_of(json!("9999-12-31T23:59:59.999Z")),
            Ok(253_402_300_799_999)
        );
        assert_eq!(ts_of(json!(MIN_EVENT_TS_MS)), Ok(MIN_EVENT_TS_MS));
        assert_eq!(ts_of(json!(MAX_EVENT_TS_MS)), Ok(MAX_EVENT_TS_MS));
        assert_eq!(ts_of(json!(-1)), Ok(-1), "before 1970 is fine");
        for bad in [
            json!("0000-12-31T23:59:59.999Z"),
            // A negative offset pushes the last second of 9999 into year 10000 (UTC).
            json!("9999-12-31T23:59:59.999-01:00"),
            json!(MIN_EVENT_TS_MS - 1),
            json!(MAX_EVENT_TS_MS + 1),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1e20),
            json!(-1e308),
        ] {
            let r = ts_of(bad.clone()).expect_err("out of range");
            assert_eq!(r.code(), "bad_timestamp", "{bad}");
            let msg = r.to_string();
            assert!(
                msg.contains("0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z"),
                "{msg}"
            );
        }
        let msg = ts_of(json!(1.5)).expect_err("fractional").to_string();
        assert!(msg.contains("1.5 is not an integer"), "{msg}");
    }

    #[test]
    fn future_skew_is_refused_past_the_limit_with_a_readable_message() {
        const MIN: i64 = 60_000;
        let now = 1_795_996_800_000; // 2026-11-30T00:00:00Z
        assert_eq!(check_future_skew(now + 5 * MIN, now, 5 * MIN), Ok(()));
        assert_eq!(check_future_skew(now - 86_400_000, now, 5 * MIN), Ok(()));
        let r = check_future_skew(now + 5 * MIN + 1, now, 5 * MIN).expect_err("1 ms too far");
        assert_eq!(r.code(), "future_timestamp");
        assert_eq!(
            r.to_string(),
            "event time 2026-11-30T00:05:00.001Z is 5m ahead of this machine's clock \
             (windows.max_future_skew 5m)"
        );
        // 9999-01-01 minus 2026-11-30 is 251 574 768 000 000 ms: 7977 years of 365 days and 140 days.
        let r = check_future_skew(253_370_764_800_000, now, 5 * MIN).expect_err("far future");
        assert_eq!(
            r.to_string(),
            "event time 9999-01-01T00:00:00Z is 7977y 140d ahead of this machine's clock \
             (windows.max_future_skew 5m)"
        );
        // Extremes saturate instead of overflowing.
        let r = check_future_skew(i64::MAX, i64::MIN, 0).expect_err("extreme");
        assert_eq!(
            r,
            Reject::FutureTimestamp {
                ts_ms: i64::MAX,
                ahead_ms: i64::MAX,
                max_skew_ms: 0
            }
        );
        assert!(
            r.to_string()
                .contains("9223372036854775807 ms since the epoch")
        );
        assert_eq!(check_future_skew(i64::MIN, i64::MAX, 0), Ok(()));
        assert_eq!(
            check_future_skew(now + 1, now, -5),
            Err(Reject::FutureTimestamp {
                ts_ms: now + 1,
                ahead_ms: 1,
                max_skew_ms: -5,
            }),
            "a negative limit acts as zero"
        );
    }

    #[test]
    fn spans_read_in_their_largest_units() {
        assert_eq!(fmt_span(300_000), "5m");
        assert_eq!(fmt_span(5_400_000), "1h 30m");
        assert_eq!(fmt_span(3_605_000), "1h", "no gap between the two units");
        assert_eq!(fmt_span(250), "250ms");
        assert_eq!(fmt_span(1_001), "1s 1ms");
        assert_eq!(fmt_span(0), "0ms");
    }
}
