//! Hand-worked verdicts for every SLI kind, with the edges: missing fields, null, negative numbers,
//! empty text, zero tokens, fractional counts.

use super::*;
use crate::decode::{Decoder, FieldMap};
use serde_json::{Value, json};

const G: Option<Verdict> = Some(Verdict::GOOD);
const B: Option<Verdict> = Some(Verdict::BAD);

fn judge(sli: &Sli, extra: Value) -> Option<Verdict> {
    let mut record = json!({"id": "x", "ts": 0, "service": "s"});
    if let (Some(o), Value::Object(add)) = (record.as_object_mut(), extra) {
        o.extend(add);
    }
    let d = Decoder::new(FieldMap::default(), 1 << 20);
    decoded!(e = d, record);
    sli.evaluate(&e)
}

fn latency(measure: LatencyMeasure, threshold_ms: f64) -> Sli {
    Sli::Latency {
        measure,
        threshold_ms,
    }
}

#[test]
fn latency_threshold_is_inclusive() {
    let sli = latency(LatencyMeasure::Total, 500.0);
    assert_eq!(judge(&sli, json!({"latency_ms": 499.9})), G);
    assert_eq!(judge(&sli, json!({"latency_ms": 500})), G);
    assert_eq!(judge(&sli, json!({"latency_ms": 500.1})), B);
    assert_eq!(judge(&sli, json!({"latency_ms": 0})), G);
}

#[test]
fn latency_declines_missing_null_negative_and_failed() {
    let sli = latency(LatencyMeasure::Total, 500.0);
    assert_eq!(judge(&sli, json!({})), None);
    assert_eq!(judge(&sli, json!({"latency_ms": null})), None);
    assert_eq!(judge(&sli, json!({"latency_ms": -3})), None);
    assert_eq!(
        judge(&sli, json!({"latency_ms": 10, "status": "error"})),
        None
    );
}

#[test]
fn ttft_and_time_per_output_token() {
    let ttft = latency(LatencyMeasure::TimeToFirstToken, 200.0);
    assert_eq!(judge(&ttft, json!({"ttft_ms": 250, "latency_ms": 100})), B);
    // (1200 - 200) / 50 = 20 ms per token.
    let tpot = |t| latency(LatencyMeasure::TimePerOutputToken, t);
    let rec = || json!({"latency_ms": 1200, "ttft_ms": 200, "response": {"tokens": 50}});
    assert_eq!(judge(&tpot(20.0), rec()), G);
    assert_eq!(judge(&tpot(19.99), rec()), B);
    let zero = json!({"latency_ms": 1200, "ttft_ms": 200, "response": {"tokens": 0}});
    assert_eq!(judge(&tpot(20.0), zero), None);
    assert_eq!(
        judge(
            &tpot(20.0),
            json!({"latency_ms": 1200, "response": {"tokens": 5}})
        ),
        None
    );
    // ttft after the end: a negative streaming time is a broken measurement.
    let broken = json!({"latency_ms": 100, "ttft_ms": 200, "response": {"tokens": 5}});
    assert_eq!(judge(&tpot(20.0), broken), None);
}

#[test]
fn availability_excludes_listed_error_types() {
    let sli = Sli::Availability {
        exclude_error_types: vec!["invalid_request".into()],
    };
    assert_eq!(judge(&sli, json!({})), G);
    assert_eq!(judge(&sli, json!({"error": {"type": "timeout"}})), B);
    assert_eq!(judge(&sli, json!({"status": "error"})), B);
    assert_eq!(
        judge(&sli, json!({"error": {"type": "invalid_request"}})),
        None
    );
}

#[test]
fn score_thresholds_labels_and_missing_evaluators() {
    let at_least = Sli::Score {
        evaluator: "faith".into(),
        pass: ScorePass::AtLeast(0.7),
        missing: Missing::Skip,
    };
    assert_eq!(judge(&at_least, json!({"evals": {"faith": 0.7}})), G);
    assert_eq!(judge(&at_least, json!({"evals": {"faith": 0.69}})), B);
    assert_eq!(judge(&at_least, json!({"evals": {"faith": -0.1}})), B);
    assert_eq!(
        judge(
            &at_least,
            json!({"evals": {"faith": {"score": 0.9, "label": "x"}}})
        ),
        G
    );
    assert_eq!(judge(&at_least, json!({"evals": {"other": 0.9}})), None);
    assert_eq!(judge(&at_least, json!({"evals": {"faith": null}})), None);
    assert_eq!(
        judge(&at_least, json!({"evals": {"faith": {"label": "good"}}})),
        None
    );
    let strict = Sli::Score {
        evaluator: "faith".into(),
        pass: ScorePass::AtLeast(0.7),
        missing: Missing::Bad,
    };
    assert_eq!(judge(&strict, json!({})), B);
    let at_most = Sli::Score {
        evaluator: "tox".into(),
        pass: ScorePass::AtMost(0.2),
        missing: Missing::Skip,
    };
    assert_eq!(judge(&at_most, json!({"evals": {"tox": 0.2}})), G);
    assert_eq!(judge(&at_most, json!({"evals": {"tox": 0.21}})), B);
    let label = Sli::Score {
        evaluator: "q".into(),
        pass: ScorePass::LabelIn(vec!["good".into(), "fair".into()]),
        missing: Missing::Skip,
    };
    assert_eq!(
        judge(
            &label,
            json!({"evals": {"q": {"score": 0.1, "label": "fair"}}})
        ),
        G
    );
    assert_eq!(judge(&label, json!({"evals": {"q": {"label": "poor"}}})), B);
    assert_eq!(
        judge(&label, json!({"evals": {"q": 0.9}})),
        None,
        "a bare score has no label"
    );
}

#[test]
fn flags_are_good_when_not_raised() {
    let sli = Sli::Flag {
        flag: "hallucination".into(),
        missing: Missing::Skip,
    };
    assert_eq!(judge(&sli, json!({"flags": {"hallucination": false}})), G);
    assert_eq!(judge(&sli, json!({"flags": {"hallucination": true}})), B);
    assert_eq!(judge(&sli, json!({"flags": {"toxicity": true}})), None);
    assert_eq!(judge(&sli, json!({"flags": {"hallucination": null}})), None);
    let strict = Sli::Flag {
        flag: "hallucination".into(),
        missing: Missing::Bad,
    };
    assert_eq!(judge(&strict, json!({})), B);
}

#[test]
fn tests_per_test_and_per_request() {
    let per_test = Sli::Tests {
        mode: TestsMode::PerTest,
    };
    let per_request = Sli::Tests {
        mode: TestsMode::PerRequest,
    };
    let rec = || json!({"tests": {"passed": 9, "failed": 1, "skipped": 4}});
    assert_eq!(judge(&per_test, rec()), Some(Verdict { good: 9, bad: 1 }));
    assert_eq!(judge(&per_request, rec()), B);
    let clean = || json!({"tests": {"passed": 3, "skipped": 2}});
    assert_eq!(judge(&per_test, clean()), Some(Verdict { good: 3, bad: 0 }));
    assert_eq!(judge(&per_request, clean()), G);
    // Nothing ran, or nothing reported: not judged.
    assert_eq!(judge(&per_test, json!({"tests": {"skipped": 5}})), None);
    assert_eq!(
        judge(&per_request, json!({"tests": {"passed": 0, "failed": 0}})),
        None
    );
    assert_eq!(judge(&per_request, json!({})), None);
    // Broken counts are not test results.
    assert_eq!(
        judge(&per_test, json!({"tests": {"passed": -1, "failed": 2}})),
        None
    );
    assert_eq!(judge(&per_test, json!({"tests": {"passed": 1.5}})), None);
}

#[test]
fn test_counts_past_the_limit_are_declined_not_wrapped() {
    let per_test = Sli::Tests {
        mode: TestsMode::PerTest,
    };
    let per_request = Sli::Tests {
        mode: TestsMode::PerRequest,
    };
    // The limit itself counts, both sides at once: 2 × (2^32 − 1) fits a u64 easily.
    let max = 4_294_967_295_u64;
    assert_eq!(MAX_TEST_COUNT, max);
    assert_eq!(
        judge(&per_test, json!({"tests": {"passed": max, "failed": max}})),
        Some(Verdict {
            good: max,
            bad: max
        })
    );
    for huge in [json!(max + 1), json!(1e19), json!(u64::MAX), json!(1e308)] {
        assert_eq!(
            judge(
                &per_test,
                json!({"tests": {"passed": huge.clone(), "failed": 1}})
            ),
            None,
            "{huge}"
        );
        assert_eq!(
            judge(
                &per_request,
                json!({"tests": {"passed": 1, "failed": huge.clone()}})
            ),
            None,
            "{huge}"
        );
    }
    // Skipped is never read: any number there is harmless.
    assert_eq!(
        judge(&per_test, json!({"tests": {"passed": 2, "skipped": 1e308}})),
        Some(Verdict { good: 2, bad: 0 })
    );
}

#[test]
fn time_per_output_token_with_extreme_values_is_declined() {
    let sli = latency(LatencyMeasure::TimePerOutputToken, 50.0);
    // 1e308 − (−1e308) overflows to +inf: not a measurement.
    assert_eq!(
        judge(
            &sli,
            json!({"latency_ms": 1e308, "ttft_ms": -1e308, "response": {"tokens": 1}})
        ),
        None
    );
    // A tiny token count gives +inf too.
    assert_eq!(
        judge(
            &sli,
            json!({"latency_ms": 1e300, "ttft_ms": 0, "response": {"tokens": 1e-300}})
        ),
        None
    );
}

fn rules(field: TextField, patterns: &[(&str, RuleKind)], missing: Missing) -> Sli {
    Sli::Rule(Rules {
        field,
        set: RegexSet::new(patterns.iter().map(|p| p.0)).unwrap(),
        kinds: patterns.iter().map(|p| p.1).collect(),
        missing,
    })
}

#[test]
fn rules_forbid_and_require_in_one_pass() {
    let sli = rules(
        TextField::Response,
        &[
            (
                r"(?i)\bI(?:'m| am) sorry\b|(?i)\bcannot assist\b",
                RuleKind::Forbid,
            ),
            (
                r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
                RuleKind::Forbid,
            ),
            (r"\.\s*$", RuleKind::Require),
        ],
        Missing::Skip,
    );
    let text = |t: &str| json!({"response": {"text": t}});
    assert_eq!(judge(&sli, text("Here you go.")), G);
    assert_eq!(judge(&sli, text("I'm sorry, but no.")), B, "refusal");
    assert_eq!(judge(&sli, text("Mail jane@example.com.")), B, "PII");
    assert_eq!(
        judge(&sli, text("No final period")),
        B,
        "required format missing"
    );
    assert_eq!(
        judge(&sli, text("")),
        B,
        "empty text lacks the required period"
    );
    assert_eq!(judge(&sli, json!({})), None, "no response text");
    let forbid_only = rules(
        TextField::Request,
        &[("secret", RuleKind::Forbid)],
        Missing::Bad,
    );
    assert_eq!(judge(&forbid_only, json!({"request": {"text": ""}})), G);
    assert_eq!(judge(&forbid_only, json!({})), B);
}

#[test]
fn all_of_is_bad_on_any_bad_and_good_only_when_all_judged_good() {
    let fast = latency(LatencyMeasure::Total, 1000.0);
    let faithful = Sli::Score {
        evaluator: "faith".into(),
        pass: ScorePass::AtLeast(0.7),
        missing: Missing::Skip,
    };
    let grounded = Sli::Flag {
        flag: "hallucination".into(),
        missing: Missing::Skip,
    };
    let sli = Sli::AllOf(vec![fast, faithful, grounded]);
    let ok = json!({"latency_ms": 500, "evals": {"faith": 0.9}, "flags": {"hallucination": false}});
    assert_eq!(judge(&sli, ok), G);
    let slow =
        json!({"latency_ms": 1500, "evals": {"faith": 0.9}, "flags": {"hallucination": false}});
    assert_eq!(judge(&sli, slow), B);
    let unevaluated_but_hallucinated = json!({"latency_ms": 500, "flags": {"hallucination": true}});
    assert_eq!(judge(&sli, unevaluated_but_hallucinated), B);
    let unevaluated = json!({"latency_ms": 500, "flags": {"hallucination": false}});
    assert_eq!(judge(&sli, unevaluated), None);
    assert_eq!(
        judge(&Sli::AllOf(vec![]), json!({})),
        G,
        "the empty conjunction holds"
    );
}

#[test]
fn non_finite_measurements_are_not_judged() {
    // JSON cannot carry NaN or infinity, but a mapped field or a future source might: a broken
    // measurement is never a verdict.
    let d = Decoder::new(FieldMap::default(), 1 << 20);
    let record = json!({"id": "x", "ts": 0, "service": "s", "response": {"tokens": 10}, "tests": {"passed": 1}});
    decoded!(event = d, record);
    let mut e = event;
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        e.latency_ms = Some(bad);
        e.ttft_ms = Some(1.0);
        assert_eq!(
            latency(LatencyMeasure::Total, 500.0).evaluate(&e),
            None,
            "{bad}"
        );
        assert_eq!(
            latency(LatencyMeasure::TimePerOutputToken, 500.0).evaluate(&e),
            None,
            "{bad}"
        );
        e.tests = Some(crate::TestCounts {
            passed: Some(bad),
            failed: Some(1.0),
            skipped: None,
        });
        assert_eq!(
            Sli::Tests {
                mode: TestsMode::PerTest
            }
            .evaluate(&e),
            None,
            "{bad}"
        );
    }
}
