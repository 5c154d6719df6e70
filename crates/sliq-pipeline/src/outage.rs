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

    /// A success: `Some(how long it had been failing)` if it was.
    pub(crate) fn recovered(&mut self, now: Instant) -> Option<Duration> {
        self.reported_at = None;
        self.since.take().map(|since| now.duration_since(since))
    }
}

/// A duration as a person writes it: whole seconds (`45s`, `2m 5s`), or milliseconds below one.
pub(crate) fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
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
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(human(Duration::from_millis(125_400)), "2m 5s");
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
    }
}
