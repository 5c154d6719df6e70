//! The audit archive: every accepted record as typed columns plus its raw bytes, in Parquet files
//! that DuckDB, pyarrow, Polars or DataFusion read directly.
//!
//! Layout: `<dir>/date=YYYY-MM-DD/hour=HH/<topic>.p<partition>.o<first>-<last>.parquet`, Hive
//! partitioned by the event's UTC time, zstd compressed. Each (topic, partition, hour) has at most
//! one open file; a file closes by row count, by age, or when asked.
//!
//! Durability, in two phases (Flink's and Arroyo's two-phase commit of files): a file that closes is
//! written under a hidden `.…inprogress` name and fsynced: it is *pending*. The pipeline lists the
//! pending files in its checkpoint, and only once the checkpoint is durable are they *published*
//! ([`Archive::publish_pending`]: renamed to their final names, folder fsynced). So every
//! final-named file is listed in a checkpoint, a reader never sees half a file, and at start
//! ([`Archive::new`]) the pending files of the checkpoint being resumed are published while every
//! other unfinished file is removed: their records are replayed. Kafka offsets are committed only
//! below [`Archive::open_floor`].

mod columns;
pub mod reader;
pub mod rollups;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sliq_core::Event;

use columns::Columns;

/// Where and how files are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    pub dir: PathBuf,
    /// A file closes when it holds this many rows.
    pub max_rows: usize,
    /// A file closes this long after its first row (checked by [`Archive::roll_due`]).
    pub max_age: Duration,
    pub zstd_level: i32,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            dir: PathBuf::from("sliq-archive"),
            max_rows: 200_000,
            max_age: Duration::from_secs(60),
            zstd_level: 3,
        }
    }
}

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePosition<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// A file written and fsynced (pending until published).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedFile {
    pub path: PathBuf,
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub rows: usize,
    /// Event hour of its rows: ms since the epoch / 3 600 000.
    pub hour: i64,
}

impl ClosedFile {
    fn temp_path(&self) -> PathBuf {
        temp_name(&self.path)
    }
}

/// The hidden name a file is written under before it is published.
fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.inprogress"))
}

/// Why the archive could not write.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(
        "cannot {action} {path}: {source}; check archive.dir and its permissions and free space"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write Parquet file {path}: {detail}")]
    Parquet { path: PathBuf, detail: String },
    #[error("archive.zstd_level {0} is out of range; use 1 to 22")]
    ZstdLevel(i32),
}

pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io {
        action,
        path,
        source,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileKey {
    topic: String,
    partition: i32,
    /// Event hour: ms since the epoch / 3 600 000.
    hour: i64,
}

#[derive(Debug)]
struct OpenFile {
    columns: Columns,
    first_offset: i64,
    last_offset: i64,
    rows: usize,
    opened_at: Instant,
}

/// The archive writer of one pipeline.
#[derive(Debug)]
pub struct Archive {
    config: ArchiveConfig,
    properties: WriterProperties,
    /// Few files are open at once (partitions × hours), so a list scanned without allocating
    /// beats a map keyed by owned strings.
    open: Vec<(FileKey, OpenFile)>,
    /// Written and fsynced, published after the next checkpoint.
    pending: Vec<ClosedFile>,
}

const HOUR_MS: i64 = 3_600_000;

impl Archive {
    /// Creates the folder, publishes the files a resumed checkpoint listed as pending (`resumed`,
    /// by final path: a crash may have come before their rename), and removes every other
    /// unfinished file a crash left behind (their records are read again).
    pub fn new(config: ArchiveConfig, resumed: &[PathBuf]) -> Result<Self, ArchiveError> {
        std::fs::create_dir_all(&config.dir)
            .map_err(io("create archive directory", &config.dir))?;
        for path in resumed {
            let temp = temp_name(path);
            if !path.exists() && temp.exists() {
                publish(&temp, path)?;
            }
        }
        remove_stale(&config.dir)?;
        let level = ZstdLevel::try_new(config.zstd_level)
            .map_err(|_| ArchiveError::ZstdLevel(config.zstd_level))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .build();
        Ok(Archive {
            config,
            properties,
            open: Vec::new(),
            pending: Vec::new(),
        })
    }

    /// Adds one record; returns the file this row filled up, if it closed (pending).
    pub fn append(
        &mut self,
        at: SourcePosition<'_>,
        event: &Event<'_>,
        raw: &[u8],
        ingested_at_ms: i64,
        now: Instant,
    ) -> Result<Option<ClosedFile>, ArchiveError> {
        let hour = event.ts_ms.div_euclid(HOUR_MS);
        let index =
            match self.open.iter().position(|(k, _)| {
                k.partition == at.partition && k.hour == hour && k.topic == at.topic
            }) {
                Some(i) => i,
                None => {
                    let key = FileKey {
                        topic: at.topic.to_owned(),
                        partition: at.partition,
                        hour,
                    };
                    let file = OpenFile {
                        columns: Columns::default(),
                        first_offset: at.offset,
                        last_offset: at.offset,
                        rows: 0,
                        opened_at: now,
                    };
                    self.open.push((key, file));
                    self.open.len() - 1
                }
            };
        let file = &mut self.open[index].1;
        file.columns.push(at, event, raw, ingested_at_ms);
        file.first_offset = file.first_offset.min(at.offset);
        file.last_offset = file.last_offset.max(at.offset);
        file.rows += 1;
        if file.rows >= self.config.max_rows {
            return self.close(index).map(Some);
        }
        Ok(None)
    }

    /// Closes files older than `max_age` (pending).
    pub fn roll_due(&mut self, now: Instant) -> Result<Vec<ClosedFile>, ArchiveError> {
        let max_age = self.config.max_age;
        self.close_where(|f| now.duration_since(f.opened_at) >= max_age)
    }

    /// Closes every open file (pending).
    pub fn close_all(&mut self) -> Result<Vec<ClosedFile>, ArchiveError> {
        self.close_where(|_| true)
    }

    fn close_where(
        &mut self,
        mut due: impl FnMut(&OpenFile) -> bool,
    ) -> Result<Vec<ClosedFile>, ArchiveError> {
        let mut closed = Vec::new();
        let mut i = 0;
        while i < self.open.len() {
            if due(&self.open[i].1) {
                closed.push(self.close(i)?);
            } else {
                i += 1;
            }
        }
        Ok(closed)
    }

    /// The lowest offset of (topic, partition) in a file not yet published: what a Kafka commit
    /// must stay below.
    pub fn open_floor(&self, topic: &str, partition: i32) -> Option<i64> {
        let pending = self
            .pending
            .iter()
            .filter(|f| f.partition == partition && f.topic == topic)
            .map(|f| f.first_offset);
        self.unwritten_floor(topic, partition)
            .into_iter()
            .chain(pending)
            .min()
    }

    /// The lowest offset of (topic, partition) still only in memory: a checkpoint lists the pending
    /// files, so a resumed run re-archives from here.
    pub fn unwritten_floor(&self, topic: &str, partition: i32) -> Option<i64> {
        self.open
            .iter()
            .filter(|(k, _)| k.partition == partition && k.topic == topic)
            .map(|(_, f)| f.first_offset)
            .min()
    }

    /// Files written and fsynced but not yet published.
    pub fn pending(&self) -> &[ClosedFile] {
        &self.pending
    }

    /// Publishes every pending file: call once a checkpoint listing them is durable.
    pub fn publish_pending(&mut self) -> Result<Vec<ClosedFile>, ArchiveError> {
        for file in &self.pending {
            publish(&file.temp_path(), &file.path)?;
        }
        Ok(std::mem::take(&mut self.pending))
    }

    fn close(&mut self, index: usize) -> Result<ClosedFile, ArchiveError> {
        let (key, file) = self.open.swap_remove(index);
        let start = chrono::DateTime::from_timestamp_millis(key.hour * HOUR_MS).unwrap_or_default();
        let folder = self
            .config
            .dir
            .join(start.format("date=%Y-%m-%d").to_string())
            .join(start.format("hour=%H").to_string());
        std::fs::create_dir_all(&folder).map_err(io("create archive directory", &folder))?;
        let name = format!(
            "{}.p{}.o{:020}-{:020}.parquet",
            key.topic, key.partition, file.first_offset, file.last_offset
        );
        let path = folder.join(&name);
        let batch = file.columns.finish();
        self.write(&temp_name(&path), &batch)?;
        let closed = ClosedFile {
            path,
            topic: key.topic,
            partition: key.partition,
            first_offset: file.first_offset,
            last_offset: file.last_offset,
            rows: file.rows,
            hour: key.hour,
        };
        self.pending.push(closed.clone());
        Ok(closed)
    }

    fn write(&self, temp: &Path, batch: &RecordBatch) -> Result<(), ArchiveError> {
        let parquet_error = |e: parquet::errors::ParquetError| ArchiveError::Parquet {
            path: temp.to_path_buf(),
            detail: e.to_string(),
        };
        let file = File::create(temp).map_err(io("create", temp))?;
        let mut writer = ArrowWriter::try_new(&file, batch.schema(), Some(self.properties.clone()))
            .map_err(parquet_error)?;
        writer.write(batch).map_err(parquet_error)?;
        writer.close().map_err(parquet_error)?;
        file.sync_all().map_err(io("fsync", temp))
    }
}

/// Renames a written, fsynced temporary file to its final name and fsyncs the directory, so the
/// file is either absent or whole after a crash.
pub(crate) fn publish(temp: &Path, path: &Path) -> Result<(), ArchiveError> {
    std::fs::rename(temp, path).map_err(io("rename into place", path))?;
    let folder = path.parent().unwrap_or(Path::new("."));
    File::open(folder)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", folder))
}

/// Writes a small state file durably: to a hidden temporary name, fsynced, then published.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(io("create state directory", folder))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let temp = folder.join(format!(".{name}.inprogress"));
    let mut file = File::create(&temp).map_err(io("create", &temp))?;
    std::io::Write::write_all(&mut file, bytes).map_err(io("write", &temp))?;
    file.sync_all().map_err(io("fsync", &temp))?;
    publish(&temp, path)
}

fn remove_stale(dir: &Path) -> Result<(), ArchiveError> {
    let entries = std::fs::read_dir(dir).map_err(io("read archive directory", dir))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            remove_stale(&path)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') && n.ends_with(".inprogress"))
        {
            std::fs::remove_file(&path).map_err(io("remove unfinished file", &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
