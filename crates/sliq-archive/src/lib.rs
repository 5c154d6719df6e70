//! The audit archive: every accepted record as typed columns plus its raw bytes, in Parquet files
//! that DuckDB, pyarrow, Polars or DataFusion read directly.
//!
//! Layout: `<dir>/date=YYYY-MM-DD/hour=HH/<topic>.p<partition>.o<first>-<last>.parquet`, Hive
//! partitioned by the event's UTC time, zstd compressed. Each (topic, partition, hour) has at most
//! one open file; a file closes by row count, by age, or when asked.
//!
//! Stages: the caller's thread fills Arrow builders; a writer thread (`sliq-archive`, fed by a
//! bounded channel) encodes, compresses and appends each row group as the builders reach
//! `row_group_bytes`, and finishes files. What is buffered (builders + row groups not yet
//! written) stays within `max_buffered_bytes`: past it [`Archive::append`] waits for the writer.
//!
//! Durability, in two phases (Flink's and Arroyo's two-phase commit of files): a file that closes is
//! written under a hidden `.…inprogress` name and fsynced by the writer, and is *pending* once the
//! caller drains its answer ([`Archive::drain_written`]); until then it counts as in memory for
//! both floors. The pipeline lists the
//! pending files in its checkpoint, and only once the checkpoint is durable are they *published*
//! ([`Archive::publish_pending`]: renamed to their final names, folder fsynced). So every
//! final-named file is listed in a checkpoint, a reader never sees half a file, and at start
//! ([`Archive::new`]) the pending files of the checkpoint being resumed are published while every
//! other unfinished file is removed: their records are replayed. Kafka offsets are committed only
//! below [`Archive::open_floor`].

mod columns;
mod file_modes;
pub mod reader;
pub mod rollups;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use sliq_core::{Admission, Event};

use columns::Columns;
pub use file_modes::FileModes;
use writer::{Job, Reply};

/// Where and how files are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    pub dir: PathBuf,
    /// A file closes when it holds this many rows.
    pub max_rows: usize,
    /// A file closes this long after its first row (checked by [`Archive::roll_due`]).
    pub max_age: Duration,
    pub zstd_level: i32,
    /// An open file's builders go to the writer as one row group at this many bytes.
    pub row_group_bytes: usize,
    /// Bytes in builders plus row groups not yet written, at most (backpressure past it).
    pub max_buffered_bytes: usize,
    /// Who writes (the instance id): its unfinished files carry the name, and only its own are
    /// cleared at start.
    pub writer: String,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            dir: PathBuf::from("sliq-archive"),
            max_rows: 200_000,
            max_age: Duration::from_secs(60),
            zstd_level: 3,
            row_group_bytes: 8 << 20,
            max_buffered_bytes: 128 << 20,
            writer: "sliq".to_owned(),
        }
    }
}

/// An archive file's event hour (ms since the epoch / 3 600 000) and offset range: what a
/// checkpoint lists as written, and what a file's name says once published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchivedRange {
    pub hour: i64,
    pub first: i64,
    pub last: i64,
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
    /// Its size on disk, once written (0 until the writer answers).
    pub bytes: u64,
    /// The writer thread's time on it: encoding, compressing and writing its row groups, the
    /// footer and the fsync (for the `archive_write` stage duration).
    pub write_time: std::time::Duration,
    /// The hidden name it is written under until published.
    temp: PathBuf,
}

impl ClosedFile {
    /// Its event hour and offset range, as a checkpoint lists it.
    pub fn range(&self) -> ArchivedRange {
        ArchivedRange {
            hour: self.hour,
            first: self.first_offset,
            last: self.last_offset,
        }
    }

    fn temp_path(&self) -> PathBuf {
        self.temp.clone()
    }
}

/// The hidden name a file is written under before it is published: it names its writer, so
/// instances sharing one archive folder never take each other's unfinished files for their own.
fn temp_name(path: &Path, writer: &str) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let writer: String = writer
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    path.with_file_name(format!(".{name}.{writer}.inprogress"))
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
    #[error(
        "{path} keeps no raw record for its rows (written under archive.redact.raw: drop): a \
         replay judges each record as the run did, from its raw bytes; replay an archive written \
         with raw: keep (exact) or raw: redact (rules see the redacted text)"
    )]
    NoRawRecord { path: PathBuf },
    #[error("archive.zstd_level {0} is out of range; use 1 to 22")]
    ZstdLevel(i32),
    #[error("cannot start the archive writer thread: {source}")]
    Thread { source: std::io::Error },
    #[error(
        "the archive writer thread stopped without saying why; files it had not finished are \
         written again from Kafka by the next run"
    )]
    WriterStopped,
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
    /// The row group being filled; earlier ones are with the writer.
    columns: Columns,
    /// What `columns` holds, by sliq's own count ([`Columns::push`]).
    buffered: usize,
    /// Where the writer appends its row groups until the file closes.
    provisional: PathBuf,
    first_offset: i64,
    last_offset: i64,
    rows: usize,
    opened_at: Instant,
    /// When it rolls by age ([`age_limit`]).
    max_age: Duration,
}

/// Sent to the writer, not yet answered: still only in memory for the floors.
#[derive(Debug)]
struct Closing {
    topic: String,
    partition: i32,
    first_offset: i64,
    path: PathBuf,
}

/// Columns whose values are nearly all distinct: a dictionary for them is built only to be
/// abandoned at its size limit, and their plain pages compress smaller (BENCHMARKS.md, "Archive
/// encoding").
const DISTINCT_COLUMNS: [&str; 7] = [
    "id",
    "raw",
    "ts",
    "latency_ms",
    "ttft_ms",
    "kafka_offset",
    "ingested_at",
];

/// Chunks and closes queued for the writer before a send waits: the bound that matters is in
/// bytes ([`ArchiveConfig::max_buffered_bytes`]), this only keeps the queue short.
const QUEUED_JOBS: usize = 16;

/// The archive of one pipeline: the reader's side (builders, floors, pending files) of the writer
/// thread it owns.
#[derive(Debug)]
pub struct Archive {
    config: ArchiveConfig,
    /// Few files are open at once (partitions × hours), so a list scanned without allocating
    /// beats a map keyed by owned strings.
    open: Vec<(FileKey, OpenFile)>,
    /// Bytes in the builders of `open`.
    in_builders: usize,
    /// Bytes of chunks sent and not yet answered `Drained`.
    in_flight: usize,
    /// The most `buffered_bytes` reached after an append since [`Archive::take_peak_buffered`].
    peak_buffered: usize,
    /// Files opened so far, which staggers their ages ([`age_limit`]).
    files_opened: u64,
    closing: Vec<Closing>,
    /// Written and fsynced, published after the next checkpoint.
    pending: Vec<ClosedFile>,
    /// Written since the last [`Archive::drain_written`].
    written: Vec<ClosedFile>,
    /// `None` only while dropping, to hang up before joining.
    jobs: Option<SyncSender<Job>>,
    replies: Receiver<Reply>,
    thread: Option<JoinHandle<()>>,
}

const HOUR_MS: i64 = 3_600_000;

/// How old the `opened`-th file this archive opened may grow: `max_age`, less up to seven
/// sixteenths by its place in the order of opening. Files opened together (every partition at
/// start, again at every roll) would otherwise roll together every `max_age`, their builders
/// filling and emptying in step: memory swung with them (BENCHMARKS.md, "Memory under sustained
/// traffic"). By opening order, not partition number, so that any assignment of partitions and
/// topics spreads out; with the builders' half of the bound ([`Archive::send_largest_row_group`])
/// the sum stays level.
fn age_limit(max_age: Duration, opened: u64) -> Duration {
    let step = u32::try_from(opened % 8).unwrap_or(0);
    max_age - max_age / 16 * step
}

impl Archive {
    /// Creates the folder, publishes the files a resumed checkpoint listed as pending (`resumed`,
    /// by final path: a crash may have come before their rename), removes every other
    /// unfinished file a crash left behind (their records are read again), and starts the writer
    /// thread.
    pub fn new(config: ArchiveConfig, resumed: &[PathBuf]) -> Result<Self, ArchiveError> {
        FileModes::ARCHIVE
            .create_dir_all(&config.dir)
            .map_err(io("create archive directory", &config.dir))?;
        for path in resumed {
            let temp = temp_name(path, &config.writer);
            if !path.exists() && temp.exists() {
                publish(&temp, path)?;
            }
        }
        remove_stale(&config.dir, &config.writer)?;
        let level = ZstdLevel::try_new(config.zstd_level)
            .map_err(|_| ArchiveError::ZstdLevel(config.zstd_level))?;
        let properties = DISTINCT_COLUMNS
            .into_iter()
            .fold(
                WriterProperties::builder().set_compression(Compression::ZSTD(level)),
                |properties, column| {
                    properties.set_column_dictionary_enabled(ColumnPath::from(column), false)
                },
            )
            .build();
        let (jobs, job_queue) = mpsc::sync_channel(QUEUED_JOBS);
        let (reply_to, replies) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sliq-archive".into())
            .spawn(move || writer::run(job_queue, reply_to, properties))
            .map_err(|source| ArchiveError::Thread { source })?;
        Ok(Archive {
            config,
            open: Vec::new(),
            in_builders: 0,
            in_flight: 0,
            peak_buffered: 0,
            files_opened: 0,
            closing: Vec::new(),
            pending: Vec::new(),
            written: Vec::new(),
            jobs: Some(jobs),
            replies,
            thread: Some(thread),
        })
    }

    /// Adds one record; `raw` is its bytes as the archive keeps them (`None`: not at all), and
    /// `admission` what its windows did with it (`None`: not known, for a record archived again
    /// after a restart). A file's builders that reach `row_group_bytes` go to the writer as a row
    /// group, a file that reaches `max_rows` closes, and past `max_buffered_bytes` this waits for
    /// the writer (backpressure).
    pub fn append(
        &mut self,
        at: SourcePosition<'_>,
        event: &Event<'_>,
        raw: Option<&[u8]>,
        admission: Option<Admission>,
        ingested_at_ms: i64,
        now: Instant,
    ) -> Result<(), ArchiveError> {
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
                    let provisional =
                        temp_name(&self.file_path(&key, at.offset, None), &self.config.writer);
                    let file = OpenFile {
                        columns: Columns::default(),
                        buffered: 0,
                        provisional,
                        first_offset: at.offset,
                        last_offset: at.offset,
                        rows: 0,
                        opened_at: now,
                        max_age: age_limit(self.config.max_age, self.files_opened),
                    };
                    self.files_opened += 1;
                    self.open.push((key, file));
                    self.open.len() - 1
                }
            };
        let file = &mut self.open[index].1;
        let bytes = file.columns.push(at, event, raw, admission, ingested_at_ms);
        file.buffered += bytes;
        self.in_builders += bytes;
        file.first_offset = file.first_offset.min(at.offset);
        file.last_offset = file.last_offset.max(at.offset);
        file.rows += 1;
        if file.rows >= self.config.max_rows {
            self.close(index)?;
        } else if file.buffered >= self.config.row_group_bytes {
            self.send_row_group(index)?;
        } else if self.in_builders > self.config.max_buffered_bytes / 2 {
            self.send_largest_row_group()?;
        }
        self.stay_within_bound()?;
        self.peak_buffered = self.peak_buffered.max(self.buffered_bytes());
        Ok(())
    }

    /// Bytes held for the archive: rows in builders plus row groups the writer has not finished.
    pub fn buffered_bytes(&self) -> usize {
        self.in_builders + self.in_flight
    }

    /// The most [`Archive::buffered_bytes`] reached after an append since the last call (at most
    /// `max_buffered_bytes`), for the `sliq.buffered.bytes` gauge; starts again from now.
    pub fn take_peak_buffered(&mut self) -> usize {
        let now = self.buffered_bytes();
        std::mem::replace(&mut self.peak_buffered, now)
    }

    /// Past the bound the reader waits for the writer; a builder goes out early only while
    /// nothing is in flight to wait for. (The builders hold at most half the bound, so past it
    /// most is in flight: sending more would only make a smaller row group, not less memory.)
    fn stay_within_bound(&mut self) -> Result<(), ArchiveError> {
        let max = self.config.max_buffered_bytes;
        if self.buffered_bytes() <= max {
            return Ok(());
        }
        self.receive(false)?;
        while self.buffered_bytes() > max {
            if self.in_flight == 0 {
                self.send_largest_row_group()?;
            } else {
                self.receive(true)?;
            }
        }
        Ok(())
    }

    /// Builders together stay under half of `max_buffered_bytes` (the other half is for row
    /// groups on their way through the writer): past it, the largest goes out early. Files filled
    /// at one pace would otherwise reach `row_group_bytes` together and leave together, and memory
    /// would swing by their sum; this spreads them out, so that what the builders hold stays level.
    fn send_largest_row_group(&mut self) -> Result<(), ArchiveError> {
        let largest = (0..self.open.len()).max_by_key(|&i| self.open[i].1.buffered);
        match largest {
            Some(i) => self.send_row_group(i),
            None => Ok(()),
        }
    }

    /// Hands the builders of open file `index` to the writer as one row group.
    fn send_row_group(&mut self, index: usize) -> Result<(), ArchiveError> {
        let file = &mut self.open[index].1;
        if file.buffered == 0 {
            return Ok(());
        }
        let batch = std::mem::take(&mut file.columns).finish();
        let bytes = std::mem::take(&mut file.buffered);
        let provisional = file.provisional.clone();
        self.in_builders -= bytes;
        self.in_flight += bytes;
        self.send(Job::Chunk {
            provisional,
            batch,
            bytes,
        })
    }

    fn send(&mut self, job: Job) -> Result<(), ArchiveError> {
        match &self.jobs {
            Some(jobs) if jobs.send(job).is_ok() => Ok(()),
            // The writer stopped: its reply says why.
            _ => Err(self.writer_stopped()),
        }
    }

    /// Takes the writer's answers: every one waiting, or (`wait`) at least one.
    fn receive(&mut self, wait: bool) -> Result<(), ArchiveError> {
        let mut first = wait;
        loop {
            let reply = if first {
                first = false;
                match self.replies.recv() {
                    Ok(r) => r,
                    Err(_) => return Err(self.writer_stopped()),
                }
            } else {
                match self.replies.try_recv() {
                    Ok(r) => r,
                    Err(_) => return Ok(()),
                }
            };
            match reply {
                Reply::Drained(bytes) => self.in_flight -= bytes,
                Reply::Written(file) => {
                    self.closing.retain(|c| c.path != file.path);
                    self.pending.push(file.clone());
                    self.written.push(file);
                }
                Reply::Failed(e) => return Err(e),
            }
        }
    }

    /// Why the writer is gone: the error it sent last, or that it ended without one.
    fn writer_stopped(&mut self) -> ArchiveError {
        while let Ok(reply) = self.replies.try_recv() {
            if let Reply::Failed(e) = reply {
                return e;
            }
        }
        ArchiveError::WriterStopped
    }

    /// Files the writer finished since the last call; they are pending from now on. Never waits.
    pub fn drain_written(&mut self) -> Result<Vec<ClosedFile>, ArchiveError> {
        self.receive(false)?;
        Ok(std::mem::take(&mut self.written))
    }

    /// Waits until every file sent to close is written, then drains them like
    /// [`Archive::drain_written`].
    pub fn wait_written(&mut self) -> Result<Vec<ClosedFile>, ArchiveError> {
        while !self.closing.is_empty() {
            self.receive(true)?;
        }
        self.drain_written()
    }

    /// Sends files older than their age limit to close; they are pending once written.
    pub fn roll_due(&mut self, now: Instant) -> Result<(), ArchiveError> {
        self.close_where(|f| now.duration_since(f.opened_at) >= f.max_age)
    }

    /// Closes every open file and waits until all are written (pending): before partitions move
    /// and at a stop. Returns the files written since the last drain.
    pub fn close_all(&mut self) -> Result<Vec<ClosedFile>, ArchiveError> {
        self.close_where(|_| true)?;
        self.wait_written()
    }

    fn close_where(&mut self, mut due: impl FnMut(&OpenFile) -> bool) -> Result<(), ArchiveError> {
        let mut i = 0;
        while i < self.open.len() {
            if due(&self.open[i].1) {
                self.close(i)?;
            } else {
                i += 1;
            }
        }
        Ok(())
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

    /// The lowest offset of (topic, partition) still only in memory (in builders, or sent to
    /// the writer and not yet written): a checkpoint lists the pending files, so a resumed run
    /// re-archives from here.
    pub fn unwritten_floor(&self, topic: &str, partition: i32) -> Option<i64> {
        let open = self
            .open
            .iter()
            .filter(|(k, _)| k.partition == partition && k.topic == topic)
            .map(|(_, f)| f.first_offset);
        let closing = self
            .closing
            .iter()
            .filter(|c| c.partition == partition && c.topic == topic)
            .map(|c| c.first_offset);
        open.chain(closing).min()
    }

    /// Files written and fsynced (and drained) but not yet published.
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

    /// Where the file of `key` starting at `first` goes; without `last` (still open), the name
    /// of its provisional file.
    fn file_path(&self, key: &FileKey, first: i64, last: Option<i64>) -> PathBuf {
        let start = chrono::DateTime::from_timestamp_millis(key.hour * HOUR_MS).unwrap_or_default();
        let folder = self
            .config
            .dir
            .join(start.format("date=%Y-%m-%d").to_string())
            .join(start.format("hour=%H").to_string());
        let name = match last {
            Some(last) => format!(
                "{}.p{}.o{first:020}-{last:020}.parquet",
                key.topic, key.partition
            ),
            None => format!("{}.p{}.o{first:020}.open.parquet", key.topic, key.partition),
        };
        folder.join(name)
    }

    /// The files already published for (topic, partition) that hold offsets at or after `from`,
    /// read back from the folder (their names carry hour and offset range). A reader taking a
    /// partition over in an archive folder shared with its previous owner does not write their
    /// records again.
    pub fn published(&self, topic: &str, partition: i32, from: i64) -> Vec<ArchivedRange> {
        let prefix = format!("{topic}.p{partition}.o");
        let mut found = Vec::new();
        let folders = |dir: &Path, key: &str| -> Vec<(String, PathBuf)> {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.strip_prefix(key)?.to_owned();
                    Some((name, e.path()))
                })
                .collect()
        };
        for (date, date_dir) in folders(&self.config.dir, "date=") {
            let Ok(day) = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d") else {
                continue;
            };
            for (hour, hour_dir) in folders(&date_dir, "hour=") {
                let Some(start) = hour
                    .parse::<u32>()
                    .ok()
                    .and_then(|h| day.and_hms_opt(h, 0, 0))
                else {
                    continue;
                };
                let hour = start.and_utc().timestamp_millis().div_euclid(HOUR_MS);
                for (range, _) in folders(&hour_dir, &prefix) {
                    let Some((first, last)) = range
                        .strip_suffix(".parquet")
                        .and_then(|r| r.split_once('-'))
                        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    else {
                        continue;
                    };
                    if last >= from {
                        found.push(ArchivedRange { hour, first, last });
                    }
                }
            }
        }
        found
    }

    /// Sends the last row group and the close; the file is pending once its `Written` is drained.
    fn close(&mut self, index: usize) -> Result<(), ArchiveError> {
        self.send_row_group(index)?;
        let (key, file) = self.open.swap_remove(index);
        let path = self.file_path(&key, file.first_offset, Some(file.last_offset));
        self.closing.push(Closing {
            topic: key.topic.clone(),
            partition: key.partition,
            first_offset: file.first_offset,
            path: path.clone(),
        });
        let closed = ClosedFile {
            temp: temp_name(&path, &self.config.writer),
            path,
            topic: key.topic,
            partition: key.partition,
            first_offset: file.first_offset,
            last_offset: file.last_offset,
            rows: file.rows,
            hour: key.hour,
            bytes: 0,
            write_time: std::time::Duration::ZERO,
        };
        self.send(Job::Close {
            provisional: file.provisional,
            closed,
        })
    }
}

impl Drop for Archive {
    /// Hangs up and joins the writer: files still open stay unfinished (hidden, removed at the
    /// next start; their records are replayed).
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

/// Writes a small state file durably: to a hidden temporary name, fsynced, then published; with
/// the state's modes ([`FileModes::STATE`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    FileModes::STATE
        .create_dir_all(folder)
        .map_err(io("create state directory", folder))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let temp = folder.join(format!(".{name}.inprogress"));
    let mut file = FileModes::STATE
        .create_file(&temp)
        .map_err(io("create", &temp))?;
    std::io::Write::write_all(&mut file, bytes).map_err(io("write", &temp))?;
    file.sync_all().map_err(io("fsync", &temp))?;
    publish(&temp, path)
}

fn remove_stale(dir: &Path, writer: &str) -> Result<(), ArchiveError> {
    let entries = std::fs::read_dir(dir).map_err(io("read archive directory", dir))?;
    let own = temp_name(Path::new("x"), writer)
        .to_string_lossy()
        .trim_start_matches(".x")
        .to_owned();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            remove_stale(&path, writer)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') && n.ends_with(&own))
        {
            std::fs::remove_file(&path).map_err(io("remove unfinished file", &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
