//! Pipeline specs: the YAML a user writes, checked before anything runs.
//!
//! Every error names the file, the line and the key, and says what was expected: a spec is edited by
//! people on call, and "invalid config" is not an answer.

mod admin_spec;
mod drift_spec;
mod interpolate;
mod kafka_spec;
mod otlp_settings;
mod redact_spec;
mod schema;
mod secret;
mod slo_spec;
mod spec;
mod values;

use std::path::Path;

pub use admin_spec::{AdminSpec, SelfMetricsMode};
pub use drift_spec::*;
pub use interpolate::{InterpolationError, interpolate};
pub use kafka_spec::{
    KafkaConnection, KafkaOptions, KafkaSpec, KafkaTlsSpec, SaslMechanism, SaslSpec,
};
pub use otlp_settings::*;
pub use redact_spec::{RedactField, RedactRuleSpec, RedactSpec};
pub use schema::pipeline_schema;
pub use secret::Secret;
pub use slo_spec::*;
pub use spec::*;
pub use values::{DimensionSpec, JsonPointer, Objective, Span};

/// A spec that cannot be used, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", location(*.line, *.column))]
pub struct ConfigError {
    /// The file (or other origin) the spec came from.
    pub origin: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// Reads, interpolates from the process environment, parses and validates a spec file.
pub fn load(path: &Path) -> Result<PipelineSpec, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        origin: origin.clone(),
        line: None,
        column: None,
        message: format!("cannot read the spec: {e}"),
    })?;
    parse(&text, &origin, |name| std::env::var(name).ok())
}

/// Parses and validates spec text; `origin` names it in errors.
pub fn parse(
    text: &str,
    origin: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<PipelineSpec, ConfigError> {
    let raw = text;
    let text = interpolate(text, lookup).map_err(|e| ConfigError {
        origin: origin.to_owned(),
        line: Some(e.line),
        column: None,
        message: e.message,
    })?;
    let mut spec: PipelineSpec = serde_yaml_ng::from_str(&text).map_err(|e| {
        let location = e.location();
        let mut message = e.to_string();
        if let Some(l) = &location {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(cut) = message.find(&suffix) {
                message.replace_range(cut..cut + suffix.len(), "");
            }
        }
        if let Some(hint) = missing_field_hint(&message) {
            message.push_str("; ");
            message.push_str(hint);
        }
        ConfigError {
            origin: origin.to_owned(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message,
        }
    })?;
    if let Some(sasl) = &mut spec.source.kafka.sasl {
        sasl.password_variable = kafka_spec::variable_of(raw, "sasl", "password");
    }
    spec.check().map_err(|(key, message)| ConfigError {
        origin: origin.to_owned(),
        line: line_of(&text, &key),
        column: None,
        message: format!("{}: {message}", key.path),
    })?;
    Ok(spec)
}

/// What to write for a required key the spec lacks (serde says only "missing field `x`").
fn missing_field_hint(message: &str) -> Option<&'static str> {
    let field = message.split_once("missing field `")?.1.split_once('`')?.0;
    Some(match field {
        "brokers" => {
            "write brokers: host:port[,host:port] under source.kafka, e.g. brokers: 127.0.0.1:9092"
        }
        "topics" => "write the topics to consume under source.kafka, e.g. topics: [ai-logs]",
        "dead_letter_topic" => {
            "write where refused records go under source.kafka, e.g. dead_letter_topic: ai-logs-dlq"
        }
        "kafka" => "write kafka: under source:, with brokers, topics and dead_letter_topic",
        "source" => {
            "write a source: section, e.g. source: {kafka: {brokers: 127.0.0.1:9092, topics: \
             [ai-logs], dead_letter_topic: ai-logs-dlq}}"
        }
        "slos" => "write slos: with at least one SLO (name, objective, sli)",
        _ => return None,
    })
}

/// Where a whole-spec check points: a key path for the message, and text to find its line by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    pub path: String,
    /// A fragment of the offending line (e.g. `name: chat`); its last occurrence is reported.
    pub needle: Option<String>,
}

fn line_of(text: &str, key: &KeyRef) -> Option<usize> {
    let needle = key.needle.as_deref()?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .last()
}

#[cfg(test)]
mod tests;
