//! The canonical request/response event, borrowed from one parsed JSON record.
//!
//! `Event` borrows every string from the record's `serde_json::Value`, so decoding allocates nothing
//! beyond the parse itself; the archive copies straight from these borrows into Arrow builders.

use serde_json::{Map, Value};

/// Whether the AI service answered. Defaults to `Error` when an `error` object is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error,
}

impl Status {
    /// The spelling used in records, metrics and the archive.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

/// Test-suite counts carried by a code-assistant style record.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TestCounts {
    pub passed: Option<f64>,
    pub failed: Option<f64>,
    pub skipped: Option<f64>,
}

/// One evaluator result: a bare number, or `{score, label}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult<'a> {
    pub score: Option<f64>,
    pub label: Option<&'a str>,
}

/// A decoded event. Maps (`labels`, `evals`, `flags`, `features`) were type-checked by the decoder,
/// so their accessors never meet a value of the wrong type.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// The whole parsed record, for fields read by pointer after decoding (correlation keys).
    pub record: &'a Value,
    pub id: &'a str,
    /// Event time, milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    pub service: &'a str,
    pub operation: &'a str,
    pub model: Option<&'a str>,
    pub request_text: Option<&'a str>,
    pub request_tokens: Option<f64>,
    pub response_text: Option<&'a str>,
    pub response_tokens: Option<f64>,
    pub finish_reason: Option<&'a str>,
    pub status: Status,
    pub error_type: Option<&'a str>,
    pub error_message: Option<&'a str>,
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub tests: Option<TestCounts>,
    pub(crate) labels: Option<&'a Map<String, Value>>,
    pub(crate) evals: Option<&'a Map<String, Value>>,
    pub(crate) flags: Option<&'a Map<String, Value>>,
    pub(crate) features: Option<&'a Map<String, Value>>,
}

impl<'a> Event<'a> {
    /// `labels` as string pairs (null values were dropped by the decoder's type check).
    pub fn labels(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.labels
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
    }

    /// One label's value.
    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.labels?.get(key)?.as_str()
    }

    /// Evaluator results by name.
    pub fn evals(&self) -> impl Iterator<Item = (&'a str, EvalResult<'a>)> + 'a {
        self.evals
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| eval_result(v).map(|r| (k.as_str(), r)))
    }

    /// One evaluator's result.
    pub fn eval(&self, name: &str) -> Option<EvalResult<'a>> {
        eval_result(self.evals?.get(name)?)
    }

    /// Boolean flags by name (hallucination, toxicity, ...).
    pub fn flags(&self) -> impl Iterator<Item = (&'a str, bool)> + 'a {
        self.flags
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_bool().map(|b| (k.as_str(), b)))
    }

    /// One flag's value.
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.flags?.get(name)?.as_bool()
    }

    /// Numeric features by name.
    pub fn features(&self) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.features
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_f64().map(|x| (k.as_str(), x)))
    }
}

fn eval_result(v: &Value) -> Option<EvalResult<'_>> {
    match v {
        Value::Number(n) => Some(EvalResult {
            score: n.as_f64(),
            label: None,
        }),
        Value::Object(o) => Some(EvalResult {
            score: o.get("score").and_then(Value::as_f64),
            label: o.get("label").and_then(Value::as_str),
        }),
        _ => None,
    }
}
