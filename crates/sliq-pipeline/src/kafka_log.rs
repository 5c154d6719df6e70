//! librdkafka's own reports, as a person wants them during an outage: each kind (facility, or
//! global error) at most once per interval, with how many like it were held back, instead of one
//! line per broker connection attempt.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use tracing::{debug, error, info, warn};

const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Throttles librdkafka's log lines and global errors per kind.
#[derive(Debug, Default)]
pub(crate) struct KafkaLog {
    /// Kind → when last reported and how many were held back since.
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl KafkaLog {
    /// `Some(held back since the last report)` when a line of this kind may be written now.
    fn due(&self, kind: &str) -> Option<u64> {
        let now = Instant::now();
        let mut seen = self.seen.lock();
        match seen.get_mut(kind) {
            Some((at, held)) if now.duration_since(*at) < REPORT_EVERY => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                *at = now;
                Some(std::mem::take(held))
            }
            None => {
                seen.insert(kind.to_owned(), (now, 0));
                Some(0)
            }
        }
    }

    pub(crate) fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if matches!(level, RDKafkaLogLevel::Debug) {
            debug!(target: "librdkafka", "{facility} {message}");
            return;
        }
        let Some(held) = self.due(facility) else {
            return;
        };
        let more = held_back(held);
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => error!(target: "librdkafka", "{facility} {message}{more}"),
            RDKafkaLogLevel::Warning => warn!(target: "librdkafka", "{facility} {message}{more}"),
            _ => info!(target: "librdkafka", "{facility} {message}{more}"),
        }
    }

    pub(crate) fn error(&self, error: &KafkaError, reason: &str) {
        let kind = format!("error {:?}", error.rdkafka_error_code());
        if let Some(held) = self.due(&kind) {
            warn!(target: "librdkafka", "{error}: {reason}{}; librdkafka retries by itself", held_back(held));
        }
    }
}

fn held_back(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!(
            " ({held} more like it in the last {}s)",
            REPORT_EVERY.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_interval_and_the_rest_counted() {
        let log = KafkaLog::default();
        assert_eq!(log.due("REQTMOUT"), Some(0));
        assert_eq!(log.due("REQTMOUT"), None);
        assert_eq!(log.due("REQTMOUT"), None);
        assert_eq!(log.due("FAIL"), Some(0));
        // A later report says how many were held back.
        log.seen.lock().get_mut("REQTMOUT").unwrap().0 -= REPORT_EVERY;
        assert_eq!(log.due("REQTMOUT"), Some(2));
        assert_eq!(held_back(2), " (2 more like it in the last 10s)");
    }
}
