//! Arbitrary bytes through the per-record path of the pipeline: parse, decode, the wall-clock
//! guard, SLI evaluation and the windows. Nothing may panic (debug assertions and overflow checks
//! are on: `cargo fuzz run -a`), and every refusal must carry a known reason code.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use regex::RegexSet;
use sliq_core::{
    Decoder, Dimension, Evaluator, FieldMap, LatencyMeasure, LatencySeries, Missing, RuleKind,
    Rules, ScorePass, Sli, Slo, SourceId, TestsMode, TextField, WindowConfig, Windows,
    check_future_skew,
};

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
const NOW_MS: i64 = 1_795_996_800_000; // 2026-11-30T00:00:00Z

struct Rig {
    decoder: Decoder,
    evaluator: Evaluator,
    latencies: LatencySeries,
    windows: Windows,
    offset: i64,
}

fn rig() -> Rig {
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
            "hallucination",
            Sli::Flag {
                flag: "hallucination".into(),
                missing: Missing::Bad,
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
                set: RegexSet::new([r"(?i)i can(no|')t help"]).expect("valid pattern"),
                kinds: vec![RuleKind::Forbid],
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
    let journey = slos.len() - 1;
    slos[journey].depends_on = vec![2];
    Rig {
        decoder: Decoder::new(FieldMap::default(), 1 << 20),
        evaluator: Evaluator::new(slos),
        latencies: LatencySeries::default(),
        windows: Windows::new(WindowConfig {
            size_ms: 60_000,
            allowed_lateness_ms: 30_000,
            max_out_of_orderness_ms: 5_000,
        }),
        offset: 0,
    }
}

// One rig across inputs, like the pipeline's state across records; reset now and then so that
// memory stays bounded.
static RIG: Mutex<Option<Rig>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut guard = RIG.lock().unwrap_or_else(|e| e.into_inner());
    let rig = guard.get_or_insert_with(rig);
    rig.offset += 1;
    let result = rig.decoder.parse(data).and_then(|value| {
        let event = rig.decoder.decode(&value)?;
        check_future_skew(event.ts_ms, NOW_MS, 300_000)?;
        let mut verdicts = Vec::new();
        rig.evaluator.evaluate(&event, &mut verdicts);
        let latency = rig.latencies.observe(&event);
        rig.windows.add(
            SourceId(0),
            rig.offset,
            event.ts_ms,
            &verdicts,
            rig.evaluator.deferred(),
            latency,
        );
        for mut w in rig.windows.close_ready() {
            rig.evaluator.resolve(&mut w);
        }
        Ok(())
    });
    if let Err(r) = result {
        assert!(
            CODES.contains(&r.code()),
            "unknown reason code {}",
            r.code()
        );
        assert!(!r.to_string().is_empty());
    }
    if rig.offset % 4096 == 0 {
        for mut w in rig.windows.close_all() {
            rig.evaluator.resolve(&mut w);
        }
        *guard = None;
    }
});
