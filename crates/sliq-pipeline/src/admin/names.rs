//! The names, units and attributes of sliq's own metrics, in one place (as OTel's
//! semantic-convention crates keep theirs): the instruments, the Prometheus rendering and the
//! README's list all read them from here. Names follow OTel's rules (dotted, no unit in the name,
//! units as UCUM with `{annotations}` for counted things); the Prometheus text endpoint translates
//! them (`sliq.records.read` with `{record}` → `sliq_records_read_total`).

/// The instrumentation scope of the self-metrics, apart from the SLI metrics' own.
pub(crate) const SCOPE: &str = "sliq.self";
/// `service.name` of the self-metrics resource: a backend keeps them apart from the SLI metrics
/// (which carry `service.name=sliq` and partly the same metric names, e.g. `sliq.records`).
pub(crate) const SERVICE_NAME: &str = "sliq-self";

/// One instrument's name, unit and what it means.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Name {
    pub(crate) name: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) description: &'static str,
}

pub(crate) const RECORDS_READ: Name = Name {
    name: "sliq.records.read",
    unit: "{record}",
    description: "Records polled from the source topics.",
};
pub(crate) const RECORDS: Name = Name {
    name: "sliq.records",
    unit: "{record}",
    description: "Records by outcome: accepted (counted in a window), late, dead_lettered (with \
                  sliq.dead_letter.reason), replayed.",
};
pub(crate) const ARCHIVE_ROWS: Name = Name {
    name: "sliq.archive.rows",
    unit: "{row}",
    description: "Rows in published archive files.",
};
pub(crate) const ARCHIVE_FILES: Name = Name {
    name: "sliq.archive.files",
    unit: "{file}",
    description: "Archive files published.",
};
pub(crate) const ARCHIVE_SIZE: Name = Name {
    name: "sliq.archive.size",
    unit: "By",
    description: "Bytes of the archive files published.",
};
pub(crate) const STAGE_DURATION: Name = Name {
    name: "sliq.stage.duration",
    unit: "s",
    description: "Time one step of a stage took, by sliq.stage: poll (one wait for records), \
                  batch (decode, judge, count and archive one poll batch), archive_write (encode, \
                  write and fsync one archive file), export (one OTLP request), commit (one offset \
                  commit call), checkpoint (one whole checkpoint cycle).",
};
pub(crate) const EXPORT_FAILURES: Name = Name {
    name: "sliq.export.failures",
    unit: "{request}",
    description: "OTLP export requests the collector refused or did not answer (each is retried).",
};
pub(crate) const COMMIT_FAILURES: Name = Name {
    name: "sliq.commit.failures",
    unit: "{commit}",
    description: "Offset commits that failed (each is retried at the next checkpoint).",
};
pub(crate) const DEAD_LETTER_FAILURES: Name = Name {
    name: "sliq.dead_letter.failures",
    unit: "{delivery}",
    description: "Dead-letter deliveries the dead-letter topic refused (each is retried).",
};
pub(crate) const LEDGER_PARTIALS: Name = Name {
    name: "sliq.ledger.partials",
    unit: "{partial}",
    description: "Partials the ledger read from the window topic, by sliq.partial.outcome: \
                  applied (counted), repeated (a copy already counted), refused (from a reader \
                  that no longer owns the partition; its new owner counts those records).",
};
pub(crate) const CONSUMER_LAG: Name = Name {
    name: "sliq.consumer.lag",
    unit: "{record}",
    description: "Per assigned partition: the high-water mark minus the group's committed offset \
                  (librdkafka's statistics, every second).",
};
pub(crate) const BUFFERED: Name = Name {
    name: "sliq.buffered.bytes",
    unit: "By",
    description: "Bytes held in memory by sliq.stage: archive (rows not yet written), export \
                  (requests not yet acknowledged).",
};
pub(crate) const BUFFER_LIMIT: Name = Name {
    name: "sliq.buffered.limit",
    unit: "By",
    description: "The most sliq.buffered.bytes may hold per sliq.stage before reading waits \
                  (archive.max_buffered_bytes, export.otlp.max_backlog_bytes).",
};

/// Every instrument, for the README's list and its test.
#[cfg(test)]
pub(crate) const ALL: [Name; 13] = [
    RECORDS_READ,
    RECORDS,
    ARCHIVE_ROWS,
    ARCHIVE_FILES,
    ARCHIVE_SIZE,
    STAGE_DURATION,
    EXPORT_FAILURES,
    COMMIT_FAILURES,
    DEAD_LETTER_FAILURES,
    LEDGER_PARTIALS,
    CONSUMER_LAG,
    BUFFERED,
    BUFFER_LIMIT,
];

/// Attribute keys.
pub(crate) const OUTCOME: &str = "sliq.record.outcome";
pub(crate) const REASON: &str = "sliq.dead_letter.reason";
pub(crate) const PARTIAL_OUTCOME: &str = "sliq.partial.outcome";
pub(crate) const STAGE: &str = "sliq.stage";
pub(crate) const TOPIC: &str = "messaging.destination.name";
pub(crate) const PARTITION: &str = "messaging.destination.partition.id";

/// Bucket bounds of the stage durations, in seconds: from half a millisecond (one poll batch) to
/// the export timeout's range.
pub(crate) const DURATION_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_readme_lists_every_self_metric_with_its_unit() {
        let readme = include_str!("../../../../README.md");
        for n in super::ALL {
            let entry = format!("`{}` (`{}`)", n.name, n.unit);
            assert!(readme.contains(&entry), "README.md lacks {entry}");
        }
    }
}
