//! What the audit archive keeps of a record, after the spec's `archive.redact` rules: personal
//! data and secrets found by preset or pattern (or whole fields) are masked, replaced by a keyed
//! hash, or dropped, before anything reaches the archive.
//!
//! Pure: bytes in, bytes out, no I/O and no clock. The rules are compiled once
//! ([`Redactor::new`]); the pipeline asks for a redacted copy of each record it archives and
//! decodes the archive row from that copy, so the typed columns and the raw bytes tell the same
//! story. The record it judges stays as it arrived: redaction changes what is *kept*, never what
//! is counted.

mod presets;

use std::fmt;

use hmac::{Hmac, Mac};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

pub use presets::Preset;
use presets::{BY_PRIORITY, PresetFinder};

/// What a rule does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace each find with a marker naming its kind (`[email]`; `[redacted]` for patterns and
    /// whole fields).
    Mask,
    /// Replace each find with `hmac:` and the hex HMAC-SHA-256 of its text under the spec's key:
    /// equal values stay equal, so records still join on them.
    Hash,
    /// Remove the field's value when anything is found in it (or always, for a whole field).
    Drop,
}

/// What becomes of the `raw` column (the record byte for byte) when rules are configured.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RawPolicy {
    /// The original bytes, rules notwithstanding (for an archive whose readers may see all).
    Keep,
    /// The record after the rules (re-serialized JSON), so raw carries nothing the columns hide.
    #[default]
    Redact,
    /// No raw bytes (the column is null).
    Drop,
}

/// What a hashed value starts with, so a reader tells it from text at a glance.
pub const HASH_PREFIX: &str = "hmac:";

/// The marker of a find by custom pattern, and of a whole field.
const MASK_MARKER: &str = "[redacted]";

/// One rule as the spec states it, its fields already resolved to JSON Pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub pointers: Vec<String>,
    pub presets: Vec<Preset>,
    /// Regexes (Rust syntax); no presets and no patterns means the whole field.
    pub patterns: Vec<String>,
    pub action: Action,
}

/// Why rules could not be compiled; `rule` is the index of the rule in the spec's list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    #[error("pattern '{pattern}' is not a valid regex: {detail}")]
    Pattern {
        rule: usize,
        pattern: String,
        detail: String,
    },
    #[error(
        "action hash needs a key; set archive.redact.key, e.g. key: ${{SLIQ_REDACT_KEY}}, to a \
         long random secret kept outside the spec"
    )]
    MissingKey { rule: usize },
}

#[derive(Debug)]
struct Rule {
    pointers: Vec<String>,
    presets: Vec<PresetFinder>,
    patterns: Vec<Regex>,
    action: Action,
}

impl Rule {
    fn whole_field(&self) -> bool {
        self.presets.is_empty() && self.patterns.is_empty()
    }
}

/// The compiled rules of one spec.
pub struct Redactor {
    rules: Vec<Rule>,
    raw: RawPolicy,
    /// The HMAC keyed once; each hash clones it.
    key: Option<Hmac<Sha256>>,
}

impl fmt::Debug for Redactor {
    /// Never shows the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rules)
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

/// One find in a text: where, and what replaces it when masked.
#[derive(Debug, Clone, Copy)]
struct Find {
    start: usize,
    end: usize,
    marker: &'static str,
    /// Settles ties between finds that start together and are equally long.
    priority: usize,
}

impl Redactor {
    /// Compiles `rules`; `key` is the HMAC key that `hash` needs.
    pub fn new(
        rules: &[RuleSpec],
        raw: RawPolicy,
        key: Option<&[u8]>,
    ) -> Result<Self, RedactError> {
        let key = key.and_then(|k| Hmac::<Sha256>::new_from_slice(k).ok());
        let compiled = rules
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                if spec.action == Action::Hash && key.is_none() {
                    return Err(RedactError::MissingKey { rule: i });
                }
                let patterns = spec
                    .patterns
                    .iter()
                    .map(|p| {
                        Regex::new(p).map_err(|e| RedactError::Pattern {
                            rule: i,
                            pattern: p.clone(),
                            detail: e.to_string(),
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Rule {
                    pointers: spec.pointers.clone(),
                    presets: spec
                        .presets
                        .iter()
                        .copied()
                        .map(PresetFinder::new)
                        .collect(),
                    patterns,
                    action: spec.action,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Redactor {
            rules: compiled,
            raw,
            key,
        })
    }

    /// What the archive's `raw` column holds.
    pub fn raw(&self) -> RawPolicy {
        self.raw
    }

    /// Writes `record` (a JSON object) with every rule applied, in order, into `out` (cleared
    /// first). Object keys come out sorted and numbers in their shortest form.
    pub fn redact_record(&self, record: &[u8], out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let mut value: Value = serde_json::from_slice(record)?;
        for rule in &self.rules {
            for pointer in &rule.pointers {
                self.apply(rule, pointer, &mut value);
            }
        }
        out.clear();
        serde_json::to_writer(&mut *out, &value)
    }

    fn apply(&self, rule: &Rule, pointer: &str, record: &mut Value) {
        let Some(target) = record.pointer_mut(pointer) else {
            return;
        };
        let remove = match rule.action {
            Action::Drop => rule.whole_field() || self.finds_any(rule, target),
            Action::Mask | Action::Hash => !self.rewrite(rule, target),
        };
        if remove {
            remove_at(record, pointer);
        }
    }

    /// Whether any text inside `value` holds a find of `rule`.
    fn finds_any(&self, rule: &Rule, value: &Value) -> bool {
        match value {
            Value::String(s) => !finds(rule, s).is_empty(),
            Value::Array(items) => items.iter().any(|v| self.finds_any(rule, v)),
            Value::Object(map) => map.values().any(|v| self.finds_any(rule, v)),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }

    /// Masks or hashes the text inside `value`; returns `false` when `value` itself must go (a
    /// number or boolean under a whole-field rule: a marker in its place would change its type).
    fn rewrite(&self, rule: &Rule, value: &mut Value) -> bool {
        match value {
            Value::String(s) => {
                if let Some(new) = self.redact_text(rule, s) {
                    *s = new;
                }
                true
            }
            Value::Array(items) => {
                for item in items.iter_mut() {
                    if !self.rewrite(rule, item) {
                        *item = Value::Null;
                    }
                }
                true
            }
            Value::Object(map) => {
                map.retain(|_, v| self.rewrite(rule, v));
                true
            }
            Value::Null => true,
            Value::Bool(_) | Value::Number(_) => !rule.whole_field(),
        }
    }

    /// Which bytes the archive's `raw` column keeps of a record: the `original`, the `redacted`
    /// copy, or none.
    pub fn archived_raw<'a>(&self, original: &'a [u8], redacted: &'a [u8]) -> Option<&'a [u8]> {
        match self.raw {
            RawPolicy::Keep => Some(original),
            RawPolicy::Redact => Some(redacted),
            RawPolicy::Drop => None,
        }
    }

    /// The text with `rule` applied, or `None` when nothing in it was found.
    fn redact_text(&self, rule: &Rule, text: &str) -> Option<String> {
        if rule.whole_field() {
            return Some(self.replacement(rule.action, text, MASK_MARKER));
        }
        let found = finds(rule, text);
        if found.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in found {
            out.push_str(&text[at..f.start]);
            out.push_str(&self.replacement(rule.action, &text[f.start..f.end], f.marker));
            at = f.end;
        }
        out.push_str(&text[at..]);
        Some(out)
    }

    fn replacement(&self, action: Action, found: &str, marker: &str) -> String {
        match (action, &self.key) {
            (Action::Hash, Some(key)) => {
                let mut mac = key.clone();
                mac.update(found.as_bytes());
                format!("{HASH_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
            }
            // `new` refuses hash without a key; drop never rewrites text.
            _ => marker.to_owned(),
        }
    }
}

/// Every find of `rule` in `text`, in order and without overlaps: of finds that overlap, the
/// earliest wins, then the longest, then the preset earliest in [`BY_PRIORITY`].
fn finds(rule: &Rule, text: &str) -> Vec<Find> {
    let mut all = Vec::new();
    for finder in &rule.presets {
        let priority = BY_PRIORITY
            .iter()
            .position(|p| *p == finder.preset)
            .unwrap_or(BY_PRIORITY.len());
        all.extend(
            finder
                .regex
                .find_iter(text)
                .filter(|m| finder.preset.confirms(text, m.start(), m.end()))
                .map(|m| Find {
                    start: m.start(),
                    end: m.end(),
                    marker: finder.preset.marker(),
                    priority,
                }),
        );
    }
    for pattern in &rule.patterns {
        all.extend(
            pattern
                .find_iter(text)
                .filter(|m| !m.is_empty())
                .map(|m| Find {
                    start: m.start(),
                    end: m.end(),
                    marker: MASK_MARKER,
                    priority: BY_PRIORITY.len(),
                }),
        );
    }
    all.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end), f.priority));
    let mut kept: Vec<Find> = Vec::with_capacity(all.len());
    for f in all {
        if kept.last().is_none_or(|last| f.start >= last.end) {
            kept.push(f);
        }
    }
    kept
}

/// Removes the value at `pointer`: its key from an object, or (so that later indices keep their
/// meaning) a null in its place in an array.
fn remove_at(record: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let token = last.replace("~1", "/").replace("~0", "~");
    match record.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&token);
        }
        Some(Value::Array(items)) => {
            if let Some(item) = token.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
