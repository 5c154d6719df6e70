use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

const MINIMAL: &str = "\
source:
  kafka:
    brokers: localhost:9092
    topics: [logs]
    dead_letter_topic: logs-dlq
slos:
  - name: avail
    objective: 0.99
    sli:
      availability: {}
";

fn err(text: &str) -> ConfigError {
    parse(text, "spec.yaml", no_env).expect_err("spec should be refused")
}

#[test]
fn minimal_spec_gets_defaults() {
    let spec = parse(MINIMAL, "spec.yaml", no_env).unwrap();
    assert_eq!(spec.source.kafka.group_id, "sliq");
    assert_eq!(spec.source.kafka.max_record_bytes, 1 << 20);
    let w = spec.windows.window_config();
    assert_eq!(
        (w.size_ms, w.allowed_lateness_ms, w.max_out_of_orderness_ms),
        (60_000, 30_000, 5_000)
    );
    assert_eq!(
        spec.export.otlp.resolve(no_env).unwrap().protocol,
        Protocol::Grpc
    );
    assert_eq!(spec.export.otlp.temporality, Temporality::Cumulative);
    assert_eq!(spec.slos()[0].objective, 0.99);
    assert_eq!(spec.fields.field_map(), sliq_core::FieldMap::default());
}

#[test]
fn objective_out_of_range_names_line_and_key() {
    let e = err(&MINIMAL.replace("objective: 0.99", "objective: 1.5"));
    assert_eq!(e.line, Some(8), "{e}");
    assert!(e.message.contains("slos[0].objective"), "{e}");
    assert!(e.message.contains("outside (0, 1)"), "{e}");
    assert!(e.to_string().starts_with("spec.yaml:8:"), "{e}");
}

#[test]
fn percent_objective_is_accepted() {
    let spec = parse(&MINIMAL.replace("0.99", "\"99.9%\""), "s", no_env).unwrap();
    assert!((spec.slos()[0].objective - 0.999).abs() < 1e-12);
}

#[test]
fn unknown_key_is_refused_with_its_name() {
    let e = err(&MINIMAL.replace(
        "    objective: 0.99\n",
        "    objective: 0.99\n    objectiv: 0.9\n",
    ));
    assert!(e.message.contains("unknown field `objectiv`"), "{e}");
    assert_eq!(e.line, Some(9), "{e}");
}

#[test]
fn bad_duration_and_pointer_and_dimension_explain_the_fix() {
    let e = err(&format!("{MINIMAL}windows:\n  size: soon\n"));
    assert!(
        e.message.contains("windows.size") && e.message.contains("write e.g. 500ms"),
        "{e}"
    );
    assert_eq!(e.line, Some(12));
    let e = err(&format!("{MINIMAL}fields:\n  latency_ms: timing.total\n"));
    assert!(
        e.message.contains("fields.latency_ms") && e.message.contains("starts with '/'"),
        "{e}"
    );
    let e = err(&MINIMAL.replace("    sli:", "    dimensions: [tenant]\n    sli:"));
    assert!(e.message.contains("labels.<key>"), "{e}");
}

#[test]
fn duplicate_slo_names_point_at_the_second() {
    let text = format!(
        "{MINIMAL}  - name: avail\n    objective: 0.9\n    sli:\n      availability: {{}}\n"
    );
    let e = err(&text);
    assert_eq!(e.line, Some(11), "{e}");
    assert!(
        e.message.contains("slos[1].name") && e.message.contains("used twice"),
        "{e}"
    );
}

#[test]
fn dead_letter_topic_must_differ_from_sources() {
    let e = err(&MINIMAL.replace("logs-dlq", "logs"));
    assert!(e.message.contains("dead_letter_topic"), "{e}");
    assert_eq!(e.line, Some(5));
}

#[test]
fn environment_interpolation_feeds_values() {
    let text = MINIMAL.replace("localhost:9092", "${BROKERS:-fallback:1}");
    let spec = parse(&text, "s", |n| (n == "BROKERS").then(|| "k:9".to_string())).unwrap();
    assert_eq!(spec.source.kafka.brokers, "k:9");
    let spec = parse(&text, "s", no_env).unwrap();
    assert_eq!(spec.source.kafka.brokers, "fallback:1");
    let e = err(&MINIMAL.replace("localhost:9092", "${BROKERS}"));
    assert_eq!(
        (e.line, e.message.contains("BROKERS is not set")),
        (Some(3), true),
        "{e}"
    );
}

#[test]
fn file_endpoint_selects_the_file_exporter() {
    let text = format!("{MINIMAL}export:\n  otlp:\n    endpoint: file:///tmp/m.jsonl\n");
    let spec = parse(&text, "s", no_env).unwrap();
    assert_eq!(
        spec.export.otlp.resolve(no_env).unwrap().protocol,
        Protocol::File
    );
}

#[test]
fn export_is_on_unless_disabled() {
    let spec = parse(MINIMAL, "s", no_env).unwrap();
    assert!(spec.export.enabled);
    let text = format!("{MINIMAL}export:\n  enabled: false\n");
    let spec = parse(&text, "s", no_env).unwrap();
    assert!(!spec.export.enabled);
}

#[test]
fn archive_is_on_unless_disabled() {
    assert!(parse(MINIMAL, "s", no_env).unwrap().archive.enabled);
    let text = format!("{MINIMAL}archive:\n  enabled: false\n");
    assert!(!parse(&text, "s", no_env).unwrap().archive.enabled);
}

#[test]
fn every_example_pipeline_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(e) = parse(&text, &path.display().to_string(), no_env) {
                panic!("{e}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 1, "no example pipelines in {}", dir.display());
}

fn with_slos(slos: &str) -> String {
    let head = MINIMAL.split("slos:").next().unwrap_or_default();
    format!("{head}slos:\n{slos}")
}

#[test]
fn several_latency_thresholds_become_one_slo_each() {
    let text = with_slos(
        "  - name: lat\n    sli:\n      latency:\n        thresholds:\n          - { threshold: 1s, objective: 0.9 }\n          - { threshold: 2500ms, objective: 0.99 }\n",
    );
    let slos = parse(&text, "s", no_env).unwrap().slos();
    let got: Vec<(String, f64)> = slos.iter().map(|s| (s.name.clone(), s.objective)).collect();
    assert_eq!(
        got,
        vec![("lat-1s".into(), 0.9), ("lat-2500ms".into(), 0.99)]
    );
    let sliq_core::Sli::Latency { threshold_ms, .. } = slos[1].sli else {
        panic!("latency")
    };
    assert_eq!(threshold_ms, 2500.0);
}

#[test]
fn tiers_become_filtered_slos_with_their_own_objectives_and_thresholds() {
    let text = with_slos(
        "  - name: lat\n    objective: 0.9\n    dimensions: [service]\n    sli:\n      latency: { threshold: 5s }\n    tiers:\n      label: tier\n      objectives: { gold: 0.995, platinum: 0.999 }\n      thresholds: { platinum: 1s }\n",
    );
    let slos = parse(&text, "s", no_env).unwrap().slos();
    assert_eq!(slos.len(), 3);
    let tier = sliq_core::Dimension::Label("tier".into());
    for s in &slos {
        assert_eq!(s.name, "lat");
        assert_eq!(
            s.dimensions,
            vec![sliq_core::Dimension::Service, tier.clone()]
        );
    }
    let summary: Vec<(f64, f64, Vec<String>, bool)> = slos
        .iter()
        .map(|s| {
            let sliq_core::Sli::Latency { threshold_ms, .. } = s.sli else {
                panic!("latency")
            };
            let f = s.filter.clone().unwrap();
            (s.objective, threshold_ms, f.values, f.negate)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0.995, 5000.0, vec!["gold".into()], false),
            (0.999, 1000.0, vec!["platinum".into()], false),
            (0.9, 5000.0, vec!["gold".into(), "platinum".into()], true),
        ]
    );
}

#[test]
fn depends_on_resolves_and_refuses_unknown_names_and_cycles() {
    let avail = "  - name: a\n    objective: 0.9\n    sli:\n      availability: {}\n";
    let text = with_slos(&format!(
        "{avail}  - name: b\n    objective: 0.9\n    depends_on: [a]\n    sli:\n      availability: {{}}\n"
    ));
    let slos = parse(&text, "s", no_env).unwrap().slos();
    assert_eq!(
        (slos[0].depends_on.clone(), slos[1].depends_on.clone()),
        (vec![], vec![0])
    );
    let e = err(&with_slos(&format!(
        "{avail}  - name: b\n    objective: 0.9\n    depends_on: [zzz]\n    sli:\n      availability: {{}}\n"
    )));
    assert!(
        e.message.contains("\"zzz\"") && e.message.contains("slos[1].depends_on"),
        "{e}"
    );
    assert_eq!(e.line, Some(11), "{e}");
    let cyc = "  - name: a\n    objective: 0.9\n    depends_on: [b]\n    sli:\n      availability: {}\n  - name: b\n    objective: 0.9\n    depends_on: [a]\n    sli:\n      availability: {}\n";
    let e = err(&with_slos(cyc));
    assert!(e.message.contains("depends on itself"), "{e}");
}

#[test]
fn sli_kind_mistakes_are_explained() {
    let e = err(&with_slos(
        "  - name: x\n    objective: 0.9\n    sli:\n      availability: {}\n      flag: { name: h }\n",
    ));
    assert!(
        e.message.contains("exactly one SLI kind") && e.message.contains("availability and flag"),
        "{e}"
    );
    let e = err(&with_slos(
        "  - name: x\n    objective: 0.9\n    sli:\n      score: { evaluator: f, min: 0.5, max: 0.9 }\n",
    ));
    assert!(
        e.message.contains("exactly one of min, max or pass_labels"),
        "{e}"
    );
    let e = err(&with_slos(
        "  - name: x\n    objective: 0.9\n    sli:\n      rule:\n        rules:\n          - { name: r, pattern: \"(unclosed\" }\n",
    ));
    assert!(e.message.contains("not a valid regular expression"), "{e}");
    assert_eq!(e.line, Some(12), "{e}");
    let e = err(&with_slos(
        "  - name: x\n    sli:\n      availability: {}\n",
    ));
    assert!(e.message.contains("needs an objective"), "{e}");
    let e = err(&with_slos(
        "  - name: x\n    objective: 0.9\n    period: 5m\n    sli:\n      availability: {}\n",
    ));
    assert!(e.message.contains("calendar_month"), "{e}");
}

#[test]
fn presets_catch_refusals_and_pii_but_not_ordinary_answers() {
    let check = |preset: Preset, yes: &[&str], no: &[&str]| {
        let re = regex::Regex::new(preset.pattern()).unwrap();
        for t in yes {
            assert!(re.is_match(t), "{preset:?} should match {t:?}");
        }
        for t in no {
            assert!(!re.is_match(t), "{preset:?} should not match {t:?}");
        }
    };
    let ordinary = [
        "Sure. To reset your password, open Settings.",
        "The total is 1234 euros.",
        "Call me maybe.",
    ];
    check(
        Preset::Refusal,
        &[
            "I'm sorry, but I can't help with that.",
            "I cannot assist with that request.",
            "As an AI, I am unable to provide that information.",
        ],
        &ordinary,
    );
    check(
        Preset::PiiEmail,
        &["reach jane.doe@example.com today"],
        &ordinary,
    );
    check(
        Preset::PiiPhone,
        &["Call +1-415-555-0132.", "call 415-555-0132"],
        &ordinary,
    );
    check(
        Preset::PiiCard,
        &["The card is 4111 1111 1111 1111.", "4111-1111-1111-1111"],
        &ordinary,
    );
}

const DRIFT: &str = "\
drift:
  dimensions: [service]
  reference: { trailing: 7d }
  features:
    - { name: prompt_tokens, pointer: /request/tokens, type: numeric }
    - { name: finish_reason, pointer: /response/finish_reason, type: categorical, method: chi_square, threshold: 0.01 }
";

#[test]
fn drift_section_reads_features_reference_and_the_drift_slo() {
    let text = format!(
        "{}{DRIFT}",
        with_slos(
            "  - { name: stable, objective: 0.95, dimensions: [service], sli: { drift: {} } }\n"
        )
    );
    let spec = parse(&text, "s", no_env).unwrap();
    assert_eq!(spec.drift_slo().as_deref(), Some("stable"));
    let drift = spec.drift.as_ref().unwrap();
    assert_eq!(drift.min_events, 100);
    let features = drift.features();
    assert_eq!(features[0].method, None);
    assert_eq!(features[0].bins, 10);
    assert_eq!(
        features[1].method,
        Some(sliq_core::drift::Method::ChiSquare)
    );
    assert_eq!(features[1].threshold, Some(0.01));
    assert_eq!(spec.slos()[0].sli, sliq_core::Sli::NoDrift);
    assert!(drift.monitor(spec.drift_slo()).is_ok());
}

#[test]
fn drift_mistakes_are_explained() {
    let drift_slo =
        "  - { name: stable, objective: 0.95, dimensions: [service], sli: { drift: {} } }\n";
    // A drift SLO without a drift section.
    let e = err(&with_slos(drift_slo));
    assert!(e.message.contains("needs a `drift:` section"), "{e}");
    // Dimensions that differ from the section's.
    let e = err(&format!(
        "{}{DRIFT}",
        with_slos(&drift_slo.replace("[service]", "[model]"))
    ));
    assert!(e.message.contains("slos[0].sli.drift"), "{e}");
    // A method that does not apply to the feature's type names the choices.
    let e = err(&format!(
        "{}{}",
        with_slos(drift_slo),
        DRIFT.replace("type: numeric }", "type: numeric, method: chi_square }")
    ));
    assert!(e.message.contains("drift.features[0].method"), "{e}");
    assert!(
        e.message.contains("psi, ks, jensen_shannon or wasserstein"),
        "{e}"
    );
    // Two references.
    let e = err(&format!(
        "{}{}",
        with_slos(drift_slo),
        DRIFT.replace("{ trailing: 7d }", "{ trailing: 7d, first_events: 100 }")
    ));
    assert!(e.message.contains("exactly one of baseline"), "{e}");
    // An unknown method is refused by name, at its line.
    let e = err(&format!(
        "{}{}",
        with_slos(drift_slo),
        DRIFT.replace("method: chi_square", "method: kl")
    ));
    assert!(e.message.contains("unknown variant `kl`"), "{e}");
    assert_eq!(e.line, Some(13), "{e}");
    // A trailing span shorter than a window never has a reference.
    let e = err(&format!(
        "{}{}",
        with_slos(drift_slo),
        DRIFT.replace("{ trailing: 7d }", "{ trailing: 30s }")
    ));
    assert!(e.message.contains("shorter than one window (1m)"), "{e}");
    assert!(e.message.contains("drift.reference.trailing"), "{e}");
    assert_eq!(e.line, Some(10), "{e}");
    // drift inside all_of.
    let e = err(&with_slos(
        "  - { name: j, objective: 0.9, sli: { all_of: [ { drift: {} } ] } }\n",
    ));
    assert!(e.message.contains("drift judges windows"), "{e}");
}

#[test]
fn a_missing_or_mismatched_baseline_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.json");
    let text = format!(
        "{}{}",
        MINIMAL,
        DRIFT.replace(
            "{ trailing: 7d }",
            &format!("{{ baseline: \"{}\" }}", path.display())
        )
    );
    let spec = parse(&text, "s", no_env).unwrap();
    let drift = spec.drift.as_ref().unwrap();
    let e = drift.monitor(None).unwrap_err();
    assert!(
        e.contains("cannot read") && e.contains("sliq baseline --config"),
        "{e}"
    );
    // A baseline with only one of the two features.
    let mut builder =
        sliq_core::drift::BaselineBuilder::new(drift.features()[..1].to_vec(), drift.dimensions());
    let record = br#"{"id": "1", "ts": 0, "service": "s", "request": {"tokens": 5}}"#;
    let decoder = spec.decoder(1 << 20);
    let record = decoder.parse(record).unwrap();
    let event = decoder.decode(&record).unwrap();
    builder.add(&event);
    let baseline = builder.finish("test".into());
    std::fs::write(&path, serde_json::to_string(&baseline).unwrap()).unwrap();
    let e = drift.monitor(None).unwrap_err();
    assert!(e.contains("no feature \"finish_reason\""), "{e}");
    // A baseline made per other dimensions.
    let mut builder = sliq_core::drift::BaselineBuilder::new(drift.features(), vec![]);
    builder.add(&event);
    std::fs::write(
        &path,
        serde_json::to_string(&builder.finish("test".into())).unwrap(),
    )
    .unwrap();
    let e = drift.monitor(None).unwrap_err();
    assert!(
        e.contains("made per no dimension, drift.dimensions is service;"),
        "{e}"
    );
    // A hand-edited sketch whose counts do not add up.
    let mut builder = sliq_core::drift::BaselineBuilder::new(drift.features(), drift.dimensions());
    builder.add(&event);
    let text = serde_json::to_string(&builder.finish("test".into())).unwrap();
    std::fs::write(&path, &text).unwrap();
    assert!(drift.monitor(None).is_ok());
    std::fs::write(
        &path,
        text.replacen("\"zero\":0,\"count\":1", "\"zero\":0,\"count\":7", 1),
    )
    .unwrap();
    let e = drift.monitor(None).unwrap_err();
    assert!(
        e.contains("feature \"prompt_tokens\"") && e.contains("damaged"),
        "{e}"
    );
    // A baseline of an older format, whose categorical sketches this build cannot parse: named
    // by its format, not reported as damaged.
    assert!(text.contains("\"bits\":64,"), "{text}");
    let old = text
        .replace("sliq-baseline/2", "sliq-baseline/1")
        .replace("\"bits\":64,", "");
    std::fs::write(&path, old).unwrap();
    let e = drift.monitor(None).unwrap_err();
    assert!(
        e.contains("has format \"sliq-baseline/1\", this sliq reads \"sliq-baseline/2\"")
            && e.contains("rebuild it with `sliq baseline`"),
        "{e}"
    );
}

#[test]
fn max_future_skew_defaults_to_5m_and_is_bounded() {
    let spec = parse(MINIMAL, "spec.yaml", no_env).unwrap();
    assert_eq!(spec.windows.max_future_skew_ms(), 300_000);
    let spec = parse(
        &format!("{MINIMAL}windows:\n  max_future_skew: 90s\n"),
        "s",
        no_env,
    )
    .unwrap();
    assert_eq!(spec.windows.max_future_skew_ms(), 90_000);
    let spec = parse(
        &format!("{MINIMAL}windows:\n  max_future_skew: 1d\n"),
        "s",
        no_env,
    )
    .unwrap();
    assert_eq!(
        spec.windows.max_future_skew_ms(),
        86_400_000,
        "1d is allowed"
    );
    for bad in ["0s", "1d 1s", "30d"] {
        let e = err(&format!("{MINIMAL}windows:\n  max_future_skew: {bad}\n"));
        assert_eq!(e.line, Some(12), "{e}");
        assert!(
            e.message.contains("windows.max_future_skew") && e.message.contains("such as 5m"),
            "{e}"
        );
    }
    let e = err(&format!("{MINIMAL}windows:\n  max_future_skew: soon\n"));
    assert_eq!(e.line, Some(12), "{e}");
    assert!(e.message.contains("write e.g. 500ms"), "{e}");
}

#[test]
fn empty_brokers_and_topics_say_what_to_write() {
    for brokers in ["\"\"", "\"  \"", "", "a:1,,b:2"] {
        let e = err(&MINIMAL.replace("localhost:9092", brokers));
        assert_eq!(e.line, Some(3), "{brokers}: {e}");
        assert!(
            e.message.contains("source.kafka.brokers")
                && e.message
                    .contains("write host:port[,host:port], e.g. 127.0.0.1:9092"),
            "{brokers}: {e}"
        );
    }
    let e = err(&MINIMAL.replace("[logs]", "[]"));
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.message.contains("e.g. topics: [ai-logs]"), "{e}");
    let e = err(&MINIMAL.replace("[logs]", "[logs, \" \"]"));
    assert_eq!(e.line, Some(4), "{e}");
    assert!(
        e.message.contains("source.kafka.topics[1]") && e.message.contains("empty"),
        "{e}"
    );
}

#[test]
fn missing_required_keys_say_what_to_write() {
    let e = err(&MINIMAL.replace("    brokers: localhost:9092\n", ""));
    assert!(
        e.message.contains("missing field `brokers`")
            && e.message.contains("e.g. brokers: 127.0.0.1:9092"),
        "{e}"
    );
    assert!(e.line.is_some(), "{e}");
    let e = err(&MINIMAL.replace("    topics: [logs]\n", ""));
    assert!(e.message.contains("e.g. topics: [ai-logs]"), "{e}");
    let e = err(&MINIMAL.replace("    dead_letter_topic: logs-dlq\n", ""));
    assert!(e.message.contains("dead_letter_topic: ai-logs-dlq"), "{e}");
}

#[test]
fn archive_memory_keys_default_and_refuse_what_cannot_work() {
    let spec = parse(MINIMAL, "spec.yaml", no_env).unwrap();
    assert_eq!(spec.archive.row_group_bytes, 8 << 20);
    assert_eq!(spec.archive.max_buffered_bytes, 128 << 20);
    let spec = parse(
        &format!("{MINIMAL}archive:\n  row_group_bytes: 65536\n  max_buffered_bytes: 131072\n"),
        "s",
        no_env,
    )
    .unwrap();
    assert_eq!(
        (
            spec.archive.row_group_bytes,
            spec.archive.max_buffered_bytes
        ),
        (65_536, 131_072)
    );
    let e = err(&format!("{MINIMAL}archive:\n  row_group_bytes: 1000\n"));
    assert_eq!(e.line, Some(12), "{e}");
    assert!(
        e.message.contains("archive.row_group_bytes") && e.message.contains("at least 65536"),
        "{e}"
    );
    let e = err(&format!(
        "{MINIMAL}archive:\n  row_group_bytes: 1048576\n  max_buffered_bytes: 1048576\n"
    ));
    assert_eq!(e.line, Some(13), "{e}");
    assert!(
        e.message.contains("archive.max_buffered_bytes") && e.message.contains("2097152"),
        "{e}"
    );
}

#[test]
fn spans_print_back_the_way_specs_write_them() {
    let cases = [
        (500, "500ms"),
        (30_000, "30s"),
        (60_000, "1m"),
        (5_400_000, "1h 30m"),
        (7 * 86_400_000, "7d"),
        (86_400_000 + 30_000, "1d 30s"),
        (3_723_004, "1h 2m 3s 4ms"),
        (0, "0s"),
    ];
    for (ms, text) in cases {
        let span = Span(std::time::Duration::from_millis(ms));
        assert_eq!(span.to_string(), text);
        // What is printed parses back to the same span: a message can be pasted into a spec.
        let parsed: Span = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!(parsed, span, "{text}");
    }
}

fn with_redact(section: &str) -> String {
    format!("{MINIMAL}archive:\n  redact:\n{section}")
}

#[test]
fn redact_rules_resolve_prompt_and_response_and_default_raw_to_redact() {
    let text = with_redact(
        "    key: ${KEY}
    rules:
      - fields: [prompt, response, /metadata/email]
        presets: [email, credit_card]
        patterns: ['ACCT-\\d{6}']
        action: hash
",
    );
    let spec = parse(&text, "s", |v| (v == "KEY").then(|| "k3y".to_owned())).unwrap();
    let redact = spec.archive.redact.as_ref().unwrap();
    assert_eq!(redact.raw, sliq_redact::RawPolicy::Redact);
    assert_eq!(
        redact.rules[0].fields,
        [
            RedactField::Prompt,
            RedactField::Response,
            RedactField::Pointer("/metadata/email".into())
        ]
    );
    let shown = format!("{spec:?}");
    assert!(!shown.contains("k3y"), "the key shows in Debug: {shown}");
    assert!(spec.redactor().unwrap().is_some());
}

#[test]
fn redact_refusals_name_the_rule_and_the_fix() {
    let e = err(&with_redact(
        "    rules:\n      - name: accounts\n        fields: [prompt]\n        patterns: ['(ACCT']\n        action: mask\n",
    ));
    assert!(e.message.contains("archive.redact.rules[0]"), "{e}");
    assert!(e.message.contains("'(ACCT'"), "{e}");
    assert_eq!(e.line, Some(14), "{e}");

    let e = err(&with_redact(
        "    rules:\n      - { fields: [prompt], action: hash }\n",
    ));
    assert!(e.message.contains("archive.redact.key"), "{e}");

    let e = err(&with_redact("    key: ''\n    rules: []\n"));
    assert!(e.message.contains("the key is empty"), "{e}");

    let e = err(&with_redact(
        "    rules:\n      - { fields: [prompt, /ts], action: mask }\n",
    ));
    assert!(e.message.contains("/ts covers the record's ts"), "{e}");

    let e = err(&with_redact(
        "    rules:\n      - { fields: [/service], action: drop }\n",
    ));
    assert!(e.message.contains("service"), "{e}");
    parse(
        &with_redact("    rules:\n      - { fields: [/service], action: mask }\n"),
        "s",
        no_env,
    )
    .expect("masking the service keeps a service");

    let e = err(&with_redact(
        "    rules:\n      - { fields: [prompts], action: mask }\n",
    ));
    assert!(
        e.message.contains("'prompts' is not a field to redact"),
        "{e}"
    );
    let e = err(&with_redact(
        "    rules:\n      - { fields: [prompt], presets: [ssn], action: mask }\n",
    ));
    assert!(e.message.contains("ssn"), "{e}");
}

/// MINIMAL with `lines` (YAML, indented 4) added under `source.kafka`.
fn with_kafka(lines: &str) -> String {
    MINIMAL.replace(
        "    dead_letter_topic: logs-dlq\n",
        &format!("    dead_letter_topic: logs-dlq\n{lines}"),
    )
}

fn pem_file(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn tls_and_sasl_give_sasl_ssl_and_the_password_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pem_file(dir.path(), "ca.pem");
    let text = with_kafka(&format!(
        "    tls: {{ ca_file: {ca} }}\n    sasl:\n      mechanism: scram-sha-512\n      \
         username: sliq\n      password: ${{KAFKA_PASSWORD}}\n    options:\n      \
         sasl.oauthbearer.client.secret: hunter3\n      linger.ms: \"7\"\n"
    ));
    let spec = parse(&text, "s", |n| {
        (n == "KAFKA_PASSWORD").then(|| "hunter2".to_string())
    })
    .unwrap();
    let kafka = &spec.source.kafka;
    let sasl = kafka.sasl.as_ref().unwrap();
    assert_eq!(kafka.connection().security_protocol(), Some("SASL_SSL"));
    assert_eq!(sasl.mechanism.kafka_name(), "SCRAM-SHA-512");
    assert_eq!(sasl.password.expose(), "hunter2");
    assert_eq!(sasl.password_variable.as_deref(), Some("KAFKA_PASSWORD"));
    assert_eq!(kafka.tls.as_ref().unwrap().ca_file, Some(ca.into()));
    let shown = format!("{spec:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("hunter3"),
        "{shown}"
    );
    assert!(
        shown.contains("linger.ms") && shown.contains('7'),
        "{shown}"
    );
    // Quoted, in flow style, or without a variable.
    let flow =
        "    sasl: { mechanism: plain, username: u, password: \"${PW:-x}\", without_tls: true }\n";
    let spec = parse(&with_kafka(flow), "s", no_env).unwrap();
    let sasl = spec.source.kafka.sasl.unwrap();
    assert_eq!(sasl.password_variable.as_deref(), Some("PW"));
    let literal = flow.replace("\"${PW:-x}\"", "x");
    let spec = parse(&with_kafka(&literal), "s", no_env).unwrap();
    assert_eq!(spec.source.kafka.sasl.unwrap().password_variable, None);
}

#[test]
fn tls_alone_is_ssl_and_neither_leaves_the_protocol_to_options() {
    let spec = parse(&with_kafka("    tls: {}\n"), "s", no_env).unwrap();
    assert_eq!(
        spec.source.kafka.connection().security_protocol(),
        Some("SSL")
    );
    let spec = parse(MINIMAL, "s", no_env).unwrap();
    assert_eq!(spec.source.kafka.connection().security_protocol(), None);
}

#[test]
fn sasl_without_tls_must_be_asked_for_by_name() {
    let sasl = "    sasl: { mechanism: plain, username: u, password: p }\n";
    let e = err(&with_kafka(sasl));
    assert!(
        e.message.contains("source.kafka.sasl:")
            && e.message.contains("PLAIN login without TLS")
            && e.message.contains("without_tls: true"),
        "{e}"
    );
    assert_eq!(e.line, Some(6), "{e}");
    let text = with_kafka(&sasl.replace(" }", ", without_tls: true }"));
    let spec = parse(&text, "s", no_env).unwrap();
    assert_eq!(
        spec.source.kafka.connection().security_protocol(),
        Some("SASL_PLAINTEXT")
    );
    let e = err(&with_kafka(&format!(
        "    tls: {{}}\n{}",
        sasl.replace(" }", ", without_tls: true }")
    )));
    assert!(e.message.contains("contradicts source.kafka.tls"), "{e}");
    let e = err(&with_kafka(
        "    sasl: { mechanism: scram-sha-1, username: u, password: p }\n",
    ));
    assert!(
        e.message.contains("plain") && e.message.contains("scram-sha-512"),
        "{e}"
    );
}

#[test]
fn tls_files_that_cannot_serve_name_the_key_the_path_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem").display().to_string();
    let e = err(&with_kafka(&format!(
        "    tls:\n      ca_file: {missing}\n"
    )));
    assert!(
        e.message.contains("source.kafka.tls.ca_file")
            && e.message.contains(&format!("cannot read {missing}"))
            && e.message
                .contains("the CA that signed the brokers' certificates"),
        "{e}"
    );
    assert_eq!(e.line, Some(7), "{e}");
    let text_file = dir.path().join("notes.txt");
    std::fs::write(&text_file, "not a certificate").unwrap();
    let cert = pem_file(dir.path(), "client.pem");
    let e = err(&with_kafka(&format!(
        "    tls:\n      cert_file: {cert}\n      key_file: {}\n",
        text_file.display()
    )));
    assert!(
        e.message.contains("source.kafka.tls.key_file") && e.message.contains("not a PEM file"),
        "{e}"
    );
    let e = err(&with_kafka(&format!("    tls:\n      cert_file: {cert}\n")));
    assert!(
        e.message.contains("source.kafka.tls.key_file") && e.message.contains("add key_file"),
        "{e}"
    );
    let e = err(&with_kafka("    tls:\n      key_password: x\n"));
    assert!(e.message.contains("key_password unlocks key_file"), "{e}");
}

#[test]
fn options_may_not_set_what_tls_and_sasl_set() {
    let e = err(&with_kafka(
        "    tls: {}\n    options:\n      security.protocol: PLAINTEXT\n",
    ));
    assert!(
        e.message.contains("source.kafka.options.security.protocol")
            && e.message.contains("remove it from options"),
        "{e}"
    );
    assert_eq!(e.line, Some(8), "{e}");
    // Without tls and sasl, options pass through as before.
    let spec = parse(
        &with_kafka("    options:\n      security.protocol: SSL\n"),
        "s",
        no_env,
    )
    .unwrap();
    assert_eq!(
        spec.source.kafka.options.get("security.protocol"),
        Some("SSL")
    );
}

#[test]
fn option_keys_naming_secrets_are_recognised() {
    for secret in [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "ssl.key.pem",
        "sasl.oauthbearer.config",
    ] {
        assert!(KafkaOptions::is_secret(secret), "{secret}");
    }
    for plain in [
        "linger.ms",
        "security.protocol",
        "ssl.key.location",
        "sasl.username",
    ] {
        assert!(!KafkaOptions::is_secret(plain), "{plain}");
    }
}

#[test]
fn admin_section_reads_its_address_and_readers_and_refuses_what_cannot_work() {
    let spec = parse(MINIMAL, "s", no_env).unwrap();
    assert_eq!(spec.admin.listen, None);
    assert_eq!(spec.admin.self_metrics, SelfMetricsMode::Prometheus);
    let text = format!(
        "{MINIMAL}admin:\n  listen: 127.0.0.1:9464\n  self_metrics: both\n  self_metrics_interval: 2s\n"
    );
    let spec = parse(&text, "s", no_env).unwrap();
    assert_eq!(spec.admin.listen, Some(([127, 0, 0, 1], 9464).into()));
    assert!(spec.admin.self_metrics.prometheus() && spec.admin.self_metrics.otlp());
    assert_eq!(
        spec.admin.self_metrics_interval.0,
        std::time::Duration::from_secs(2)
    );

    let e = err(&format!("{MINIMAL}admin:\n  listen: localhost\n"));
    assert_eq!(e.line, Some(12), "{e}");
    assert!(e.message.contains("admin.listen"), "{e}");
    assert!(e.message.contains("127.0.0.1:9464"), "{e}");

    let e = err(&format!(
        "{MINIMAL}export:\n  otlp:\n    endpoint: file:///tmp/m.jsonl\nadmin:\n  self_metrics: otlp\n"
    ));
    assert!(e.message.contains("admin.self_metrics"), "{e}");
    assert!(e.message.contains("self_metrics: prometheus"), "{e}");

    // Nothing is sent over OTLP when the export is off, self-metrics included.
    let e = err(&format!(
        "{MINIMAL}export:\n  enabled: false\nadmin:\n  self_metrics: both\n"
    ));
    assert!(e.message.contains("export.enabled is false"), "{e}");
    assert!(e.message.contains("self_metrics: prometheus"), "{e}");
    let off = format!("{MINIMAL}export:\n  enabled: false\n");
    assert!(
        parse(&off, "s", no_env).is_ok(),
        "prometheus alone needs no export"
    );
}

fn with_slo_keys(keys: &str) -> String {
    MINIMAL.replace(
        "    objective: 0.99\n",
        &format!("    objective: 0.99\n{keys}"),
    )
}

#[test]
fn an_sla_tighter_than_its_slo_is_refused_at_the_slo() {
    let e = err(&with_slo_keys("    sla: 0.995\n"));
    assert_eq!(e.line, Some(7), "{e}");
    assert!(
        e.message
            .starts_with("slos[0].sla: the SLA 99.5% is tighter than the objective 99%"),
        "{e}"
    );
    // With tiers, the loosest tier bounds the SLA.
    let tiered = MINIMAL.replace(
        "    objective: 0.99\n",
        "    sla: 0.995\n    tiers: { label: plan, objectives: { gold: 0.999, silver: 0.99 } }\n",
    );
    let e = err(&tiered);
    assert!(e.message.contains("objective 99% of tier silver"), "{e}");
    let e = err(&with_slo_keys("    escalation: [on-call, \" \"]\n"));
    assert!(
        e.message
            .starts_with("slos[0].escalation: an escalation step is empty"),
        "{e}"
    );
}

#[test]
fn sla_owner_runbook_and_escalation_reach_the_core_slo() {
    // An SLA equal to the objective is allowed: it is not tighter.
    let spec = parse(
        &with_slo_keys(
            "    sla: \"99%\"\n    owner: team-chat\n    runbook: https://runbooks.example.com/avail\n    escalation: [chat on-call, chat lead]\n",
        ),
        "spec.yaml",
        no_env,
    )
    .unwrap();
    assert_eq!(
        spec.slos()[0].contract,
        sliq_core::SloContract {
            sla: Some(0.99),
            owner: Some("team-chat".into()),
            runbook: Some("https://runbooks.example.com/avail".into()),
            escalation: vec!["chat on-call".into(), "chat lead".into()],
        }
    );
    let e = err(&with_slo_keys("    runbook: wiki/avail\n"));
    assert_eq!(e.line, Some(9), "{e}");
    assert!(e.message.contains("slos[0].runbook"), "{e}");
    assert!(
        e.message.contains("\"wiki/avail\" is not an http(s) URL"),
        "{e}"
    );
}

#[test]
fn a_label_dimension_named_like_an_attribute_sliq_sets_is_refused() {
    for (label, who) in [
        ("severity", "alert rules"),
        ("Owner", "alert rules"),
        ("sliq.window", "sliq's own series"),
        ("__name__", "Prometheus"),
    ] {
        let e = err(&with_slo_keys(&format!(
            "    dimensions: [service, labels.{label}]\n"
        )));
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.message.contains("slos[0].dimensions"), "{e}");
        assert!(e.message.contains(&format!("labels.{label}")), "{e}");
        assert!(e.message.contains(who), "{label}: {e}");
    }
    let fine = with_slo_keys("    dimensions: [service, labels.tier, labels.severity_class]\n");
    assert!(parse(&fine, "s", no_env).is_ok());
}
