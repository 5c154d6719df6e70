//! Event-time tumbling windows closed by a watermark, with allowed lateness.
//!
//! The watermark is the slowest live source's newest event time minus the allowed out-of-orderness:
//! a partition that lags holds every window open, so a backlog on one partition never turns its
//! events late. A source the runtime declares idle stops holding the watermark back.
//!
//! A window `[start, end)` closes once `watermark >= end + allowed_lateness`. An event whose window
//! has closed is *late* only if its own source had passed that window too (the source's newest
//! event time minus the out-of-orderness reaches `end + allowed_lateness`): lateness is a property
//! of the data, not of which instance read it when. An event of a closed window that its source had
//! not passed yet (a partition just taken over, or read again after a crash) *reopens* the window:
//! it is counted there and the window is handed out again at the next [`Windows::close_ready`].
//!
//! Each open window keeps one *part* per source: that source's counts, histograms, waiting verdicts
//! and drift sketches, and the lowest offset that contributed (its *hold*). The runtime must not
//! commit a source's offsets at or past its lowest hold, because those events' counts are not
//! exported yet; and a source's parts are what a checkpoint stores for it
//! ([`Windows::source_snapshot`]), so they can be restored, or handed out alone when the source
//! leaves ([`Windows::drain_source`]).

use std::collections::BTreeMap;

use crate::drift::{Observation, Sketch};
use crate::histogram::{ExpHistogram, LATENCY_SCALE};
use crate::sli::Verdict;
use crate::slo::{Deferred, SeriesId};

/// Window geometry, all in milliseconds of event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    pub size_ms: i64,
    pub allowed_lateness_ms: i64,
    pub max_out_of_orderness_ms: i64,
}

/// A record source (one Kafka topic-partition), as a dense index chosen by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u32);

/// What happened to an event offered to the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Counted,
    Late,
}

/// Good and bad counts of one series in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesCount {
    pub series: SeriesId,
    pub good: u64,
    pub bad: u64,
}

/// Counts leaving the windows, for export.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowCounts {
    pub start_ms: i64,
    pub end_ms: i64,
    pub counts: Vec<SeriesCount>,
    /// Latency histograms by [`crate::LatencySeries`] id.
    pub latencies: Vec<(u32, ExpHistogram)>,
    /// Verdicts waiting for their request's dependencies; [`crate::Evaluator::resolve`] settles
    /// them into `counts`.
    pub deferred: Vec<Deferred>,
    /// `false` for a partial drain of a window that stays open (see [`Windows::drain_source`]).
    pub closed: bool,
    /// Drift sketches by drift series (closed windows only: a partial drain leaves them in the
    /// window, since drift is judged on the whole window).
    pub drift: Vec<(u32, Sketch)>,
    /// Per source, the lowest offset counted here: offsets from it on may not be committed until
    /// these counts are exported.
    pub holds: Vec<(SourceId, i64)>,
}

/// One source's share of an open window, as a checkpoint stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowPart {
    pub start_ms: i64,
    /// The lowest offset of the source counted in this window.
    pub hold: i64,
    /// Records counted in this window (each counts into several series).
    pub records: u64,
    pub counts: Vec<SeriesCount>,
    pub latencies: Vec<(u32, ExpHistogram)>,
    pub deferred: Vec<Deferred>,
    pub drift: Vec<(u32, Sketch)>,
}

/// What the windows know of one source: its newest event time and its parts of open windows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceSnapshot {
    pub newest_ts: Option<i64>,
    pub parts: Vec<WindowPart>,
}

/// One source's share of an open window, dense by series id.
#[derive(Debug)]
struct Part {
    source: SourceId,
    hold: i64,
    records: u64,
    /// Indexed by `SeriesId`: [good, bad].
    counts: Vec<[u64; 2]>,
    latencies: Vec<Option<ExpHistogram>>,
    deferred: Vec<Deferred>,
    drift: Vec<Option<Sketch>>,
}

impl Part {
    fn new(source: SourceId, hold: i64) -> Part {
        Part {
            source,
            hold,
            records: 0,
            counts: Vec::new(),
            latencies: Vec::new(),
            deferred: Vec::new(),
            drift: Vec::new(),
        }
    }

    fn count(&mut self, series: SeriesId, good: u64, bad: u64) {
        let i = series.0 as usize;
        if self.counts.len() <= i {
            self.counts.resize(i + 1, [0, 0]);
        }
        let slot = &mut self.counts[i];
        slot[0] = slot[0].saturating_add(good);
        slot[1] = slot[1].saturating_add(bad);
    }

    fn latency(&mut self, id: u32) -> &mut ExpHistogram {
        let i = id as usize;
        if self.latencies.len() <= i {
            self.latencies.resize(i + 1, None);
        }
        self.latencies[i].get_or_insert_with(|| ExpHistogram::new(LATENCY_SCALE))
    }

    fn sketch(&mut self, series: u32, kind: crate::drift::FeatureKind) -> &mut Sketch {
        let i = series as usize;
        if self.drift.len() <= i {
            self.drift.resize(i + 1, None);
        }
        self.drift[i].get_or_insert_with(|| Sketch::empty(kind))
    }

    fn is_empty(&self) -> bool {
        self.counts.iter().all(|[g, b]| *g == 0 && *b == 0)
            && self.latencies.iter().all(Option::is_none)
            && self.deferred.is_empty()
            && self.drift.iter().all(Option::is_none)
    }
}

#[derive(Debug, Default)]
struct OpenWindow {
    parts: Vec<Part>,
    /// Drift sketches of sources that left (their counts were drained): drift is judged on the
    /// whole window, so they stay until it closes.
    kept_drift: Vec<Option<Sketch>>,
}

impl OpenWindow {
    fn part(&mut self, source: SourceId, offset: i64) -> &mut Part {
        let i = match self.parts.iter().position(|p| p.source == source) {
            Some(i) => i,
            None => {
                // Offsets only grow within a source, so the first one seen is the window's lowest.
                self.parts.push(Part::new(source, offset));
                self.parts.len() - 1
            }
        };
        &mut self.parts[i]
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct SourceState {
    newest_ts: Option<i64>,
    idle: bool,
    live: bool,
}

/// The window store and watermark of one pipeline.
#[derive(Debug)]
pub struct Windows {
    config: WindowConfig,
    open: BTreeMap<i64, OpenWindow>,
    sources: Vec<SourceState>,
    /// Every window ending at or before this has closed.
    closed_before: i64,
}

impl Windows {
    pub fn new(config: WindowConfig) -> Self {
        Windows {
            config,
            open: BTreeMap::new(),
            sources: Vec::new(),
            closed_before: i64::MIN,
        }
    }

    pub fn config(&self) -> WindowConfig {
        self.config
    }

    /// The start of the window holding `ts_ms`.
    fn window_start(&self, ts_ms: i64) -> i64 {
        let size = self.config.size_ms;
        ts_ms.div_euclid(size).saturating_mul(size)
    }

    /// Counts one event's verdicts (and its latency, in seconds, into its latency series) into its
    /// window, or refuses it as late: its window closed, and its own source had passed it.
    pub fn add(
        &mut self,
        source: SourceId,
        offset: i64,
        ts_ms: i64,
        verdicts: &[(SeriesId, Verdict)],
        deferred: &[Deferred],
        latency: Option<(u32, f64)>,
    ) -> Admission {
        let start = self.window_start(ts_ms);
        self.advance_source(source, Some(ts_ms));
        let newest = self.sources[source.0 as usize].newest_ts;
        if self.is_late(start, newest) {
            return Admission::Late;
        }
        let part = self.open.entry(start).or_default().part(source, offset);
        part.records += 1;
        for (series, verdict) in verdicts {
            part.count(*series, verdict.good, verdict.bad);
        }
        part.deferred.extend_from_slice(deferred);
        if let Some((id, seconds)) = latency {
            part.latency(id).record(seconds);
        }
        Admission::Counted
    }

    /// Adds an event's feature values to its window's drift sketches. Call after [`Windows::add`]
    /// counted the event (a late event's window is gone).
    pub fn add_drift(
        &mut self,
        source: SourceId,
        offset: i64,
        ts_ms: i64,
        observations: &[(u32, Observation<'_>)],
    ) {
        if observations.is_empty() {
            return;
        }
        let start = self.window_start(ts_ms);
        let Some(window) = self.open.get_mut(&start) else {
            return;
        };
        let part = window.part(source, offset);
        for (series, value) in observations {
            part.sketch(*series, value.kind()).record(value);
        }
    }

    fn source_mut(&mut self, source: SourceId) -> &mut SourceState {
        let i = source.0 as usize;
        if self.sources.len() <= i {
            self.sources.resize(i + 1, SourceState::default());
        }
        &mut self.sources[i]
    }

    /// Marks a source idle (it stops holding the watermark back) until its next event.
    pub fn set_idle(&mut self, source: SourceId) {
        self.source_mut(source).idle = true;
    }

    /// Registers a source assigned to this pipeline before its first event: until it produces one
    /// (or is declared idle) the watermark does not move, so its first events are never late.
    pub fn add_source(&mut self, source: SourceId) {
        let state = self.source_mut(source);
        state.live = true;
        state.idle = false;
    }

    /// Forgets a source that left this pipeline (a revoked partition). Drain it first: whatever
    /// it still has in open windows is dropped.
    pub fn remove_source(&mut self, source: SourceId) {
        *self.source_mut(source) = SourceState::default();
        for w in self.open.values_mut() {
            w.parts.retain(|p| p.source != source);
        }
        self.open
            .retain(|_, w| !w.parts.is_empty() || w.kept_drift.iter().any(Option::is_some));
    }

    /// The current watermark: `None` while a live, non-idle source has produced no event yet, or
    /// before any has.
    pub fn watermark(&self) -> Option<i64> {
        let mut newest: Option<i64> = None;
        for s in self.sources.iter().filter(|s| s.live && !s.idle) {
            let t = s.newest_ts?;
            newest = Some(newest.map_or(t, |n| n.min(t)));
        }
        newest.map(|t| t.saturating_sub(self.config.max_out_of_orderness_ms))
    }

    /// Closes every window the watermark has passed by the allowed lateness, oldest first, and
    /// hands out again every window reopened since the last call.
    pub fn close_ready(&mut self) -> Vec<WindowCounts> {
        let size = self.config.size_ms;
        if let Some(watermark) = self.watermark() {
            let frontier =
                self.window_start(watermark.saturating_sub(self.config.allowed_lateness_ms));
            self.closed_before = self.closed_before.max(frontier);
        }
        let Some(first_open) = self.closed_before.checked_sub(size - 1) else {
            return Vec::new();
        };
        let still_open = self.open.split_off(&first_open);
        let ready = std::mem::replace(&mut self.open, still_open);
        ready
            .into_iter()
            .map(|(start, w)| emit(start, size, w.parts, w.kept_drift, true))
            .collect()
    }

    /// Closes every open window regardless of the watermark (shutdown, end of a bounded run).
    pub fn close_all(&mut self) -> Vec<WindowCounts> {
        let size = self.config.size_ms;
        let open = std::mem::take(&mut self.open);
        if let Some(last) = open.keys().next_back() {
            self.closed_before = self.closed_before.max(last.saturating_add(size));
        }
        open.into_iter()
            .map(|(start, w)| emit(start, size, w.parts, w.kept_drift, true))
            .collect()
    }

    /// Hands out one source's counts in every open window without closing them, and releases its
    /// holds: the checkpoint before its partition moves to another instance. Its drift sketches
    /// stay, judged with the whole window when it closes.
    pub fn drain_source(&mut self, source: SourceId) -> Vec<WindowCounts> {
        let size = self.config.size_ms;
        let mut drained = Vec::new();
        for (start, w) in &mut self.open {
            let Some(i) = w.parts.iter().position(|p| p.source == source) else {
                continue;
            };
            let mut part = w.parts.swap_remove(i);
            merge_slots(
                &mut w.kept_drift,
                std::mem::take(&mut part.drift),
                Sketch::merge,
            );
            if !part.is_empty() {
                drained.push(emit(*start, size, vec![part], Vec::new(), false));
            }
        }
        self.open
            .retain(|_, w| !w.parts.is_empty() || w.kept_drift.iter().any(Option::is_some));
        drained
    }

    /// The lowest offset of `source` whose counts sit in an open window, if any.
    pub fn hold_floor(&self, source: SourceId) -> Option<i64> {
        self.open
            .values()
            .filter_map(|w| w.parts.iter().find(|p| p.source == source).map(|p| p.hold))
            .min()
    }

    /// Every window ending at or before this has closed (`i64::MIN` before the first close).
    pub fn closed_before(&self) -> i64 {
        self.closed_before
    }

    /// Restores the frontier a checkpoint recorded: windows it had closed stay closed.
    pub fn restore_closed_before(&mut self, closed_before: i64) {
        self.closed_before = self.closed_before.max(closed_before);
    }

    /// What a checkpoint stores for one source: its newest event time and its parts of open
    /// windows, sparse.
    pub fn source_snapshot(&self, source: SourceId) -> SourceSnapshot {
        let newest_ts = self
            .sources
            .get(source.0 as usize)
            .and_then(|s| s.newest_ts);
        let parts = self
            .open
            .iter()
            .filter_map(|(start, w)| {
                let p = w.parts.iter().find(|p| p.source == source)?;
                Some(WindowPart {
                    start_ms: *start,
                    hold: p.hold,
                    records: p.records,
                    counts: sparse_counts(&p.counts),
                    latencies: sparse(p.latencies.iter().cloned()),
                    deferred: p.deferred.clone(),
                    drift: sparse(p.drift.iter().cloned()),
                })
            })
            .collect();
        SourceSnapshot { newest_ts, parts }
    }

    /// Puts back what [`Windows::source_snapshot`] stored, for a source (re)assigned to this
    /// pipeline. A part of a window closed meanwhile reopens it (handed out at the next close).
    pub fn restore_source(&mut self, source: SourceId, snapshot: SourceSnapshot) {
        self.advance_source(source, snapshot.newest_ts);
        for stored in snapshot.parts {
            self.merge_part(source, stored);
        }
    }

    /// Takes one source's parts out of every open window, with its newest event time: what a
    /// reader hands the ledger each cycle (it keeps no window state between cycles). The source
    /// stays live, so it still decides which of its records are late.
    pub fn take_parts(&mut self, source: SourceId) -> SourceSnapshot {
        let snapshot = self.source_snapshot(source);
        for w in self.open.values_mut() {
            w.parts.retain(|p| p.source != source);
        }
        self.open
            .retain(|_, w| !w.parts.is_empty() || w.kept_drift.iter().any(Option::is_some));
        snapshot
    }

    /// Counts a reader's partial for `source` into the windows (the ledger's side of
    /// [`Windows::take_parts`]). A part of a window already closed is late when the source had
    /// passed that window before this partial (then every record in it would have been late one
    /// by one, since a source's event time only grows), and reopens the window otherwise, as
    /// [`Windows::add`] decides for one record. Returns the late parts; then the source's event
    /// time moves.
    pub fn apply_partial(&mut self, source: SourceId, partial: SourceSnapshot) -> Vec<WindowPart> {
        let mut late = Vec::new();
        let passed_before = self
            .sources
            .get(source.0 as usize)
            .and_then(|s| s.newest_ts);
        for part in partial.parts {
            let start = self.window_start(part.start_ms);
            if self.is_late(start, passed_before) {
                late.push(part);
            } else {
                self.merge_part(source, part);
            }
        }
        self.advance_source(source, partial.newest_ts);
        late
    }

    /// Whether the window starting at `start` closed and a source whose newest event time is
    /// `newest` had passed it.
    fn is_late(&self, start: i64, newest: Option<i64>) -> bool {
        let end = start.saturating_add(self.config.size_ms);
        end <= self.closed_before
            && newest.is_some_and(|n| {
                n.saturating_sub(self.config.max_out_of_orderness_ms)
                    >= end.saturating_add(self.config.allowed_lateness_ms)
            })
    }

    fn advance_source(&mut self, source: SourceId, newest_ts: Option<i64>) {
        let state = self.source_mut(source);
        state.live = true;
        state.idle = false;
        state.newest_ts = match (state.newest_ts, newest_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    fn merge_part(&mut self, source: SourceId, stored: WindowPart) {
        let start = self.window_start(stored.start_ms);
        let part = self
            .open
            .entry(start)
            .or_default()
            .part(source, stored.hold);
        part.hold = part.hold.min(stored.hold);
        part.records += stored.records;
        for c in stored.counts {
            part.count(c.series, c.good, c.bad);
        }
        for (id, h) in stored.latencies {
            part.latency(id).merge(&h);
        }
        part.deferred.extend(stored.deferred);
        for (series, sketch) in stored.drift {
            merge_at(&mut part.drift, series as usize, sketch, Sketch::merge);
        }
    }
}

fn sparse_counts(counts: &[[u64; 2]]) -> Vec<SeriesCount> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, [g, b])| *g > 0 || *b > 0)
        .map(|(i, [g, b])| SeriesCount {
            series: SeriesId(i as u32),
            good: *g,
            bad: *b,
        })
        .collect()
}

fn sparse<T>(dense: impl Iterator<Item = Option<T>>) -> Vec<(u32, T)> {
    dense
        .enumerate()
        .filter_map(|(i, x)| x.map(|x| (i as u32, x)))
        .collect()
}

/// Merges the parts of one window (and the drift kept from sources that left) into its counts.
fn emit(
    start: i64,
    size: i64,
    parts: Vec<Part>,
    kept_drift: Vec<Option<Sketch>>,
    closed: bool,
) -> WindowCounts {
    let mut counts: Vec<[u64; 2]> = Vec::new();
    let mut latencies: Vec<Option<ExpHistogram>> = Vec::new();
    let mut drift = kept_drift;
    let mut deferred = Vec::new();
    let mut holds = Vec::with_capacity(parts.len());
    for part in parts {
        holds.push((part.source, part.hold));
        if counts.len() < part.counts.len() {
            counts.resize(part.counts.len(), [0, 0]);
        }
        for (total, [g, b]) in counts.iter_mut().zip(part.counts) {
            total[0] = total[0].saturating_add(g);
            total[1] = total[1].saturating_add(b);
        }
        merge_slots(&mut latencies, part.latencies, ExpHistogram::merge);
        if closed {
            merge_slots(&mut drift, part.drift, Sketch::merge);
        }
        deferred.extend(part.deferred);
    }
    WindowCounts {
        start_ms: start,
        end_ms: start.saturating_add(size),
        counts: sparse_counts(&counts),
        latencies: sparse(latencies.into_iter()),
        deferred,
        closed,
        drift: if closed {
            sparse(drift.into_iter())
        } else {
            Vec::new()
        },
        holds,
    }
}

/// Merges `item` into slot `index` of a dense table (filling an empty slot with it).
pub(crate) fn merge_at<T>(
    slots: &mut Vec<Option<T>>,
    index: usize,
    item: T,
    merge: fn(&mut T, &T),
) {
    if slots.len() <= index {
        slots.resize_with(index + 1, || None);
    }
    match &mut slots[index] {
        Some(s) => merge(s, &item),
        slot => *slot = Some(item),
    }
}

fn merge_slots<T>(into: &mut Vec<Option<T>>, from: Vec<Option<T>>, merge: fn(&mut T, &T)) {
    for (index, x) in from.into_iter().enumerate() {
        if let Some(x) = x {
            merge_at(into, index, x, merge);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WindowConfig {
        WindowConfig {
            size_ms: 60_000,
            allowed_lateness_ms: 0,
            max_out_of_orderness_ms: 0,
        }
    }

    #[test]
    fn a_source_snapshot_restored_elsewhere_closes_to_the_same_counts() {
        let (a, b) = (SourceId(0), SourceId(1));
        let mut w = Windows::new(config());
        let good = [(SeriesId(2), Verdict::GOOD)];
        let bad = [(SeriesId(0), Verdict::BAD)];
        w.add(a, 5, 1_000, &good, &[], Some((3, 0.25)));
        w.add(b, 70, 2_000, &bad, &[], None);
        w.add(a, 6, 61_000, &bad, &[], None);
        w.add(a, 7, 3_000, &good, &[], Some((3, 0.5)));
        let snapshot = w.source_snapshot(a);
        assert_eq!(snapshot.newest_ts, Some(61_000));
        assert_eq!(
            snapshot
                .parts
                .iter()
                .map(|p| (p.start_ms, p.hold))
                .collect::<Vec<_>>(),
            vec![(0, 5), (60_000, 6)]
        );
        // Another process resumes source `a` alone: its windows hold exactly a's share.
        let mut resumed = Windows::new(config());
        resumed.restore_source(SourceId(4), snapshot);
        assert_eq!(resumed.hold_floor(SourceId(4)), Some(5));
        let closed = resumed.close_all();
        assert_eq!(
            closed[0].counts,
            vec![SeriesCount {
                series: SeriesId(2),
                good: 2,
                bad: 0
            }]
        );
        assert_eq!(closed[0].latencies[0].1.count, 2);
        assert_eq!(closed[0].holds, vec![(SourceId(4), 5)]);
        assert_eq!(
            closed[1].counts,
            vec![SeriesCount {
                series: SeriesId(0),
                good: 0,
                bad: 1
            }]
        );
        // The original still merges both sources' parts.
        let all = w.close_all();
        assert_eq!(
            all[0].counts,
            vec![
                SeriesCount {
                    series: SeriesId(0),
                    good: 0,
                    bad: 1
                },
                SeriesCount {
                    series: SeriesId(2),
                    good: 2,
                    bad: 0
                }
            ]
        );
        assert_eq!(all[0].holds, vec![(a, 5), (b, 70)]);
    }
}
