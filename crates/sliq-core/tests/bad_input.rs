//! Bad input, decided: arbitrary JSON (any nesting, extreme numbers, huge strings, duplicate keys)
//! driven through decode → evaluate → windows never panics, and every record is either counted
//! (or late) or refused with one of the stable reason codes.

use proptest::prelude::*;
use regex::RegexSet;
use sliq_core::{
    Admission, Decoder, Dimension, Evaluator, FieldMap, LatencyMeasure, LatencySeries, Missing,
    Reject, RuleKind, Rules, ScorePass, SeriesId, Sli, Slo, SourceId, TestsMode, TextField,
    Verdict, WindowConfig, Windows, check_future_skew,
};

mod json_tree;
use json_tree::{Json, number};

/// Every `sliq.reason` the decoder and the wall-clock guard may give.
const CODES: [&str; 9] = [
    "oversized",
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "bad_timestamp",
    "empty_record",
    "duplicate_key",
    "future_timestamp",
];

/// Whether any object in the tree repeats a key.
fn has_duplicate(json: &Json) -> bool {
    match json {
        Json::Arr(items) => items.iter().any(has_duplicate),
        Json::Obj(fields) => {
            let mut seen = std::collections::HashSet::new();
            fields.iter().any(|((k, _), _)| !seen.insert(k.as_str()))
                || fields.iter().any(|(_, v)| has_duplicate(v))
        }
        _ => false,
    }
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,6}",
        any::<String>(),
        prop::sample::select(vec![
            "NaN",
            "Infinity",
            "-inf",
            "1e999",
            "ok",
            "error",
            "2026-11-30T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "10000-01-01T00:00:00Z",
            "1970-01-01T00:00:00+25:00",
        ])
        .prop_map(str::to_owned),
        (1usize..70_000).prop_map(|n| "x".repeat(n)),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "ts",
            "service",
            "status",
            "latency_ms",
            "ttft_ms",
            "tokens",
            "passed",
            "failed",
            "score",
            "label",
            "tier",
            "faithfulness",
            "hallucination",
            "text",
        ])
        .prop_map(str::to_owned),
        "[a-z/~]{0,4}",
    ]
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        number().prop_map(Json::Num),
        string().prop_map(|s| Json::Str(s, false)),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Arr),
            (
                prop::collection::vec((key(), inner), 0..6),
                prop::bool::weighted(0.1)
            )
                .prop_map(|(fields, keep_duplicates)| object(fields, keep_duplicates)),
        ]
    })
}

/// An object, with repeated keys dropped unless `keep_duplicates`.
fn object(mut fields: Vec<(String, Json)>, keep_duplicates: bool) -> Json {
    if !keep_duplicates {
        let mut seen = std::collections::HashSet::new();
        fields.retain(|(k, _)| seen.insert(k.clone()));
    }
    Json::Obj(fields.into_iter().map(|(k, v)| ((k, false), v)).collect())
}

fn num(n: f64) -> Json {
    Json::Num(format!("{n:?}"))
}

/// Values of the type the canonical field expects (numbers in a useful range).
fn typical(name: &'static str) -> BoxedStrategy<Json> {
    let obj = |pairs: Vec<(&str, Json)>| {
        Json::Obj(
            pairs
                .into_iter()
                .map(|(k, v)| ((k.to_owned(), false), v))
                .collect(),
        )
    };
    match name {
        "latency_ms" | "ttft_ms" => (0.0..3000.0f64).prop_map(num).boxed(),
        "status" => prop::sample::select(vec!["ok", "error"])
            .prop_map(|s| Json::Str(s.into(), false))
            .boxed(),
        "model" => Just(Json::Str("m-large".into(), false)).boxed(),
        "labels" => prop::sample::select(vec!["gold", "free"])
            .prop_map(move |t| obj(vec![("tier", Json::Str(t.into(), false))]))
            .boxed(),
        "response" => (0.0..500.0f64, any::<bool>())
            .prop_map(move |(t, refuse)| {
                let text = if refuse { "I can't help" } else { "Sure." };
                obj(vec![
                    ("tokens", num(t)),
                    ("text", Json::Str(text.into(), false)),
                ])
            })
            .boxed(),
        "error" => Just(obj(vec![("type", Json::Str("timeout".into(), false))])).boxed(),
        "evals" => (0.0..1.0f64)
            .prop_map(move |x| {
                obj(vec![
                    ("faithfulness", num(x)),
                    (
                        "tone",
                        obj(vec![("label", Json::Str("neutral".into(), false))]),
                    ),
                ])
            })
            .boxed(),
        "flags" => any::<bool>()
            .prop_map(move |b| obj(vec![("hallucination", Json::Bool(b))]))
            .boxed(),
        "tests" => (0u64..20, 0u64..5)
            .prop_map(move |(p, f)| {
                obj(vec![
                    ("passed", Json::Num(p.to_string())),
                    ("failed", Json::Num(f.to_string())),
                ])
            })
            .boxed(),
        _ => json().boxed(),
    }
}

/// A record of roughly the canonical shape whose fields may hold anything.
fn record() -> impl Strategy<Value = Json> {
    let ts = prop_oneof![
        4 => (-600_000i64..300_000).prop_map(|d| Json::Num((NOW_MS + d).to_string())),
        1 => number().prop_map(Json::Num),
        1 => string().prop_map(|s| Json::Str(s, false)),
        1 => json(),
    ];
    let field = |name: &'static str| {
        (
            Just(name.to_owned()),
            prop_oneof![8 => typical(name), 1 => json()],
        )
    };
    let optional = prop::collection::vec(
        prop_oneof![
            field("status"),
            field("latency_ms"),
            field("ttft_ms"),
            field("model"),
            field("labels"),
            field("request"),
            field("response"),
            field("error"),
            field("evals"),
            field("flags"),
            field("tests"),
            field("features"),
            (key(), json()),
        ],
        0..8,
    );
    (
        prop_oneof![4 => Just(Json::Str("r1".into(), false)), 1 => json()],
        ts,
        prop_oneof![4 => Just(Json::Str("chat".into(), false)), 1 => json()],
        optional,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(id, ts, service, optional, duplicate)| {
            let mut fields = vec![
                ("id".to_owned(), id),
                ("ts".to_owned(), ts),
                ("service".to_owned(), service),
            ];
            fields.extend(optional);
            if duplicate {
                fields.push(("id".to_owned(), Json::Str("again".into(), false)));
            }
            object(fields, duplicate)
        })
}

/// A record as bytes: mostly rendered trees, sometimes cut short or raw bytes.
fn payload() -> impl Strategy<Value = (Vec<u8>, Option<bool>)> {
    prop_oneof![
        6 => record().prop_map(|r| {
            let mut s = String::new();
            r.render(&mut s);
            (s.into_bytes(), Some(has_duplicate(&r)))
        }),
        2 => json().prop_map(|r| {
            let mut s = String::new();
            r.render(&mut s);
            (s.into_bytes(), Some(has_duplicate(&r)))
        }),
        1 => (record(), any::<prop::sample::Index>()).prop_map(|(r, cut)| {
            let mut s = String::new();
            r.render(&mut s);
            let bytes = s.into_bytes();
            let at = cut.index(bytes.len() + 1);
            (bytes[..at].to_vec(), None)
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| (b, None)),
    ]
}

fn slos() -> Vec<Slo> {
    let tier = Dimension::Label("tier".into());
    let mut slos = vec![
        Slo::new(
            "latency",
            Sli::Latency {
                measure: LatencyMeasure::Total,
                threshold_ms: 500.0,
            },
            0.99,
            vec![Dimension::Service, Dimension::Model],
        ),
        Slo::new(
            "tpot",
            Sli::Latency {
                measure: LatencyMeasure::TimePerOutputToken,
                threshold_ms: 50.0,
            },
            0.99,
            vec![],
        ),
        Slo::new(
            "availability",
            Sli::Availability {
                exclude_error_types: vec!["invalid_request".into()],
            },
            0.999,
            vec![tier.clone()],
        ),
        Slo::new(
            "faithful",
            Sli::Score {
                evaluator: "faithfulness".into(),
                pass: ScorePass::AtLeast(0.8),
                missing: Missing::Skip,
            },
            0.95,
            vec![],
        ),
        Slo::new(
            "tone",
            Sli::Score {
                evaluator: "tone".into(),
                pass: ScorePass::LabelIn(vec!["neutral".into()]),
                missing: Missing::Bad,
            },
            0.9,
            vec![],
        ),
        Slo::new(
            "hallucination",
            Sli::Flag {
                flag: "hallucination".into(),
                missing: Missing::Skip,
            },
            0.99,
            vec![],
        ),
        Slo::new(
            "tests",
            Sli::Tests {
                mode: TestsMode::PerTest,
            },
            0.9,
            vec![Dimension::Operation],
        ),
        Slo::new(
            "refusals",
            Sli::Rule(Rules {
                field: TextField::Response,
                set: RegexSet::new([r"(?i)i can(no|')t help", r"\S"]).expect("valid patterns"),
                kinds: vec![RuleKind::Forbid, RuleKind::Require],
                missing: Missing::Skip,
            }),
            0.99,
            vec![],
        ),
        Slo::new(
            "journey",
            Sli::AllOf(vec![
                Sli::Latency {
                    measure: LatencyMeasure::Total,
                    threshold_ms: 1000.0,
                },
                Sli::Flag {
                    flag: "hallucination".into(),
                    missing: Missing::Skip,
                },
            ]),
            0.99,
            vec![tier],
        ),
    ];
    // A cascade: the journey's budget also pays for bad availability of the same request.
    let journey = slos.len() - 1;
    slos[journey].depends_on = vec![2];
    slos
}

struct Rig {
    decoder: Decoder,
    evaluator: Evaluator,
    latencies: LatencySeries,
    windows: Windows,
    verdicts: Vec<(SeriesId, Verdict)>,
    offset: i64,
}

const NOW_MS: i64 = 1_795_996_800_000; // 2026-11-30T00:00:00Z

impl Rig {
    fn new() -> Rig {
        Rig {
            decoder: Decoder::new(FieldMap::default(), 1 << 20),
            evaluator: Evaluator::new(slos()),
            latencies: LatencySeries::default(),
            windows: Windows::new(WindowConfig {
                size_ms: 60_000,
                allowed_lateness_ms: 30_000,
                max_out_of_orderness_ms: 5_000,
            }),
            verdicts: Vec::new(),
            offset: 0,
        }
    }

    /// One record through the pipeline's per-event path: its admission, or its refusal.
    fn process(&mut self, bytes: &[u8]) -> Result<Admission, Reject> {
        self.offset += 1;
        let value = self.decoder.parse(bytes)?;
        let event = self.decoder.decode(&value)?;
        check_future_skew(event.ts_ms, NOW_MS, 300_000)?;
        self.verdicts.clear();
        self.evaluator.evaluate(&event, &mut self.verdicts);
        let latency = self.latencies.observe(&event);
        let admission = self.windows.add(
            SourceId(0),
            self.offset,
            event.ts_ms,
            &self.verdicts,
            self.evaluator.deferred(),
            latency,
        );
        for mut w in self.windows.close_ready() {
            self.evaluator.resolve(&mut w);
        }
        Ok(admission)
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_record_is_counted_or_refused_with_a_stable_code(
        batch in prop::collection::vec(payload(), 1..8)
    ) {
        let mut rig = Rig::new();
        for (bytes, duplicate) in &batch {
            match rig.process(bytes) {
                Ok(Admission::Counted | Admission::Late) => {
                    prop_assert_ne!(*duplicate, Some(true), "a duplicate key was accepted");
                }
                Err(r) => {
                    prop_assert!(CODES.contains(&r.code()), "unknown code {}", r.code());
                    prop_assert!(!r.to_string().is_empty());
                    if *duplicate == Some(true) {
                        // Duplicates are found while parsing, before any other check but size
                        // (or a number JSON cannot hold, met earlier in the text).
                        let invalid_number = bytes.windows(5).any(|w| w == b"1e400");
                        prop_assert!(
                            r.code() == "duplicate_key"
                                || r.code() == "oversized"
                                || (invalid_number && r.code() == "not_json"),
                            "{}",
                            r
                        );
                    }
                    if r.code() == "duplicate_key" {
                        prop_assert_ne!(*duplicate, Some(false), "{}", r);
                    }
                }
            }
        }
        for mut w in rig.windows.close_all() {
            rig.evaluator.resolve(&mut w);
        }
    }
}

#[test]
fn windows_saturate_and_extreme_times_do_not_panic() {
    let mut windows = Windows::new(WindowConfig {
        size_ms: 60_000,
        allowed_lateness_ms: 30_000,
        max_out_of_orderness_ms: 5_000,
    });
    let huge = [(
        SeriesId(0),
        Verdict {
            good: u64::MAX,
            bad: u64::MAX - 1,
        },
    )];
    for (offset, ts) in [
        (0, 0),
        (1, 1),
        (2, i64::MIN),
        (3, i64::MAX),
        (4, i64::MIN + 1),
    ] {
        windows.add(SourceId(0), offset, ts, &huge, &[], Some((0, f64::MAX)));
    }
    let closed = windows.close_all();
    let first = closed
        .iter()
        .find(|w| w.start_ms == 0)
        .expect("window at 0");
    assert_eq!(
        (first.counts[0].good, first.counts[0].bad),
        (u64::MAX, u64::MAX),
        "two records saturate instead of wrapping"
    );
    assert_eq!(first.end_ms, 60_000);
    // The window of i64::MAX starts at the last multiple of 60 000 and ends saturated.
    let last = closed.last().expect("some window");
    assert_eq!(last.start_ms, i64::MAX - i64::MAX.rem_euclid(60_000));
    assert_eq!(last.end_ms, i64::MAX);
}

#[test]
fn tombstone_and_far_future_records_get_their_codes() {
    let mut rig = Rig::new();
    assert_eq!(rig.process(b"").map_err(|r| r.code()), Err("empty_record"));
    let far = br#"{"id": "a", "ts": "9999-01-01T00:00:00Z", "service": "s"}"#;
    assert_eq!(
        rig.process(far).map_err(|r| r.code()),
        Err("future_timestamp")
    );
    let ok = br#"{"id": "a", "ts": 1795996800000, "service": "s", "latency_ms": 1e308,
        "tests": {"passed": 18446744073709551615, "failed": 1}}"#;
    assert_eq!(rig.process(ok), Ok(Admission::Counted));
}

/// The price of parsing and decoding (duplicate keys refused), against serde_json's own `Value`
/// parse alone. Run with
/// `cargo test --release -p sliq-core --test bad_input -- --ignored --nocapture parse_cost`.
#[test]
#[ignore = "a measurement, not a check"]
#[allow(clippy::print_stderr)]
fn parse_cost() {
    use std::time::Instant;
    let full = br#"{"id":"r1","ts":"2026-11-22T10:00:01.250Z","service":"chat","operation":"answer","model":"m-large","labels":{"tier":"gold","region":null},"request":{"text":"hi there, what is the weather like tomorrow in the city of Lyon?","tokens":13},"response":{"text":"Tomorrow in Lyon: sunny, 14 to 21 degrees, light wind from the north.","tokens":18,"finish_reason":"stop"},"latency_ms":812.5,"ttft_ms":120,"evals":{"faithfulness":0.91,"relevance":0.88,"tone":{"score":0.5,"label":"neutral"}},"flags":{"hallucination":false,"toxicity":false},"tests":{"passed":9,"failed":1},"features":{"prompt_len":42,"response_len":70}}"#;
    let decoder = Decoder::new(FieldMap::default(), 1 << 20);
    let n = 200_000;
    let best = |f: &dyn Fn() -> usize| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let mut sink = 0;
                for _ in 0..n {
                    sink += f();
                }
                assert!(sink > 0);
                t.elapsed().as_nanos() as f64 / n as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    let theirs = best(&|| {
        serde_json::from_slice::<serde_json::Value>(std::hint::black_box(full))
            .map_or(0, |v| v.as_object().map_or(0, |o| o.len()))
    });
    let ours = best(&|| {
        decoder
            .parse(std::hint::black_box(full))
            .map_or(0, |r| usize::from(decoder.decode(&r).is_ok()))
    });
    eprintln!(
        "{} bytes: serde_json {theirs:.0} ns, Decoder::parse+decode {ours:.0} ns ({:+.1}%)",
        full.len(),
        (ours / theirs - 1.0) * 100.0
    );
}
