//! The one-pass decoder against the DOM semantics it replaced (commit 9d5210d): every record is
//! refused with the same `Reject` or accepted with the same field values, map entries and leaves.
//!
//! The oracle lives here only: `serde_json::from_slice::<Value>`, a separate duplicate-key pass,
//! `Value::pointer` lookups and the old type rules, written out plainly.

use std::collections::HashSet;
use std::fmt;

mod json_tree;
use json_tree::{Json, number};

use proptest::prelude::*;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sliq_core::{
    Decoder, EvalResult, Event, FieldMap, Leaf, MAX_EVENT_TS_MS, MIN_EVENT_TS_MS, Reject, Status,
    TestCounts,
};

const MAX_BYTES: usize = 4096;

/// Pointers read besides the field map's, as drift features and correlation keys would be.
const EXTRA: [&str; 14] = [
    "",
    "/",
    "/a",
    "/a/0",
    "/a/01",
    "/a/-",
    "/a/1/k",
    "/a~1b",
    "/m~0n/x",
    "/é",
    "/request/0",
    "/labels/tier",
    "/features/x",
    "no-slash",
];

/// A second field map whose pointers go through arrays and escaped keys.
fn exotic_fields() -> FieldMap {
    FieldMap {
        id: "/meta/0/id".into(),
        ts: "/t~1s".into(),
        service: "/a/1/k".into(),
        labels: "/m~0n".into(),
        evals: "/a/0".into(),
        latency_ms: "/é".into(),
        features: "".into(),
        flags: "no-slash".into(),
        ..FieldMap::default()
    }
}

/// Everything a decoded record exposes, comparable across the two implementations.
#[derive(Debug, PartialEq)]
struct Decoded {
    id: String,
    ts_ms: i64,
    service: String,
    operation: String,
    model: Option<String>,
    request_text: Option<String>,
    request_tokens: Option<f64>,
    response_text: Option<String>,
    response_tokens: Option<f64>,
    finish_reason: Option<String>,
    status: Status,
    error_type: Option<String>,
    error_message: Option<String>,
    latency_ms: Option<f64>,
    ttft_ms: Option<f64>,
    tests: Option<TestCounts>,
    labels: Vec<(String, String)>,
    evals: Vec<(String, Option<f64>, Option<String>)>,
    flags: Vec<(String, bool)>,
    features: Vec<(String, f64)>,
    /// `label`, `eval` and `flag` by key (lookups, not iteration), for the keys of [`probes`].
    lookups: Vec<Lookup>,
    leaves: Vec<(String, Option<Value>)>,
}

type EvalView = (Option<f64>, Option<String>);

/// A key and what `label`, `eval` and `flag` give for it.
type Lookup = (String, Option<String>, Option<EvalView>, Option<bool>);

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

fn eval_view(r: EvalResult<'_>) -> EvalView {
    (r.score, owned(r.label))
}

/// Keys to look up one by one: those the maps listed, and some that may be there with `null`.
fn probes(d: &Decoded) -> Vec<String> {
    let mut keys: Vec<String> = ["t", "e", "h", "x", "a", "tier", "score"]
        .into_iter()
        .map(str::to_owned)
        .chain(d.labels.iter().map(|(k, _)| k.clone()))
        .chain(d.evals.iter().map(|(k, ..)| k.clone()))
        .chain(d.flags.iter().map(|(k, _)| k.clone()))
        .chain(d.features.iter().map(|(k, _)| k.clone()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Runs the decoder under test.
fn new_decode(d: &Decoder, bytes: &[u8], pointers: &[String]) -> Result<Decoded, Reject> {
    let record = d.parse(bytes)?;
    let e = d.decode(&record)?;
    let mut decoded = fields_of(&e);
    decoded.lookups = probes(&decoded)
        .into_iter()
        .map(|k| {
            let lookup = (owned(e.label(&k)), e.eval(&k).map(eval_view), e.flag(&k));
            (k, lookup.0, lookup.1, lookup.2)
        })
        .collect();
    Ok(Decoded {
        leaves: pointers
            .iter()
            .map(|p| {
                let leaf = e.value_at(p).map(|l| match l {
                    Leaf::Bool(b) => Value::Bool(b),
                    Leaf::Number(n) => Value::Number(n.clone()),
                    Leaf::String(s) => Value::String(s.to_owned()),
                });
                (p.clone(), leaf)
            })
            .collect(),
        ..decoded
    })
}

fn fields_of(e: &Event<'_>) -> Decoded {
    Decoded {
        id: e.id.to_owned(),
        ts_ms: e.ts_ms,
        service: e.service.to_owned(),
        operation: e.operation.to_owned(),
        model: owned(e.model),
        request_text: owned(e.request_text),
        request_tokens: e.request_tokens,
        response_text: owned(e.response_text),
        response_tokens: e.response_tokens,
        finish_reason: owned(e.finish_reason),
        status: e.status,
        error_type: owned(e.error_type),
        error_message: owned(e.error_message),
        latency_ms: e.latency_ms,
        ttft_ms: e.ttft_ms,
        tests: e.tests,
        labels: e.labels().map(|(k, v)| (k.into(), v.into())).collect(),
        evals: e
            .evals()
            .map(|(k, r)| (k.into(), r.score, owned(r.label)))
            .collect(),
        flags: e.flags().map(|(k, b)| (k.into(), b)).collect(),
        features: e.features().map(|(k, x)| (k.into(), x)).collect(),
        lookups: Vec::new(),
        leaves: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle: the DOM semantics of commit 9d5210d.

fn old_decode(f: &FieldMap, bytes: &[u8], pointers: &[String]) -> Result<Decoded, Reject> {
    if bytes.len() > MAX_BYTES {
        return Err(Reject::Oversized {
            size: bytes.len(),
            max: MAX_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Reject::EmptyRecord);
    }
    if let Some(pointer) = first_duplicate(bytes) {
        return Err(Reject::DuplicateKey { pointer });
    }
    let root: Value = serde_json::from_slice(bytes).map_err(|e| Reject::NotJson(e.to_string()))?;
    if !root.is_object() {
        return Err(Reject::NotObject);
    }
    let r = &root;
    let status = match opt_str(r, &f.status)? {
        Some("ok") => Status::Ok,
        Some("error") => Status::Error,
        Some(_) => {
            return Err(Reject::WrongType {
                pointer: f.status.clone(),
                expected: "\"ok\" or \"error\"",
                found: "another string",
            });
        }
        None if get(r, &f.error).is_some() => Status::Error,
        None => Status::Ok,
    };
    let id = required_str(r, &f.id)?;
    let ts_ms = timestamp(r, &f.ts)?;
    let service = required_str(r, &f.service)?;
    let operation = opt_str(r, &f.operation)?.unwrap_or("default");
    let model = opt_str(r, &f.model)?;
    let request_text = opt_str(r, &f.request_text)?;
    let request_tokens = opt_num(r, &f.request_tokens)?;
    let response_text = opt_str(r, &f.response_text)?;
    let response_tokens = opt_num(r, &f.response_tokens)?;
    let finish_reason = opt_str(r, &f.finish_reason)?;
    let error_type = opt_str(r, &f.error_type)?;
    let error_message = opt_str(r, &f.error_message)?;
    let latency_ms = opt_num(r, &f.latency_ms)?;
    let ttft_ms = opt_num(r, &f.ttft_ms)?;
    let counts = TestCounts {
        passed: opt_num(r, &f.tests_passed)?,
        failed: opt_num(r, &f.tests_failed)?,
        skipped: opt_num(r, &f.tests_skipped)?,
    };
    let labels = opt_map(r, &f.labels, "a string or null", |v| {
        v.is_string() || v.is_null()
    })?;
    let evals = opt_map(r, &f.evals, "a number or {score, label}", |v| match v {
        Value::Null | Value::Number(_) => true,
        Value::Object(o) => {
            o.get("score").is_none_or(|s| s.is_number() || s.is_null())
                && o.get("label").is_none_or(|l| l.is_string() || l.is_null())
        }
        _ => false,
    })?;
    let flags = opt_map(r, &f.flags, "a boolean or null", |v| {
        v.is_boolean() || v.is_null()
    })?;
    let features = opt_map(r, &f.features, "a number or null", |v| {
        v.is_number() || v.is_null()
    })?;
    let eval_of = |v: &Value| match v {
        Value::Number(n) => Some((n.as_f64(), None)),
        Value::Object(o) => Some((
            o.get("score").and_then(Value::as_f64),
            o.get("label").and_then(Value::as_str).map(str::to_owned),
        )),
        _ => None,
    };
    let mut decoded = Decoded {
        id: id.into(),
        ts_ms,
        service: service.into(),
        operation: operation.into(),
        model: owned(model),
        request_text: owned(request_text),
        request_tokens,
        response_text: owned(response_text),
        response_tokens,
        finish_reason: owned(finish_reason),
        status,
        error_type: owned(error_type),
        error_message: owned(error_message),
        latency_ms,
        ttft_ms,
        tests: (counts != TestCounts::default()).then_some(counts),
        labels: entries(labels)
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        evals: entries(evals)
            .filter_map(|(k, v)| eval_of(v).map(|(s, l)| (k.clone(), s, l)))
            .collect(),
        flags: entries(flags)
            .filter_map(|(k, v)| Some((k.clone(), v.as_bool()?)))
            .collect(),
        features: entries(features)
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect(),
        lookups: Vec::new(),
        leaves: pointers
            .iter()
            .map(|p| {
                let leaf = root
                    .pointer(p)
                    .filter(|v| v.is_boolean() || v.is_number() || v.is_string());
                (p.clone(), leaf.cloned())
            })
            .collect(),
    };
    decoded.lookups = probes(&decoded)
        .into_iter()
        .map(|k| {
            (
                k.clone(),
                at(labels, &k).and_then(Value::as_str).map(str::to_owned),
                at(evals, &k).and_then(eval_of),
                at(flags, &k).and_then(Value::as_bool),
            )
        })
        .collect();
    Ok(decoded)
}

type Obj = serde_json::Map<String, Value>;

fn entries(map: Option<&Obj>) -> impl Iterator<Item = (&String, &Value)> {
    map.into_iter().flatten()
}

fn at<'a>(map: Option<&'a Obj>, key: &str) -> Option<&'a Value> {
    map?.get(key)
}

/// `Value::pointer`, with `null` as absent.
fn get<'a>(record: &'a Value, pointer: &str) -> Option<&'a Value> {
    record.pointer(pointer).filter(|v| !v.is_null())
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
) -> Result<Option<&'a Obj>, Reject> {
    match get(record, pointer) {
        None => Ok(None),
        Some(Value::Object(map)) => match map.values().find(|v| !valid(v)) {
            None => Ok(Some(map)),
            Some(bad) => Err(wrong_type(pointer, expected_values, bad)),
        },
        Some(other) => Err(wrong_type(pointer, "an object", other)),
    }
}

fn timestamp(record: &Value, pointer: &str) -> Result<i64, Reject> {
    const RANGE: &str = "outside the supported range 0001-01-01T00:00:00Z ..= \
         9999-12-31T23:59:59.999Z (epoch ms -62135596800000 ..= 253402300799999)";
    let bad = |detail: String| Reject::BadTimestamp {
        pointer: pointer.to_owned(),
        detail,
    };
    let in_range = |ms: i64| (MIN_EVENT_TS_MS..=MAX_EVENT_TS_MS).contains(&ms);
    match get(record, pointer) {
        None => Err(Reject::MissingField {
            pointer: pointer.to_owned(),
        }),
        Some(Value::String(s)) => {
            let ms = chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .map_err(|e| bad(format!("{s:?}: {e}")))?;
            if in_range(ms) {
                Ok(ms)
            } else {
                Err(bad(format!("{s:?} is {RANGE}")))
            }
        }
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(ms), _, _) if in_range(ms) => Ok(ms),
            (Some(ms), _, _) => Err(bad(format!("{ms} ms is {RANGE}"))),
            (None, Some(_), _) => Err(bad(format!("{n} ms is {RANGE}"))),
            (None, None, Some(x)) if x.is_finite() && x.fract() == 0.0 => {
                Err(bad(format!("{n} ms is {RANGE}")))
            }
            _ => Err(bad(format!("{n} is not an integer"))),
        },
        Some(other) => Err(wrong_type(pointer, "an RFC 3339 string or epoch ms", other)),
    }
}

/// The first key repeated in one object, in reading order, as an escaped pointer; `None` when there
/// is none before the end or before the first syntax error (which then wins, as in one pass).
fn first_duplicate(bytes: &[u8]) -> Option<String> {
    let mut path = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // Only the path matters: it is filled on a duplicate, and only then.
    let _ = Dups(&mut path).deserialize(&mut de);
    path.reverse();
    (!path.is_empty()).then(|| {
        path.iter()
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect()
    })
}

/// Walks any value; on the first repeated key, fills the path (innermost first) and stops.
struct Dups<'p>(&'p mut Vec<String>);

impl<'de> DeserializeSeed<'de> for Dups<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Dups<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            match seq.next_element_seed(Dups(&mut *self.0)) {
                Ok(Some(())) => i += 1,
                Ok(None) => return Ok(()),
                Err(e) => {
                    if !self.0.is_empty() {
                        self.0.push(i.to_string());
                    }
                    return Err(e);
                }
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if let Err(e) = map.next_value_seed(Dups(&mut *self.0)) {
                if !self.0.is_empty() {
                    self.0.push(key);
                }
                return Err(e);
            }
            if !seen.insert(key.clone()) {
                self.0.push(key);
                return Err(serde::de::Error::custom("duplicate key"));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

fn decoders() -> Vec<(FieldMap, Decoder, Vec<String>)> {
    [FieldMap::default(), exotic_fields()]
        .into_iter()
        .map(|f| {
            let d = Decoder::new(f.clone(), MAX_BYTES).reading(EXTRA);
            let mut pointers: Vec<String> = EXTRA.iter().map(|p| (*p).to_owned()).collect();
            let _ = f.map(|p| pointers.push(p.clone()));
            (f, d, pointers)
        })
        .collect()
}

/// Decodes with both under both field maps; panics with the record on any difference.
fn agree(decoders: &[(FieldMap, Decoder, Vec<String>)], bytes: &[u8]) -> Vec<Result<(), Reject>> {
    decoders
        .iter()
        .map(|(f, d, pointers)| {
            let ours = new_decode(d, bytes, pointers);
            let theirs = old_decode(f, bytes, pointers);
            assert_eq!(
                ours,
                theirs,
                "{} under {f:?}",
                String::from_utf8_lossy(bytes)
            );
            ours.map(|_| ())
        })
        .collect()
}

#[test]
fn hand_made_records_agree_and_each_is_decided_as_intended() {
    let ds = decoders();
    // (record, outcome under the default field map: Ok or the reason code).
    let cases: &[(&str, Result<(), &str>)] = &[
        (r#"{"id":"a","ts":1,"service":"s"}"#, Ok(())),
        // Duplicates inside subtrees no pointer reads, and inside arrays.
        (
            r#"{"id":"a","ts":1,"service":"s","x":{"y":[1,{"z":1,"z":2}]}}"#,
            Err("duplicate_key"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","a":[[{"k":1}],[{"k":1,"k":1}]]}"#,
            Err("duplicate_key"),
        ),
        (r#"[{"q":1,"q":2}]"#, Err("duplicate_key")),
        // The inner duplicate of the repeated key's second value is met first.
        (r#"{"a":{"b":1},"a":{"c":1,"c":2}}"#, Err("duplicate_key")),
        // A syntax error before the duplicate wins; one after it does not.
        (r#"{"a":1,"b":[1,],"a":2}"#, Err("not_json")),
        (r#"{"a":1,"a":2,"b":[1,]}"#, Err("duplicate_key")),
        (r#"{"a":1,"a":2} trailing"#, Err("duplicate_key")),
        // Escaped keys are compared unescaped, and found by unescaped tokens.
        (
            r#"{"\u0069d":"a","ts":1,"service":"s","i\u0064":"b"}"#,
            Err("duplicate_key"),
        ),
        (r#"{"\u0069d":"\u00e9\"","ts":1,"service":"s\\"}"#, Ok(())),
        (
            r#"{"id":"a","ts":1,"service":"s","a/b":1,"a\/b":2}"#,
            Err("duplicate_key"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","a/b":true,"m~n":{"x":"\u00e9"},"\u00e9":2.5}"#,
            Ok(()),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","labels":{"t\"":"\"","tier":"g\u00e9"}}"#,
            Ok(()),
        ),
        // Array indices: "/a/0" reads, "/a/01" and "/a/-" never do.
        (
            r#"{"id":"a","ts":1,"service":"s","a":[7,{"k":"v"}],"request":["x"]}"#,
            Ok(()),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","a":{"0":1,"01":2,"-":3}}"#,
            Ok(()),
        ),
        // Nulls are absent: required ones missing, optional ones None.
        (r#"{"id":null,"ts":1,"service":"s"}"#, Err("missing_field")),
        (
            r#"{"id":"a","ts":null,"service":"s"}"#,
            Err("missing_field"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","model":null,"labels":null,"status":null,"error":null}"#,
            Ok(()),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","labels":{"t":null},"evals":{"e":null,"f":{"score":null,"label":null}},"flags":{"h":null},"features":{"x":null}}"#,
            Ok(()),
        ),
        // Wrong types, field by field.
        (r#"{"id":1,"ts":1,"service":"s"}"#, Err("wrong_type")),
        (r#"{"id":"a","ts":true,"service":"s"}"#, Err("wrong_type")),
        (r#"{"id":"a","ts":1,"service":["s"]}"#, Err("wrong_type")),
        (
            r#"{"id":"a","ts":1,"service":"s","operation":{}}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","model":false}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","request":{"text":1}}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","request":{"tokens":"3"}}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","response":{"finish_reason":[]}}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","status":true}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","status":"OK"}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","error":{"type":1}}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","error":{"message":{}}}"#,
            Err("wrong_type"),
        ),
        (r#"{"id":"a","ts":1,"service":"s","error":"boom"}"#, Ok(())),
        (
            r#"{"id":"a","ts":1,"service":"s","ttft_ms":"1"}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","tests":{"skipped":null,"failed":"x"}}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","labels":[]}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","evals":{"e":"0.5"}}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","evals":{"e":{"score":1,"label":2}}}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","evals":{"e":{"other":[]}}}"#,
            Ok(()),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","features":{"x":true}}"#,
            Err("wrong_type"),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","flags":{"x":0}}"#,
            Err("wrong_type"),
        ),
        // Huge and fractional numbers.
        (
            r#"{"id":"a","ts":1,"service":"s","latency_ms":1e308,"ttft_ms":-0.0,"features":{"x":18446744073709551615,"y":-9223372036854775808,"z":5e-324}}"#,
            Ok(()),
        ),
        (
            r#"{"id":"a","ts":1,"service":"s","latency_ms":1e400}"#,
            Err("not_json"),
        ),
        (r#"{"id":"a","ts":1.0,"service":"s"}"#, Err("bad_timestamp")),
        (r#"{"id":"a","ts":1e3,"service":"s"}"#, Err("bad_timestamp")),
        (
            r#"{"id":"a","ts":18446744073709551615,"service":"s"}"#,
            Err("bad_timestamp"),
        ),
        (
            r#"{"id":"a","ts":-9223372036854775808,"service":"s"}"#,
            Err("bad_timestamp"),
        ),
        // Timestamps as strings.
        (
            r#"{"id":"a","ts":"2026-11-22T10:00:01.250+01:00","service":"s"}"#,
            Ok(()),
        ),
        (
            r#"{"id":"a","ts":"2026-11-22 10:00:01Z","service":"s"}"#,
            Ok(()),
        ),
        (
            r#"{"id":"a","ts":"1700000000000","service":"s"}"#,
            Err("bad_timestamp"),
        ),
        (
            r#"{"id":"a","ts":"\u0032026-11-22T10:00:01Z","service":"s"}"#,
            Ok(()),
        ),
        // Non-object roots, trailing garbage, empty and broken payloads.
        ("[]", Err("not_object")),
        (r#""{}""#, Err("not_object")),
        ("null", Err("not_object")),
        ("1", Err("not_object")),
        (r#"{"id":"a","ts":1,"service":"s"} x"#, Err("not_json")),
        (r#"{"id":"a","ts":1,"service":"s"}{}"#, Err("not_json")),
        (r#"{"id":"a","ts":1,"service":"s"}  "#, Ok(())),
        ("  ", Err("empty_record")),
        (r#"{"id":"a\ud800","ts":1,"service":"s"}"#, Err("not_json")),
        (r#"{"id":"a","ts":1,"service":"s""#, Err("not_json")),
    ];
    for (text, want) in cases {
        let got = agree(&ds, text.as_bytes());
        assert_eq!(got[0].clone().map_err(|r| r.code()), *want, "{text}");
    }
    // Objects past the linear scan's size are checked by hash: a late duplicate is still found.
    let many: String = (0..40).map(|i| format!(r#","k{i}":{i}"#)).collect();
    for (extra, want) in [("", Ok(())), (r#","k3":0"#, Err("duplicate_key"))] {
        let text =
            format!(r#"{{"id":"a","ts":1,"service":"s","features":{{"x":1{many}{extra}}}{many}}}"#);
        let got = agree(&ds, text.as_bytes());
        assert_eq!(got[0].clone().map_err(|r| r.code()), want, "{text}");
    }
    let oversized = format!(r#"{{"id":"{}"}}"#, "x".repeat(MAX_BYTES));
    assert_eq!(
        agree(&ds, oversized.as_bytes())[0]
            .as_ref()
            .map_err(Reject::code),
        Err("oversized")
    );
}

#[test]
fn the_exotic_field_map_reads_through_arrays_escapes_and_the_root() {
    let ds = decoders();
    let text = r#"{"meta":[{"id":"r"}],"t~1s":"x","t/s":5,"a":[{"e":0.5},{"k":"svc"}],"m~n":{"x":"y"},"é":3}"#;
    // "/t~1s" reads the key "t/s"; the root is the features map and holds a non-number.
    let got = agree(&ds, text.as_bytes());
    assert_eq!(got[1].as_ref().map_err(Reject::code), Err("wrong_type"));
    let text = r#"{"meta":[{"id":"r"}],"t/s":5,"a":[{"e":0.5},{"k":"svc"}],"é":3}"#;
    let got = agree(&ds, text.as_bytes());
    assert_eq!(
        got[1].as_ref().map_err(Reject::code),
        Err("wrong_type"),
        "root features: a list"
    );
    let text = r#"{"meta":null,"t/s":5,"a":null,"é":3}"#;
    let got = agree(&ds, text.as_bytes());
    assert_eq!(got[1].as_ref().map_err(Reject::code), Err("missing_field"));
}

// ---------------------------------------------------------------------------------------------
// Generated records: a JSON text tree whose objects may repeat keys and whose strings may be
// written with escapes.

fn string() -> impl Strategy<Value = (String, bool)> {
    (
        prop_oneof![
            "[a-z]{0,3}",
            any::<String>(),
            prop::sample::select(vec![
                "ok",
                "error",
                "é",
                "\"",
                "\\",
                "a/b",
                "m~n",
                "2026-11-30T00:00:00Z",
                "2026-11-30T00:00:00.5+02:00",
                "0000-01-01T00:00:00Z",
                "1700000000000",
            ])
            .prop_map(str::to_owned),
        ],
        prop::bool::weighted(0.2),
    )
}

/// Keys the field maps and extra pointers read, mixed with arbitrary ones.
fn key() -> impl Strategy<Value = (String, bool)> {
    (
        prop_oneof![
            4 => prop::sample::select(vec![
                "id", "ts", "service", "operation", "model", "status", "error", "type", "message",
                "latency_ms", "ttft_ms", "request", "response", "text", "tokens", "finish_reason",
                "tests", "passed", "failed", "skipped", "labels", "evals", "flags", "features",
                "score", "label", "tier", "x", "k", "a", "0", "01", "-", "a/b", "m~n", "é", "meta",
                "t/s", "t~1s", "", "\"",
            ])
            .prop_map(str::to_owned),
            1 => "[a-z/~0-9]{0,3}",
        ],
        prop::bool::weighted(0.15),
    )
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        // Besides valid numbers, a few texts that only look like numbers (invalid JSON).
        prop_oneof![
            9 => number(),
            1 => prop::sample::select(vec!["01", "1.", "+1"]).prop_map(str::to_owned),
        ]
        .prop_map(Json::Num),
        string().prop_map(|(s, e)| Json::Str(s, e)),
    ];
    leaf.prop_recursive(5, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Arr),
            (
                prop::collection::vec((key(), inner), 0..6),
                prop::bool::weighted(0.1)
            )
                .prop_map(|(mut fields, keep_duplicates)| {
                    if !keep_duplicates {
                        let mut seen = HashSet::new();
                        fields.retain(|((k, _), _)| seen.insert(k.clone()));
                    }
                    Json::Obj(fields)
                }),
        ]
    })
}

/// A record of roughly the canonical shape: the required fields usually right, anything else.
fn record() -> impl Strategy<Value = Json> {
    let plain = |s: &str| Json::Str(s.to_owned(), false);
    let ts = prop_oneof![
        2 => (0i64..2_000_000_000_000).prop_map(|n| Json::Num(n.to_string())),
        1 => Just(Json::Str("2026-11-30T00:00:00Z".into(), false)),
        1 => json(),
    ];
    (
        prop_oneof![3 => Just(plain("r1")), 1 => json()],
        ts,
        prop_oneof![3 => Just(plain("chat")), 1 => json()],
        prop::collection::vec((key(), json()), 0..8),
        prop::bool::weighted(0.1),
    )
        .prop_map(move |(id, ts, service, rest, duplicate)| {
            let mut fields = vec![
                (("id".to_owned(), false), id),
                (("ts".to_owned(), false), ts),
                (("service".to_owned(), false), service),
            ];
            fields.extend(rest);
            if !duplicate {
                let mut seen = HashSet::new();
                fields.retain(|((k, _), _)| seen.insert(k.clone()));
            }
            Json::Obj(fields)
        })
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    let rendered = |r: Json| {
        let mut s = String::new();
        r.render(&mut s);
        s
    };
    prop_oneof![
        8 => record().prop_map(move |r| rendered(r).into_bytes()),
        1 => json().prop_map(move |r| rendered(r).into_bytes()),
        1 => (record(), prop::sample::select(vec![" ", "}", ",", " x", "{}", "]", "\u{0}"]))
            .prop_map(move |(r, tail)| (rendered(r) + tail).into_bytes()),
        1 => (record(), any::<prop::sample::Index>()).prop_map(move |(r, cut)| {
            let bytes = rendered(r).into_bytes();
            let at = cut.index(bytes.len() + 1);
            bytes[..at].to_vec()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_records_are_decided_alike(bytes in payload()) {
        agree(&decoders(), &bytes);
    }
}

/// The generator reaches every outcome, so agreement above is not agreement on refusals alone.
#[test]
fn the_generator_reaches_acceptance_and_every_parse_refusal() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let ds = decoders();
    let mut runner = TestRunner::deterministic();
    let mut seen = HashSet::new();
    for _ in 0..2000 {
        let bytes = payload().new_tree(&mut runner).expect("a tree").current();
        for r in agree(&ds, &bytes) {
            seen.insert(r.map_or_else(|r| r.code(), |()| "accepted"));
        }
    }
    for code in [
        "accepted",
        "duplicate_key",
        "not_json",
        "not_object",
        "missing_field",
        "wrong_type",
        "bad_timestamp",
    ] {
        assert!(seen.contains(code), "{code} never reached: {seen:?}");
    }
}

/// The oracle's own duplicate pass, on cases worked by hand.
#[test]
fn the_oracle_finds_duplicates_where_the_old_decoder_did() {
    assert_eq!(
        first_duplicate(br#"{"l":[0,{"m/~":{"k":1,"k":2}}]}"#).as_deref(),
        Some("/l/1/m~1~0/k")
    );
    assert_eq!(first_duplicate(br#"{"a":1,"b":[,],"a":2}"#), None);
    assert_eq!(
        first_duplicate(br#"{"a":{"b":1},"a":{"c":1,"c":2}}"#).as_deref(),
        Some("/a/c")
    );
}
