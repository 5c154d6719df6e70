//! Hand-worked budgets, burn rates and alerts, from the definitions in the module docs.

use super::*;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a Thursday

fn config() -> BudgetConfig {
    BudgetConfig {
        period: Period::Rolling(30 * DAY_MS),
        min_events: 10,
        ..BudgetConfig::default()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn workbook_factors_for_thirty_days() {
    let factors: Vec<f64> = AlertRule::workbook()
        .iter()
        .map(|r| r.factor(30 * DAY_MS))
        .collect();
    for (got, want) in factors.iter().zip([14.4, 6.0, 3.0, 1.0]) {
        assert!(close(*got, want), "{factors:?}");
    }
    // 28 days scale the page factor to 0.02 × 672 h ÷ 1 h = 13.44.
    assert!(close(AlertRule::workbook()[0].factor(28 * DAY_MS), 13.44));
}

#[test]
fn budget_and_burn_rates_from_minute_counts() {
    // Objective 99%: budget 1%. Over the last hour: 60 minutes × 100 events, 2 bad per minute
    // in the last 5 minutes, none before.
    let mut l = Ledger::new([&config()]);
    let s = SeriesId(0);
    let now = T0 + 10 * DAY_MS;
    for m in 0..60 {
        let at = now - HOUR_MS + m * MINUTE_MS;
        let bad = if m >= 55 { 2 } else { 0 };
        l.add(s, at, 100 - bad, bad);
    }
    let st = l.status(s, 0.99, &config(), now);
    // Period: 6000 events, 10 bad → bad ratio 1/600 → burn 1/6 → remaining 5/6.
    assert_eq!((st.good, st.bad), (5990, 10));
    assert!(close(st.budget_remaining, 1.0 - (10.0 / 6000.0) / 0.01));
    let rate = |w: i64| {
        st.burn_rates
            .iter()
            .find(|(x, _)| *x == w)
            .and_then(|(_, r)| *r)
    };
    // 5 m: 10 bad of 500 = 2% → burn 2. 30 m: 10 of 3000 → 0.333…. 1 h: 10 of 6000 → 0.1666….
    assert!(close(rate(5 * MINUTE_MS).unwrap(), 2.0));
    assert!(close(rate(30 * MINUTE_MS).unwrap(), 10.0 / 3000.0 / 0.01));
    assert!(close(rate(HOUR_MS).unwrap(), 10.0 / 6000.0 / 0.01));
    // 1 d and 3 d see the same hour of data: same rate as 1 h.
    assert!(close(rate(3 * DAY_MS).unwrap(), 10.0 / 6000.0 / 0.01));
    assert!(
        st.alerts.iter().all(|(_, fires)| !fires),
        "burn 2 over 5 m is below every factor"
    );
    assert_eq!(config().policy[st.policy_state].name, "ok");
}

#[test]
fn page_fires_only_when_long_and_short_windows_both_burn() {
    let mut l = Ledger::new([&config()]);
    let s = SeriesId(0);
    let now = T0 + DAY_MS;
    // Every minute of the last hour: 100 events, 20 bad → 20% bad = burn 20 > 14.4 on 1 h and 5 m.
    for m in 0..60 {
        l.add(s, now - HOUR_MS + m * MINUTE_MS, 80, 20);
    }
    let st = l.status(s, 0.99, &config(), now);
    let page_1h = st.alerts[0];
    assert_eq!((page_1h.0.severity, page_1h.1), (Severity::Page, true));
    // 6 h window: 1200 bad of 6000 → burn 20 > 6; 30 m: burn 20 → fires too.
    assert!(st.alerts[1].1);
    // Now the last 5 minutes are clean: the short window stops the 1 h page (reset, as designed).
    let mut l2 = Ledger::new([&config()]);
    for m in 0..60 {
        let bad = if m >= 55 { 0 } else { 20 };
        l2.add(s, now - HOUR_MS + m * MINUTE_MS, 100 - bad, bad);
    }
    let st2 = l2.status(s, 0.99, &config(), now);
    assert!(!st2.alerts[0].1, "5 m burn is 0");
    // Budget: 1100 bad of 6000 → burn 18.33 → remaining −17.33: exhausted.
    assert!(close(st2.budget_remaining, 1.0 - 1100.0 / 6000.0 / 0.01));
    assert_eq!(config().policy[st2.policy_state].name, "exhausted");
}

#[test]
fn low_traffic_guard_keeps_one_bad_event_from_paging() {
    let mut l = Ledger::new([&config()]);
    let s = SeriesId(0);
    let now = T0 + DAY_MS;
    // 3 events in the last 5 minutes, 1 bad: burn 33 on both windows, but only 3 events < 10.
    l.add(s, now - 2 * MINUTE_MS, 2, 1);
    let st = l.status(s, 0.99, &config(), now);
    assert!(st.alerts.iter().all(|(_, f)| !f));
    let mut no_guard = config();
    no_guard.min_events = 0;
    assert!(l.status(s, 0.99, &no_guard, now).alerts[0].1);
}

#[test]
fn policy_states_follow_remaining_budget() {
    let mut l = Ledger::new([&config()]);
    let s = SeriesId(0);
    let now = T0 + DAY_MS;
    // Objective 90% (budget 10%). 1000 events: remaining = 1 − (bad/1000)/0.1.
    let state = |l: &Ledger| {
        config().policy[l.status(s, 0.9, &config(), now).policy_state]
            .name
            .clone()
    };
    l.add(s, now - MINUTE_MS, 960, 40); // 40 bad → remaining 0.6 → ok
    assert_eq!(state(&l), "ok");
    l.add(s, now - MINUTE_MS, 0, 30); // 70 of 1030 → 1 − 0.6796 = 0.32 → warn
    assert_eq!(state(&l), "warn");
    l.add(s, now - MINUTE_MS, 0, 20); // 90 of 1050 → 0.1428 → freeze
    assert_eq!(state(&l), "freeze");
    l.add(s, now - MINUTE_MS, 0, 30); // 120 of 1080 → −0.111 → exhausted
    assert_eq!(state(&l), "exhausted");
}

#[test]
fn rolling_period_excludes_old_hours_and_calendar_periods_start_on_the_first() {
    let mut l = Ledger::new([&config()]);
    let s = SeriesId(0);
    let now = T0 + 40 * DAY_MS;
    l.add(s, now - 31 * DAY_MS, 0, 100); // outside 30 days
    l.add(s, now - 29 * DAY_MS, 100, 0);
    let st = l.status(s, 0.99, &config(), now);
    assert_eq!((st.good, st.bad, st.budget_remaining), (100, 0, 1.0));
    // 2026-02-10: the month started 2026-02-01 and has 28 days.
    let (start, len) = Period::CalendarMonth.bounds(T0 + 40 * DAY_MS);
    assert_eq!((start, len), (T0 + 31 * DAY_MS, 28 * DAY_MS));
    // 2026-01-01 is a Thursday: its week started Monday 2025-12-29.
    let (start, len) = Period::CalendarWeek.bounds(T0 + 5 * HOUR_MS);
    assert_eq!((start, len), (T0 - 3 * DAY_MS, 7 * DAY_MS));
    let mut month = config();
    month.period = Period::CalendarMonth;
    let st = l.status(s, 0.99, &month, now);
    assert_eq!((st.good, st.bad), (0, 0), "both events fall in January");
}

#[test]
fn no_events_means_full_budget_and_no_burn() {
    let l = Ledger::new([&config()]);
    let st = l.status(SeriesId(9), 0.999, &config(), T0);
    assert_eq!(st.budget_remaining, 1.0);
    assert!(st.burn_rates.iter().all(|(_, r)| r.is_none()));
}

#[test]
fn pruning_keeps_what_windows_and_period_need() {
    let mut l = Ledger::new([&config()]);
    let s = SeriesId(0);
    let now = T0 + 40 * DAY_MS;
    l.add(s, now - 35 * DAY_MS, 0, 5);
    l.add(s, now - 4 * DAY_MS, 1, 0);
    l.add(s, now - MINUTE_MS, 1, 0);
    l.prune(now);
    // Minutes older than 3 d (+1 h) go; hours older than 30 d (+1 d) go.
    let minutes = l
        .snapshot()
        .iter()
        .filter(|e| e.granularity == Granularity::Minute)
        .count();
    assert_eq!(minutes, 1);
    let st = l.status(s, 0.99, &config(), now);
    assert_eq!((st.good, st.bad), (2, 0));
}

#[test]
fn snapshot_and_restore_reproduce_the_same_status() {
    let mut l = Ledger::new([&config()]);
    let now = T0 + 5 * DAY_MS;
    for m in 0..3000 {
        l.add(
            SeriesId(m % 3),
            now - m as i64 * MINUTE_MS,
            50,
            (m % 7) as u64,
        );
    }
    l.prune(now);
    let mut copy = Ledger::new([&config()]);
    for e in l.snapshot() {
        copy.restore(&e);
    }
    for s in 0..3 {
        assert_eq!(
            copy.status(SeriesId(s), 0.995, &config(), now),
            l.status(SeriesId(s), 0.995, &config(), now)
        );
    }
}
