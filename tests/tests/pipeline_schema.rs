//! The JSON Schema of pipeline specs (`schemas/pipeline.schema.json`), which editors check specs
//! with: it is exactly what `sliq schema` prints, every example spec passes it as written (what an
//! editor sees, `${VAR}` and all) and as read (interpolated), and on hand-picked specs it refuses
//! exactly what the spec loader refuses. The validator is Python's `jsonschema`, independent of the
//! schemars code that wrote the schema.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;

use sliq_tests::python::json_schema_errors;
use sliq_tests::repo_root;

const SCHEMA: &str = "schemas/pipeline.schema.json";
const REGENERATE: &str = "cargo run -p sliq -- schema > schemas/pipeline.schema.json";
/// The line that points editors (yaml-language-server) at the schema, from a spec in `pipelines/`.
const MODELINE: &str = "# yaml-language-server: $schema=../schemas/pipeline.schema.json";

#[test]
fn the_committed_schema_is_what_sliq_schema_prints() {
    let out = std::process::Command::new(sliq_tests::sliq_binary())
        .arg("schema")
        .output()
        .expect("sliq runs");
    assert!(
        out.status.success(),
        "sliq schema failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).expect("UTF-8");
    let committed = std::fs::read_to_string(repo_root().join(SCHEMA)).unwrap_or_default();
    if printed != committed {
        let line = printed
            .lines()
            .zip(committed.lines())
            .position(|(p, c)| p != c)
            .unwrap_or_else(|| printed.lines().count().min(committed.lines().count()))
            + 1;
        panic!(
            "{SCHEMA} is not what `sliq schema` prints (first difference at line {line}): the \
             spec's types changed since it was written. Regenerate it with `{REGENERATE}` and \
             commit it."
        );
    }
}

/// YAML text as the loader's YAML reader sees it, as JSON for the validator.
fn as_json(text: &str, origin: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{origin} is not YAML: {e}"))
}

/// The errors the validator finds in each document, in order.
fn schema_errors(documents: &[serde_json::Value]) -> Vec<Vec<String>> {
    json_schema_errors(&repo_root().join(SCHEMA), documents).expect("python jsonschema")
}

/// Values for the variables the example specs leave without a default, as a deployment sets them.
fn deployment_env(name: &str) -> Option<String> {
    let value = match name {
        "KAFKA_BROKERS" => "kafka-1:9092,kafka-2:9092",
        "KAFKA_USERNAME" => "sliq",
        "KAFKA_PASSWORD" | "OTLP_TOKEN" => "s3cret",
        "OTLP_ENDPOINT" => "https://otel-collector:4317",
        _ => return None,
    };
    Some(value.to_owned())
}

/// The spec the Kubernetes manifest mounts (its ConfigMap's `spec.yaml`).
fn kubernetes_spec() -> String {
    let path = repo_root().join("deploy/kubernetes/sliq.yaml");
    let text = std::fs::read_to_string(&path).expect("manifest");
    text.split("\n---\n")
        .map(|document| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(document).expect("YAML"))
        .find(|document| document["kind"].as_str() == Some("ConfigMap"))
        .and_then(|config_map| config_map["data"]["spec.yaml"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("{} has no ConfigMap with spec.yaml", path.display()))
}

fn example_specs() -> Vec<PathBuf> {
    let mut specs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("pipelines"))
        .expect("pipelines/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension() == Some(OsStr::new("yaml")))
        .collect();
    specs.sort();
    specs
}

#[test]
fn every_example_spec_passes_the_schema_as_written_and_as_read() {
    let mut documents = Vec::new();
    let mut names = Vec::new();
    let specs = example_specs();
    assert!(specs.len() >= 5, "{specs:?}");
    for path in &specs {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).expect("spec");
        assert_eq!(
            text.lines().next(),
            Some(MODELINE),
            "{origin} starts without the line that points editors at the schema"
        );
        let schema_from_modeline = path
            .parent()
            .map(|dir| dir.join("../schemas/pipeline.schema.json"))
            .expect("a folder");
        assert!(schema_from_modeline.exists(), "{origin}: {MODELINE}");
        // The loader reads it with the deployment's values (or the defaults it writes).
        sliq_config::parse(&text, &origin, deployment_env)
            .unwrap_or_else(|e| panic!("the loader refuses an example spec: {e}"));
        documents.push(as_json(&text, &origin));
        names.push(format!("{origin} as written"));
        let read = sliq_config::interpolate(&text, deployment_env).expect("interpolates");
        documents.push(as_json(&read, &origin));
        names.push(format!("{origin} as read"));
    }
    let kubernetes = kubernetes_spec();
    documents.push(as_json(&kubernetes, "the Kubernetes spec"));
    names.push("deploy/kubernetes/sliq.yaml's spec as written".into());
    let read = sliq_config::interpolate(&kubernetes, deployment_env).expect("interpolates");
    documents.push(as_json(&read, "the Kubernetes spec"));
    names.push("deploy/kubernetes/sliq.yaml's spec as read".into());

    let refused: BTreeMap<&String, Vec<String>> = names
        .iter()
        .zip(schema_errors(&documents))
        .filter(|(_, errors)| !errors.is_empty())
        .collect();
    assert!(
        refused.is_empty(),
        "the schema refuses specs the loader accepts: {refused:#?}"
    );
}

/// A minimal spec but for `top` (more top-level keys), its SLO's `objective`, and `slo` (more keys
/// of that SLO).
fn spec(top: &str, objective: &str, slo: &str) -> String {
    format!(
        "source:\n  kafka:\n    brokers: 127.0.0.1:9092\n    topics: [ai-requests]\n    \
         dead_letter_topic: ai-requests-dlq\n{top}\nslos:\n  - name: availability\n    \
         objective: {objective}\n    sli: {{availability: {{}}}}\n    {slo}\n"
    )
}

/// A spec with more top-level keys.
fn top(keys: &str) -> String {
    spec(keys, "0.995", "")
}

#[test]
fn the_schema_refuses_what_the_loader_refuses_on_hand_picked_specs() {
    let accepted = [
        ("the minimal spec", top("")),
        (
            "a duration of hours and minutes",
            top("windows: {size: 1h 30m}"),
        ),
        ("a compact duration", top("windows: {size: 1h30m}")),
        ("a fractional duration", top("windows: {size: 1.5m}")),
        ("a duration in words", top("windows: {size: 5 mins}")),
        ("a zero duration", top("windows: {allowed_lateness: 0}")),
        ("a percentage objective", spec("", "\"99.5%\"", "")),
        (
            "a label dimension",
            spec("", "0.995", "dimensions: [labels.tier]"),
        ),
        ("a pointer", top("fields: {latency_ms: /timing/ms}")),
        (
            "an interpolated protocol",
            top("export:\n  otlp:\n    protocol: ${PROTOCOL:-grpc}"),
        ),
        (
            "an interpolated count",
            top("archive:\n  max_rows: ${MAX_ROWS:-1000}"),
        ),
        ("a number where text goes", top("state: {dir: 2024}")),
        (
            "a listen address",
            top("admin: {listen: \"127.0.0.1:9464\"}"),
        ),
    ];
    let refused = [
        ("an unknown top-level key", top("windowz: {size: 1m}")),
        ("an unknown nested key", top("windows: {sise: 1m}")),
        (
            "an unknown key in an SLO",
            spec("", "0.995", "objectiv: 0.9"),
        ),
        ("a bad duration", top("windows: {size: soon}")),
        ("a duration without unit", top("windows: {size: 30}")),
        ("a misspelt unit", top("windows: {size: 5 minuets}")),
        ("an objective above 1", spec("", "1.5", "")),
        ("an objective of 1", spec("", "1", "")),
        ("an objective of 0", spec("", "0", "")),
        ("a percentage of 100", spec("", "\"100%\"", "")),
        ("a ratio as text", spec("", "\"0.995\"", "")),
        (
            "an unknown dimension",
            spec("", "0.995", "dimensions: [region]"),
        ),
        (
            "a pointer without /",
            top("fields: {latency_ms: timing/ms}"),
        ),
        (
            "an unknown protocol",
            top("export: {otlp: {protocol: grpcs}}"),
        ),
        (
            "text where a boolean goes",
            top("export: {enabled: \"no\"}"),
        ),
        (
            "a host name to listen on",
            top("admin: {listen: localhost:9464}"),
        ),
    ];
    // Where the schema is knowingly looser (README, "In an editor"): what it cannot see.
    let looser = [
        // The JSON it sees has no quotes, but a quoted number stays text after interpolation.
        (
            "a quoted interpolated count",
            top("archive: {max_rows: \"${N:-1000}\"}"),
        ),
        // A pattern cannot add up the parts of a duration to compare them with 1h.
        ("a period under an hour", spec("", "0.995", "period: 59m")),
    ];
    // (name, spec, the loader's verdict, the schema's verdict)
    let cases: Vec<(&str, &String, bool, bool)> =
        (accepted.iter().map(|(n, s)| (*n, s, true, true)))
            .chain(refused.iter().map(|(n, s)| (*n, s, false, false)))
            .chain(looser.iter().map(|(n, s)| (*n, s, false, true)))
            .collect();
    let documents: Vec<_> = cases
        .iter()
        .map(|(name, text, _, _)| as_json(text, name))
        .collect();
    let verdicts = schema_errors(&documents);
    let mut disagreements = Vec::new();
    for ((name, text, by_loader, by_schema), errors) in cases.into_iter().zip(verdicts) {
        let loader = sliq_config::parse(text, name, |_| None).map(drop);
        if loader.is_ok() != by_loader {
            disagreements.push(format!("the loader on {name}: {loader:?}\n{text}"));
        }
        if errors.is_empty() != by_schema {
            disagreements.push(format!("the schema on {name}: {errors:?}\n{text}"));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
}
