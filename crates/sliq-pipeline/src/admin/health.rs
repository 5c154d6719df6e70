//! Whether this instance does its job now, as the pipeline itself knows it: partitions assigned,
//! exports acknowledged, commits accepted, dead letters delivered, brokers reachable. The stages
//! report a change when it happens (never per record); `/readyz` reads it.

use std::time::Instant;

use parking_lot::Mutex;

use crate::outage::human;

/// The conditions of readiness and where each dependency lives (for the reasons' wording).
#[derive(Debug)]
pub(crate) struct Health {
    collector: String,
    brokers: String,
    dead_letter_topic: String,
    conditions: Mutex<Conditions>,
}

#[derive(Debug, Default)]
struct Conditions {
    /// Partitions held since the last assignment; `None` before the first one and during a
    /// rebalance.
    assigned: Option<usize>,
    export_failing_since: Option<Instant>,
    brokers_down_since: Option<Instant>,
    commits_failing_since: Option<Instant>,
    commit_error: String,
    dead_letters_failing_since: Option<Instant>,
}

impl Health {
    pub(crate) fn new(collector: &str, brokers: &str, dead_letter_topic: &str) -> Self {
        Health {
            collector: collector.to_owned(),
            brokers: brokers.to_owned(),
            dead_letter_topic: dead_letter_topic.to_owned(),
            conditions: Mutex::new(Conditions::default()),
        }
    }

    pub(crate) fn assigned(&self, partitions: Option<usize>) {
        self.conditions.lock().assigned = partitions;
    }

    /// The collector failing since then (`None`: it acknowledges).
    pub(crate) fn export(&self, failing_since: Option<Instant>) {
        self.conditions.lock().export_failing_since = failing_since;
    }

    /// No broker connection up since then (`None`: at least one is).
    pub(crate) fn brokers(&self, down_since: Option<Instant>) {
        let mut c = self.conditions.lock();
        if down_since.is_none() || c.brokers_down_since.is_none() {
            c.brokers_down_since = down_since;
        }
    }

    pub(crate) fn commit_failed(&self, now: Instant, error: &str) {
        let mut c = self.conditions.lock();
        c.commits_failing_since.get_or_insert(now);
        error.clone_into(&mut c.commit_error);
    }

    pub(crate) fn commit_succeeded(&self) {
        self.conditions.lock().commits_failing_since = None;
    }

    pub(crate) fn dead_letters(&self, failing_since: Option<Instant>) {
        self.conditions.lock().dead_letters_failing_since = failing_since;
    }

    /// `Ok` when ready; otherwise why not, one reason per line, for a person reading `/readyz`.
    pub(crate) fn readiness(&self, now: Instant) -> Result<(), Vec<String>> {
        let c = self.conditions.lock();
        let lasted = |since: Instant| human(now.saturating_duration_since(since));
        let mut reasons = Vec::new();
        if c.assigned.is_none() {
            reasons.push(
                "partitions: not assigned yet (joining the consumer group or rebalancing)"
                    .to_owned(),
            );
        }
        if let Some(since) = c.export_failing_since {
            reasons.push(format!(
                "export: the collector at {} has refused requests for {}",
                self.collector,
                lasted(since)
            ));
        }
        if let Some(since) = c.brokers_down_since {
            reasons.push(format!(
                "source: no broker of {} reachable for {}",
                self.brokers,
                lasted(since)
            ));
        }
        if let Some(since) = c.commits_failing_since {
            reasons.push(format!(
                "commit: offset commits failing for {} ({})",
                lasted(since),
                c.commit_error
            ));
        }
        if let Some(since) = c.dead_letters_failing_since {
            reasons.push(format!(
                "dead letters: the topic {} has refused deliveries for {}",
                self.dead_letter_topic,
                lasted(since)
            ));
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ready_only_with_partitions_and_no_outage_and_reasons_say_which() {
        let h = Health::new("http://127.0.0.1:4317", "127.0.0.1:9092", "logs-dlq");
        let t0 = Instant::now();
        assert_eq!(
            h.readiness(t0),
            Err(vec![
                "partitions: not assigned yet (joining the consumer group or rebalancing)".into()
            ])
        );
        h.assigned(Some(0));
        assert_eq!(h.readiness(t0), Ok(()));
        h.export(Some(t0));
        h.dead_letters(Some(t0 + Duration::from_secs(40)));
        assert_eq!(
            h.readiness(t0 + Duration::from_secs(45)),
            Err(vec![
                "export: the collector at http://127.0.0.1:4317 has refused requests for 45s"
                    .into(),
                "dead letters: the topic logs-dlq has refused deliveries for 5s".into(),
            ])
        );
        h.export(None);
        h.dead_letters(None);
        h.commit_failed(t0, "Broker: Request timed out");
        h.commit_failed(t0 + Duration::from_secs(3), "Broker: Request timed out");
        assert_eq!(
            h.readiness(t0 + Duration::from_secs(65)),
            Err(vec![
                "commit: offset commits failing for 1m 5s (Broker: Request timed out)".into()
            ])
        );
        h.commit_succeeded();
        // A later report of brokers down keeps the first moment.
        h.brokers(Some(t0));
        h.brokers(Some(t0 + Duration::from_secs(9)));
        assert_eq!(
            h.readiness(t0 + Duration::from_secs(10)),
            Err(vec![
                "source: no broker of 127.0.0.1:9092 reachable for 10s".into()
            ])
        );
        h.brokers(None);
        assert_eq!(h.readiness(t0), Ok(()));
    }
}
