//! Bytes → JSON → [`Event`], with every refusal given a stable reason code for the dead-letter topic.
//!
//! Fields are found by JSON Pointer ([`FieldMap`]), so any record shape works; the defaults are the
//! canonical shape of `schemas/request-log.v1.schema.json`.

use std::fmt;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

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

/// Where each canonical field lives in a record, as JSON Pointers (RFC 6901). The decoder keeps
/// the same shape with each pointer's capture slot (`FieldMap<Field>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap<P = String> {
    pub id: P,
    pub ts: P,
    pub service: P,
    pub operation: P,
    pub model: P,
    pub labels: P,
    pub request_text: P,
    pub request_tokens: P,
    pub response_text: P,
    pub response_tokens: P,
    pub finish_reason: P,
    pub status: P,
    pub error: P,
    pub error_type: P,
    pub error_message: P,
    pub latency_ms: P,
    pub ttft_ms: P,
    pub evals: P,
    pub flags: P,
    pub tests_passed: P,
    pub tests_failed: P,
    pub tests_skipped: P,
    pub features: P,
}

impl<P> FieldMap<P> {
    /// The same fields, each converted by `f`.
    pub fn map<Q>(&self, mut f: impl FnMut(&P) -> Q) -> FieldMap<Q> {
        FieldMap {
            id: f(&self.id),
            ts: f(&self.ts),
            service: f(&self.service),
            operation: f(&self.operation),
            model: f(&self.model),
            labels: f(&self.labels),
            request_text: f(&self.request_text),
            request_tokens: f(&self.request_tokens),
            response_text: f(&self.response_text),
            response_tokens: f(&self.response_tokens),
            finish_reason: f(&self.finish_reason),
            status: f(&self.status),
            error: f(&self.error),
            error_type: f(&self.error_type),
            error_message: f(&self.error_message),
            latency_ms: f(&self.latency_ms),
            ttft_ms: f(&self.ttft_ms),
            evals: f(&self.evals),
            flags: f(&self.flags),
            tests_passed: f(&self.tests_passed),
            tests_failed: f(&self.tests_failed),
            tests_skipped: f(&self.tests_skipped),
            features: f(&self.features),
        }
    }
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

/// A field's pointer and the slot its value is captured in (`None`: the pointer does not start
/// with `/`, so it never resolves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub pointer: String,
    slot: Option<usize>,
}

/// Turns record bytes into events according to a [`FieldMap`].
///
/// Every pointer the spec reads (the field map's, and those given to [`Decoder::reading`]) is
/// compiled into one trie at construction; [`Decoder::parse`] walks the JSON once, descends only
/// into keys on the trie, captures what they hold (strings as offsets into the bytes) and skips
/// the rest, still refusing a key repeated in one object anywhere.
#[derive(Debug, Clone)]
pub struct Decoder {
    fields: FieldMap<Field>,
    trie: Node,
    /// Every registered pointer and its slot, sorted by pointer, for [`Event::value_at`].
    pointers: Vec<(Box<str>, usize)>,
    max_record_bytes: usize,
}

impl Decoder {
    pub fn new(fields: FieldMap, max_record_bytes: usize) -> Self {
        let mut trie = Node::default();
        let mut slots = 0;
        let fields = fields.map(|pointer| Field {
            pointer: pointer.clone(),
            slot: trie.insert(pointer, &mut slots),
        });
        for map in [
            &fields.labels,
            &fields.evals,
            &fields.flags,
            &fields.features,
        ] {
            if let Some(node) = trie.find_mut(&map.pointer) {
                node.keeps_entries = true;
            }
        }
        let mut decoder = Decoder {
            fields,
            trie,
            pointers: Vec::new(),
            max_record_bytes,
        };
        decoder.reindex(slots);
        decoder
    }

    /// Also captures these pointers (drift features, cascade correlation keys), so that
    /// [`Event::value_at`] finds them: only registered pointers are read from a record.
    pub fn reading<'p>(mut self, pointers: impl IntoIterator<Item = &'p str>) -> Self {
        let mut slots = self.pointers.len();
        for pointer in pointers {
            self.trie.insert(pointer, &mut slots);
        }
        self.reindex(slots);
        self
    }

    fn reindex(&mut self, slots: usize) {
        let mut pointers = Vec::with_capacity(slots);
        self.trie
            .collect_pointers(&mut String::new(), &mut pointers);
        pointers.sort_unstable();
        self.pointers = pointers;
    }

    /// Parses the bytes of one record. The size check comes first so an oversized record costs
    /// nothing. An empty or whitespace-only payload is [`Reject::EmptyRecord`]; a key repeated in
    /// one object, at any depth, is [`Reject::DuplicateKey`].
    pub fn parse<'a>(&'a self, bytes: &'a [u8]) -> Result<Record<'a>, Reject> {
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
        let mut state = Recycled::take();
        state
            .0
            .slots
            .resize_with(self.pointers.len(), Captured::default);
        // A record JSON accepts is UTF-8 throughout (its strings are checked, the rest is ASCII),
        // so one check of the whole lets serde_json skip checking it string by string. Bytes that
        // are not UTF-8 are refused: they are walked without capturing anything, for serde_json's
        // own error (or the duplicate key before it).
        let (root, text) = match std::str::from_utf8(bytes) {
            Ok(text) => {
                let de = serde_json::Deserializer::from_str(text);
                (Self::walk(&mut state.0, bytes, Some(&self.trie), de), text)
            }
            Err(e) => {
                let de = serde_json::Deserializer::from_slice(bytes);
                Self::walk(&mut state.0, bytes, None, de)?;
                return Err(Reject::NotJson(e.to_string()));
            }
        };
        if !matches!(root?, Json::Object) {
            return Err(Reject::NotObject);
        }
        Ok(Record {
            text,
            state,
            pointers: &self.pointers,
        })
    }

    /// One walk of a record from the trie's `root` (`None`: capture nothing); the root value is
    /// captured too if a pointer names it.
    fn walk<'de, R: serde_json::de::Read<'de>>(
        state: &mut WalkState,
        input: &'de [u8],
        root: Option<&Node>,
        mut de: serde_json::Deserializer<R>,
    ) -> Result<Json, Reject> {
        let value = Walk {
            state: &mut *state,
            input,
            node: root,
            keep: root.is_some_and(|n| n.slot.is_some()),
            eval: None,
        }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
        match (value, state.duplicate.take()) {
            (Ok(v), _) => {
                if let Some(slot) = root.and_then(|n| n.slot) {
                    state.slots[slot].value = v.clone();
                }
                Ok(v)
            }
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

    /// [`Decoder::parse`] for a Kafka payload as the client hands it: `None` (a tombstone) is
    /// [`Reject::EmptyRecord`].
    pub fn parse_payload<'a>(&'a self, payload: Option<&'a [u8]>) -> Result<Record<'a>, Reject> {
        self.parse(payload.ok_or(Reject::EmptyRecord)?)
    }

    /// Extracts and type-checks the canonical fields of a parsed record.
    pub fn decode<'a>(&self, record: &'a Record<'a>) -> Result<Event<'a>, Reject> {
        let f = &self.fields;
        let r = record;
        let error = r.get(&f.error);
        let status = match opt_str(r, &f.status)? {
            Some("ok") => Status::Ok,
            Some("error") => Status::Error,
            Some(_) => {
                return Err(Reject::WrongType {
                    pointer: f.status.pointer.clone(),
                    expected: "\"ok\" or \"error\"",
                    found: "another string",
                });
            }
            None if error.is_some() => Status::Error,
            None => Status::Ok,
        };
        Ok(Event {
            record,
            id: required_str(r, &f.id)?,
            ts_ms: timestamp(r, &f.ts)?,
            service: required_str(r, &f.service)?,
            operation: opt_str(r, &f.operation)?.unwrap_or("default"),
            model: opt_str(r, &f.model)?,
            request_text: opt_str(r, &f.request_text)?,
            request_tokens: opt_num(r, &f.request_tokens)?,
            response_text: opt_str(r, &f.response_text)?,
            response_tokens: opt_num(r, &f.response_tokens)?,
            finish_reason: opt_str(r, &f.finish_reason)?,
            status,
            error_type: opt_str(r, &f.error_type)?,
            error_message: opt_str(r, &f.error_message)?,
            latency_ms: opt_num(r, &f.latency_ms)?,
            ttft_ms: opt_num(r, &f.ttft_ms)?,
            tests: tests(r, f)?,
            labels: opt_map(r, &f.labels, "a string or null", |e| {
                matches!(e.value, Json::String(_) | Json::Null)
            })?,
            evals: opt_map(r, &f.evals, "a number or {score, label}", valid_eval)?,
            flags: opt_map(r, &f.flags, "a boolean or null", |e| {
                matches!(e.value, Json::Bool(_) | Json::Null)
            })?,
            features: opt_map(r, &f.features, "a number or null", |e| {
                matches!(e.value, Json::Number(_) | Json::Null)
            })?,
        })
    }
}

/// One record's captured values: one slot per registered pointer, strings as offsets into the
/// record's text (those with escapes unescaped into an arena). Its buffers serve the next record
/// parsed on the same thread once it is dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    text: &'a str,
    state: Recycled,
    pointers: &'a [(Box<str>, usize)],
}

impl<'a> Record<'a> {
    /// The value at a field's pointer; JSON `null` counts as absent.
    fn get(&self, field: &Field) -> Option<&Captured> {
        field
            .slot
            .map(|s| &self.state.0.slots[s])
            .filter(|c| !matches!(c.value, Json::Null))
    }

    /// The entries of a captured map, sorted by key.
    fn entries(&self, captured: &Captured) -> &[Entry] {
        &self.state.0.entries[captured.entries.clone()]
    }

    /// A captured string.
    pub(crate) fn str(&self, text: Text) -> &str {
        let from = if text.in_arena {
            &self.state.0.arena
        } else {
            self.text
        };
        &from[text.start..text.end]
    }

    /// The string a value holds, if it is one.
    pub(crate) fn as_str(&self, value: &Json) -> Option<&str> {
        match value {
            Json::String(s) => Some(self.str(*s)),
            _ => None,
        }
    }

    /// The scalar at a registered pointer; `None` when absent, `null`, an array or an object.
    pub(crate) fn value_at(&self, pointer: &str) -> Option<Leaf<'_>> {
        let i = self
            .pointers
            .binary_search_by(|(p, _)| (**p).cmp(pointer))
            .ok()?;
        match &self.state.0.slots[self.pointers[i].1].value {
            Json::Bool(b) => Some(Leaf::Bool(*b)),
            Json::Number(n) => Some(Leaf::Number(n)),
            Json::String(s) => Some(Leaf::String(self.str(*s))),
            Json::Null | Json::Array | Json::Object => None,
        }
    }
}

/// A scalar read at a registered pointer, borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Leaf<'a> {
    Bool(bool),
    Number(&'a serde_json::Number),
    String(&'a str),
}

/// What a pointer found: the value (containers only by kind) and, for the four maps, where their
/// entries (sorted by key) lie in [`WalkState::entries`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Captured {
    pub(crate) value: Json,
    entries: Range<usize>,
}

/// A JSON value as far as decoding needs it: scalars in full, containers by kind only.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Json {
    #[default]
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Text),
    Array,
    Object,
}

/// One entry of a map field; `score` and `label` are the fields of an object value
/// (`{score, label}` evaluator results), `Null` when absent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) key: Text,
    pub(crate) value: Json,
    pub(crate) score: Json,
    pub(crate) label: Json,
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array => "an array",
        Json::Object => "an object",
    }
}

fn wrong_type(field: &Field, expected: &'static str, found: &Json) -> Reject {
    Reject::WrongType {
        pointer: field.pointer.clone(),
        expected,
        found: type_name(found),
    }
}

fn opt_str<'a>(record: &'a Record<'a>, field: &Field) -> Result<Option<&'a str>, Reject> {
    match record.get(field).map(|c| &c.value) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(record.str(*s))),
        Some(other) => Err(wrong_type(field, "a string", other)),
    }
}

fn required_str<'a>(record: &'a Record<'a>, field: &Field) -> Result<&'a str, Reject> {
    match opt_str(record, field)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(Reject::MissingField {
            pointer: field.pointer.clone(),
        }),
    }
}

fn opt_num(record: &Record<'_>, field: &Field) -> Result<Option<f64>, Reject> {
    match record.get(field).map(|c| &c.value) {
        None => Ok(None),
        Some(Json::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(wrong_type(field, "a number", other)),
    }
}

fn opt_map<'a>(
    record: &'a Record<'a>,
    field: &Field,
    expected_values: &'static str,
    valid: fn(&Entry) -> bool,
) -> Result<Option<&'a [Entry]>, Reject> {
    match record.get(field) {
        None => Ok(None),
        Some(
            c @ Captured {
                value: Json::Object,
                ..
            },
        ) => {
            let entries = record.entries(c);
            match entries.iter().find(|e| !valid(e)) {
                None => Ok(Some(entries)),
                Some(bad) => Err(wrong_type(field, expected_values, &bad.value)),
            }
        }
        Some(other) => Err(wrong_type(field, "an object", &other.value)),
    }
}

fn valid_eval(e: &Entry) -> bool {
    match e.value {
        Json::Null | Json::Number(_) => true,
        Json::Object => {
            matches!(e.score, Json::Number(_) | Json::Null)
                && matches!(e.label, Json::String(_) | Json::Null)
        }
        _ => false,
    }
}

fn tests(record: &Record<'_>, f: &FieldMap<Field>) -> Result<Option<TestCounts>, Reject> {
    let counts = TestCounts {
        passed: opt_num(record, &f.tests_passed)?,
        failed: opt_num(record, &f.tests_failed)?,
        skipped: opt_num(record, &f.tests_skipped)?,
    };
    Ok((counts != TestCounts::default()).then_some(counts))
}

fn timestamp(record: &Record<'_>, field: &Field) -> Result<i64, Reject> {
    let bad = |detail: String| Reject::BadTimestamp {
        pointer: field.pointer.clone(),
        detail,
    };
    match record.get(field).map(|c| &c.value) {
        None => Err(Reject::MissingField {
            pointer: field.pointer.clone(),
        }),
        Some(Json::String(s)) => {
            let s = record.str(*s);
            let ms = chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .map_err(|e| bad(format!("{s:?}: {e}")))?;
            in_range(ms).ok_or_else(|| bad(format!("{s:?} is {}", RANGE_TEXT)))
        }
        Some(Json::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(ms), _, _) => in_range(ms).ok_or_else(|| bad(format!("{ms} ms is {RANGE_TEXT}"))),
            (None, Some(_), _) => Err(bad(format!("{n} ms is {RANGE_TEXT}"))),
            (None, None, Some(f)) if f.is_finite() && f.fract() == 0.0 => {
                Err(bad(format!("{n} ms is {RANGE_TEXT}")))
            }
            _ => Err(bad(format!("{n} is not an integer"))),
        },
        Some(other) => Err(wrong_type(field, "an RFC 3339 string or epoch ms", other)),
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

/// The pointer trie: one node per pointer prefix.
#[derive(Debug, Clone, Default)]
struct Node {
    /// Sorted by [`Child::order`].
    children: Vec<Child>,
    /// Where the value at this node's pointer is captured, if a pointer ends here.
    slot: Option<usize>,
    /// A map field ends here: its entries are captured too.
    keeps_entries: bool,
}

#[derive(Debug, Clone)]
struct Child {
    tag: Tag,
    key: Box<str>,
    /// The array index this token stands for, if it is one (RFC 6901: digits, no leading zero).
    index: Option<usize>,
    node: Node,
}

impl Child {
    /// The order children are kept and searched in: by tag, the rest of the key only on a tie.
    fn order(&self, tag: Tag, key: &[u8]) -> std::cmp::Ordering {
        self.tag
            .cmp(&tag)
            .then_with(|| tag.cmp_rest(self.key.as_bytes(), key))
    }
}

/// A key's first eight bytes and its length: two integer comparisons tell almost every pair of
/// keys apart (trie lookups, the duplicate check) without a call to `memcmp`, and decide keys of
/// up to eight bytes entirely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Tag {
    head: u64,
    len: usize,
}

impl Tag {
    fn of(key: &[u8]) -> Tag {
        let mut head = [0; 8];
        let n = key.len().min(8);
        head[..n].copy_from_slice(&key[..n]);
        Tag {
            head: u64::from_be_bytes(head),
            len: key.len(),
        }
    }

    /// Compares two keys that both have this tag by what it does not cover. Keys of up to eight
    /// bytes are equal by then: no call to `memcmp`, which on empty slices reads their dangling
    /// pointer with masked AVX-512 loads, each a slow microcode assist (half the parse time when
    /// it was called for every key).
    fn cmp_rest(self, a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        if self.len <= 8 {
            return std::cmp::Ordering::Equal;
        }
        a[8..].cmp(&b[8..])
    }
}

/// RFC 6901 reference tokens of a pointer, unescaped; `None` for a pointer that does not start
/// with `/` (it never resolves).
fn tokens(pointer: &str) -> Option<impl Iterator<Item = Cow<'_, str>>> {
    let tokens = match pointer {
        "" => None,
        p => Some(p.strip_prefix('/')?.split('/')),
    };
    Some(tokens.into_iter().flatten().map(|t| {
        if t.contains('~') {
            Cow::Owned(t.replace("~1", "/").replace("~0", "~"))
        } else {
            Cow::Borrowed(t)
        }
    }))
}

impl Node {
    /// Adds a pointer, returning its slot (a new one from `slots` unless it was already there).
    fn insert(&mut self, pointer: &str, slots: &mut usize) -> Option<usize> {
        let mut node = self;
        for token in tokens(pointer)? {
            let tag = Tag::of(token.as_bytes());
            let at = match node
                .children
                .binary_search_by(|c| c.order(tag, token.as_bytes()))
            {
                Ok(at) => at,
                Err(at) => {
                    let canonical = !token.is_empty()
                        && token.bytes().all(|b| b.is_ascii_digit())
                        && (token == "0" || !token.starts_with('0'));
                    let child = Child {
                        tag,
                        index: canonical.then(|| token.parse().ok()).flatten(),
                        key: token.into(),
                        node: Node::default(),
                    };
                    node.children.insert(at, child);
                    at
                }
            };
            node = &mut node.children[at].node;
        }
        Some(*node.slot.get_or_insert_with(|| {
            *slots += 1;
            *slots - 1
        }))
    }

    fn find_mut(&mut self, pointer: &str) -> Option<&mut Node> {
        let mut node = self;
        for token in tokens(pointer)? {
            let at = node
                .children
                .binary_search_by(|c| c.order(Tag::of(token.as_bytes()), token.as_bytes()))
                .ok()?;
            node = &mut node.children[at].node;
        }
        Some(node)
    }

    /// Every pointer that has a slot, escaped again, with its slot.
    fn collect_pointers(&self, prefix: &mut String, out: &mut Vec<(Box<str>, usize)>) {
        if let Some(slot) = self.slot {
            out.push((prefix.as_str().into(), slot));
        }
        for child in &self.children {
            let len = prefix.len();
            prefix.push('/');
            prefix.push_str(&child.key.replace('~', "~0").replace('/', "~1"));
            child.node.collect_pointers(prefix, out);
            prefix.truncate(len);
        }
    }

    fn key_child(&self, tag: Tag, key: &[u8]) -> Option<&Node> {
        let at = self.children.binary_search_by(|c| c.order(tag, key)).ok()?;
        Some(&self.children[at].node)
    }

    fn index_child(&self, index: usize) -> Option<&Node> {
        self.children
            .iter()
            .find(|c| c.index == Some(index))
            .map(|c| &c.node)
    }
}

/// Objects up to this many keys are checked for duplicates by a linear scan (of tags, so mostly
/// integer comparisons); larger ones by hash, so a record of many keys costs O(n), not O(n²).
const LINEAR_KEYS: usize = 32;

/// Where a captured string lies: in the record's bytes (one without escapes), or unescaped in
/// [`WalkState::arena`]. Offsets rather than borrows, so the buffers holding them outlive the
/// record and serve the next one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Text {
    start: usize,
    end: usize,
    in_arena: bool,
}

impl Text {
    /// A string serde_json borrowed from `input`.
    fn borrowed(input: &[u8], s: &str) -> Text {
        let start = s.as_ptr() as usize - input.as_ptr() as usize;
        Text {
            start,
            end: start + s.len(),
            in_arena: false,
        }
    }

    fn unescaped(arena: &mut String, s: &str) -> Text {
        let start = arena.len();
        arena.push_str(s);
        Text {
            start,
            end: arena.len(),
            in_arena: true,
        }
    }

    fn of(input: &[u8], arena: &mut String, s: Cow<'_, str>) -> Text {
        match s {
            Cow::Borrowed(s) => Text::borrowed(input, s),
            Cow::Owned(s) => Text::unescaped(arena, &s),
        }
    }

    /// A key for the duplicate check's hash set: borrowed from the record, or copied from the arena
    /// (which later keys may grow).
    fn set_key<'de>(self, input: &'de [u8], arena: &str) -> Cow<'de, [u8]> {
        if self.in_arena {
            Cow::Owned(self.bytes(input, arena).to_vec())
        } else {
            Cow::Borrowed(self.bytes(input, ""))
        }
    }

    fn bytes<'s>(self, input: &'s [u8], arena: &'s str) -> &'s [u8] {
        let from = if self.in_arena {
            arena.as_bytes()
        } else {
            input
        };
        &from[self.start..self.end]
    }
}

/// What one walk over a record fills in, and what the record then holds. Free of borrows, so that
/// a dropped record's buffers can be kept for the next ([`Recycled`]).
#[derive(Debug, Clone, Default, PartialEq)]
struct WalkState {
    slots: Vec<Captured>,
    /// The entries of every captured map, each map's a range sorted by key.
    entries: Vec<Entry>,
    /// Entries of the maps still being walked, outermost first; a map moves its own to `entries`
    /// when it ends, so each map's range there is contiguous even when maps nest.
    pending: Vec<Entry>,
    /// Keys of the objects being walked, innermost last, for the duplicate check.
    seen: Vec<(Tag, Text)>,
    /// Unescaped copies of the strings (kept values and keys) that had escapes.
    arena: String,
    /// Where a duplicate key was found, innermost segment first.
    duplicate: Option<Vec<String>>,
}

/// More records than this alive at once on one thread is not the steady state; the buffers of the
/// extra ones are freed.
const POOLED: usize = 64;

thread_local! {
    /// Walk buffers of records already dropped on this thread, so that a steady stream of records
    /// allocates nothing.
    static POOL: RefCell<Vec<WalkState>> = const { RefCell::new(Vec::new()) };
}

/// A record's walk state, handed back to [`POOL`] when the record is dropped. The record's own
/// type has no `Drop`, so its borrow of the decoder and the bytes ends at its last use.
#[derive(Debug, Clone, PartialEq)]
struct Recycled(WalkState);

impl Recycled {
    fn take() -> Recycled {
        Recycled(POOL.with_borrow_mut(Vec::pop).unwrap_or_default())
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let mut state = std::mem::take(&mut self.0);
        let WalkState {
            slots,
            entries,
            pending,
            seen,
            arena,
            duplicate,
        } = &mut state;
        slots.clear();
        entries.clear();
        pending.clear();
        seen.clear();
        arena.clear();
        *duplicate = None;
        // Fails only while the thread's locals are being torn down; the buffers are freed then.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOLED {
                pool.push(state);
            }
        });
    }
}

/// Walks one JSON value: descends where `node` has children, captures what `keep` asks for, and
/// skips everything else (checking objects for duplicate keys all the same).
struct Walk<'w, 'de, 't> {
    state: &'w mut WalkState,
    /// The record's bytes, which borrowed strings are offsets into.
    input: &'de [u8],
    node: Option<&'t Node>,
    /// Whether the caller keeps this value (a skipped escaped string is not copied).
    keep: bool,
    /// A map entry's value: the `score` and `label` of an object go here.
    eval: Option<&'w mut (Json, Json)>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, 'de, '_> {
    type Value = Json;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, 'de, '_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        // JSON has no NaN or infinity; a non-finite number would count as null, like `Value`'s.
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json, E> {
        Ok(Json::String(Text::borrowed(self.input, v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        // Only a string with escapes lands here: copied when kept, else only its kind matters.
        Ok(Json::String(if self.keep {
            Text::unescaped(&mut self.state.arena, v)
        } else {
            Text::default()
        }))
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut index = 0;
        loop {
            let child = self.node.and_then(|n| n.index_child(index));
            let walk = Walk {
                state: &mut *self.state,
                input: self.input,
                node: child,
                keep: child.is_some_and(|c| c.slot.is_some()),
                eval: None,
            };
            match seq.next_element_seed(walk) {
                Ok(Some(value)) => {
                    if let Some(slot) = child.and_then(|c| c.slot) {
                        self.state.slots[slot].value = value;
                    }
                }
                Ok(None) => return Ok(Json::Array),
                Err(e) => {
                    if let Some(path) = self.state.duplicate.as_mut() {
                        path.push(index.to_string());
                    }
                    return Err(e);
                }
            }
            index += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Json, A::Error> {
        let keeps_entries = self.node.is_some_and(|n| n.keeps_entries);
        let base = self.state.seen.len();
        let pending = self.state.pending.len();
        let mut many: Option<HashSet<Cow<'de, [u8]>>> = None;
        while let Some(key) = map.next_key_seed(Key)? {
            let tag = Tag::of(key.as_bytes());
            let child = self.node.and_then(|n| n.key_child(tag, key.as_bytes()));
            let slot = child.and_then(|c| c.slot);
            let eval_field = match (&self.eval, &*key) {
                (Some(_), "score") => Some(0),
                (Some(_), "label") => Some(1),
                _ => None,
            };
            let mut eval = (Json::Null, Json::Null);
            let walk = Walk {
                state: &mut *self.state,
                input: self.input,
                node: child,
                keep: slot.is_some() || keeps_entries || eval_field.is_some(),
                eval: keeps_entries.then_some(&mut eval),
            };
            let value = match map.next_value_seed(walk) {
                Ok(v) => v,
                Err(e) => {
                    if let Some(path) = self.state.duplicate.as_mut() {
                        path.push(key.into_owned());
                    }
                    return Err(e);
                }
            };
            let input = self.input;
            let state = &mut *self.state;
            if many.is_none() && state.seen.len() - base >= LINEAR_KEYS {
                let arena = &state.arena;
                many = Some(
                    state
                        .seen
                        .drain(base..)
                        .map(|(_, k)| k.set_key(input, arena))
                        .collect(),
                );
            }
            let repeated = match &many {
                Some(set) => set.contains(key.as_bytes()),
                None => state.seen[base..].iter().any(|(t, k)| {
                    *t == tag
                        && tag
                            .cmp_rest(k.bytes(input, &state.arena), key.as_bytes())
                            .is_eq()
                }),
            };
            if repeated {
                state.duplicate = Some(vec![key.into_owned()]);
                return Err(serde::de::Error::custom("duplicate key"));
            }
            if let Some(slot) = slot {
                state.slots[slot].value = value.clone();
            }
            if let (Some(eval), Some(field)) = (self.eval.as_deref_mut(), eval_field) {
                *if field == 0 { &mut eval.0 } else { &mut eval.1 } = value.clone();
            }
            let key = Text::of(input, &mut state.arena, key);
            match &mut many {
                Some(set) => {
                    set.insert(key.set_key(input, &state.arena));
                }
                None => state.seen.push((tag, key)),
            }
            if keeps_entries {
                state.pending.push(Entry {
                    key,
                    value,
                    score: eval.0,
                    label: eval.1,
                });
            }
        }
        let WalkState {
            slots,
            entries,
            pending: waiting,
            seen,
            arena,
            ..
        } = &mut *self.state;
        seen.truncate(base);
        if keeps_entries {
            let start = entries.len();
            entries.extend(waiting.drain(pending..));
            // The order of `serde_json::Map` (a BTreeMap), which readers of the maps keep.
            let (input, arena) = (self.input, arena.as_str());
            entries[start..]
                .sort_unstable_by(|a, b| a.key.bytes(input, arena).cmp(b.key.bytes(input, arena)));
            if let Some(slot) = self.node.and_then(|n| n.slot) {
                slots[slot].entries = start..entries.len();
            }
        }
        Ok(Json::Object)
    }
}

/// An object key, borrowed unless it has escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn decoder() -> Decoder {
        Decoder::new(FieldMap::default(), 1 << 20)
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
        let d = decoder();
        decoded!(e = d, v);
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
        let d = decoder();
        decoded!(e = d, v);
        assert_eq!(e.ts_ms, 1_700_000_000_123);
        assert_eq!(e.operation, "default");
        assert_eq!(e.status, Status::Ok);
        assert!(e.tests.is_none());
    }

    #[test]
    fn error_object_without_status_means_error() {
        let v = json!({"id": "a", "ts": 1, "service": "s", "error": {"type": "timeout"}});
        let d = decoder();
        decoded!(e = d, v);
        assert_eq!(e.status, Status::Error);
        assert_eq!(e.error_type, Some("timeout"));
        let v = json!({"id": "a", "ts": 1, "service": "s", "status": "ok", "error": {"type": "x"}});
        decoded!(explicit = d, v);
        assert_eq!(explicit.status, Status::Ok, "explicit status wins");
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
        let v = json!({"a/b": {"m~n": [10, {"x": 1}]}, "arr": [5, 6], "n": null, "s": "t"});
        let pointers = [
            "/a~1b/m~0n/0",
            "/a~1b/m~0n/1/x",
            "/arr/1",
            "/arr/01",
            "/arr/-",
            "/arr/2",
            "/n",
            "/s",
            "/missing/deeper",
            "no-slash",
            "/arr",
        ];
        let d = decoder().reading(pointers);
        let bytes = v.to_string();
        let record = d.parse(bytes.as_bytes()).expect("valid JSON");
        let num = |n: i64| serde_json::Number::from(n);
        for (p, want) in [
            ("/a~1b/m~0n/0", Some(Leaf::Number(&num(10)))),
            ("/a~1b/m~0n/1/x", Some(Leaf::Number(&num(1)))),
            ("/arr/1", Some(Leaf::Number(&num(6)))),
            ("/s", Some(Leaf::String("t"))),
            ("/arr/01", None),
            ("/arr/-", None),
            ("/arr/2", None),
            ("/n", None),
            ("/missing/deeper", None),
            ("no-slash", None),
            // Containers are not leaves; a pointer never registered is never read.
            ("/arr", None),
            ("/arr/0", None),
        ] {
            assert_eq!(record.value_at(p), want, "{p}");
            if let Some(Leaf::Number(n)) = want {
                assert_eq!(
                    v.pointer(p),
                    Some(&Value::Number(n.clone())),
                    "agrees with serde_json for {p}"
                );
            }
        }
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
        decoded!(e = d, v);
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
    fn escaped_duplicates_are_found_in_objects_checked_by_hash() {
        let many: String = (0..LINEAR_KEYS + 8)
            .map(|i| format!(r#","k\u00{:x}{i}":{i}"#, b'a'))
            .collect();
        for (extra, pointer) in [
            (r#","ka3":0"#, "/x/ka3"),
            (r#","k\u0061\u0033":0"#, "/x/ka3"),
        ] {
            let bytes = format!(r#"{{"x":{{"y":1{many}{extra}}}}}"#);
            assert_eq!(
                refusal(bytes.as_bytes()),
                Reject::DuplicateKey {
                    pointer: pointer.into()
                },
                "{bytes}"
            );
        }
    }

    #[test]
    fn same_key_in_different_objects_is_fine_and_parse_matches_serde_json() {
        let bytes = br#"{"id": "a", "ts": 1, "service": "s", "labels": {"k": "1"},
            "evals": {"k": {"score": 1e308, "label": "x"}}, "arr": [{"k": 1}, {"k": 2}],
            "n": [-9223372036854775808, 18446744073709551615, -0.0, 1.5e-300, null, true]}"#;
        let pointers = ["/arr/1/k", "/n/0", "/n/1", "/n/2", "/n/3", "/labels/k"];
        let d = decoder().reading(pointers);
        let ours = d.parse(bytes).expect("valid");
        let theirs: Value = serde_json::from_slice(bytes).expect("valid");
        for p in pointers {
            let leaf = ours.value_at(p).map(|l| match l {
                Leaf::Bool(b) => Value::Bool(b),
                Leaf::Number(n) => Value::Number(n.clone()),
                Leaf::String(s) => Value::String(s.to_owned()),
            });
            assert_eq!(leaf.as_ref(), theirs.pointer(p), "{p}");
        }
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
    fn bytes_that_are_not_utf8_are_refused_as_serde_json_refuses_them() {
        let d = decoder();
        for bytes in [
            &b"{\"id\": \"a\xff\", \"ts\": 1, \"service\": \"s\"}"[..],
            b"{\"x\": {\"\xc3\": 1}, \"id\": \"a\"}",
            b"{\"id\": \"a\", \"ts\": 1, \"service\": \"s\", \"z\": \"\xed\xa0\x80\"}",
        ] {
            let theirs = serde_json::from_slice::<Value>(bytes).expect_err("not UTF-8");
            assert_eq!(
                d.parse(bytes),
                Err(Reject::NotJson(theirs.to_string())),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        // What comes first in the record still decides: a duplicate key before the bad byte.
        assert_eq!(
            d.parse(b"{\"k\": 1, \"k\": 2, \"x\": \"\xff\"}"),
            Err(Reject::DuplicateKey {
                pointer: "/k".into()
            })
        );
        let bad_then_duplicate = b"{\"x\": \"\xff\", \"k\": 1, \"k\": 2}";
        assert_eq!(
            d.parse(bad_then_duplicate).map_err(|r| r.code()),
            Err("not_json")
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
        let bytes = json!({"id": "a", "ts": ts, "service": "s"}).to_string();
        let d = decoder();
        d.parse(bytes.as_bytes())
            .and_then(|r| d.decode(&r).map(|e| e.ts_ms))
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
