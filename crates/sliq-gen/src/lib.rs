//! Deterministic synthetic traffic of AI services: what sliq's demo, tests and benchmarks consume.
//!
//! Pure: no I/O and no clock; the same [`GenConfig`] gives the same records, byte for byte.
//!
//! What the traffic holds: three services (`chat-assistant`, `code-assistant` with test-suite
//! results, `search-qa` with a retrieval score), several models with lognormal latencies, streamed
//! time to first token, ~0.4% errors (some `invalid_request`, the caller's fault), refusals and PII in
//! some answers, evaluator scores and flags, RFC 3339 and epoch-millisecond timestamps, jitter
//! (`out_of_order_ms`) and a share of late events (`late_ratio`, `late_by_ms` behind).
//!
//! Drift, from `drift_at_ms` on (by nominal event time): latencies ×1.6, prompts ~×1.5 longer,
//! faithfulness 0.15 lower on average, `gpt-4o-mini` takes 40% of chat traffic, and
//! `finish_reason: length` becomes common (30%).

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;
use serde_json::{Map, Value};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    pub seed: u64,
    /// Nominal event time of the first record, epoch ms.
    pub start_ms: i64,
    /// Record `i` is nominally at `start_ms + i * 1000 / events_per_second`.
    pub events_per_second: f64,
    /// Share of records that are malformed.
    pub malformed_ratio: f64,
    /// Event times jitter uniformly within ± this around nominal.
    pub out_of_order_ms: i64,
    /// Share of valid records set back by `late_by_ms`.
    pub late_ratio: f64,
    pub late_by_ms: i64,
    /// Distributions shift from this nominal event time on.
    pub drift_at_ms: Option<i64>,
    /// Answers are padded with more steps to at least this many bytes (0: natural length, about
    /// 1 KB a record), so benchmarks can read records of a chosen size.
    pub answer_bytes: usize,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            start_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            events_per_second: 1000.0,
            malformed_ratio: 0.01,
            out_of_order_ms: 2000,
            late_ratio: 0.001,
            late_by_ms: 600_000,
            drift_at_ms: None,
            answer_bytes: 0,
        }
    }
}

/// The ways a generated record can be broken, each a different dead-letter reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedKind {
    NotJson,
    NotObject,
    MissingId,
    WrongType,
    BadTimestamp,
}

impl MalformedKind {
    const ALL: [MalformedKind; 5] = [
        MalformedKind::NotJson,
        MalformedKind::NotObject,
        MalformedKind::MissingId,
        MalformedKind::WrongType,
        MalformedKind::BadTimestamp,
    ];

    /// The reason code sliq's decoder gives this kind.
    pub fn code(self) -> &'static str {
        match self {
            MalformedKind::NotJson => "not_json",
            MalformedKind::NotObject => "not_object",
            MalformedKind::MissingId => "missing_field",
            MalformedKind::WrongType => "wrong_type",
            MalformedKind::BadTimestamp => "bad_timestamp",
        }
    }
}

/// Whether a record is meant to be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Valid,
    Malformed(MalformedKind),
}

/// One record: Kafka key and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedRecord {
    pub key: String,
    pub payload: Vec<u8>,
    pub kind: RecordKind,
}

/// The generator; also an endless iterator of records.
#[derive(Debug, Clone)]
pub struct Generator {
    config: GenConfig,
    rng: Pcg64Mcg,
    index: u64,
}

struct Model {
    name: &'static str,
    median_ms: f64,
    sigma: f64,
}

const CHAT_MODELS: [Model; 3] = [
    Model {
        name: "gpt-4o",
        median_ms: 1400.0,
        sigma: 0.55,
    },
    Model {
        name: "claude-sonnet",
        median_ms: 1700.0,
        sigma: 0.6,
    },
    Model {
        name: "llama-3-70b",
        median_ms: 2300.0,
        sigma: 0.7,
    },
];
const DRIFT_MODEL: Model = Model {
    name: "gpt-4o-mini",
    median_ms: 700.0,
    sigma: 0.5,
};
const CODE_MODEL: Model = Model {
    name: "codestral",
    median_ms: 2500.0,
    sigma: 0.65,
};
const SEARCH_MODEL: Model = Model {
    name: "command-r",
    median_ms: 900.0,
    sigma: 0.5,
};

const TENANTS: [&str; 5] = ["acme", "globex", "initech", "umbrella", "hooli"];
const TIERS: [(&str, f64); 3] = [("platinum", 0.1), ("gold", 0.3), ("silver", 0.6)];
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
const TOPICS: [&str; 6] = [
    "reset my password",
    "summarize this contract clause",
    "explain the difference between TCP and UDP",
    "draft a polite reminder e-mail",
    "what is our refund policy",
    "translate the release notes into German",
];
const REFUSALS: [&str; 3] = [
    "I'm sorry, but I can't help with that.",
    "I cannot assist with that request.",
    "As an AI, I am unable to provide that information.",
];
const PII: [&str; 3] = [
    "You can reach the account owner at jane.doe@example.com.",
    "Call the support line at +1-415-555-0132.",
    "The card on file is 4111 1111 1111 1111.",
];
const ERRORS: [(&str, &str); 4] = [
    ("timeout", "upstream model timed out after 30s"),
    ("rate_limited", "429 Too Many Requests"),
    (
        "server_error",
        "500 Internal Server Error from the model provider",
    ),
    ("invalid_request", "prompt exceeds the context window"),
];

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
    tokens: f64,
}

#[derive(Serialize)]
struct Response<'a> {
    text: &'a str,
    tokens: f64,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct ErrorInfo<'a> {
    r#type: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct Record<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    ts: Value,
    service: &'a str,
    operation: &'a str,
    model: &'a str,
    labels: Map<String, Value>,
    request: Text<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<Response<'a>>,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorInfo<'a>>,
    latency_ms: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttft_ms: Option<f64>,
    evals: Map<String, Value>,
    flags: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tests: Option<Map<String, Value>>,
    features: Map<String, Value>,
}

fn round(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).round() / p
}

fn obj(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl Generator {
    pub fn new(config: GenConfig) -> Self {
        Generator {
            rng: Pcg64Mcg::seed_from_u64(config.seed),
            config,
            index: 0,
        }
    }

    /// The next record.
    pub fn next_record(&mut self) -> GeneratedRecord {
        let i = self.index;
        self.index += 1;
        let key = format!("{:016x}-{:010}", self.config.seed, i);
        let nominal =
            self.config.start_ms + (i as f64 * 1000.0 / self.config.events_per_second) as i64;
        let malformed = self
            .rng
            .random_bool(self.config.malformed_ratio.clamp(0.0, 1.0));
        let kind = if malformed {
            RecordKind::Malformed(
                MalformedKind::ALL[self.rng.random_range(0..MalformedKind::ALL.len())],
            )
        } else {
            RecordKind::Valid
        };
        let payload = self.payload(&key, nominal, kind);
        GeneratedRecord { key, payload, kind }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    fn payload(&mut self, key: &str, nominal: i64, kind: RecordKind) -> Vec<u8> {
        match kind {
            RecordKind::Malformed(MalformedKind::NotObject) => {
                return b"[\"not\", \"an\", \"object\"]".to_vec();
            }
            RecordKind::Malformed(MalformedKind::NotJson) => {
                return format!(
                    "{{\"id\": \"{key}\", \"ts\": \"2026-01-01T00:00:00Z\", \"service\": \"chat-ass"
                )
                .into_bytes();
            }
            _ => {}
        }
        let drifted = self.config.drift_at_ms.is_some_and(|d| nominal >= d);
        let jitter = if self.config.out_of_order_ms > 0 {
            self.rng
                .random_range(-self.config.out_of_order_ms..=self.config.out_of_order_ms)
        } else {
            0
        };
        let mut ts_ms = nominal + jitter;
        if kind == RecordKind::Valid && self.rng.random_bool(self.config.late_ratio.clamp(0.0, 1.0))
        {
            ts_ms = nominal - self.config.late_by_ms;
        }
        let ts = match kind {
            RecordKind::Malformed(MalformedKind::BadTimestamp) => Value::from("yesterday"),
            _ if self.rng.random_bool(0.2) => Value::from(ts_ms),
            _ => Value::from(
                chrono::DateTime::from_timestamp_millis(ts_ms)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        };

        let service_roll: f64 = self.rng.random();
        let (service, operation, model) = if service_roll < 0.6 {
            let model = if drifted && self.rng.random_bool(0.4) {
                &DRIFT_MODEL
            } else {
                self.pick(&CHAT_MODELS)
            };
            ("chat-assistant", "chat", model)
        } else if service_roll < 0.8 {
            ("code-assistant", "completion", &CODE_MODEL)
        } else {
            ("search-qa", "answer", &SEARCH_MODEL)
        };

        let tier_roll: f64 = self.rng.random();
        let mut acc = 0.0;
        let tier = TIERS
            .iter()
            .find(|(_, p)| {
                acc += p;
                tier_roll < acc
            })
            .map_or("silver", |(t, _)| t);
        let tenant = TENANTS[(self.rng.random::<f64>().powi(2) * TENANTS.len() as f64) as usize];
        let region = *self.pick(&REGIONS);
        let labels = obj(vec![
            ("tenant", tenant.into()),
            ("tier", tier.into()),
            ("region", region.into()),
        ]);

        let topic = *self.pick(&TOPICS);
        let repeat = self.rng.random_range(1..=if drifted { 9 } else { 6 });
        let prompt = format!(
            "Please {topic}. {}",
            "Add the relevant context and constraints. ".repeat(repeat)
        );
        let prompt_chars = prompt.len() as f64;

        let drift_factor = if drifted { 1.6 } else { 1.0 };
        let latency = LogNormal::new((model.median_ms * drift_factor).ln(), model.sigma)
            .map_or(model.median_ms, |d| d.sample(&mut self.rng));
        let error = self.rng.random_bool(0.004).then(|| *self.pick(&ERRORS));
        let latency = match error {
            Some(("timeout", _)) => 30_000.0,
            _ => latency,
        };

        let faith_mean: f64 = if drifted { 0.72 } else { 0.87 };
        let faithfulness = Normal::new(faith_mean, 0.1)
            .map_or(faith_mean, |d| d.sample(&mut self.rng))
            .clamp(0.0, 1.0);
        let hallucination =
            faithfulness < 0.6 && self.rng.random_bool(0.5) || self.rng.random_bool(0.005);
        let relevance = self.rng.random_range(0.55..1.0_f64);
        let quality_score = (faithfulness + relevance) / 2.0;
        let quality_label = if quality_score > 0.8 {
            "good"
        } else if quality_score > 0.6 {
            "fair"
        } else {
            "poor"
        };

        let answer_roll: f64 = self.rng.random();
        let mut answer = if answer_roll < 0.03 {
            (*self.pick(&REFUSALS)).to_owned()
        } else if answer_roll < 0.04 {
            format!("Here is what I found. {}", self.pick(&PII))
        } else {
            format!(
                "Sure. To {topic}, follow these steps: first gather the details, then proceed carefully."
            )
        };
        while answer.len() < self.config.answer_bytes {
            answer.push_str(" Then check the result against the request and note what changed.");
        }
        let output_tokens = self.rng.random_range(20..600) as f64;
        let finish_reason = if drifted && self.rng.random_bool(0.3) || self.rng.random_bool(0.04) {
            "length"
        } else if self.rng.random_bool(0.005) {
            "content_filter"
        } else {
            "stop"
        };
        let ttft = latency * self.rng.random_range(0.1..0.4);
        let temperature = round(*self.pick(&[0.0, 0.2, 0.7, 1.0]), 1);

        let tests = (service == "code-assistant" && error.is_none()).then(|| {
            let total = self.rng.random_range(5..=40);
            let skipped = self.rng.random_range(0..=2);
            let whole_suite_broken = self.rng.random_bool(0.01);
            let failed = if whole_suite_broken {
                total - skipped
            } else {
                (0..total - skipped)
                    .filter(|_| self.rng.random_bool(0.03))
                    .count()
            };
            obj(vec![
                ("passed", (total - skipped - failed).into()),
                ("failed", failed.into()),
                ("skipped", skipped.into()),
            ])
        });
        let mut features = obj(vec![
            ("prompt_chars", prompt_chars.into()),
            ("output_tokens", output_tokens.into()),
            ("temperature", temperature.into()),
        ]);
        if service == "search-qa" {
            features.insert(
                "retrieval_score".into(),
                round(self.rng.random_range(0.3..1.0), 3).into(),
            );
        }

        let record = Record {
            id: (kind != RecordKind::Malformed(MalformedKind::MissingId)).then_some(key),
            ts,
            service,
            operation,
            model: model.name,
            labels,
            request: Text {
                text: &prompt,
                tokens: (prompt_chars / 4.0).round(),
            },
            response: error.is_none().then_some(Response {
                text: &answer,
                tokens: output_tokens,
                finish_reason,
            }),
            status: if error.is_some() { "error" } else { "ok" },
            error: error.map(|(t, m)| ErrorInfo {
                r#type: t,
                message: m,
            }),
            latency_ms: if kind == RecordKind::Malformed(MalformedKind::WrongType) {
                Value::from("fast")
            } else {
                Value::from(round(latency, 1))
            },
            ttft_ms: error.is_none().then_some(round(ttft, 1)),
            evals: if error.is_some() {
                Map::new()
            } else {
                obj(vec![
                    ("faithfulness", round(faithfulness, 3).into()),
                    ("relevance", round(relevance, 3).into()),
                    (
                        "answer_quality",
                        serde_json::json!({"score": round(quality_score, 3), "label": quality_label}),
                    ),
                ])
            },
            flags: obj(vec![
                ("hallucination", hallucination.into()),
                ("toxicity", self.rng.random_bool(0.002).into()),
            ]),
            tests,
            features,
        };
        serde_json::to_vec(&record).unwrap_or_default()
    }
}

impl Iterator for Generator {
    type Item = GeneratedRecord;
    fn next(&mut self) -> Option<GeneratedRecord> {
        Some(self.next_record())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(config: GenConfig, n: usize) -> Vec<GeneratedRecord> {
        Generator::new(config).take(n).collect()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = records(GenConfig::default(), 500);
        assert_eq!(a, records(GenConfig::default(), 500));
        let b = records(
            GenConfig {
                seed: 7,
                ..GenConfig::default()
            },
            500,
        );
        assert_ne!(a[10].payload, b[10].payload);
    }

    #[test]
    fn malformed_records_are_what_they_say() {
        let config = GenConfig {
            malformed_ratio: 0.2,
            ..GenConfig::default()
        };
        let mut seen = std::collections::BTreeSet::new();
        for r in records(config, 5000) {
            let parsed: Result<Value, _> = serde_json::from_slice(&r.payload);
            match r.kind {
                RecordKind::Valid => {
                    let v = parsed.unwrap();
                    assert!(v["id"].is_string() && v["latency_ms"].is_number());
                }
                RecordKind::Malformed(k) => {
                    seen.insert(k.code());
                    match k {
                        MalformedKind::NotJson => assert!(parsed.is_err()),
                        MalformedKind::NotObject => assert!(parsed.unwrap().is_array()),
                        MalformedKind::MissingId => assert!(parsed.unwrap().get("id").is_none()),
                        MalformedKind::WrongType => {
                            assert_eq!(parsed.unwrap()["latency_ms"], "fast");
                        }
                        MalformedKind::BadTimestamp => {
                            assert_eq!(parsed.unwrap()["ts"], "yesterday");
                        }
                    }
                }
            }
        }
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn malformed_share_follows_the_config() {
        let n = 100_000;
        let bad = records(GenConfig::default(), n)
            .iter()
            .filter(|r| r.kind != RecordKind::Valid)
            .count();
        // Binomial(100000, 0.01): sd ≈ 31.5; ±5 sd.
        assert!((843..=1157).contains(&bad), "{bad}");
    }

    #[test]
    fn padded_answers_make_records_of_the_chosen_size_and_stay_valid_json() {
        let config = GenConfig {
            malformed_ratio: 0.0,
            answer_bytes: 16_000,
            ..GenConfig::default()
        };
        for r in records(config, 200) {
            let value: Value = serde_json::from_slice(&r.payload).expect("valid JSON");
            let answer = value.pointer("/response/text").and_then(Value::as_str);
            // Error records carry no response; the others hold at least the padded answer.
            if let Some(answer) = answer {
                assert!(answer.len() >= 16_000, "{}", answer.len());
                assert!(r.payload.len() < 16_000 + 2_000, "{}", r.payload.len());
            }
        }
    }

    #[test]
    fn ids_are_unique_and_both_time_formats_appear() {
        let recs = records(GenConfig::default(), 20_000);
        let ids: std::collections::HashSet<_> = recs.iter().map(|r| r.key.clone()).collect();
        assert_eq!(ids.len(), recs.len());
        let (mut strings, mut ints) = (0, 0);
        for r in recs.iter().filter(|r| r.kind == RecordKind::Valid) {
            let v: Value = serde_json::from_slice(&r.payload).unwrap();
            if v["ts"].is_string() {
                strings += 1;
            } else if v["ts"].is_i64() {
                ints += 1;
            }
        }
        assert!(strings > 10_000 && ints > 2_000, "{strings} {ints}");
    }

    #[test]
    fn drift_raises_latency_and_brings_a_new_model_only_after_its_time() {
        let start = GenConfig::default().start_ms;
        let config = GenConfig {
            drift_at_ms: Some(start + 20_000),
            malformed_ratio: 0.0,
            ..GenConfig::default()
        };
        let recs = records(config, 40_000);
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let (mut mini_before, mut mini_after) = (0, 0);
        for (i, r) in recs.iter().enumerate() {
            let v: Value = serde_json::from_slice(&r.payload).unwrap();
            if v["status"] != "ok" {
                continue;
            }
            let lat = v["latency_ms"].as_f64().unwrap();
            let mini = v["model"] == "gpt-4o-mini";
            if i < 20_000 {
                before.push(lat);
                mini_before += usize::from(mini);
            } else {
                after.push(lat);
                mini_after += usize::from(mini);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (mb, ma) = (median(&mut before), median(&mut after));
        assert_eq!(mini_before, 0);
        assert!(mini_after > 3000, "{mini_after}");
        // Chat latency ×1.6 but the faster mini model takes 40% of chat: overall median still rises.
        assert!(ma > mb * 1.2, "{mb} → {ma}");
    }

    #[test]
    fn late_records_are_set_back_by_late_by() {
        let config = GenConfig {
            late_ratio: 0.05,
            out_of_order_ms: 0,
            malformed_ratio: 0.0,
            ..GenConfig::default()
        };
        let mut late = 0;
        for (i, r) in records(config.clone(), 5000).iter().enumerate() {
            let v: Value = serde_json::from_slice(&r.payload).unwrap();
            let ts = match &v["ts"] {
                Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                    .unwrap()
                    .timestamp_millis(),
                other => other.as_i64().unwrap(),
            };
            let nominal = config.start_ms + i as i64;
            if ts != nominal {
                assert_eq!(ts, nominal - config.late_by_ms);
                late += 1;
            }
        }
        assert!((150..=350).contains(&late), "{late}");
    }
}
