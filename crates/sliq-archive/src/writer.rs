//! The archive writer thread: encodes, compresses and appends row groups, and finishes files, so
//! that none of it stalls the thread that reads Kafka (ARCHITECTURE.md, "Stages and threads").

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::{ArchiveError, ClosedFile, FileModes, io, publish};

/// What the reader hands the writer.
#[derive(Debug)]
pub(crate) enum Job {
    /// One row group of the file being written under `provisional`; `bytes` is what the reader
    /// counted for it, answered with [`Reply::Drained`].
    Chunk {
        provisional: PathBuf,
        batch: RecordBatch,
        bytes: usize,
    },
    /// Write the footer, fsync, and move the file to its hidden pending name
    /// (`temp_name(closed.path)`); answered with [`Reply::Written`].
    Close {
        provisional: PathBuf,
        closed: ClosedFile,
    },
}

/// What the writer answers. After [`Reply::Failed`] the writer stops: a failed write ends the run.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A chunk's bytes left memory.
    Drained(usize),
    /// The file is fsynced under its pending name.
    Written(ClosedFile),
    Failed(ArchiveError),
}

/// Runs until the reader hangs up or a write fails.
pub(crate) fn run(jobs: Receiver<Job>, replies: Sender<Reply>, properties: WriterProperties) {
    let mut files: HashMap<PathBuf, ArrowWriter<File>> = HashMap::new();
    // Per open file, the time spent on it so far.
    let mut spent: HashMap<PathBuf, Duration> = HashMap::new();
    for job in jobs {
        let started = Instant::now();
        let reply = match job {
            Job::Chunk {
                provisional,
                batch,
                bytes,
            } => match write_row_group(&mut files, &provisional, &batch, &properties) {
                Ok(()) => {
                    *spent.entry(provisional).or_default() += started.elapsed();
                    Reply::Drained(bytes)
                }
                Err(e) => Reply::Failed(e),
            },
            Job::Close {
                provisional,
                mut closed,
            } => match finish(files.remove(&provisional), &provisional, &closed) {
                Ok(bytes) => {
                    closed.bytes = bytes;
                    closed.write_time =
                        spent.remove(&provisional).unwrap_or_default() + started.elapsed();
                    Reply::Written(closed)
                }
                Err(e) => Reply::Failed(e),
            },
        };
        let failed = matches!(reply, Reply::Failed(_));
        if replies.send(reply).is_err() || failed {
            return;
        }
    }
}

fn parquet_error(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> ArchiveError {
    let path = path.to_path_buf();
    move |e| ArchiveError::Parquet {
        path,
        detail: e.to_string(),
    }
}

fn write_row_group(
    files: &mut HashMap<PathBuf, ArrowWriter<File>>,
    provisional: &Path,
    batch: &RecordBatch,
    properties: &WriterProperties,
) -> Result<(), ArchiveError> {
    let writer = match files.get_mut(provisional) {
        Some(w) => w,
        None => {
            let folder = provisional.parent().unwrap_or(Path::new("."));
            FileModes::ARCHIVE
                .create_dir_all(folder)
                .map_err(io("create archive directory", folder))?;
            let file = FileModes::ARCHIVE
                .create_file(provisional)
                .map_err(io("create", provisional))?;
            let writer = ArrowWriter::try_new(file, batch.schema(), Some(properties.clone()))
                .map_err(parquet_error(provisional))?;
            files.entry(provisional.to_path_buf()).or_insert(writer)
        }
    };
    writer.write(batch).map_err(parquet_error(provisional))?;
    // One chunk, one row group: the reader already sized it.
    writer.flush().map_err(parquet_error(provisional))
}

fn finish(
    writer: Option<ArrowWriter<File>>,
    provisional: &Path,
    closed: &ClosedFile,
) -> Result<u64, ArchiveError> {
    let Some(writer) = writer else {
        return Err(ArchiveError::Parquet {
            path: closed.path.clone(),
            detail: "the file was closed before any row reached the writer".into(),
        });
    };
    let file = writer.into_inner().map_err(parquet_error(provisional))?;
    file.sync_all().map_err(io("fsync", provisional))?;
    let bytes = file
        .metadata()
        .map_err(io("read the size of", provisional))?
        .len();
    // The pending name carries the offset range, known only now; renamed durably, so that a
    // checkpoint listing the file finds it after a crash.
    publish(provisional, &closed.temp_path())?;
    Ok(bytes)
}
