//! The rollup table: per-minute and per-hour good/bad counts of every series, persisted so a restart
//! does not reset a 30-day budget. Parquet, so it is queryable like the archive.
//!
//! Each instance owns the files named after its `service.instance.id` in the state folder:
//! `rollups-<instance>-<seq>.parquet`, where `seq` is the pipeline checkpoint the file belongs to.
//! A checkpoint appends a small file of the minutes it added (`kind = add`); now and then the
//! instance writes a full snapshot (`kind = minute | hour`), and the files it supersedes are deleted
//! once a later checkpoint is durable. Loading a checkpoint's state first removes files newer than
//! it (their windows are closed again by the replay), then takes the newest snapshot and the appends
//! after it, in order. Files are written under a temporary name, fsynced and renamed, like the
//! archive's.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Int64Array, Int64Builder, MapBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{ArchiveError, FileModes, io};

/// What a row means when loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupKind {
    /// A minute's counts added by one checkpoint: adds to the minute and its hour.
    Add,
    /// A snapshot's minute bucket.
    Minute,
    /// A snapshot's hour bucket.
    Hour,
}

impl RollupKind {
    fn as_str(self) -> &'static str {
        match self {
            RollupKind::Add => "add",
            RollupKind::Minute => "minute",
            RollupKind::Hour => "hour",
        }
    }

    fn parse(s: &str) -> Option<RollupKind> {
        match s {
            "add" => Some(RollupKind::Add),
            "minute" => Some(RollupKind::Minute),
            "hour" => Some(RollupKind::Hour),
            _ => None,
        }
    }
}

/// One persisted bucket of one series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRow {
    pub kind: RollupKind,
    pub slo: String,
    /// Dimension attribute → value, in the SLO's dimension order.
    pub dimensions: Vec<(String, String)>,
    pub start_ms: i64,
    pub good: u64,
    pub bad: u64,
}

/// One instance's rollup files.
#[derive(Debug)]
pub struct RollupStore {
    dir: PathBuf,
    instance: String,
    files: Vec<(u64, PathBuf)>,
    /// Files a snapshot replaced: deleted once a checkpoint at or after the snapshot is durable.
    superseded: Vec<(u64, PathBuf)>,
}

/// Appends after which the next write is a snapshot.
const APPENDS_PER_SNAPSHOT: usize = 120;

impl RollupStore {
    /// Opens the state folder and loads this instance's rows as of checkpoint `resumed` (all of
    /// them without one), in the order they must be applied.
    pub fn open(
        dir: &Path,
        instance: &str,
        resumed: Option<u64>,
    ) -> Result<(RollupStore, Vec<RollupRow>), ArchiveError> {
        FileModes::STATE
            .create_dir_all(dir)
            .map_err(io("create state directory", dir))?;
        let prefix = format!("rollups-{instance}-");
        let mut files: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir)
            .map_err(io("read state directory", dir))?
            .flatten()
        {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(seq) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".parquet"))
                .and_then(|r| r.parse::<u64>().ok())
            {
                if resumed.is_some_and(|r| seq > r) {
                    std::fs::remove_file(&path)
                        .map_err(io("remove rolled-back rollup file", &path))?;
                } else {
                    files.push((seq, path));
                }
            }
        }
        files.sort();
        let mut rows = Vec::new();
        let mut first_kept = 0;
        for (i, (_, path)) in files.iter().enumerate() {
            let file_rows = read(path)?;
            if file_rows.iter().any(|r| r.kind != RollupKind::Add) {
                // A snapshot replaces everything before it.
                rows.clear();
                first_kept = i;
            }
            rows.extend(file_rows);
        }
        let kept = files.split_off(first_kept);
        Ok((
            RollupStore {
                dir: dir.to_path_buf(),
                instance: instance.to_owned(),
                files: kept,
                superseded: files,
            },
            rows,
        ))
    }

    /// Whether the next write should be a snapshot (too many small files).
    pub fn wants_snapshot(&self) -> bool {
        self.files.len() >= APPENDS_PER_SNAPSHOT
    }

    /// Persists rows added by checkpoint `seq` (at most one write per checkpoint).
    pub fn append(&mut self, rows: &[RollupRow], seq: u64) -> Result<(), ArchiveError> {
        if rows.is_empty() {
            return Ok(());
        }
        let path = self.write(rows, seq)?;
        self.files.push((seq, path));
        Ok(())
    }

    /// Persists a full snapshot as checkpoint `seq`; the files it replaces go once a checkpoint
    /// at or after `seq` is durable ([`RollupStore::checkpointed`]).
    pub fn snapshot(&mut self, rows: &[RollupRow], seq: u64) -> Result<(), ArchiveError> {
        let path = self.write(rows, seq)?;
        self.superseded.append(&mut self.files);
        self.files.push((seq, path));
        Ok(())
    }

    /// Checkpoint `seq` is durable: files superseded by a snapshot it covers can go.
    pub fn checkpointed(&mut self, seq: u64) -> Result<(), ArchiveError> {
        let Some(snapshot) = self.files.first().map(|(s, _)| *s) else {
            return Ok(());
        };
        if snapshot > seq {
            return Ok(());
        }
        for (_, old) in self.superseded.drain(..) {
            std::fs::remove_file(&old).map_err(io("remove old rollup file", &old))?;
        }
        Ok(())
    }

    fn write(&mut self, rows: &[RollupRow], seq: u64) -> Result<PathBuf, ArchiveError> {
        let name = format!("rollups-{}-{seq:012}.parquet", self.instance);
        let path = self.dir.join(&name);
        let temp = self.dir.join(format!(".{name}.inprogress"));
        let batch = to_batch(rows);
        let parquet_error = |e: parquet::errors::ParquetError| ArchiveError::Parquet {
            path: temp.clone(),
            detail: e.to_string(),
        };
        let file = FileModes::STATE
            .create_file(&temp)
            .map_err(io("create", &temp))?;
        let mut writer =
            ArrowWriter::try_new(&file, batch.schema(), None).map_err(parquet_error)?;
        writer.write(&batch).map_err(parquet_error)?;
        writer.close().map_err(parquet_error)?;
        file.sync_all().map_err(io("fsync", &temp))?;
        crate::publish(&temp, &path)?;
        Ok(path)
    }
}

fn to_batch(rows: &[RollupRow]) -> RecordBatch {
    let mut kind = StringBuilder::new();
    let mut slo = StringBuilder::new();
    let mut dims = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    let mut start = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut good = Int64Builder::new();
    let mut bad = Int64Builder::new();
    for r in rows {
        kind.append_value(r.kind.as_str());
        slo.append_value(&r.slo);
        for (k, v) in &r.dimensions {
            dims.keys().append_value(k);
            dims.values().append_value(v);
        }
        // Keys and values were appended in pairs.
        let _ = dims.append(true);
        start.append_value(r.start_ms);
        good.append_value(i64::try_from(r.good).unwrap_or(i64::MAX));
        bad.append_value(i64::try_from(r.bad).unwrap_or(i64::MAX));
    }
    let columns: Vec<(&str, Arc<dyn Array>)> = vec![
        ("kind", Arc::new(kind.finish())),
        ("slo", Arc::new(slo.finish())),
        ("dimensions", Arc::new(dims.finish())),
        ("start", Arc::new(start.finish())),
        ("good", Arc::new(good.finish())),
        ("bad", Arc::new(bad.finish())),
    ];
    // Every column has one entry per row and its own builder's type.
    #[allow(clippy::unwrap_used)]
    RecordBatch::try_from_iter(columns).unwrap()
}

fn read(path: &Path) -> Result<Vec<RollupRow>, ArchiveError> {
    let bad_file = |detail: String| ArchiveError::Parquet {
        path: path.to_path_buf(),
        detail,
    };
    let file = File::open(path).map_err(io("open", path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| bad_file(e.to_string()))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad_file(e.to_string()))?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| bad_file(format!("no column {name}; not a sliq rollup file")))
        };
        let (kind, slo, dims, start, good, bad) = (
            column("kind")?,
            column("slo")?,
            column("dimensions")?,
            column("start")?,
            column("good")?,
            column("bad")?,
        );
        let kind = kind
            .as_string_opt::<i32>()
            .ok_or_else(|| bad_file("kind is not text".into()))?;
        let slo = slo
            .as_string_opt::<i32>()
            .ok_or_else(|| bad_file("slo is not text".into()))?;
        let dims = dims
            .as_map_opt()
            .ok_or_else(|| bad_file("dimensions is not a map".into()))?;
        let start = start
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| bad_file("start is not a timestamp".into()))?;
        let counts = |a: &Arc<dyn Array>| -> Result<Int64Array, ArchiveError> {
            a.as_primitive_opt::<Int64Type>()
                .cloned()
                .ok_or_else(|| bad_file("counts are not int64".into()))
        };
        let (good, bad) = (counts(&good)?, counts(&bad)?);
        let keys = dims.keys().as_string::<i32>();
        let values = dims.values().as_string::<i32>();
        for i in 0..batch.num_rows() {
            let kind = RollupKind::parse(kind.value(i))
                .ok_or_else(|| bad_file(format!("unknown kind {:?}", kind.value(i))))?;
            let offsets = dims.value_offsets();
            let (from, to) = (offsets[i] as usize, offsets[i + 1] as usize);
            out.push(RollupRow {
                kind,
                slo: slo.value(i).to_owned(),
                dimensions: (from..to)
                    .map(|j| (keys.value(j).to_owned(), values.value(j).to_owned()))
                    .collect(),
                start_ms: start.value(i),
                good: u64::try_from(good.value(i)).unwrap_or(0),
                bad: u64::try_from(bad.value(i)).unwrap_or(0),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: RollupKind, start_ms: i64, good: u64) -> RollupRow {
        RollupRow {
            kind,
            slo: "avail".into(),
            dimensions: vec![
                ("service".into(), "chat".into()),
                ("tier".into(), "gold".into()),
            ],
            start_ms,
            good,
            bad: 1,
        }
    }

    #[test]
    fn appends_load_in_order_and_a_snapshot_replaces_what_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, rows) = RollupStore::open(dir.path(), "i-1", None).unwrap();
        assert!(rows.is_empty());
        store.append(&[row(RollupKind::Add, 60_000, 5)], 1).unwrap();
        store
            .append(
                &[
                    row(RollupKind::Add, 120_000, 6),
                    row(RollupKind::Add, 180_000, 7),
                ],
                2,
            )
            .unwrap();
        let (_, rows) = RollupStore::open(dir.path(), "i-1", Some(2)).unwrap();
        assert_eq!(
            rows,
            vec![
                row(RollupKind::Add, 60_000, 5),
                row(RollupKind::Add, 120_000, 6),
                row(RollupKind::Add, 180_000, 7)
            ]
        );
        // Another instance's files are not ours.
        let (other, rows) = RollupStore::open(dir.path(), "i-10", None).unwrap();
        assert!(rows.is_empty());
        drop(other);

        let snapshot_then_append = |store: &mut RollupStore| {
            let minutes = [
                row(RollupKind::Minute, 60_000, 18),
                row(RollupKind::Hour, 0, 18),
            ];
            store.snapshot(&minutes, 3).unwrap();
            store
                .append(&[row(RollupKind::Add, 240_000, 8)], 4)
                .unwrap();
        };
        let (mut store, _) = RollupStore::open(dir.path(), "i-1", Some(2)).unwrap();
        snapshot_then_append(&mut store);
        // Checkpoint 3 (the snapshot's) was never written: resuming checkpoint 2 rolls the
        // snapshot and the append after it back, and the superseded files are still there.
        let (mut store, rows) = RollupStore::open(dir.path(), "i-1", Some(2)).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        snapshot_then_append(&mut store);
        store.checkpointed(4).unwrap();
        let (_, rows) = RollupStore::open(dir.path(), "i-1", Some(4)).unwrap();
        assert_eq!(
            rows,
            vec![
                row(RollupKind::Minute, 60_000, 18),
                row(RollupKind::Hour, 0, 18),
                row(RollupKind::Add, 240_000, 8)
            ]
        );
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(
            files, 2,
            "once checkpoint 4 was durable the snapshot's two older files went"
        );
    }
}
