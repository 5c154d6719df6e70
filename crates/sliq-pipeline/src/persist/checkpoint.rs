//! The checkpoint file: a consistent cut of everything the pipeline knows, written atomically under
//! `state.dir` as `checkpoint-<instance>.json` (see ARCHITECTURE.md, "Checkpoints").
//!
//! Series are stored by SLO name and dimension values, latency series by their attributes, drift
//! series by feature name and values: ids are per process. Each partition is its own entry, so it
//! can be restored alone when (and only if) the partition comes back to this instance.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sliq_archive::ArchivedRange;
use sliq_core::drift::{Features, Sketch, stored_format};
use sliq_core::{
    BadRequest, Deferred, Evaluator, ExpHistogram, LatencyKey, LatencySeries, SeriesCount,
    SeriesId, SourceSnapshot, Verdict, WindowPart,
};
use sliq_otlp::{LatencyTotal, RecordCounts, SeriesTotal};
use tracing::warn;

use crate::error::PipelineError;

/// Bumped whenever the layout changes; a file of another format is not resumed.
pub(crate) const FORMAT: &str = "sliq-checkpoint/2";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) format: String,
    pub(crate) seq: u64,
    /// When the lineage of cumulative series began (their start times derive from it).
    pub(crate) lineage_started_ms: i64,
    /// Every window ending at or before this had closed.
    pub(crate) closed_before: i64,
    pub(crate) records: StoredRecords,
    pub(crate) series: Vec<StoredTotal>,
    pub(crate) latency: Vec<StoredLatencyTotal>,
    /// Requests not yet acknowledged by the collector, oldest first.
    pub(crate) backlog: Vec<StoredExport>,
    /// Archive files written but not yet published: a resumed run publishes them.
    pub(crate) pending_files: Vec<PathBuf>,
    /// The dead-letter topic's end per partition when every letter so far was acknowledged: a
    /// resumed run reads back what follows, so no letter is sent twice.
    pub(crate) dead_letter_ends: Vec<(i32, i64)>,
    /// Requests a dependency judged bad, for the cascades of windows still open.
    pub(crate) bad_requests: Vec<StoredBadRequest>,
    pub(crate) partitions: Vec<PartitionState>,
}

/// What one partition had reached, and its share of the open windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartitionState {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// The first offset not yet counted.
    pub(crate) count_from: i64,
    /// The first offset not yet in a written archive file.
    pub(crate) archive_from: i64,
    /// Archive files (written or pending) holding offsets at or after `archive_from`.
    pub(crate) archived: Vec<ArchivedRange>,
    /// The offset this instance commits for the partition after this checkpoint: if the group's
    /// committed offset is past it when the partition comes back, another instance read it since.
    pub(crate) commit: i64,
    pub(crate) newest_ts: Option<i64>,
    pub(crate) parts: Vec<StoredPart>,
}

/// A request a dependency judged bad (see [`BadRequest`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredBadRequest {
    pointer: String,
    key: String,
    ts_ms: i64,
    slos: Vec<String>,
}

impl From<BadRequest> for StoredBadRequest {
    fn from(r: BadRequest) -> Self {
        StoredBadRequest {
            pointer: r.pointer,
            key: r.key.into(),
            ts_ms: r.ts_ms,
            slos: r.slos,
        }
    }
}

impl From<StoredBadRequest> for BadRequest {
    fn from(r: StoredBadRequest) -> Self {
        BadRequest {
            pointer: r.pointer,
            key: r.key.into(),
            ts_ms: r.ts_ms,
            slos: r.slos,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct StoredRecords {
    accepted: u64,
    dead_lettered: u64,
    late: u64,
    replayed: u64,
}

impl From<RecordCounts> for StoredRecords {
    fn from(r: RecordCounts) -> Self {
        StoredRecords {
            accepted: r.accepted,
            dead_lettered: r.dead_lettered,
            late: r.late,
            replayed: r.replayed,
        }
    }
}

impl From<StoredRecords> for RecordCounts {
    fn from(r: StoredRecords) -> Self {
        RecordCounts {
            accepted: r.accepted,
            dead_lettered: r.dead_lettered,
            late: r.late,
            replayed: r.replayed,
        }
    }
}

/// A series by SLO name and (dimension attribute, value) pairs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SeriesName {
    slo: String,
    dimensions: Vec<(String, String)>,
}

impl SeriesName {
    pub(crate) fn of(evaluator: &Evaluator, series: SeriesId) -> SeriesName {
        let slo = evaluator.slo_of(series);
        SeriesName {
            slo: slo.name.clone(),
            dimensions: slo
                .dimensions
                .iter()
                .zip(evaluator.series(series).values.iter())
                .map(|(d, v)| (d.attribute().to_owned(), v.to_string()))
                .collect(),
        }
    }

    pub(crate) fn intern(&self, evaluator: &mut Evaluator) -> Option<SeriesId> {
        let dims: Vec<(&str, &str)> = self
            .dimensions
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        evaluator.intern(&self.slo, &dims)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredTotal {
    series: SeriesName,
    start_ns: u64,
    time_ns: u64,
    good: u64,
    bad: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredLatencyKey {
    service: String,
    operation: String,
    model: String,
    error_type: Option<String>,
}

impl From<&LatencyKey> for StoredLatencyKey {
    fn from(k: &LatencyKey) -> Self {
        StoredLatencyKey {
            service: k.service.to_string(),
            operation: k.operation.to_string(),
            model: k.model.to_string(),
            error_type: k.error_type.as_ref().map(ToString::to_string),
        }
    }
}

impl From<&StoredLatencyKey> for LatencyKey {
    fn from(k: &StoredLatencyKey) -> Self {
        LatencyKey {
            service: k.service.as_str().into(),
            operation: k.operation.as_str().into(),
            model: k.model.as_str().into(),
            error_type: k.error_type.as_deref().map(Into::into),
        }
    }
}

/// A histogram in JSON: non-finite extremes (an empty histogram's) are absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredHistogram {
    scale: i32,
    zero_count: u64,
    positive: sliq_core::histogram::ExpBuckets,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

impl From<&ExpHistogram> for StoredHistogram {
    fn from(h: &ExpHistogram) -> Self {
        let finite = |v: f64| v.is_finite().then_some(v);
        StoredHistogram {
            scale: h.scale,
            zero_count: h.zero_count,
            positive: h.positive.clone(),
            count: h.count,
            sum: finite(h.sum),
            min: finite(h.min),
            max: finite(h.max),
        }
    }
}

impl From<StoredHistogram> for ExpHistogram {
    fn from(h: StoredHistogram) -> Self {
        ExpHistogram {
            scale: h.scale,
            zero_count: h.zero_count,
            positive: h.positive,
            count: h.count,
            sum: h.sum.unwrap_or(f64::INFINITY),
            min: h.min.unwrap_or(f64::INFINITY),
            max: h.max.unwrap_or(f64::NEG_INFINITY),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredLatencyTotal {
    key: StoredLatencyKey,
    start_ns: u64,
    time_ns: u64,
    histogram: StoredHistogram,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredHold {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

/// A request waiting for the collector: its file under `state.dir/export-backlog`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredExport {
    pub(crate) file: PathBuf,
    pub(crate) holds: Vec<StoredHold>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredCount {
    series: SeriesName,
    good: u64,
    bad: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredDeferred {
    series: SeriesName,
    good: u64,
    bad: u64,
    pointer: usize,
    key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSketch {
    feature: String,
    values: Vec<String>,
    sketch: Sketch,
}

/// One partition's share of one open window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredPart {
    start_ms: i64,
    hold: i64,
    /// Records counted in the window (checkpoints before the ledger did not keep it).
    #[serde(default)]
    records: u64,
    counts: Vec<StoredCount>,
    latencies: Vec<(StoredLatencyKey, StoredHistogram)>,
    deferred: Vec<StoredDeferred>,
    drift: Vec<StoredSketch>,
}

impl StoredPart {
    pub(crate) fn start_ms(&self) -> i64 {
        self.start_ms
    }
}

/// What names the per-process ids of series: the evaluator, the latency series and the drift
/// features.
pub(crate) struct Names<'a> {
    pub(crate) evaluator: &'a mut Evaluator,
    pub(crate) latency: &'a mut LatencySeries,
    pub(crate) features: Option<&'a mut Features>,
}

impl Names<'_> {
    pub(crate) fn store_totals<'t>(
        &self,
        totals: impl Iterator<Item = (SeriesId, &'t SeriesTotal)>,
    ) -> Vec<StoredTotal> {
        totals
            .map(|(id, t)| StoredTotal {
                series: SeriesName::of(self.evaluator, id),
                start_ns: t.start_ns,
                time_ns: t.time_ns,
                good: t.good,
                bad: t.bad,
            })
            .collect()
    }

    pub(crate) fn store_latency_totals<'t>(
        &self,
        totals: impl Iterator<Item = (u32, &'t LatencyTotal)>,
    ) -> Vec<StoredLatencyTotal> {
        totals
            .map(|(id, t)| StoredLatencyTotal {
                key: self.latency.key(id).into(),
                start_ns: t.start_ns,
                time_ns: t.time_ns,
                histogram: (&t.histogram).into(),
            })
            .collect()
    }

    /// The stored totals as ids; series no longer in the spec are dropped (and counted).
    pub(crate) fn restore_totals(
        &mut self,
        stored: Vec<StoredTotal>,
    ) -> (Vec<(SeriesId, SeriesTotal)>, usize) {
        let mut dropped = 0;
        let mut out = Vec::with_capacity(stored.len());
        for t in stored {
            match t.series.intern(self.evaluator) {
                Some(id) => out.push((
                    id,
                    SeriesTotal {
                        start_ns: t.start_ns,
                        time_ns: t.time_ns,
                        good: t.good,
                        bad: t.bad,
                    },
                )),
                None => dropped += 1,
            }
        }
        (out, dropped)
    }

    pub(crate) fn restore_latency_totals(
        &mut self,
        stored: Vec<StoredLatencyTotal>,
    ) -> Vec<(u32, LatencyTotal)> {
        stored
            .into_iter()
            .map(|t| {
                let id = self.latency.intern(&(&t.key).into());
                let total = LatencyTotal {
                    start_ns: t.start_ns,
                    time_ns: t.time_ns,
                    histogram: t.histogram.into(),
                };
                (id, total)
            })
            .collect()
    }

    pub(crate) fn store_parts(&self, parts: &[WindowPart]) -> Vec<StoredPart> {
        parts
            .iter()
            .map(|p| StoredPart {
                start_ms: p.start_ms,
                hold: p.hold,
                records: p.records,
                counts: p
                    .counts
                    .iter()
                    .map(|c| StoredCount {
                        series: SeriesName::of(self.evaluator, c.series),
                        good: c.good,
                        bad: c.bad,
                    })
                    .collect(),
                latencies: p
                    .latencies
                    .iter()
                    .map(|(id, h)| (self.latency.key(*id).into(), h.into()))
                    .collect(),
                deferred: p
                    .deferred
                    .iter()
                    .map(|d| StoredDeferred {
                        series: SeriesName::of(self.evaluator, d.series),
                        good: d.verdict.good,
                        bad: d.verdict.bad,
                        pointer: d.pointer,
                        key: d.key.to_string(),
                    })
                    .collect(),
                drift: match &self.features {
                    Some(features) => p
                        .drift
                        .iter()
                        .map(|(id, sketch)| {
                            let key = features.key(*id);
                            StoredSketch {
                                feature: features.features()[key.feature].name.clone(),
                                values: key.values.iter().map(ToString::to_string).collect(),
                                sketch: sketch.clone(),
                            }
                        })
                        .collect(),
                    None => Vec::new(),
                },
            })
            .collect()
    }

    /// A partition's stored state as a window snapshot; what no longer fits the spec (an SLO or
    /// feature removed, a sketch that does not add up) is dropped and counted.
    pub(crate) fn restore_partition(&mut self, state: &PartitionState) -> (SourceSnapshot, usize) {
        let (parts, dropped) = self.restore_parts(&state.parts);
        let snapshot = SourceSnapshot {
            newest_ts: state.newest_ts,
            parts,
        };
        (snapshot, dropped)
    }

    /// Stored parts (a checkpoint's, or a partial's from another process) with this process's
    /// ids; what no longer fits the spec is dropped and counted.
    pub(crate) fn restore_parts(&mut self, stored: &[StoredPart]) -> (Vec<WindowPart>, usize) {
        let mut dropped = 0;
        let mut parts = Vec::with_capacity(stored.len());
        for p in stored {
            let mut counts = Vec::with_capacity(p.counts.len());
            for c in &p.counts {
                match c.series.intern(self.evaluator) {
                    Some(series) => counts.push(SeriesCount {
                        series,
                        good: c.good,
                        bad: c.bad,
                    }),
                    None => dropped += 1,
                }
            }
            let latencies = p
                .latencies
                .iter()
                .map(|(k, h)| (self.latency.intern(&k.into()), h.clone().into()))
                .collect();
            let mut deferred = Vec::with_capacity(p.deferred.len());
            for d in &p.deferred {
                match d.series.intern(self.evaluator) {
                    Some(series) => deferred.push(Deferred {
                        series,
                        verdict: Verdict {
                            good: d.good,
                            bad: d.bad,
                        },
                        pointer: d.pointer,
                        key: d.key.as_str().into(),
                    }),
                    None => dropped += 1,
                }
            }
            let mut drift = Vec::with_capacity(p.drift.len());
            for s in &p.drift {
                let id = self
                    .features
                    .as_deref_mut()
                    .and_then(|f| f.intern(&s.feature, &s.values));
                match id {
                    Some(id) if s.sketch.is_consistent() => drift.push((id, s.sketch.clone())),
                    _ => dropped += 1,
                }
            }
            parts.push(WindowPart {
                start_ms: p.start_ms,
                hold: p.hold,
                records: p.records,
                counts,
                latencies,
                deferred,
                drift,
            });
        }
        (parts, dropped)
    }
}

fn path(dir: &Path, instance: &str) -> PathBuf {
    dir.join(format!("checkpoint-{instance}.json"))
}

/// Writes the checkpoint atomically (temporary name, fsync, rename, folder fsync).
pub(crate) fn write(
    dir: &Path,
    instance: &str,
    checkpoint: &Checkpoint,
) -> Result<(), PipelineError> {
    let bytes = serde_json::to_vec(checkpoint).map_err(|e| PipelineError::Checkpoint {
        path: path(dir, instance),
        detail: e.to_string(),
    })?;
    sliq_archive::write_atomically(&path(dir, instance), &bytes)?;
    Ok(())
}

/// The checkpoint this instance left, if any. One that cannot be read is reported and not
/// resumed: the run then starts a new lineage (backends see a reset) from the group's offsets.
pub(crate) fn read(dir: &Path, instance: &str) -> Option<Checkpoint> {
    let path = path(dir, instance);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(
                "cannot read the checkpoint {}: {e}; starting without it (new series start times, \
                 records replayed from the group's committed offsets)",
                path.display()
            );
            return None;
        }
    };
    if let Some(format) = stored_format(&bytes).filter(|f| f != FORMAT) {
        warn!(
            "{} has format {format:?}, this sliq resumes {FORMAT:?}; starting without it",
            path.display(),
        );
        return None;
    }
    match serde_json::from_slice::<Checkpoint>(&bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(
                "{} is not a checkpoint ({e}); starting without it (new series start times, \
                 records replayed from the group's committed offsets)",
                path.display()
            );
            None
        }
    }
}
