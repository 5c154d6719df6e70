//! Bytes → JSON → [`Event`], with every refusal given a stable reason code for the dead-letter topic.
//!
//! Fields are found by JSON Pointer ([`FieldMap`]), so any record shape works; the defaults are the
//! canonical shape of `schemas/request-log.v1.schema.json`.

use serde_json::{Map, Value};

use crate::event::{Event, Status, TestCounts};

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

    /// Parses the bytes of one record. The size check comes first so an oversized record costs nothing.
    pub fn parse(&self, bytes: &[u8]) -> Result<Value, Reject> {
        if bytes.len() > self.max_record_bytes {
            return Err(Reject::Oversized {
                size: bytes.len(),
                max: self.max_record_bytes,
            });
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| Reject::NotJson(e.to_string()))?;
        if !value.is_object() {
            return Err(Reject::NotObject);
        }
        Ok(value)
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
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| bad(format!("{s:?}: {e}"))),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| bad(format!("{n} is not an integer"))),
        Some(other) => Err(wrong_type(pointer, "an RFC 3339 string or epoch ms", other)),
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
}
