//! SLIs: what makes one event good or bad for one SLO.
//!
//! An SLI may also decline to judge an event (`None`): a latency SLI has nothing to say about a request
//! that never produced a duration, an availability SLI ignores errors the caller caused. Declined events
//! count neither as good nor as bad, so they never move a ratio.

use crate::event::{Event, Status};

/// The verdict of one SLI on one event.
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

    fn from_good(good: bool) -> Outcome {
        if good { Outcome::Good } else { Outcome::Bad }
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
}

impl Sli {
    /// Judges one event, or declines to.
    pub fn evaluate(&self, event: &Event<'_>) -> Option<Outcome> {
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
                    .then(|| Outcome::from_good(duration <= *threshold_ms))
            }
            Sli::Availability {
                exclude_error_types,
            } => match event.status {
                Status::Ok => Some(Outcome::Good),
                Status::Error => {
                    let excluded = event
                        .error_type
                        .is_some_and(|t| exclude_error_types.iter().any(|x| x == t));
                    (!excluded).then_some(Outcome::Bad)
                }
            },
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
mod tests {
    use super::*;
    use crate::decode::{Decoder, FieldMap};
    use serde_json::{Value, json};

    fn judge(sli: &Sli, record: Value) -> Option<Outcome> {
        let d = Decoder::new(FieldMap::default(), 1 << 20);
        let e = d.decode(&record).expect("valid test record");
        sli.evaluate(&e)
    }

    fn base(extra: Value) -> Value {
        let mut v = json!({"id": "x", "ts": 0, "service": "s"});
        if let (Some(o), Value::Object(add)) = (v.as_object_mut(), extra) {
            o.extend(add);
        }
        v
    }

    #[test]
    fn latency_threshold_is_inclusive() {
        let sli = Sli::Latency {
            measure: LatencyMeasure::Total,
            threshold_ms: 500.0,
        };
        assert_eq!(
            judge(&sli, base(json!({"latency_ms": 499.9}))),
            Some(Outcome::Good)
        );
        assert_eq!(
            judge(&sli, base(json!({"latency_ms": 500}))),
            Some(Outcome::Good)
        );
        assert_eq!(
            judge(&sli, base(json!({"latency_ms": 500.1}))),
            Some(Outcome::Bad)
        );
        assert_eq!(
            judge(&sli, base(json!({"latency_ms": 0}))),
            Some(Outcome::Good)
        );
    }

    #[test]
    fn latency_declines_missing_negative_and_failed() {
        let sli = Sli::Latency {
            measure: LatencyMeasure::Total,
            threshold_ms: 500.0,
        };
        assert_eq!(judge(&sli, base(json!({}))), None);
        assert_eq!(judge(&sli, base(json!({"latency_ms": null}))), None);
        assert_eq!(judge(&sli, base(json!({"latency_ms": -3}))), None);
        assert_eq!(
            judge(&sli, base(json!({"latency_ms": 10, "status": "error"}))),
            None
        );
    }

    #[test]
    fn ttft_and_time_per_output_token() {
        let ttft = Sli::Latency {
            measure: LatencyMeasure::TimeToFirstToken,
            threshold_ms: 200.0,
        };
        assert_eq!(
            judge(&ttft, base(json!({"ttft_ms": 250, "latency_ms": 100}))),
            Some(Outcome::Bad)
        );
        // (1200 - 200) / 50 = 20 ms per token.
        let tpot = |threshold_ms| Sli::Latency {
            measure: LatencyMeasure::TimePerOutputToken,
            threshold_ms,
        };
        let rec = || base(json!({"latency_ms": 1200, "ttft_ms": 200, "response": {"tokens": 50}}));
        assert_eq!(judge(&tpot(20.0), rec()), Some(Outcome::Good));
        assert_eq!(judge(&tpot(19.99), rec()), Some(Outcome::Bad));
        let zero_tokens =
            base(json!({"latency_ms": 1200, "ttft_ms": 200, "response": {"tokens": 0}}));
        assert_eq!(judge(&tpot(20.0), zero_tokens), None);
        assert_eq!(
            judge(
                &tpot(20.0),
                base(json!({"latency_ms": 1200, "response": {"tokens": 5}}))
            ),
            None
        );
    }

    #[test]
    fn availability_excludes_listed_error_types() {
        let sli = Sli::Availability {
            exclude_error_types: vec!["invalid_request".into()],
        };
        assert_eq!(judge(&sli, base(json!({}))), Some(Outcome::Good));
        assert_eq!(
            judge(&sli, base(json!({"error": {"type": "timeout"}}))),
            Some(Outcome::Bad)
        );
        assert_eq!(
            judge(&sli, base(json!({"status": "error"}))),
            Some(Outcome::Bad)
        );
        assert_eq!(
            judge(&sli, base(json!({"error": {"type": "invalid_request"}}))),
            None
        );
    }
}
