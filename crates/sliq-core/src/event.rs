//! The canonical request/response event, borrowed from one parsed record.
//!
//! `Event` borrows every string from the [`Record`] the decoder captured (itself borrowed from the
//! record's bytes), so decoding copies nothing; the archive copies straight from these borrows into
//! Arrow builders.

use crate::decode::{Entry, Json, Leaf, Record};

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
    /// The captured record, for pointers read after decoding (drift features, correlation keys).
    pub(crate) record: &'a Record<'a>,
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
    pub(crate) labels: Option<&'a [Entry]>,
    pub(crate) evals: Option<&'a [Entry]>,
    pub(crate) flags: Option<&'a [Entry]>,
    pub(crate) features: Option<&'a [Entry]>,
}

impl<'a> Event<'a> {
    /// The scalar at a pointer registered with the decoder ([`crate::Decoder::reading`] or the
    /// field map); `None` when absent, `null`, a container, or never registered.
    pub fn value_at(&self, pointer: &str) -> Option<Leaf<'a>> {
        self.record.value_at(pointer)
    }

    /// `labels` as string pairs (null values were dropped by the decoder's type check).
    pub fn labels(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let r = self.record;
        entries(r, self.labels).filter_map(move |(k, e)| r.as_str(&e.value).map(|v| (k, v)))
    }

    /// One label's value.
    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.record
            .as_str(&find(self.record, self.labels, key)?.value)
    }

    /// Evaluator results by name.
    pub fn evals(&self) -> impl Iterator<Item = (&'a str, EvalResult<'a>)> + 'a {
        let r = self.record;
        entries(r, self.evals).filter_map(move |(k, e)| eval_result(r, e).map(|v| (k, v)))
    }

    /// One evaluator's result.
    pub fn eval(&self, name: &str) -> Option<EvalResult<'a>> {
        eval_result(self.record, find(self.record, self.evals, name)?)
    }

    /// Boolean flags by name (hallucination, toxicity, ...).
    pub fn flags(&self) -> impl Iterator<Item = (&'a str, bool)> + 'a {
        entries(self.record, self.flags).filter_map(|(k, e)| as_bool(&e.value).map(|b| (k, b)))
    }

    /// One flag's value.
    pub fn flag(&self, name: &str) -> Option<bool> {
        as_bool(&find(self.record, self.flags, name)?.value)
    }

    /// Numeric features by name.
    pub fn features(&self) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        entries(self.record, self.features).filter_map(|(k, e)| as_f64(&e.value).map(|x| (k, x)))
    }
}

fn entries<'a>(
    record: &'a Record<'a>,
    map: Option<&'a [Entry]>,
) -> impl Iterator<Item = (&'a str, &'a Entry)> {
    map.into_iter().flatten().map(|e| (record.str(e.key), e))
}

/// Entries are sorted by key (the decoder sorts them), so lookups bisect.
fn find<'a>(record: &Record<'_>, map: Option<&'a [Entry]>, key: &str) -> Option<&'a Entry> {
    let map = map?;
    let at = map.binary_search_by(|e| record.str(e.key).cmp(key)).ok()?;
    Some(&map[at])
}

fn as_bool(v: &Json) -> Option<bool> {
    match v {
        Json::Bool(b) => Some(*b),
        _ => None,
    }
}

fn as_f64(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn eval_result<'a>(record: &'a Record<'a>, e: &Entry) -> Option<EvalResult<'a>> {
    match &e.value {
        Json::Number(n) => Some(EvalResult {
            score: n.as_f64(),
            label: None,
        }),
        Json::Object => Some(EvalResult {
            score: as_f64(&e.score),
            label: record.as_str(&e.label),
        }),
        _ => None,
    }
}
