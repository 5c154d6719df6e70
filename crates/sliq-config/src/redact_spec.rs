//! The `archive.redact` section: what the audit archive must not keep.
//!
//! ```yaml
//! archive:
//!   redact:
//!     key: ${SLIQ_REDACT_KEY}          # the HMAC key of `action: hash`
//!     raw: redact                      # keep | redact (default) | drop
//!     rules:
//!       - { fields: [prompt, response], presets: [email, phone, credit_card, ip, api_key], action: mask }
//!       - { fields: [/metadata/user_email], action: hash }
//! ```

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use sliq_core::FieldMap;
use sliq_redact::{Action, Preset, RawPolicy, RedactError, Redactor, RuleSpec};

use crate::values::parse_str;
use crate::{KeyRef, Secret};

/// Rules applied to every record before it is archived.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactSpec {
    /// Applied in order to every record before it is archived.
    #[serde(default)]
    pub rules: Vec<RedactRuleSpec>,
    /// What the `raw` column keeps; `redact` unless said otherwise (see the README's "Archive
    /// privacy" for why).
    #[serde(default)]
    pub raw: RawPolicy,
    /// The HMAC key of `action: hash`, normally `${SLIQ_REDACT_KEY}`.
    pub key: Option<Secret>,
}

/// One rule: where to look, what to find, what to do.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactRuleSpec {
    /// Names the rule in errors.
    pub name: Option<String>,
    /// Where the rule looks: `prompt`, `response`, or JSON Pointers into the record.
    #[schemars(length(min = 1))]
    pub fields: Vec<RedactField>,
    /// Built-in kinds to find: `email`, `phone`, `credit_card`, `ip`, `api_key`.
    #[serde(default)]
    pub presets: Vec<Preset>,
    /// Regular expressions (Rust syntax) to find as well; none: the whole field is the find.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// `mask` (a marker such as `[email]`), `hash` (keyed HMAC, needs `key`) or `drop` (removes the
    /// value).
    pub action: Action,
}

/// The text a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedactField {
    /// The request text (the archive's `request_text`), wherever `fields.request_text` points.
    Prompt,
    /// The response text (`response_text`), wherever `fields.response_text` points.
    Response,
    /// Any value in the record, by JSON Pointer.
    Pointer(String),
}

impl<'de> Deserialize<'de> for RedactField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "prompt, response or a JSON Pointer", |s| match s {
            "prompt" => Ok(RedactField::Prompt),
            "response" => Ok(RedactField::Response),
            p if p.starts_with('/') => Ok(RedactField::Pointer(p.to_owned())),
            other => Err(format!(
                "'{other}' is not a field to redact; write prompt, response, or a JSON Pointer \
                 such as /metadata/user_email"
            )),
        })
    }
}

impl JsonSchema for RedactField {
    fn schema_name() -> Cow<'static, str> {
        "RedactField".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "prompt (the request text), response (the response text), or any \
                value of the record by JSON Pointer, e.g. /metadata/user_email.",
            "anyOf": [
                { "type": "string", "enum": ["prompt", "response"] },
                { "type": "string", "pattern": "^/" }
            ]
        })
    }
}

impl RedactSpec {
    /// The rules with their fields resolved through the spec's field map.
    fn rule_specs(&self, fields: &FieldMap) -> Vec<RuleSpec> {
        self.rules
            .iter()
            .map(|r| RuleSpec {
                pointers: r
                    .fields
                    .iter()
                    .map(|f| match f {
                        RedactField::Prompt => fields.request_text.clone(),
                        RedactField::Response => fields.response_text.clone(),
                        RedactField::Pointer(p) => p.clone(),
                    })
                    .collect(),
                presets: r.presets.clone(),
                patterns: r.patterns.clone(),
                action: r.action,
            })
            .collect()
    }

    /// The compiled rules; refuses what `check` refuses about patterns and the key.
    pub fn redactor(&self, fields: &FieldMap) -> Result<Redactor, RedactError> {
        let key = self.key.as_ref().map(|k| k.expose().as_bytes());
        Redactor::new(&self.rule_specs(fields), self.raw, key)
    }

    /// Refuses rules that could not be applied, or whose result the archive could not hold.
    pub(crate) fn check(&self, fields: &FieldMap) -> Result<(), (KeyRef, String)> {
        let at = |i: usize| {
            let rule = &self.rules[i];
            let needle = match &rule.name {
                Some(name) => format!("name: {name}"),
                None => "fields:".to_owned(),
            };
            KeyRef {
                path: format!("archive.redact.rules[{i}]"),
                needle: Some(needle),
            }
        };
        if self.key.as_ref().is_some_and(|k| k.expose().is_empty()) {
            return Err((
                KeyRef {
                    path: "archive.redact.key".into(),
                    needle: Some("key:".into()),
                },
                "the key is empty (is SLIQ_REDACT_KEY set?); give a long random secret, e.g. \
                 key: ${SLIQ_REDACT_KEY} with the variable set to 32 random bytes in hex"
                    .into(),
            ));
        }
        // The event time places a row in the archive and the status must stay a status, so no
        // rule may rewrite them; dropping the id or the service would leave a row without them.
        let untouchable = [(&fields.ts, "ts"), (&fields.status, "status")];
        let undroppable = [(&fields.id, "id"), (&fields.service, "service")];
        for (i, (rule, spec)) in self.rules.iter().zip(self.rule_specs(fields)).enumerate() {
            if rule.fields.is_empty() {
                return Err((
                    at(i),
                    "list the fields the rule applies to, e.g. fields: [prompt, response] or \
                     fields: [/metadata/user_email]"
                        .into(),
                ));
            }
            for pointer in &spec.pointers {
                let covers = |field: &str| {
                    field == pointer
                        || field
                            .strip_prefix(pointer.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                };
                let refused = untouchable
                    .iter()
                    .chain(undroppable.iter().filter(|_| rule.action == Action::Drop))
                    .find(|(f, _)| covers(f));
                if let Some((field, name)) = refused {
                    return Err((
                        at(i),
                        format!(
                            "{pointer} covers the record's {name} ({field}), which every archive \
                             row needs as it is; point the rule at the fields that hold \
                             personal data"
                        ),
                    ));
                }
            }
        }
        self.redactor(fields).map(drop).map_err(|e| {
            let rule = match &e {
                RedactError::Pattern { rule, .. } | RedactError::MissingKey { rule } => *rule,
            };
            (at(rule), e.to_string())
        })
    }
}
