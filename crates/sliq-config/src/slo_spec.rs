//! SLOs and SLIs as written in a spec, and their expansion into the core's SLO list: a latency SLO
//! with several thresholds becomes one SLO per threshold, a tiered SLO one SLO per tier.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use regex::RegexSet;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use sliq_core::{
    AlertRule, BudgetConfig, Dimension, Filter, LatencyMeasure, Missing, Period, PolicyState,
    RuleKind, Rules, ScorePass, Sli, Slo, SloContract, TestsMode, TextField,
    budget::default_policy,
};

use crate::KeyRef;
use crate::values::{
    DURATION_PARTS_PATTERN, DimensionSpec, JsonPointer, Objective, Span, parse_str,
};

/// One SLO.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Names the SLO in metrics (`sliq.slo.name`); unique within the spec.
    pub name: String,
    /// For people; not used by sliq.
    #[serde(default)]
    pub description: Option<String>,
    /// The share of good events to aim for, e.g. 0.995 or "99.5%"; with `thresholds` or `tiers` it
    /// may come from there instead.
    #[serde(default)]
    pub objective: Option<Objective>,
    /// What the SLO is split by: `service`, `model`, `operation` or `labels.<key>`; one budget per
    /// combination of values.
    #[serde(default)]
    pub dimensions: Vec<DimensionSpec>,
    /// What makes an event good: exactly one of latency, availability, score, flag, tests, rule,
    /// all_of, drift.
    pub sli: SliSpec,
    /// The error budget's period: `30d` (default), `28d`, any duration of at least 1h,
    /// `calendar_month` or `calendar_week`.
    #[serde(default)]
    pub period: PeriodSpec,
    /// Series beyond this many fold into `other` (counted and warned about).
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// SLOs whose bad verdict on a record of the same request makes this SLO's verdicts on that
    /// request's records bad too.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// What identifies a request across records, for `depends_on` (default: the `id` field).
    #[serde(default)]
    pub correlate_by: Option<JsonPointer>,
    /// Per-tier objectives (and latency thresholds) by a label's value.
    #[serde(default)]
    pub tiers: Option<TiersSpec>,
    /// Burn-rate alerting: the low-traffic guard and the windows reported.
    #[serde(default)]
    pub alerting: AlertingSpec,
    /// Error-budget policy states, least severe first (default: ok, warn < 50%, freeze < 20%,
    /// exhausted ≤ 0).
    #[serde(default)]
    pub policy: Option<Vec<PolicySpec>>,
    /// The objective promised to customers (a contract), at most the objective: shown beside
    /// the SLO in alerts, dashboards and reports, and exported as `sliq.slo.sla`.
    #[serde(default)]
    pub sla: Option<Objective>,
    /// The team or rota that answers for this SLO: a label on its alerts (`owner`) for routing.
    #[serde(default)]
    pub owner: Option<String>,
    /// Where on-call reads what to do: an http(s) URL, the alerts' `runbook_url`.
    #[serde(default)]
    pub runbook: Option<RunbookUrl>,
    /// Who to call next, in order (people, rotas, channels): the alerts' `escalation`.
    #[serde(default)]
    pub escalation: Vec<String>,
}

/// An absolute http(s) URL, checked when the spec is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookUrl(pub String);

impl<'de> Deserialize<'de> for RunbookUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "an http(s) URL", |s| match url::Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(RunbookUrl(s.to_owned())),
            _ => Err(format!(
                "{s:?} is not an http(s) URL; write where the runbook is, e.g. \
                 https://runbooks.example.com/chat-availability"
            )),
        })
    }
}

impl JsonSchema for RunbookUrl {
    fn schema_name() -> Cow<'static, str> {
        "RunbookUrl".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An http(s) URL where on-call reads what to do, e.g. \
                https://runbooks.example.com/chat-availability.",
            "type": "string",
            "pattern": "^[hH][tT][tT][pP][sS]?://."
        })
    }
}

fn default_max_series() -> usize {
    sliq_core::DEFAULT_MAX_SERIES
}

/// What makes an event good: exactly one kind.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct SliSpec {
    /// Good when the request took at most the threshold.
    pub latency: Option<LatencySpec>,
    /// Good when the request succeeded.
    pub availability: Option<AvailabilitySpec>,
    /// Good when an evaluator's score (or label) passes.
    pub score: Option<ScoreSpec>,
    /// Good when a flag (hallucination, toxicity, ...) is not raised.
    pub flag: Option<FlagSpec>,
    /// Test-suite results (code assistants): good tests, or requests without a failed test.
    pub tests: Option<TestsSpec>,
    /// Regex rules over the request or response text.
    pub rule: Option<RuleSpec>,
    /// Good when every listed SLI is good (bad when any is bad).
    #[schemars(length(min = 1))]
    pub all_of: Option<Vec<SliSpec>>,
    /// Window-level: one event per closed window and drift dimension values, good when no watched
    /// feature drifted (needs the spec's `drift:` section).
    pub drift: Option<DriftSliSpec>,
}

/// The drift SLI takes no options: what drifts, and how, is the `drift:` section.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftSliSpec {}

/// Good when a duration is at most the threshold.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    /// `total` (latency_ms), `ttft` (time to first token) or `time_per_output_token`.
    #[serde(default)]
    pub measure: MeasureSpec,
    /// The longest good duration, e.g. `2s`, `800ms`; or give `thresholds`.
    pub threshold: Option<Span>,
    /// Several thresholds, each its own SLO named `<name>-<threshold>`.
    pub thresholds: Option<Vec<ThresholdSpec>>,
}

/// One latency threshold with its own objective.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// The longest good duration, e.g. `2s`.
    pub threshold: Span,
    /// The objective of this threshold's SLO.
    pub objective: Objective,
}

/// Which duration a latency SLI judges.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MeasureSpec {
    /// The whole request: `latency_ms`.
    #[default]
    Total,
    /// Time to the first token: `ttft_ms`.
    Ttft,
    /// (latency − ttft) ÷ output tokens.
    TimePerOutputToken,
}

/// Good when the request succeeded.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilitySpec {
    /// Error types that are not the service's fault (e.g. `invalid_request`): not judged.
    #[serde(default)]
    pub exclude_error_types: Vec<String>,
}

/// Good when an evaluator's score is at least `min`, at most `max`, or its label is in `pass_labels`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreSpec {
    /// The evaluator's name under the record's `evals`.
    pub evaluator: String,
    /// Good when the score is at least this.
    pub min: Option<f64>,
    /// Good when the score is at most this.
    pub max: Option<f64>,
    /// Good when the evaluator's label is one of these.
    pub pass_labels: Option<Vec<String>>,
    /// When the evaluator did not run: `skip` (not judged, the default) or `bad`.
    #[serde(default)]
    pub missing: MissingSpec,
}

/// Good when the flag is not raised.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagSpec {
    /// The flag's name under the record's `flags`.
    pub name: String,
    /// When the flag is absent: `skip` (not judged, the default) or `bad`.
    #[serde(default)]
    pub missing: MissingSpec,
}

/// Test-suite pass rate.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestsSpec {
    /// `per_test` (each passed or failed test is one event) or `per_request` (good when no test
    /// failed).
    #[serde(default)]
    pub mode: TestsModeSpec,
}

/// What one event is for a tests SLI.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestsModeSpec {
    /// Each passed test is a good event, each failed test a bad one.
    #[default]
    PerTest,
    /// One event per request, good when no test failed.
    PerRequest,
}

/// Unjudged (`skip`, default) or `bad` when the input is missing.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissingSpec {
    /// Not judged: counts neither good nor bad.
    #[default]
    Skip,
    /// Counts as bad.
    Bad,
}

/// Regex rules over one text field, evaluated in one pass.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// `response` (default) or `request`: the text the rules read.
    #[serde(default)]
    pub field: TextFieldSpec,
    /// Evaluated together in one pass over the text.
    #[schemars(length(min = 1))]
    pub rules: Vec<RuleItemSpec>,
    /// When the text is absent: `skip` (not judged, the default) or `bad`.
    #[serde(default)]
    pub missing: MissingSpec,
}

/// The text a rule reads.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextFieldSpec {
    /// The response text.
    #[default]
    Response,
    /// The request (prompt) text.
    Request,
}

/// One rule: a `pattern` (Rust regex syntax) or a built-in `preset`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleItemSpec {
    /// Names the rule in messages.
    pub name: String,
    /// A regular expression; give it or `preset`.
    pub pattern: Option<Pattern>,
    /// A built-in pattern: `refusal`, `pii_email`, `pii_phone` or `pii_card`; give it or `pattern`.
    pub preset: Option<Preset>,
    /// `forbid` (a match is bad, the default) or `require` (no match is bad).
    #[serde(default)]
    pub kind: RuleKindSpec,
}

/// What a rule's match means.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKindSpec {
    /// A match makes the event bad.
    #[default]
    Forbid,
    /// A missing match makes the event bad.
    Require,
}

/// Built-in patterns for what most AI services check.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "RulePreset")]
pub enum Preset {
    /// The model declined ("I'm sorry", "as an AI", ...).
    Refusal,
    /// An email address.
    PiiEmail,
    /// A phone number.
    PiiPhone,
    /// A payment card number.
    PiiCard,
}

impl Preset {
    /// The preset's regex.
    pub fn pattern(self) -> &'static str {
        match self {
            Preset::Refusal => {
                r"(?i)\b(?:i'?m sorry|i am sorry|i can(?:no|')t (?:help|assist)|i cannot (?:help|assist|provide)|i'?m unable to|i am unable to|as an ai\b)"
            }
            Preset::PiiEmail => sliq_redact::Preset::Email.pattern(),
            Preset::PiiPhone => r"(?:\+\d{1,3}[-. ]?)?\(?\d{3}\)?[-. ]\d{3}[-. ]\d{4}\b",
            Preset::PiiCard => r"\b(?:\d{4}[- ]?){3}\d{4}\b",
        }
    }
}

/// A regex checked when the spec is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(pub String);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "a regular expression", |s| {
            regex::Regex::new(s)
                .map(|_| Pattern(s.to_owned()))
                .map_err(|e| format!("{s:?} is not a valid regular expression: {e}"))
        })
    }
}

impl JsonSchema for Pattern {
    fn schema_name() -> Cow<'static, str> {
        "Regex".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A regular expression in Rust's syntax (like PCRE without look-around \
                or backreferences); (?i) at the start ignores case.",
            "type": "string"
        })
    }
}

/// A budget period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodSpec(pub Period);

impl Default for PeriodSpec {
    fn default() -> Self {
        PeriodSpec(Period::Rolling(30 * 86_400_000))
    }
}

impl<'de> Deserialize<'de> for PeriodSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "a period", |s| match s {
            "calendar_month" => Ok(PeriodSpec(Period::CalendarMonth)),
            "calendar_week" => Ok(PeriodSpec(Period::CalendarWeek)),
            _ => humantime::parse_duration(s)
                .ok()
                .filter(|d| *d >= Duration::from_secs(3600))
                .map(|d| PeriodSpec(Period::Rolling(d.as_millis() as i64)))
                .ok_or_else(|| {
                    format!(
                        "{s:?} is not a period; write 30d, 28d, calendar_month or calendar_week"
                    )
                }),
        })
    }
}

/// Durations under an hour are refused by the spec loader only: no pattern can add up the parts.
impl JsonSchema for PeriodSpec {
    fn schema_name() -> Cow<'static, str> {
        "Period".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The error budget's period: a rolling duration of at least 1h (30d, \
                28d, 7d) or a calendar one, calendar_month or calendar_week.",
            "anyOf": [
                { "type": "string", "enum": ["calendar_month", "calendar_week"] },
                { "type": "string", "pattern": DURATION_PARTS_PATTERN }
            ]
        })
    }
}

/// Tiered objectives: the SLO splits by `label` and each value gets its own objective (and, for
/// latency, threshold).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TiersSpec {
    /// The label whose value picks the tier, e.g. `tier`.
    pub label: String,
    /// The objective of each label value, e.g. `{premium: 99.9%, free: 99%}`; `objective` covers
    /// values not listed.
    #[schemars(extend("minProperties" = 1))]
    pub objectives: BTreeMap<String, Objective>,
    /// For latency SLOs, the threshold of each label value.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Span>,
}

/// Burn-rate alerting: the low-traffic guard and the windows reported.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingSpec {
    /// Low-traffic guard: no alert with fewer events in the long window.
    pub min_events: u64,
    /// Burn-rate windows reported (default 5m, 30m, 1h, 2h, 6h, 1d, 3d).
    pub burn_windows: Option<Vec<Span>>,
}

impl Default for AlertingSpec {
    fn default() -> Self {
        AlertingSpec {
            min_events: BudgetConfig::default().min_events,
            burn_windows: None,
        }
    }
}

/// A policy state, in force while the remaining budget is below `below`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// The state's name, as exported in `sliq.policy.state`.
    pub name: String,
    /// In force while the budget remaining is below this share (1 = all of it).
    pub below: f64,
}

impl SliSpec {
    fn kinds(&self) -> Vec<&'static str> {
        [
            (self.latency.is_some(), "latency"),
            (self.availability.is_some(), "availability"),
            (self.score.is_some(), "score"),
            (self.flag.is_some(), "flag"),
            (self.tests.is_some(), "tests"),
            (self.rule.is_some(), "rule"),
            (self.all_of.is_some(), "all_of"),
            (self.drift.is_some(), "drift"),
        ]
        .into_iter()
        .filter_map(|(present, name)| present.then_some(name))
        .collect()
    }

    /// What is wrong with this SLI, if anything.
    fn problem(&self) -> Option<String> {
        let kinds = self.kinds();
        if kinds.len() != 1 {
            return Some(format!(
                "declare exactly one SLI kind (latency, availability, score, flag, tests, rule, all_of or drift), found {}",
                if kinds.is_empty() {
                    "none".to_owned()
                } else {
                    kinds.join(" and ")
                }
            ));
        }
        if let Some(l) = &self.latency
            && l.threshold.is_some() == l.thresholds.is_some()
        {
            return Some("latency needs either `threshold` or `thresholds`".into());
        }
        if let Some(s) = &self.score {
            let n = [s.min.is_some(), s.max.is_some(), s.pass_labels.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if n != 1 {
                return Some(format!(
                    "score on {:?} needs exactly one of min, max or pass_labels",
                    s.evaluator
                ));
            }
        }
        if let Some(r) = &self.rule {
            if r.rules.is_empty() {
                return Some("rule needs at least one entry in `rules`".into());
            }
            if let Some(bad) = r
                .rules
                .iter()
                .find(|i| i.pattern.is_some() == i.preset.is_some())
            {
                return Some(format!(
                    "rule {:?} needs either `pattern` or `preset`",
                    bad.name
                ));
            }
        }
        if let Some(parts) = &self.all_of {
            if parts.is_empty() {
                return Some("all_of needs at least one SLI".into());
            }
            if let Some(p) = parts.iter().find_map(SliSpec::problem) {
                return Some(format!("in all_of: {p}"));
            }
            if parts.iter().any(|p| p.drift.is_some()) {
                return Some(
                    "in all_of: drift judges windows, not requests; give it its own SLO".into(),
                );
            }
            if parts
                .iter()
                .any(|p| p.latency.as_ref().is_some_and(|l| l.thresholds.is_some()))
            {
                return Some("in all_of: a latency part takes one `threshold`".into());
            }
        }
        None
    }

    fn to_core(&self, threshold_override: Option<Span>) -> Sli {
        let missing = |m: MissingSpec| match m {
            MissingSpec::Skip => Missing::Skip,
            MissingSpec::Bad => Missing::Bad,
        };
        if let Some(l) = &self.latency {
            let threshold = threshold_override
                .or(l.threshold)
                .unwrap_or(Span(Duration::ZERO));
            return Sli::Latency {
                measure: match l.measure {
                    MeasureSpec::Total => LatencyMeasure::Total,
                    MeasureSpec::Ttft => LatencyMeasure::TimeToFirstToken,
                    MeasureSpec::TimePerOutputToken => LatencyMeasure::TimePerOutputToken,
                },
                threshold_ms: threshold.0.as_secs_f64() * 1000.0,
            };
        }
        if let Some(s) = &self.score {
            let pass = match (s.min, s.max, &s.pass_labels) {
                (Some(t), _, _) => ScorePass::AtLeast(t),
                (None, Some(t), _) => ScorePass::AtMost(t),
                (None, None, labels) => ScorePass::LabelIn(labels.clone().unwrap_or_default()),
            };
            return Sli::Score {
                evaluator: s.evaluator.clone(),
                pass,
                missing: missing(s.missing),
            };
        }
        if let Some(f) = &self.flag {
            return Sli::Flag {
                flag: f.name.clone(),
                missing: missing(f.missing),
            };
        }
        if let Some(t) = &self.tests {
            return Sli::Tests {
                mode: match t.mode {
                    TestsModeSpec::PerTest => TestsMode::PerTest,
                    TestsModeSpec::PerRequest => TestsMode::PerRequest,
                },
            };
        }
        if let Some(r) = &self.rule {
            let patterns: Vec<String> = r
                .rules
                .iter()
                .map(|i| match (&i.pattern, i.preset) {
                    (Some(p), _) => p.0.clone(),
                    (None, Some(preset)) => preset.pattern().to_owned(),
                    (None, None) => String::new(),
                })
                .collect();
            return Sli::Rule(Rules {
                field: match r.field {
                    TextFieldSpec::Response => TextField::Response,
                    TextFieldSpec::Request => TextField::Request,
                },
                // Each pattern compiled alone when the spec was read; together they compile too.
                set: RegexSet::new(&patterns).unwrap_or_else(|_| RegexSet::empty()),
                kinds: r
                    .rules
                    .iter()
                    .map(|i| match i.kind {
                        RuleKindSpec::Forbid => RuleKind::Forbid,
                        RuleKindSpec::Require => RuleKind::Require,
                    })
                    .collect(),
                missing: missing(r.missing),
            });
        }
        if let Some(parts) = &self.all_of {
            return Sli::AllOf(parts.iter().map(|p| p.to_core(None)).collect());
        }
        if self.drift.is_some() {
            return Sli::NoDrift;
        }
        Sli::Availability {
            exclude_error_types: self
                .availability
                .as_ref()
                .map(|a| a.exclude_error_types.clone())
                .unwrap_or_default(),
        }
    }
}

fn key(path: String, needle: String) -> KeyRef {
    KeyRef {
        path,
        needle: Some(needle),
    }
}

/// Checks the SLO list as a whole; returns the offending key and the problem.
pub(crate) fn check_slos(slos: &[SloSpec]) -> Result<(), (KeyRef, String)> {
    if slos.is_empty() {
        return Err((
            KeyRef {
                path: "slos".into(),
                needle: Some("slos".into()),
            },
            "declare at least one SLO".into(),
        ));
    }
    let mut names = BTreeMap::new();
    for (i, slo) in slos.iter().enumerate() {
        let at = |field: &str| key(format!("slos[{i}]{field}"), format!("name: {}", slo.name));
        if slo.name.trim().is_empty() {
            return Err((at(".name"), "an SLO needs a name".into()));
        }
        if names.insert(slo.name.as_str(), i).is_some() {
            return Err((
                at(".name"),
                format!(
                    "SLO name {:?} is used twice; names identify series",
                    slo.name
                ),
            ));
        }
        if let Some(problem) = slo.sli.problem() {
            return Err((at(".sli"), problem));
        }
        let per_threshold = slo
            .sli
            .latency
            .as_ref()
            .is_some_and(|l| l.thresholds.is_some());
        match (&slo.tiers, per_threshold, slo.objective) {
            (Some(_), true, _) => {
                return Err((at(".tiers"), "tiers and several thresholds cannot be combined; give each tier its threshold under tiers.thresholds".into()));
            }
            (None, false, None) => {
                return Err((
                    at(".objective"),
                    "an SLO needs an objective, e.g. 0.995".into(),
                ));
            }
            _ => {}
        }
        if let Some(t) = &slo.tiers {
            if t.objectives.is_empty() {
                return Err((at(".tiers.objectives"), "list an objective per tier".into()));
            }
            if !t.thresholds.is_empty() && slo.sli.latency.is_none() {
                return Err((
                    at(".tiers.thresholds"),
                    "per-tier thresholds apply to latency SLIs only".into(),
                ));
            }
            if let Some(tier) = t.thresholds.keys().find(|k| !t.objectives.contains_key(*k)) {
                return Err((
                    at(".tiers.thresholds"),
                    format!("tier {tier:?} has a threshold but no objective"),
                ));
            }
        }
        if let Some(policy) = &slo.policy
            && policy.is_empty()
        {
            return Err((at(".policy"), "list at least one policy state".into()));
        }
        if let Some(sla) = slo.sla
            && let Some((objective, whose)) = tightest_objective(slo)
            && sla.0 > objective
        {
            return Err((
                at(".sla"),
                format!(
                    "the SLA {} is tighter than the objective {}{whose}: a contract promises at \
                     most what the team aims for; lower sla or raise the objective",
                    percent(sla.0),
                    percent(objective)
                ),
            ));
        }
        if slo.owner.as_deref().is_some_and(|o| o.trim().is_empty()) {
            return Err((
                at(".owner"),
                "owner is empty; name the team or rota, e.g. owner: team-chat".into(),
            ));
        }
        if slo.escalation.iter().any(|step| step.trim().is_empty()) {
            return Err((
                at(".escalation"),
                "an escalation step is empty; list who to call, in order, e.g. [chat on-call, chat lead]".into(),
            ));
        }
    }
    for (i, slo) in slos.iter().enumerate() {
        for dep in &slo.depends_on {
            if !names.contains_key(dep.as_str()) {
                return Err((
                    key(
                        format!("slos[{i}].depends_on"),
                        format!("name: {}", slo.name),
                    ),
                    format!("depends on {dep:?}, which is not an SLO of this spec"),
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(slos, &names) {
        return Err((
            key(
                format!("slos[{}].depends_on", names[cycle.as_str()]),
                format!("name: {cycle}"),
            ),
            format!(
                "SLO {cycle:?} depends on itself through depends_on; remove one link of the cycle"
            ),
        ));
    }
    Ok(())
}

/// The lowest objective an SLO holds (its own, a threshold's or a tier's), and where it comes
/// from when not the SLO's own: an SLA may be no tighter than any of them.
fn tightest_objective(slo: &SloSpec) -> Option<(f64, String)> {
    let thresholds = slo
        .sli
        .latency
        .iter()
        .flat_map(|l| l.thresholds.iter().flatten())
        .map(|t| (t.objective.0, format!(" of threshold {}", t.threshold)));
    let tiers = slo
        .tiers
        .iter()
        .flat_map(|t| t.objectives.iter())
        .map(|(tier, o)| (o.0, format!(" of tier {tier}")));
    slo.objective
        .map(|o| (o.0, String::new()))
        .into_iter()
        .chain(thresholds)
        .chain(tiers)
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// A ratio as a percentage, the way a spec may write it (`99.5%`).
fn percent(ratio: f64) -> String {
    format!("{}%", (ratio * 100.0 * 1e6).round() / 1e6)
}

fn find_cycle(slos: &[SloSpec], names: &BTreeMap<&str, usize>) -> Option<String> {
    fn visit(
        i: usize,
        slos: &[SloSpec],
        names: &BTreeMap<&str, usize>,
        state: &mut [u8],
    ) -> Option<usize> {
        match state[i] {
            1 => return Some(i),
            2 => return None,
            _ => {}
        }
        state[i] = 1;
        for dep in &slos[i].depends_on {
            if let Some(&d) = names.get(dep.as_str())
                && let Some(c) = visit(d, slos, names, state)
            {
                return Some(c);
            }
        }
        state[i] = 2;
        None
    }
    let mut state = vec![0u8; slos.len()];
    (0..slos.len()).find_map(|i| visit(i, slos, names, &mut state).map(|c| slos[c].name.clone()))
}

/// The core SLOs of a checked spec, with `depends_on` resolved to core indices.
pub(crate) fn expand(slos: &[SloSpec], id_pointer: &str) -> Vec<Slo> {
    let mut out: Vec<Slo> = Vec::new();
    let mut indices: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for slo in slos {
        let budget = budget_config(slo);
        let contract = SloContract {
            sla: slo.sla.map(|o| o.0),
            owner: slo.owner.clone(),
            runbook: slo.runbook.as_ref().map(|r| r.0.clone()),
            escalation: slo.escalation.clone(),
        };
        let dimensions: Vec<Dimension> = slo.dimensions.iter().map(|d| d.0.clone()).collect();
        let mut push = |name: String,
                        sli: Sli,
                        objective: f64,
                        dims: Vec<Dimension>,
                        filter: Option<Filter>| {
            indices
                .entry(slo.name.as_str())
                .or_default()
                .push(out.len());
            out.push(Slo {
                name,
                sli,
                objective,
                dimensions: dims,
                filter,
                max_series: slo.max_series,
                depends_on: Vec::new(),
                correlate_by: slo
                    .correlate_by
                    .as_ref()
                    .map_or_else(|| id_pointer.to_owned(), |p| p.0.clone()),
                budget: budget.clone(),
                contract: contract.clone(),
            });
        };
        if let Some(thresholds) = slo.sli.latency.as_ref().and_then(|l| l.thresholds.as_ref()) {
            for t in thresholds {
                let ms = t.threshold.0.as_millis();
                let label = if ms % 1000 == 0 {
                    format!("{}s", ms / 1000)
                } else {
                    format!("{ms}ms")
                };
                let name = format!("{}-{label}", slo.name);
                push(
                    name,
                    slo.sli.to_core(Some(t.threshold)),
                    t.objective.0,
                    dimensions.clone(),
                    None,
                );
            }
        } else if let Some(tiers) = &slo.tiers {
            let tier = Dimension::Label(tiers.label.clone());
            let mut dims = dimensions.clone();
            if !dims.contains(&tier) {
                dims.push(tier.clone());
            }
            for (value, objective) in &tiers.objectives {
                let filter = Filter {
                    dimension: tier.clone(),
                    values: vec![value.clone()],
                    negate: false,
                };
                let sli = slo.sli.to_core(tiers.thresholds.get(value).copied());
                push(
                    slo.name.clone(),
                    sli,
                    objective.0,
                    dims.clone(),
                    Some(filter),
                );
            }
            if let Some(objective) = slo.objective {
                let filter = Filter {
                    dimension: tier,
                    values: tiers.objectives.keys().cloned().collect(),
                    negate: true,
                };
                push(
                    slo.name.clone(),
                    slo.sli.to_core(None),
                    objective.0,
                    dims,
                    Some(filter),
                );
            }
        } else {
            let objective = slo.objective.map_or(0.99, |o| o.0);
            push(
                slo.name.clone(),
                slo.sli.to_core(None),
                objective,
                dimensions,
                None,
            );
        }
    }
    for slo in slos {
        let deps: Vec<usize> = slo
            .depends_on
            .iter()
            .flat_map(|d| indices.get(d.as_str()).cloned().unwrap_or_default())
            .collect();
        for &i in indices
            .get(slo.name.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            out[i].depends_on.clone_from(&deps);
        }
    }
    out
}

fn budget_config(slo: &SloSpec) -> BudgetConfig {
    let defaults = BudgetConfig::default();
    BudgetConfig {
        period: slo.period.0,
        burn_windows_ms: slo
            .alerting
            .burn_windows
            .as_ref()
            .map(|w| w.iter().map(|s| s.millis()).collect())
            .unwrap_or(defaults.burn_windows_ms),
        alerts: AlertRule::workbook(),
        min_events: slo.alerting.min_events,
        policy: slo
            .policy
            .as_ref()
            .map(|p| {
                p.iter()
                    .map(|s| PolicyState {
                        name: s.name.clone(),
                        below: s.below,
                    })
                    .collect()
            })
            .unwrap_or_else(default_policy),
    }
}
