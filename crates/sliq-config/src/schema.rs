//! The JSON Schema of a pipeline spec, for editors: `sliq schema` prints it, and
//! `schemas/pipeline.schema.json` is that output, which example specs name in their
//! `yaml-language-server` line.
//!
//! It is derived from the spec's types (schemars), so keys, nesting, enums and `deny_unknown_fields`
//! cannot drift from the loader; values the loader parses by hand (durations, objectives, pointers,
//! dimensions, periods) carry their own schemas next to their parsers. It describes the file as
//! written, *before* `${VAR}` interpolation, because that is what an editor sees:
//!
//! - A scalar the loader constrains (a number, a boolean, an enum, a patterned string) may also be
//!   text with a `${VAR}` in it, since interpolation can put any value there.
//! - Free text also takes a YAML number or boolean: the YAML reader hands every scalar to a
//!   text field as its text (`group_id: 42` is the group `"42"`). An empty value stays refused
//!   although the loader reads it as empty text: an unset key is almost always a mistake.
//!
//! Checks that need several keys or the whole spec (two SLOs with one name, a drift SLO without a
//! `drift:` section, a period under an hour) stay with the loader: `sliq validate` has the last word.

use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::transform_subschemas;
use serde_json::{Map, Value};

use crate::PipelineSpec;

/// The name of the definition of interpolated text in the schema.
const INTERPOLATION: &str = "Interpolation";

/// The schema (draft 7, which editors' YAML support reads; the newer drafts only partly).
pub fn pipeline_schema() -> Value {
    let settings = SchemaSettings::draft07();
    let definitions_path = settings.definitions_path.to_string();
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<PipelineSpec>();
    schema.insert("title".into(), "sliq pipeline spec".into());
    AllowInterpolation {
        reference: Schema::new_ref(format!("#{definitions_path}/{INTERPOLATION}")),
    }
    .apply(&mut schema);
    let mut schema = schema.to_value();
    if let Some(definitions) = schema
        .pointer_mut(&definitions_path)
        .and_then(Value::as_object_mut)
    {
        definitions.insert(INTERPOLATION.into(), interpolation_schema());
    }
    join_description_lines(&mut schema);
    schema
}

/// Descriptions come from doc comments, wrapped at 100 columns; an editor shows a line break where
/// the source had one, so lines of a paragraph are joined (blank lines still part paragraphs).
fn join_description_lines(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                match value {
                    Value::String(text) if key == "description" => {
                        *text = text
                            .split("\n\n")
                            .map(|paragraph| paragraph.replace('\n', " "))
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    _ => join_description_lines(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(join_description_lines),
        _ => {}
    }
}

/// Text with `${NAME}` or `${NAME:-default}` in it, as `interpolate` finds them.
fn interpolation_schema() -> Value {
    serde_json::json!({
        "description": "An environment variable, ${NAME} or ${NAME:-default}, replaced before the \
            spec is read: the value it gives must suit the key.",
        "type": "string",
        "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}"
    })
}

/// Rewrites scalar schemas for the file as written (see the module's doc): constrained scalars
/// also take interpolated text, free text also takes numbers and booleans.
struct AllowInterpolation {
    reference: Schema,
}

impl AllowInterpolation {
    fn apply(&self, schema: &mut Schema) {
        let Some(object) = schema.as_object_mut() else {
            return;
        };
        if is_free_text(object) {
            widen_to_any_scalar(object);
        } else if is_constrained_scalar(object) {
            self.add_interpolation(object);
        } else {
            transform_subschemas(&mut |s: &mut Schema| self.apply(s), schema);
        }
    }

    /// `{anyOf: [<the scalar>, <interpolated text>]}`, with the annotations an editor shows on
    /// the outside (a branch of an existing `anyOf` joins the others).
    fn add_interpolation(&self, object: &mut Map<String, Value>) {
        let mut outside = Map::new();
        for annotation in ["title", "description", "default", "examples", "deprecated"] {
            if let Some(value) = object.remove(annotation) {
                outside.insert(annotation.into(), value);
            }
        }
        let mut branches = match object.remove("anyOf") {
            Some(Value::Array(branches)) if object.is_empty() => branches,
            Some(any_of) => {
                object.insert("anyOf".into(), any_of);
                vec![Value::Object(std::mem::take(object))]
            }
            None => vec![Value::Object(std::mem::take(object))],
        };
        branches.push(self.reference.clone().to_value());
        outside.insert("anyOf".into(), Value::Array(branches));
        *object = outside;
    }
}

/// The JSON types a schema allows (`type` as a word or a list).
fn types(object: &Map<String, Value>) -> Vec<&str> {
    match object.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Any text: a string without a pattern, enum or constant.
fn is_free_text(object: &Map<String, Value>) -> bool {
    let types = types(object);
    types.contains(&"string")
        && types.iter().all(|t| matches!(*t, "string" | "null"))
        && !["pattern", "enum", "const", "format"]
            .iter()
            .any(|k| object.contains_key(*k))
}

fn widen_to_any_scalar(object: &mut Map<String, Value>) {
    let mut widened: Vec<Value> = ["string", "number", "boolean"].map(Value::from).into();
    if types(object).contains(&"null") {
        widened.push("null".into());
    }
    object.insert("type".into(), Value::Array(widened));
}

/// One scalar with a constraint an interpolated `${VAR}` would fail: a number, a boolean, an enum
/// value or patterned text (or a choice between such).
fn is_constrained_scalar(object: &Map<String, Value>) -> bool {
    if object.contains_key("const") || object.contains_key("enum") {
        return true;
    }
    if let Some(Value::Array(branches)) = object.get("anyOf").or_else(|| object.get("oneOf")) {
        return branches
            .iter()
            .all(|b| b.as_object().is_some_and(is_constrained_scalar));
    }
    let types = types(object);
    let scalar = |t: &&str| matches!(*t, "string" | "integer" | "number" | "boolean" | "null");
    !types.is_empty()
        && types.iter().all(scalar)
        && types.iter().any(|t| *t != "null")
        && !is_free_text(object)
}
