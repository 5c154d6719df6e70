use super::*;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaData;
use sliq_core::{Decoder, FieldMap};
use std::sync::Arc;

fn config(dir: &Path, max_rows: usize) -> ArchiveConfig {
    ArchiveConfig {
        dir: dir.to_path_buf(),
        max_rows,
        max_age: Duration::from_secs(60),
        zstd_level: 3,
        ..ArchiveConfig::default()
    }
}

fn record(id: &str, ts: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","ts":"{ts}","service":"chat","model":"m","labels":{{"tier":"gold"}},"latency_ms":12.5,"evals":{{"f":0.9,"q":{{"score":0.5,"label":"fair"}}}},"flags":{{"h":true}},"tests":{{"passed":3}},"features":{{"x":1}}}}"#).into_bytes()
}

fn append(a: &mut Archive, offset: i64, raw: &[u8], now: Instant) {
    append_keeping(a, offset, raw, Some(raw), now);
}

/// Appends the row decoded from `record`, with `raw` as the bytes the archive keeps of it.
fn append_keeping(a: &mut Archive, offset: i64, record: &[u8], raw: Option<&[u8]>, now: Instant) {
    let d = Decoder::new(FieldMap::default(), 1 << 20);
    let v = d.parse(record).unwrap();
    let e = d.decode(&v).unwrap();
    a.append(
        SourcePosition {
            topic: "logs",
            partition: 2,
            offset,
        },
        &e,
        raw,
        Some(Admission::Counted),
        1_000,
        now,
    )
    .unwrap();
}

fn read(path: &Path) -> RecordBatch {
    let file = File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[test]
fn rows_round_trip_with_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Archive::new(config(dir.path(), 100), &[]).unwrap();
    let now = Instant::now();
    let raw = record("r1", "2026-01-01T10:15:00.250Z");
    append(&mut a, 7, &raw, now);
    let files = a.close_all().unwrap();
    a.publish_pending().unwrap();
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(
        f.path,
        dir.path().join(
            "date=2026-01-01/hour=10/logs.p2.o00000000000000000007-00000000000000000007.parquet"
        )
    );
    let b = read(&f.path);
    assert_eq!(b.num_rows(), 1);
    assert_eq!(
        b.column_by_name("id").unwrap().as_string::<i32>().value(0),
        "r1"
    );
    assert_eq!(
        b.column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>()
            .value(0),
        1_767_262_500_250
    );
    assert_eq!(
        b.column_by_name("latency_ms")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0),
        12.5
    );
    assert!(b.column_by_name("ttft_ms").unwrap().is_null(0));
    assert_eq!(
        b.column_by_name("raw").unwrap().as_binary::<i32>().value(0),
        raw.as_slice()
    );
    assert_eq!(
        b.column_by_name("kafka_offset")
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(0),
        7
    );
    let evals = b.column_by_name("evals").unwrap().as_map();
    let keys = evals.keys().as_string::<i32>();
    let values = evals.values().as_primitive::<Float64Type>();
    assert_eq!((keys.value(0), values.value(0)), ("f", 0.9));
    assert_eq!((keys.value(1), values.value(1)), ("q", 0.5));
    let labels = b.column_by_name("eval_labels").unwrap().as_map();
    assert_eq!(labels.values().as_string::<i32>().value(0), "fair");
    assert_eq!(
        b.column_by_name("tests_passed")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0),
        3.0
    );
    assert!(b.column_by_name("tests_failed").unwrap().is_null(0));
    let late = b.column_by_name("late").unwrap().as_boolean();
    assert!(!late.is_null(0) && !late.value(0), "counted, so not late");
    assert_eq!(
        b.column_by_name("ingested_at")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>()
            .value(0),
        1_000
    );
}

#[test]
fn rolls_by_rows_and_names_offset_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Archive::new(config(dir.path(), 3), &[]).unwrap();
    let now = Instant::now();
    for off in 10..17 {
        append(
            &mut a,
            off,
            &record(&format!("r{off}"), "2026-01-01T10:00:00Z"),
            now,
        );
    }
    let mut closed = a.wait_written().unwrap();
    // Two full files are pending (written, not yet published): they still hold commits back.
    assert_eq!(a.open_floor("logs", 2), Some(10));
    assert_eq!(a.unwritten_floor("logs", 2), Some(16));
    assert_eq!(a.open_floor("logs", 1), None);
    closed.extend(a.close_all().unwrap());
    a.publish_pending().unwrap();
    let ranges: Vec<(i64, i64, usize)> = closed
        .iter()
        .map(|f| (f.first_offset, f.last_offset, f.rows))
        .collect();
    assert_eq!(ranges, vec![(10, 12, 3), (13, 15, 3), (16, 16, 1)]);
    assert_eq!(a.open_floor("logs", 2), None);
    let total: usize = closed.iter().map(|f| read(&f.path).num_rows()).sum();
    assert_eq!(total, 7);
}

#[test]
fn hours_go_to_their_own_folders_and_age_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Archive::new(config(dir.path(), 100), &[]).unwrap();
    let t0 = Instant::now();
    append(&mut a, 1, &record("a", "2026-01-01T10:59:59Z"), t0);
    append(
        &mut a,
        2,
        &record("b", "2026-01-01T11:00:00Z"),
        t0 + Duration::from_secs(30),
    );
    assert_eq!(a.open_floor("logs", 2), Some(1));
    a.roll_due(t0 + Duration::from_secs(60)).unwrap();
    let rolled = a.wait_written().unwrap();
    assert_eq!(rolled.len(), 1);
    assert!(
        rolled[0]
            .path
            .to_string_lossy()
            .contains("date=2026-01-01/hour=10/")
    );
    assert_eq!(a.unwritten_floor("logs", 2), Some(2));
    assert_eq!(a.open_floor("logs", 2), Some(1));
    let rest = a.close_all().unwrap();
    a.publish_pending().unwrap();
    assert!(rest[0].path.to_string_lossy().contains("hour=11/"));
}

#[test]
fn no_unfinished_files_remain_and_stale_ones_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let hour = dir.path().join("date=2026-01-01/hour=10");
    std::fs::create_dir_all(&hour).unwrap();
    std::fs::write(hour.join(".logs.p0.o1-2.parquet.sliq.inprogress"), b"half").unwrap();
    // Another instance writing into the same folder: its file in progress is not ours to remove.
    std::fs::write(hour.join(".logs.p1.o1-2.parquet.other.inprogress"), b"busy").unwrap();
    let mut a = Archive::new(config(dir.path(), 100), &[]).unwrap();
    assert!(!hour.join(".logs.p0.o1-2.parquet.sliq.inprogress").exists());
    assert!(hour.join(".logs.p1.o1-2.parquet.other.inprogress").exists());
    append(
        &mut a,
        1,
        &record("a", "2026-01-01T10:00:00Z"),
        Instant::now(),
    );
    a.close_all().unwrap();
    a.publish_pending().unwrap();
    std::fs::remove_file(hour.join(".logs.p1.o1-2.parquet.other.inprogress")).unwrap();
    let names: Vec<String> = std::fs::read_dir(&hour)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(
        names[0].ends_with(".parquet") && !names[0].starts_with('.'),
        "{names:?}"
    );
}

#[test]
fn unwritable_directory_error_names_the_path() {
    let e = Archive::new(config(Path::new("/proc/sliq-cannot-be-here"), 1), &[]).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("/proc/sliq-cannot-be-here") && text.contains("archive.dir"),
        "{text}"
    );
}

#[test]
fn files_are_published_only_after_the_checkpoint_and_resumed_ones_are_finished() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Archive::new(config(dir.path(), 100), &[]).unwrap();
    append(
        &mut a,
        5,
        &record("a", "2026-01-01T10:00:00Z"),
        Instant::now(),
    );
    append(
        &mut a,
        6,
        &record("b", "2026-01-01T10:00:01Z"),
        Instant::now(),
    );
    assert_eq!(a.unwritten_floor("logs", 2), Some(5));
    let closed = a.close_all().unwrap();
    let path = closed[0].path.clone();
    // Pending: fsynced under the hidden name, invisible to readers, still holding commits back,
    // but no longer only in memory.
    assert!(!path.exists());
    assert_eq!(a.open_floor("logs", 2), Some(5));
    assert_eq!(a.unwritten_floor("logs", 2), None);
    assert_eq!(a.pending().len(), 1);
    // A crash now, resuming a checkpoint that listed the file: the restart publishes it.
    drop(a);
    let b = Archive::new(config(dir.path(), 100), std::slice::from_ref(&path)).unwrap();
    assert!(path.exists());
    assert_eq!(read(&path).num_rows(), 2);
    assert_eq!(b.open_floor("logs", 2), None);
    // A pending file no checkpoint listed is removed: its records are replayed.
    let mut c = Archive::new(config(dir.path(), 100), &[]).unwrap();
    append(
        &mut c,
        7,
        &record("c", "2026-01-01T11:00:00Z"),
        Instant::now(),
    );
    let unlisted = c.close_all().unwrap()[0].path.clone();
    drop(c);
    Archive::new(config(dir.path(), 100), &[]).unwrap();
    let hidden = unlisted.with_file_name(format!(
        ".{}.sliq.inprogress",
        unlisted.file_name().unwrap().to_str().unwrap()
    ));
    assert!(!unlisted.exists() && !hidden.exists());
    assert!(path.exists());
}

fn offsets(batch: &RecordBatch) -> Vec<i64> {
    let column = batch.column_by_name("kafka_offset").unwrap();
    column.as_primitive::<Int64Type>().values().to_vec()
}

fn metadata(path: &Path) -> Arc<ParquetMetaData> {
    let file = File::open(path).unwrap();
    Arc::clone(
        ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .metadata(),
    )
}

fn row_groups(path: &Path) -> usize {
    metadata(path).num_row_groups()
}

#[test]
fn a_file_is_written_in_row_groups_as_its_builders_fill() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ArchiveConfig {
        row_group_bytes: 2_000,
        ..config(dir.path(), 1_000)
    };
    let mut a = Archive::new(cfg, &[]).unwrap();
    let now = Instant::now();
    for off in 0..40 {
        append(
            &mut a,
            off,
            &record(&format!("r{off}"), "2026-01-01T10:00:00Z"),
            now,
        );
        // At most one row group of a file sits in its builders.
        assert!(a.in_builders < 2_000);
    }
    let files = a.close_all().unwrap();
    a.publish_pending().unwrap();
    assert_eq!(files.len(), 1);
    // A record costs a few hundred bytes: several rows per group, several groups per file.
    let groups = row_groups(&files[0].path);
    assert!((4..40).contains(&groups), "{groups} row groups");
    let batch = read(&files[0].path);
    assert_eq!(offsets(&batch), (0..40).collect::<Vec<i64>>());
    let ids = batch.column_by_name("id").unwrap().as_string::<i32>();
    assert_eq!(ids.value(39), "r39");
}

#[test]
fn buffered_bytes_stay_within_the_bound_while_the_writer_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let max = 4_000;
    let cfg = ArchiveConfig {
        // Only the bound sends row groups out: builders of five open files compete for it.
        row_group_bytes: 1 << 20,
        max_buffered_bytes: max,
        ..config(dir.path(), 1_000_000)
    };
    let mut a = Archive::new(cfg, &[]).unwrap();
    let now = Instant::now();
    for off in 0..500 {
        let ts = format!("2026-01-01T1{}:00:00Z", off % 5);
        append(&mut a, off, &record(&format!("r{off}"), &ts), now);
        assert!(a.buffered_bytes() <= max, "{} > {max}", a.buffered_bytes());
    }
    assert!(a.take_peak_buffered() <= max);
    let files = a.close_all().unwrap();
    assert_eq!(a.buffered_bytes(), 0);
    a.publish_pending().unwrap();
    assert_eq!(files.len(), 5);
    let mut all: Vec<i64> = files.iter().flat_map(|f| offsets(&read(&f.path))).collect();
    all.sort_unstable();
    assert_eq!(all, (0..500).collect::<Vec<i64>>());
    assert!(files.iter().all(|f| row_groups(&f.path) > 1));
}

#[test]
fn files_filled_at_one_pace_leave_in_turn_so_the_builders_hold_a_level_amount() {
    let dir = tempfile::tempdir().unwrap();
    let max = 32_000;
    let cfg = ArchiveConfig {
        // Eight open files whose full row groups would fill the whole bound together.
        row_group_bytes: max / 8,
        max_buffered_bytes: max,
        ..config(dir.path(), 1_000_000)
    };
    let mut a = Archive::new(cfg, &[]).unwrap();
    let now = Instant::now();
    let mut held = Vec::new();
    for off in 0..1_600 {
        let ts = format!("2026-01-01T1{}:00:00Z", off % 8);
        append(&mut a, off, &record(&format!("r{off}"), &ts), now);
        held.push(a.in_builders);
    }
    // Once the first files have gone out early, every file is at another point of its fill, and
    // what the builders hold stays between a quarter and a half of the bound, instead of
    // climbing together to the whole of it and dropping to nothing.
    let steady = &held[400..];
    let (lo, hi) = (*steady.iter().min().unwrap(), *steady.iter().max().unwrap());
    assert!(hi <= max / 2, "builders reached {hi} of {max}");
    assert!(lo >= max / 4, "builders fell to {lo} of {max}");
    let files = a.close_all().unwrap();
    a.publish_pending().unwrap();
    let mut all: Vec<i64> = files.iter().flat_map(|f| offsets(&read(&f.path))).collect();
    all.sort_unstable();
    assert_eq!(all, (0..1_600).collect::<Vec<i64>>());
}

#[test]
fn a_file_sent_to_close_holds_both_floors_until_its_written_is_drained() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Archive::new(config(dir.path(), 100), &[]).unwrap();
    let t0 = Instant::now();
    append(&mut a, 5, &record("a", "2026-01-01T10:00:00Z"), t0);
    append(&mut a, 6, &record("b", "2026-01-01T10:00:01Z"), t0);
    a.roll_due(t0 + Duration::from_secs(60)).unwrap();
    // Sent to the writer, no answer taken yet: still in memory for a resumed run and a commit.
    assert!(a.pending().is_empty());
    assert_eq!(a.unwritten_floor("logs", 2), Some(5));
    assert_eq!(a.open_floor("logs", 2), Some(5));
    // A later record of the same hour opens a new file.
    append(&mut a, 7, &record("c", "2026-01-01T10:00:02Z"), t0);
    let written = a.wait_written().unwrap();
    assert_eq!(written.len(), 1);
    assert_eq!(a.pending(), written.as_slice());
    assert_eq!(a.unwritten_floor("logs", 2), Some(7));
    assert_eq!(a.open_floor("logs", 2), Some(5));
    assert!(
        a.drain_written().unwrap().is_empty(),
        "each file is drained once"
    );
    a.publish_pending().unwrap();
    assert_eq!(a.open_floor("logs", 2), Some(7));
}

#[test]
fn a_writer_failure_reaches_the_reader_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Archive::new(config(dir.path(), 100), &[]).unwrap();
    // A plain file where the writer needs the day's folder.
    std::fs::write(dir.path().join("date=2026-01-01"), b"in the way").unwrap();
    append(
        &mut a,
        1,
        &record("a", "2026-01-01T10:00:00Z"),
        Instant::now(),
    );
    let text = a.close_all().unwrap_err().to_string();
    assert!(
        text.contains("date=2026-01-01") && text.contains("archive.dir"),
        "{text}"
    );
    assert_eq!(a.unwritten_floor("logs", 2), Some(1));
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn archive_files_are_group_readable_and_state_files_owner_only_whatever_the_umask() {
    // The test process runs with the usual umask 022, under which plain creation gives 0644 and
    // 0755: the modes below are set explicitly.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let mut a = Archive::new(config(&root, 100), &[]).unwrap();
    append(
        &mut a,
        1,
        &record("a", "2026-01-01T10:00:00Z"),
        Instant::now(),
    );
    let files = a.close_all().unwrap();
    a.publish_pending().unwrap();
    let file = &files[0].path;
    assert_eq!(mode(file), 0o640);
    let hour = file.parent().unwrap();
    for folder in [hour, hour.parent().unwrap(), root.as_path()] {
        assert_eq!(mode(folder), 0o750, "{}", folder.display());
    }

    let state = dir.path().join("state");
    let quarantined = state.join("quarantine").join("t.p0.o1.bin");
    crate::write_atomically(&quarantined, b"record").unwrap();
    assert_eq!(mode(&quarantined), 0o600);
    assert_eq!(mode(quarantined.parent().unwrap()), 0o700);
    assert_eq!(mode(&state), 0o700);
}

#[test]
fn a_row_without_raw_bytes_has_a_null_raw_column_and_is_not_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Archive::new(config(dir.path(), 100), &[]).unwrap();
    let now = Instant::now();
    append_keeping(&mut a, 1, &record("a", "2026-01-01T10:00:00Z"), None, now);
    append(&mut a, 2, &record("b", "2026-01-01T10:00:01Z"), now);
    let files = a.close_all().unwrap();
    a.publish_pending().unwrap();
    let batch = read(&files[0].path);
    let raw = batch.column_by_name("raw").unwrap();
    assert_eq!((raw.is_null(0), raw.is_null(1)), (true, false));
    let mut read_back = Vec::new();
    crate::reader::for_each_raw(dir.path(), None, None, |_, r| read_back.push(r.to_vec())).unwrap();
    assert_eq!(read_back, [record("b", "2026-01-01T10:00:01Z")]);
}

/// A reader taking a partition over in a shared folder learns what its previous owner published
/// from the file names: hour and offset range, for that partition only, from an offset on.
#[test]
fn published_files_are_read_back_from_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Archive::new(config(dir.path(), 2), &[]).unwrap();
    let now = Instant::now();
    for (offset, ts) in [
        (10, "2026-01-01T10:00:00Z"),
        (11, "2026-01-01T10:59:00Z"),
        (12, "2026-01-01T11:00:00Z"),
    ] {
        append(&mut a, offset, &record("r", ts), now);
    }
    a.close_all().unwrap();
    a.publish_pending().unwrap();
    // Another topic's file in the same hour is not this partition's.
    let hour = dir.path().join("date=2026-01-01/hour=10");
    std::fs::write(
        hour.join("logs-eu.p2.o00000000000000000001-00000000000000000002.parquet"),
        b"",
    )
    .unwrap();
    let ten = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z")
        .unwrap()
        .timestamp_millis()
        / HOUR_MS;
    let mut found = a.published("logs", 2, 0);
    found.sort_by_key(|p| p.first);
    assert_eq!(
        found,
        vec![
            ArchivedRange {
                hour: ten,
                first: 10,
                last: 11
            },
            ArchivedRange {
                hour: ten + 1,
                first: 12,
                last: 12
            },
        ]
    );
    assert_eq!(a.published("logs", 2, 12).len(), 1);
    assert!(a.published("logs", 3, 0).is_empty());
}

#[test]
fn files_opened_together_roll_apart_whatever_their_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Archive::new(config(dir.path(), 100), &[]).unwrap();
    let t0 = Instant::now();
    let raw = record("a", "2026-01-01T10:00:00Z");
    let d = Decoder::new(FieldMap::default(), 1 << 20);
    let v = d.parse(&raw).unwrap();
    let e = d.decode(&v).unwrap();
    // Partitions a stagger by partition number would put in step (0 and 8, and partition 0 of
    // two topics), opened in this order.
    for (topic, partition) in [("logs", 0), ("logs", 8), ("other", 0)] {
        let at = SourcePosition {
            topic,
            partition,
            offset: 7,
        };
        a.append(at, &e, Some(&raw), Some(Admission::Counted), 0, t0)
            .unwrap();
    }
    let rolled = |a: &mut Archive, at: Duration| {
        a.roll_due(t0 + at).unwrap();
        let mut p: Vec<(String, i32)> = a
            .wait_written()
            .unwrap()
            .iter()
            .map(|f| (f.topic.clone(), f.partition))
            .collect();
        p.sort_unstable();
        p
    };
    // A 60 s limit, less 1/16 for the second file opened (56.25 s) and 2/16 for the third
    // (52.5 s); the first keeps the whole minute.
    assert!(rolled(&mut a, Duration::from_millis(52_490)).is_empty());
    assert_eq!(
        rolled(&mut a, Duration::from_millis(52_500)),
        [("other".to_owned(), 0)]
    );
    assert!(rolled(&mut a, Duration::from_millis(56_240)).is_empty());
    assert_eq!(
        rolled(&mut a, Duration::from_millis(56_250)),
        [("logs".to_owned(), 8)]
    );
    assert!(rolled(&mut a, Duration::from_millis(59_990)).is_empty());
    assert_eq!(
        rolled(&mut a, Duration::from_secs(60)),
        [("logs".to_owned(), 0)]
    );
}

#[test]
fn distinct_columns_are_written_without_a_dictionary_and_repeated_ones_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Archive::new(config(dir.path(), 1_000), &[]).unwrap();
    let now = Instant::now();
    for off in 0..50 {
        append(
            &mut a,
            off,
            &record(&format!("r{off}"), "2026-01-01T10:00:00Z"),
            now,
        );
    }
    let files = a.close_all().unwrap();
    a.publish_pending().unwrap();
    let metadata = metadata(&files[0].path);
    let group = metadata.row_group(0);
    let dictionary = |name: &str| {
        let column = (0..group.num_columns())
            .map(|i| group.column(i))
            .find(|c| c.column_path().string() == name)
            .unwrap_or_else(|| panic!("no column {name} in the archive schema"));
        column.dictionary_page_offset().is_some()
    };
    // A name that is not a column would leave its dictionary on without a word.
    for name in DISTINCT_COLUMNS {
        assert!(!dictionary(name), "{name} has a dictionary");
    }
    for name in ["service", "model", "status", "kafka_topic"] {
        assert!(dictionary(name), "{name} has no dictionary");
    }
}
