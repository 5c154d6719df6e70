//! Reading the archive back: the raw records of an event-time range, for `sliq baseline`.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMillisecondType;
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
