//! Reading the archive back: the raw records of an event-time range, for `sliq baseline`, and
//! hour by hour in event-time order with where each came from, for `sliq replay` and `sliq report`.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMillisecondType};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{ArchiveError, io};

/// What a read covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadSummary {
    pub files: usize,
    /// Rows in range, handed to the callback.
    pub rows: u64,
}

/// Calls `f(ts_ms, raw)` for every archived record with `from_ms <= ts < to_ms` (either bound
/// optional) that kept its raw bytes (not under `archive.redact.raw: drop`), file by file in
/// path order. Files still being written (hidden `.inprogress`) are
/// skipped.
pub fn for_each_raw(
    dir: &Path,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    mut f: impl FnMut(i64, &[u8]),
) -> Result<ReadSummary, ArchiveError> {
    let mut files = Vec::new();
    collect_parquet(dir, &mut files)?;
    files.sort();
    let mut summary = ReadSummary::default();
    for path in files {
        let bad_file = |detail: String| ArchiveError::Parquet {
            path: path.clone(),
            detail,
        };
        let file = File::open(&path).map_err(io("open", &path))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad_file(e.to_string()))?;
        let schema = builder.parquet_schema();
        let wanted: Vec<usize> = ["ts", "raw"]
            .iter()
            .map(|name| {
                (0..schema.num_columns())
                    .find(|i| schema.column(*i).name() == *name)
                    .ok_or_else(|| bad_file(format!("no column {name}; not a sliq archive file")))
            })
            .collect::<Result<_, _>>()?;
        let mask = ProjectionMask::leaves(schema, wanted);
        let reader = builder
            .with_projection(mask)
            .build()
            .map_err(|e| bad_file(e.to_string()))?;
        summary.files += 1;
        for batch in reader {
            let batch = batch.map_err(|e| bad_file(e.to_string()))?;
            let ts = batch
                .column_by_name("ts")
                .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
                .ok_or_else(|| bad_file("ts is not a timestamp".into()))?;
            let raw = batch
                .column_by_name("raw")
                .and_then(|c| c.as_binary_opt::<i32>())
                .ok_or_else(|| bad_file("raw is not binary".into()))?;
            for i in 0..batch.num_rows() {
                if ts.is_null(i) || raw.is_null(i) {
                    continue;
                }
                let t = ts.value(i);
                if from_ms.is_some_and(|from| t < from) || to_ms.is_some_and(|to| t >= to) {
                    continue;
                }
                summary.rows += 1;
                f(t, raw.value(i));
            }
        }
    }
    Ok(summary)
}

fn collect_parquet(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ArchiveError> {
    for entry in std::fs::read_dir(dir).map_err(io("read archive directory", dir))? {
        let path = entry.map_err(io("read archive directory", dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            collect_parquet(&path, out)?;
        } else if name.ends_with(".parquet")
            && !name.starts_with('.')
            && !name.starts_with("rollups-")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// One archived record as a replay reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedRecord {
    pub ts_ms: i64,
    /// The record as the archive kept it (`archive.redact.raw`: as it arrived, or redacted).
    pub raw: Vec<u8>,
    /// Whether the run refused it as late for its window; `None` when the file does not say
    /// (written before sliq recorded it, or archived again after a restart).
    pub late: Option<bool>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The archive's files grouped by event hour (their `date=…/hour=…` folder), oldest first.
#[derive(Debug, Clone, Default)]
pub struct ArchiveScan {
    hours: Vec<Vec<PathBuf>>,
    /// Rows in every file (by the files' footers, before any time range).
    pub rows: u64,
    pub files: usize,
}

/// Columns a replay reads.
const REPLAY_COLUMNS: [&str; 6] = [
    "ts",
    "raw",
    "late",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
];

impl ArchiveScan {
    /// Lists the published files under `dir` (hidden files still being written are not read) and
    /// counts their rows from the footers.
    pub fn open(dir: &Path) -> Result<ArchiveScan, ArchiveError> {
        let mut files = Vec::new();
        collect_parquet(dir, &mut files)?;
        files.sort();
        let mut scan = ArchiveScan {
            files: files.len(),
            ..ArchiveScan::default()
        };
        let mut folder: Option<PathBuf> = None;
        for path in files {
            let file = File::open(&path).map_err(io("open", &path))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
                ArchiveError::Parquet {
                    path: path.clone(),
                    detail: e.to_string(),
                }
            })?;
            scan.rows += u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
            // `date=YYYY-MM-DD/hour=HH` sorts in time order, so one folder follows the other.
            let parent = path.parent().map(Path::to_path_buf);
            if parent != folder || scan.hours.is_empty() {
                scan.hours.push(Vec::new());
                folder = parent;
            }
            if let Some(hour) = scan.hours.last_mut() {
                hour.push(path);
            }
        }
        Ok(scan)
    }

    /// Calls `f` once per event hour with its records of `from_ms <= ts < to_ms` (either bound
    /// optional), sorted by event time (then topic, partition, offset: the same order every
    /// time), so one hour of records is in memory at a time. A file whose rows keep no raw bytes
    /// (`archive.redact.raw: drop`) cannot be replayed: that is an error naming it.
    pub fn for_each_hour<E: From<ArchiveError>>(
        &self,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        mut f: impl FnMut(&[ArchivedRecord]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut records = Vec::new();
        for hour in &self.hours {
            records.clear();
            for path in hour {
                read_for_replay(path, from_ms, to_ms, &mut records)?;
            }
            records.sort_by(|a: &ArchivedRecord, b| {
                (a.ts_ms, &a.topic, a.partition, a.offset).cmp(&(
                    b.ts_ms,
                    &b.topic,
                    b.partition,
                    b.offset,
                ))
            });
            if !records.is_empty() {
                f(&records)?;
            }
        }
        Ok(())
    }
}

fn read_for_replay(
    path: &Path,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    out: &mut Vec<ArchivedRecord>,
) -> Result<(), ArchiveError> {
    let bad_file = |detail: String| ArchiveError::Parquet {
        path: path.to_path_buf(),
        detail,
    };
    let file = File::open(path).map_err(io("open", path))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad_file(e.to_string()))?;
    let schema = builder.parquet_schema();
    // `late` is absent from files written before sliq recorded it.
    let wanted: Vec<usize> = (0..schema.num_columns())
        .filter(|i| REPLAY_COLUMNS.contains(&schema.column(*i).name()))
        .collect();
    let mask = ProjectionMask::leaves(schema, wanted);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| bad_file(e.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|e| bad_file(e.to_string()))?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| bad_file(format!("no column {name}; not a sliq archive file")))
        };
        let ts = column("ts")?
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| bad_file("ts is not a timestamp".into()))?;
        let raw = column("raw")?
            .as_binary_opt::<i32>()
            .ok_or_else(|| bad_file("raw is not binary".into()))?;
        let topic = column("kafka_topic")?
            .as_string_opt::<i32>()
            .ok_or_else(|| bad_file("kafka_topic is not text".into()))?;
        let partition = column("kafka_partition")?
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| bad_file("kafka_partition is not a 32-bit integer".into()))?;
        let offset = column("kafka_offset")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| bad_file("kafka_offset is not a 64-bit integer".into()))?;
        let late = batch
            .column_by_name("late")
            .and_then(|c| c.as_boolean_opt());
        for i in 0..batch.num_rows() {
            if ts.is_null(i) {
                continue;
            }
            let t = ts.value(i);
            if from_ms.is_some_and(|from| t < from) || to_ms.is_some_and(|to| t >= to) {
                continue;
            }
            if raw.is_null(i) {
                return Err(ArchiveError::NoRawRecord {
                    path: path.to_path_buf(),
                });
            }
            out.push(ArchivedRecord {
                ts_ms: t,
                raw: raw.value(i).to_vec(),
                late: late.and_then(|l| (!l.is_null(i)).then(|| l.value(i))),
                topic: topic.value(i).to_owned(),
                partition: partition.value(i),
                offset: offset.value(i),
            });
        }
    }
    Ok(())
}
