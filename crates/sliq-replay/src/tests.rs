//! The engine on a hand-worked archive: which windows close when, what they count, the budget.

use std::path::Path;
use std::time::Instant;

use sliq_archive::reader::ArchiveScan;
use sliq_archive::{Archive, ArchiveConfig, ArchiveError, SourcePosition};
use sliq_core::{Admission, Decoder, FieldMap};

use crate::{Attainment, Closed, Replay, compare_table};

const SPEC: &str = "
source: { kafka: { brokers: 127.0.0.1:9092, topics: [logs], dead_letter_topic: dlq } }
windows: { size: 1m, allowed_lateness: 30s, max_out_of_orderness: 5s }
slos:
  - { name: availability, objective: 0.9, dimensions: [service], sli: { availability: {} } }
";

/// (partition, offset, event time in seconds, ok, late, raw kept)
type Row = (i32, i64, i64, bool, Option<Admission>, bool);

fn archive(dir: &Path, rows: &[Row]) {
    let mut a = Archive::new(
        ArchiveConfig {
            dir: dir.to_path_buf(),
            ..ArchiveConfig::default()
        },
        &[],
    )
    .unwrap();
    let d = Decoder::new(FieldMap::default(), 1 << 20);
    for &(partition, offset, seconds, ok, admission, keep_raw) in rows {
        let status = if ok { "ok" } else { "error" };
        let raw = format!(
            r#"{{"id":"r{partition}-{offset}","ts":{},"service":"chat","status":"{status}"}}"#,
            seconds * 1000
        );
        let v = d.parse(raw.as_bytes()).unwrap();
        let e = d.decode(&v).unwrap();
        let at = SourcePosition {
            topic: "logs",
            partition,
            offset,
        };
        let kept = keep_raw.then_some(raw.as_bytes());
        a.append(at, &e, kept, admission, 0, Instant::now())
            .unwrap();
    }
    a.close_all().unwrap();
    a.publish_pending().unwrap();
}

fn replay(dir: &Path) -> Result<(Replay, Vec<Closed>), ArchiveError> {
    replay_range(dir, (None, None))
}

fn replay_range(
    dir: &Path,
    range: (Option<i64>, Option<i64>),
) -> Result<(Replay, Vec<Closed>), ArchiveError> {
    let spec = sliq_config::parse(SPEC, "spec", |_| None).unwrap();
    let mut replay = Replay::new(&spec).unwrap();
    let mut closes = Vec::new();
    replay.run(
        &ArchiveScan::open(dir)?,
        range,
        |_| {},
        |_, closed: &Closed| -> Result<(), ArchiveError> {
            closes.push(closed.clone());
            Ok(())
        },
    )?;
    Ok((replay, closes))
}

#[test]
fn windows_close_as_the_watermark_passes_and_late_rows_stay_late() {
    let dir = tempfile::tempdir().unwrap();
    let counted = Some(Admission::Counted);
    // Two partitions, two event hours, in no particular order; the row at 50 s was late in the
    // run (its window had closed), so it counts nowhere.
    archive(
        dir.path(),
        &[
            (0, 0, 10, true, counted, true),
            (1, 0, 70, true, counted, true),
            (0, 1, 20, false, counted, true),
            (1, 1, 50, true, Some(Admission::Late), true),
            (0, 2, 120, true, counted, true),
            (1, 2, 3605, true, None, true),
        ],
    );
    let (replay, closes) = replay(dir.path()).unwrap();
    // Window [0, 60 s) closes when the watermark (newest − 5 s) reaches 60 + 30 s: at the record
    // of 120 s. The record of 3605 s closes [60, 120) and [120, 180); the end closes the last.
    let starts: Vec<Vec<i64>> = closes
        .iter()
        .map(|c| c.windows.iter().map(|w| w.start_ms / 1000).collect())
        .collect();
    assert_eq!(starts, vec![vec![0], vec![60, 120], vec![3600]]);
    let counts: Vec<(u64, u64)> = closes
        .iter()
        .flat_map(|c| &c.windows)
        .map(|w| (w.counts[0].good, w.counts[0].bad))
        .collect();
    assert_eq!(counts, vec![(1, 1), (1, 0), (1, 0), (1, 0)]);
    let times: Vec<i64> = closes.iter().map(|c| c.budget_time_ms / 1000).collect();
    assert_eq!(times, vec![60, 180, 3660]);
    let r = replay.counts();
    assert_eq!((r.records.accepted, r.records.late), (5, 1));
    assert_eq!(r.admission_unknown, 1);
    // 1 bad of 5 over the period, with 10% of budget: 1 − 0.2 ÷ 0.1 = −1.
    let last = &closes[2];
    assert!((last.slo_budgets[0].budget_remaining + 1.0).abs() < 1e-12);
    assert!((last.budgets[0].1.budget_remaining + 1.0).abs() < 1e-12);

    let mut attainment = Attainment::new(replay.evaluator());
    for c in &closes {
        attainment.add(replay.evaluator(), c);
    }
    let table = compare_table(&attainment, &attainment);
    let row = table.lines().nth(1).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [
            "availability",
            "90.00%",
            "90.00%",
            "5",
            "5",
            "80.000%",
            "80.000%",
            "-100.0%",
            "-100.0%"
        ]
    );
}

#[test]
fn a_range_replays_only_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let counted = Some(Admission::Counted);
    archive(
        dir.path(),
        &[
            (0, 0, 10, true, counted, true),
            (0, 1, 60, false, counted, true),
            (0, 2, 119, true, counted, true),
            (0, 3, 120, true, counted, true),
        ],
    );
    // [60 s, 120 s): the two records of the second minute, one window.
    let (replay, closes) = replay_range(dir.path(), (Some(60_000), Some(120_000))).unwrap();
    assert_eq!(replay.counts().records.accepted, 2);
    let windows: Vec<(i64, u64, u64)> = closes
        .iter()
        .flat_map(|c| &c.windows)
        .map(|w| (w.start_ms, w.counts[0].good, w.counts[0].bad))
        .collect();
    assert_eq!(windows, vec![(60_000, 1, 1)]);
}

#[test]
fn an_archive_without_raw_records_is_refused_naming_the_file_and_setting() {
    let dir = tempfile::tempdir().unwrap();
    archive(
        dir.path(),
        &[(0, 0, 10, true, Some(Admission::Counted), false)],
    );
    let message = replay(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("hour=00/logs.p0.o") && message.contains(".parquet keeps no raw"),
        "{message}"
    );
    assert!(message.contains("archive.redact.raw: drop"), "{message}");
}
