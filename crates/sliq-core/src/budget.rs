//! Error budgets, burn rates and multi-window multi-burn-rate alerts (Google SRE Workbook ch. 5).
//!
//! Definitions, with `p` the SLO's period and `1 − objective` its error budget:
//! - bad ratio over a window = bad ÷ (good + bad), summed over the window (a ratio of sums, never an
//!   average of ratios: traffic varies);
//! - burn rate over a window = bad ratio ÷ (1 − objective): 1 spends exactly the budget over `p`;
//! - budget remaining = 1 − bad ratio over `p` ÷ (1 − objective): 1 untouched, 0 spent, < 0 overspent;
//! - an alert rule fires when the burn rate exceeds its factor over both its long and its short
//!   window, and the long window holds at least `min_events` (the low-traffic guard). A rule's factor
//!   is the budget share it allows to burn within its long window: `share × p ÷ long`, which for
//!   30 days gives the workbook's 14.4 (2% in 1 h), 6 (5% in 6 h), 3 (10% in 1 d), 1 (10% in 3 d).
//!
//! Counts are kept per series as per-minute rollups (for burn-rate windows) and per-hour rollups (for
//! the period), fed by the windows as they are exported, so the numbers follow event time.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, TimeZone, Utc};

use crate::slo::{Evaluator, SeriesId};
use crate::window::WindowCounts;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// The span a budget is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The last `n` milliseconds, e.g. 28 or 30 days.
    Rolling(i64),
    /// Since the first day of the current month, UTC.
    CalendarMonth,
    /// Since Monday of the current week, UTC.
    CalendarWeek,
}

impl Period {
    /// The length a rule written once must assume: a rolling period's own, 30 days for a calendar
    /// month (its factors then differ from sliq's own by at most 31/30), 7 days for a week.
    pub fn nominal_ms(self) -> i64 {
        match self {
            Period::Rolling(len) => len,
            Period::CalendarMonth => 30 * DAY_MS,
            Period::CalendarWeek => 7 * DAY_MS,
        }
    }

    /// (start, length) of the period containing `now_ms`.
    pub fn bounds(self, now_ms: i64) -> (i64, i64) {
        match self {
            Period::Rolling(len) => (now_ms - len, len),
            Period::CalendarMonth => {
                let now = Utc
                    .timestamp_millis_opt(now_ms)
                    .single()
                    .unwrap_or_default();
                let start = Utc
                    .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
                    .single()
                    .unwrap_or_default();
                let (y, m) = if now.month() == 12 {
                    (now.year() + 1, 1)
                } else {
                    (now.year(), now.month() + 1)
                };
                let next = Utc
                    .with_ymd_and_hms(y, m, 1, 0, 0, 0)
                    .single()
                    .unwrap_or_default();
                (
                    start.timestamp_millis(),
                    next.timestamp_millis() - start.timestamp_millis(),
                )
            }
            Period::CalendarWeek => {
                let days_since_monday = i64::from(
                    Utc.timestamp_millis_opt(now_ms)
                        .single()
                        .unwrap_or_default()
                        .weekday()
                        .num_days_from_monday(),
                );
                let start = now_ms.div_euclid(DAY_MS) * DAY_MS - days_since_monday * DAY_MS;
                (start, 7 * DAY_MS)
            }
        }
    }
}

/// Page or ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// One multi-window burn-rate rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertRule {
    pub severity: Severity,
    pub long_ms: i64,
    pub short_ms: i64,
    /// Share of the period's budget this rule lets burn within `long_ms` before it fires.
    pub budget_share: f64,
}

impl AlertRule {
    /// The burn-rate threshold for a period of `period_ms`.
    pub fn factor(&self, period_ms: i64) -> f64 {
        self.budget_share * period_ms as f64 / self.long_ms as f64
    }

    /// The SRE Workbook's rules with Sloth's 1-day ticket: page 2% in 1 h (5 m), page 5% in 6 h
    /// (30 m), ticket 10% in 1 d (2 h), ticket 10% in 3 d (6 h).
    pub fn workbook() -> Vec<AlertRule> {
        let rule = |severity, long_ms, short_ms, budget_share| AlertRule {
            severity,
            long_ms,
            short_ms,
            budget_share,
        };
        vec![
            rule(Severity::Page, HOUR_MS, 5 * MINUTE_MS, 0.02),
            rule(Severity::Page, 6 * HOUR_MS, 30 * MINUTE_MS, 0.05),
            rule(Severity::Ticket, DAY_MS, 2 * HOUR_MS, 0.10),
            rule(Severity::Ticket, 3 * DAY_MS, 6 * HOUR_MS, 0.10),
        ]
    }
}

/// An error-budget policy state: in force while the remaining budget is below `below`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyState {
    pub name: String,
    pub below: f64,
}

/// The default policy: ok, warn under 50% left, freeze under 20%, exhausted at 0 or less.
pub fn default_policy() -> Vec<PolicyState> {
    let state = |name: &str, below| PolicyState {
        name: name.to_owned(),
        below,
    };
    vec![
        state("ok", f64::INFINITY),
        state("warn", 0.5),
        state("freeze", 0.2),
        state("exhausted", f64::MIN_POSITIVE),
    ]
}

/// How budgets are computed for one SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetConfig {
    pub period: Period,
    /// Burn-rate windows reported as `sliq.slo.burn_rate`.
    pub burn_windows_ms: Vec<i64>,
    pub alerts: Vec<AlertRule>,
    /// Low-traffic guard: no alert fires with fewer events than this in its long window.
    pub min_events: u64,
    /// States from least to most severe; the last whose `below` exceeds the remaining budget wins.
    pub policy: Vec<PolicyState>,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            period: Period::Rolling(30 * DAY_MS),
            burn_windows_ms: vec![
                5 * MINUTE_MS,
                30 * MINUTE_MS,
                HOUR_MS,
                2 * HOUR_MS,
                6 * HOUR_MS,
                DAY_MS,
                3 * DAY_MS,
            ],
            alerts: AlertRule::workbook(),
            min_events: 100,
            policy: default_policy(),
        }
    }
}

/// The state of one series at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetStatus {
    pub good: u64,
    pub bad: u64,
    pub budget_remaining: f64,
    /// Per configured window: the burn rate, `None` without events in the window.
    pub burn_rates: Vec<(i64, Option<f64>)>,
    /// Per alert rule: whether it fires.
    pub alerts: Vec<(AlertRule, bool)>,
    /// Index into the policy states.
    pub policy_state: usize,
}

/// The resolution of a rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
}

/// One persisted rollup bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupEntry {
    pub series: SeriesId,
    pub granularity: Granularity,
    pub start_ms: i64,
    pub good: u64,
    pub bad: u64,
}

#[derive(Debug, Default, Clone)]
struct Rollup {
    minutes: BTreeMap<i64, [u64; 2]>,
    hours: BTreeMap<i64, [u64; 2]>,
}

/// Per-series rollups and the budget arithmetic over them.
#[derive(Debug, Default)]
pub struct Ledger {
    series: HashMap<SeriesId, Rollup>,
    /// How long minute rollups are kept: the longest window any rule or report reads.
    keep_minutes_ms: i64,
    /// How long hour rollups are kept: the longest period.
    keep_hours_ms: i64,
}

fn sum(map: &BTreeMap<i64, [u64; 2]>, from: i64, to: i64) -> [u64; 2] {
    map.range(from..to).fold([0, 0], |acc, (_, c)| {
        [acc[0].saturating_add(c[0]), acc[1].saturating_add(c[1])]
    })
}

impl Ledger {
    /// A ledger keeping enough history for every config it will be asked about.
    pub fn new<'a>(configs: impl IntoIterator<Item = &'a BudgetConfig>) -> Ledger {
        let mut ledger = Ledger::default();
        for c in configs {
            let longest_window = c
                .burn_windows_ms
                .iter()
                .copied()
                .chain(c.alerts.iter().map(|a| a.long_ms))
                .max()
                .unwrap_or(0);
            ledger.keep_minutes_ms = ledger.keep_minutes_ms.max(longest_window);
            let period = match c.period {
                Period::Rolling(len) => len,
                Period::CalendarMonth => 31 * DAY_MS,
                Period::CalendarWeek => 7 * DAY_MS,
            };
            ledger.keep_hours_ms = ledger.keep_hours_ms.max(period);
        }
        ledger
    }

    /// Adds one series' counts at event time `at_ms` (a window start).
    pub fn add(&mut self, series: SeriesId, at_ms: i64, good: u64, bad: u64) {
        let r = self.series.entry(series).or_default();
        let m = r
            .minutes
            .entry(at_ms.div_euclid(MINUTE_MS) * MINUTE_MS)
            .or_default();
        m[0] = m[0].saturating_add(good);
        m[1] = m[1].saturating_add(bad);
        let h = r
            .hours
            .entry(at_ms.div_euclid(HOUR_MS) * HOUR_MS)
            .or_default();
        h[0] = h[0].saturating_add(good);
        h[1] = h[1].saturating_add(bad);
    }

    /// Adds exported windows.
    pub fn record(&mut self, windows: &[WindowCounts]) {
        for w in windows {
            for c in &w.counts {
                self.add(c.series, w.start_ms, c.good, c.bad);
            }
        }
    }

    /// Drops rollups older than any window or period needs, as of `now_ms`.
    pub fn prune(&mut self, now_ms: i64) {
        let minutes_from = now_ms - self.keep_minutes_ms - HOUR_MS;
        let hours_from = now_ms - self.keep_hours_ms - DAY_MS;
        for r in self.series.values_mut() {
            r.minutes = r.minutes.split_off(&minutes_from);
            r.hours = r.hours.split_off(&hours_from);
        }
    }

    /// Series with any rollup.
    pub fn series(&self) -> impl Iterator<Item = SeriesId> + '_ {
        self.series.keys().copied()
    }

    /// Every rollup, for persisting the ledger across restarts.
    pub fn snapshot(&self) -> Vec<RollupEntry> {
        let mut out = Vec::new();
        for (series, r) in &self.series {
            for (granularity, map) in [
                (Granularity::Minute, &r.minutes),
                (Granularity::Hour, &r.hours),
            ] {
                out.extend(map.iter().map(|(start, c)| RollupEntry {
                    series: *series,
                    granularity,
                    start_ms: *start,
                    good: c[0],
                    bad: c[1],
                }));
            }
        }
        out
    }

    /// Puts back one rollup of a snapshot (added to what is there).
    pub fn restore(&mut self, entry: &RollupEntry) {
        let r = self.series.entry(entry.series).or_default();
        let map = match entry.granularity {
            Granularity::Minute => &mut r.minutes,
            Granularity::Hour => &mut r.hours,
        };
        let c = map.entry(entry.start_ms).or_default();
        c[0] = c[0].saturating_add(entry.good);
        c[1] = c[1].saturating_add(entry.bad);
    }

    /// Every series' state at event time `now_ms` (by series id), each under its own SLO's
    /// objective and budget.
    pub fn statuses(&self, evaluator: &Evaluator, now_ms: i64) -> Vec<(SeriesId, BudgetStatus)> {
        let mut series: Vec<SeriesId> = self.series().collect();
        series.sort();
        series
            .into_iter()
            .map(|s| {
                let slo = evaluator.slo_of(s);
                (s, self.status(s, slo.objective, &slo.budget, now_ms))
            })
            .collect()
    }

    /// The budget, burn rates, alerts and policy state of `series` at event time `now_ms`.
    pub fn status(
        &self,
        series: SeriesId,
        objective: f64,
        config: &BudgetConfig,
        now_ms: i64,
    ) -> BudgetStatus {
        let empty = Rollup::default();
        let r = self.series.get(&series).unwrap_or(&empty);
        let budget = 1.0 - objective;
        let over = |window_ms: i64| sum(&r.minutes, now_ms - window_ms, now_ms);
        let burn = |c: [u64; 2]| {
            let total = c[0].saturating_add(c[1]);
            (total > 0).then(|| c[1] as f64 / total as f64 / budget)
        };
        let (start, length) = config.period.bounds(now_ms);
        // Hour rollups from the hour holding the period's start (so a rolling period may reach up
        // to 59 minutes further back), minute rollups for the current hour.
        let this_hour = now_ms.div_euclid(HOUR_MS) * HOUR_MS;
        let body = sum(&r.hours, start.div_euclid(HOUR_MS) * HOUR_MS, this_hour);
        let tail = sum(&r.minutes, this_hour.max(start), now_ms);
        let period_counts = [
            body[0].saturating_add(tail[0]),
            body[1].saturating_add(tail[1]),
        ];
        let budget_remaining = burn(period_counts).map_or(1.0, |b| 1.0 - b);
        let burn_rates = config
            .burn_windows_ms
            .iter()
            .map(|&w| (w, burn(over(w))))
            .collect();
        let alerts = config
            .alerts
            .iter()
            .map(|rule| {
                let long = over(rule.long_ms);
                let factor = rule.factor(length);
                let fires = long[0].saturating_add(long[1]) >= config.min_events
                    && burn(long).is_some_and(|b| b > factor)
                    && burn(over(rule.short_ms)).is_some_and(|b| b > factor);
                (*rule, fires)
            })
            .collect();
        let policy_state = config
            .policy
            .iter()
            .rposition(|s| budget_remaining < s.below)
            .unwrap_or(0);
        BudgetStatus {
            good: period_counts[0],
            bad: period_counts[1],
            budget_remaining,
            burn_rates,
            alerts,
            policy_state,
        }
    }
}

#[cfg(test)]
mod tests;
