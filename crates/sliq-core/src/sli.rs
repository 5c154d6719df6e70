//! SLIs: what makes one event good or bad for one SLO.
//!
//! An SLI may also decline to judge an event (`None`): a latency SLI has nothing to say about a request
//! that never produced a duration, an availability SLI ignores errors the caller caused. Declined events
//! count neither as good nor as bad, so they never move a ratio.
//!
//! A verdict is a pair of counts rather than one outcome because a test-suite SLI judged per test
//! turns one request into many judged units (9 passed and 1 failed test count 9 good, 1 bad).

use regex::RegexSet;

use crate::event::{Event, Status};

/// The largest test count (passed or failed) one record may report: `u32::MAX`. A per-test verdict
/// is then at most 2^33 units, so a window's `u64` counters hold about 2^31 such records before
/// they saturate. A larger count is declined (not judged), like a negative or fractional one.
pub const MAX_TEST_COUNT: u64 = u32::MAX as u64;

/// The verdict of one SLI on one event: how many good and bad units it contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdict {
    pub good: u64,
    pub bad: u64,
}

impl Verdict {
    pub const GOOD: Verdict = Verdict { good: 1, bad: 0 };
    pub const BAD: Verdict = Verdict { good: 0, bad: 1 };

    fn of(good: bool) -> Verdict {
        if good { Verdict::GOOD } else { Verdict::BAD }
    }

    /// Whether any judged unit was bad.
    pub fn is_bad(self) -> bool {
        self.bad > 0
    }
}

/// Outcome attribute values of `sliq.slo.events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Good,
    Bad,
}

impl Outcome {
    /// The `sliq.slo.outcome` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Good => "good",
            Outcome::Bad => "bad",
        }
    }
}

/// Which duration a latency SLI reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyMeasure {
    /// `latency_ms`: the whole request.
    Total,
    /// `ttft_ms`: time to the first streamed token.
    TimeToFirstToken,
    /// `(latency_ms - ttft_ms) / response.tokens`: the streaming speed a user sees.
    TimePerOutputToken,
}

/// What to do with an event that lacks the SLI's input (an evaluator that did not run, a flag not
/// set, a text that is absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missing {
    /// Not judged: the default, since "not evaluated" is not "bad".
    #[default]
    Skip,
    /// Judged bad: for inputs that must always be present.
    Bad,
}

impl Missing {
    fn verdict(self) -> Option<Verdict> {
        match self {
            Missing::Skip => None,
            Missing::Bad => Some(Verdict::BAD),
        }
    }
}

/// When an evaluator's result passes.
#[derive(Debug, Clone, PartialEq)]
pub enum ScorePass {
    AtLeast(f64),
    AtMost(f64),
    /// The evaluator's label is one of these.
    LabelIn(Vec<String>),
}

/// How a test-suite SLI counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestsMode {
    /// Every test is a unit: good = passed, bad = failed, skipped ignored.
    PerTest,
    /// Every request is a unit: good when no test failed.
    PerRequest,
}

/// Which text a rule SLI reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    Request,
    Response,
}

/// Whether a rule's match is bad (a refusal, PII) or required (an expected format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Forbid,
    Require,
}

/// Regex rules over one text field, matched in one pass.
#[derive(Debug, Clone)]
pub struct Rules {
    pub field: TextField,
    pub set: RegexSet,
    /// Per pattern of `set`, in order.
    pub kinds: Vec<RuleKind>,
    pub missing: Missing,
}

impl PartialEq for Rules {
    fn eq(&self, other: &Self) -> bool {
        self.field == other.field
            && self.kinds == other.kinds
            && self.missing == other.missing
            && self.set.patterns() == other.set.patterns()
    }
}

/// An SLI definition.
#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// Good when the measured duration is at most `threshold_ms`. Only successful requests are judged
    /// (a failed request's latency is availability's business); a missing, negative or non-finite
    /// duration is not judged either, since it is a broken measurement, not a slow answer.
    Latency {
        measure: LatencyMeasure,
        threshold_ms: f64,
    },
    /// Good when the request succeeded. Errors whose type is in `exclude_error_types` (e.g. the
    /// client's own invalid requests) are not judged.
    Availability { exclude_error_types: Vec<String> },
    /// Good when an evaluator's result passes.
    Score {
        evaluator: String,
        pass: ScorePass,
        missing: Missing,
    },
    /// Good when a boolean flag (hallucination, toxicity) is not raised.
    Flag { flag: String, missing: Missing },
    /// Test-suite pass rate.
    Tests { mode: TestsMode },
    /// Good when no forbidden rule matches and every required rule does.
    Rule(Rules),
    /// Good when every part is good; bad when any part is bad; otherwise not judged. The
    /// critical-user-journey SLI: "a good answer is fast and faithful and not hallucinated".
    AllOf(Vec<Sli>),
    /// Window-level: one event per closed window and dimension values, good when no watched feature
    /// drifted. Never judges a request; [`crate::drift::DriftMonitor::judge`] counts it.
    NoDrift,
}

impl Sli {
    /// Judges one event, or declines to.
    pub fn evaluate(&self, event: &Event<'_>) -> Option<Verdict> {
        match self {
            Sli::Latency {
                measure,
                threshold_ms,
            } => {
                if event.status != Status::Ok {
                    return None;
                }
                let duration = measured(*measure, event)?;
                (duration.is_finite() && duration >= 0.0)
                    .then(|| Verdict::of(duration <= *threshold_ms))
            }
            Sli::Availability {
                exclude_error_types,
            } => match event.status {
                Status::Ok => Some(Verdict::GOOD),
                Status::Error => {
                    let excluded = event
                        .error_type
                        .is_some_and(|t| exclude_error_types.iter().any(|x| x == t));
                    (!excluded).then_some(Verdict::BAD)
                }
            },
            Sli::Score {
                evaluator,
                pass,
                missing,
            } => {
                let Some(result) = event.eval(evaluator) else {
                    return missing.verdict();
                };
                let passed = match pass {
                    ScorePass::AtLeast(t) => result.score.map(|s| s >= *t),
                    ScorePass::AtMost(t) => result.score.map(|s| s <= *t),
                    ScorePass::LabelIn(set) => result.label.map(|l| set.iter().any(|p| p == l)),
                };
                match passed {
                    Some(p) => Some(Verdict::of(p)),
                    None => missing.verdict(),
                }
            }
            Sli::Flag { flag, missing } => match event.flag(flag) {
                Some(raised) => Some(Verdict::of(!raised)),
                None => missing.verdict(),
            },
            Sli::Tests { mode } => {
                let tests = event.tests?;
                let count = |x: Option<f64>| -> Option<u64> {
                    let x = x.unwrap_or(0.0);
                    // Negative, fractional or absurdly large counts (over MAX_TEST_COUNT) are a
                    // broken record, not test results: declined, like a broken latency.
                    (x >= 0.0 && x.fract() == 0.0 && x <= MAX_TEST_COUNT as f64).then_some(x as u64)
                };
                let (passed, failed) = (count(tests.passed)?, count(tests.failed)?);
                // Both are at most 2^32 - 1, so the sum cannot overflow.
                if passed + failed == 0 {
                    return None;
                }
                Some(match mode {
                    TestsMode::PerTest => Verdict {
                        good: passed,
                        bad: failed,
                    },
                    TestsMode::PerRequest => Verdict::of(failed == 0),
                })
            }
            Sli::Rule(rules) => {
                let text = match rules.field {
                    TextField::Request => event.request_text,
                    TextField::Response => event.response_text,
                };
                let Some(text) = text else {
                    return rules.missing.verdict();
                };
                if !rules.kinds.contains(&RuleKind::Require) {
                    // Forbid rules alone ask only whether any matched: `is_match` stops at the
                    // first match and allocates no list of which did, as `matches` does.
                    return Some(Verdict::of(!rules.set.is_match(text)));
                }
                let matched = rules.set.matches(text);
                let good = rules.kinds.iter().enumerate().all(|(i, kind)| match kind {
                    RuleKind::Forbid => !matched.matched(i),
                    RuleKind::Require => matched.matched(i),
                });
                Some(Verdict::of(good))
            }
            Sli::AllOf(parts) => {
                let mut all_judged = true;
                for part in parts {
                    match part.evaluate(event) {
                        Some(v) if v.is_bad() => return Some(Verdict::BAD),
                        Some(_) => {}
                        None => all_judged = false,
                    }
                }
                all_judged.then_some(Verdict::GOOD)
            }
            Sli::NoDrift => None,
        }
    }
}

fn measured(measure: LatencyMeasure, event: &Event<'_>) -> Option<f64> {
    match measure {
        LatencyMeasure::Total => event.latency_ms,
        LatencyMeasure::TimeToFirstToken => event.ttft_ms,
        LatencyMeasure::TimePerOutputToken => {
            let tokens = event.response_tokens?;
            let streaming = event.latency_ms? - event.ttft_ms?;
            // Zero tokens: no streaming speed exists to judge.
            (tokens > 0.0).then_some(streaming / tokens)
        }
    }
}

#[cfg(test)]
mod tests;
