//! Something that keeps failing, reported as a person would want it: once when it starts, then
//! once per interval with how long it has lasted, and once when it is over; never per attempt.

use std::time::{Duration, Instant};

/// How often a continuing failure is reported.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The state of one failing dependency (the collector, the broker, the dead-letter topic).
#[derive(Debug, Default)]
pub(crate) struct Outage {
    since: Option<Instant>,
    reported_at: Option<Instant>,
}

impl Outage {
    /// Another failed attempt: `Some(how long it has been failing)` when it is time to say so.
    pub(crate) fn failed(&mut self, now: Instant) -> Option<Duration> {
        let since = *self.since.get_or_insert(now);
        let due = self
            .reported_at
            .is_none_or(|at| now.duration_since(at) >= REPORT_EVERY);
        if due {
            self.reported_at = Some(now);
            return Some(now.duration_since(since));
        }
        None
    }

    /// Since when it has been failing; `None` while it works.
    pub(crate) fn since(&self) -> Option<Instant> {
        self.since
    }

    /// A success: `Some(how long it had been failing)` if it was.
    pub(crate) fn recovered(&mut self, now: Instant) -> Option<Duration> {
        self.reported_at = None;
        self.since.take().map(|since| now.duration_since(since))
    }
}

/// How a failure reported by [`Outage::failed`] reads: `failed` the first time (it has lasted
/// no time yet), then `failing for 2m 5s`.
pub(crate) fn failing(lasted: Duration) -> String {
    if lasted.is_zero() {
        "failed".to_owned()
    } else {
        format!("failing for {}", human(lasted))
    }
}

/// A duration as a person writes it: `250ms`, `45s`, `2m 5s`, `1h 3m`, `2d 4h`.
pub(crate) fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) if seconds == 0 => format!("{m}m"),
        (0, 0, m) => format!("{m}m {seconds}s"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_once_per_interval_and_once_on_recovery() {
        let t0 = Instant::now();
        let mut o = Outage::default();
        assert_eq!(o.failed(t0), Some(Duration::ZERO));
        assert_eq!(o.failed(t0 + Duration::from_secs(3)), None);
        assert_eq!(
            o.failed(t0 + Duration::from_secs(11)),
            Some(Duration::from_secs(11))
        );
        assert_eq!(o.failed(t0 + Duration::from_secs(12)), None);
        assert_eq!(
            o.recovered(t0 + Duration::from_secs(14)),
            Some(Duration::from_secs(14))
        );
        assert_eq!(o.recovered(t0 + Duration::from_secs(15)), None);
    }

    #[test]
    fn a_failure_reads_failed_first_then_how_long_it_lasts() {
        assert_eq!(failing(Duration::ZERO), "failed");
        assert_eq!(failing(Duration::from_millis(250)), "failing for 250ms");
        assert_eq!(failing(Duration::from_secs(125)), "failing for 2m 5s");
    }

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        let cases = [
            (45, "45s"),
            (60, "1m"),
            (125, "2m 5s"),
            (3600, "1h"),
            (3725, "1h 2m"),
            (86_400, "1d"),
            (2 * 86_400 + 4 * 3600 + 59, "2d 4h"),
        ];
        for (secs, want) in cases {
            assert_eq!(human(Duration::from_secs(secs)), want);
        }
        assert_eq!(human(Duration::from_millis(1999)), "1s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
    }
}
