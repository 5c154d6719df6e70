//! Event-time tumbling windows closed by a watermark, with allowed lateness.
//!
//! The watermark is the slowest live source's newest event time minus the allowed out-of-orderness:
//! a partition that lags holds every window open, so a backlog on one partition never turns its
//! events late. A source the runtime declares idle stops holding the watermark back.
//!
//! A window `[start, end)` closes once `watermark >= end + allowed_lateness`; an event whose window has
//! closed is *late*: not counted (its window's points are already out), but reported so.
//!
//! Each open window also remembers, per source, the lowest offset that contributed to it (a *hold*):
//! the runtime must not commit a source's offsets at or past its lowest hold, because those events'
//! counts are not exported yet.

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
    /// `false` for a partial drain of a window that stays open (see [`Windows::drain_open`]).
    pub closed: bool,
    /// Drift sketches by drift series (closed windows only: a partial drain leaves them in the
    /// window, since drift is judged on the whole window).
    pub drift: Vec<(u32, Sketch)>,
}

#[derive(Debug, Default)]
struct OpenWindow {
    /// Indexed by `SeriesId`: [good, bad].
    counts: Vec<[u64; 2]>,
    latencies: Vec<Option<ExpHistogram>>,
    deferred: Vec<Deferred>,
    holds: Vec<(SourceId, i64)>,
    drift: Vec<Option<Sketch>>,
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

    /// Counts one event's verdicts (and its latency, in seconds, into its latency series) into its
    /// window, or refuses it as late.
    pub fn add(
        &mut self,
        source: SourceId,
        offset: i64,
        ts_ms: i64,
        verdicts: &[(SeriesId, Verdict)],
        deferred: &[Deferred],
        latency: Option<(u32, f64)>,
    ) -> Admission {
        let state = self.source_mut(source);
        state.live = true;
        state.idle = false;
        state.newest_ts = Some(state.newest_ts.map_or(ts_ms, |t| t.max(ts_ms)));

        let start = ts_ms
            .div_euclid(self.config.size_ms)
            .saturating_mul(self.config.size_ms);
        if start.saturating_add(self.config.size_ms) <= self.closed_before {
            return Admission::Late;
        }
        let window = self.open.entry(start).or_default();
        if !window.holds.iter().any(|(s, _)| *s == source) {
            // Offsets only grow within a source, so the first one seen is the window's lowest.
            window.holds.push((source, offset));
        }
        for (series, verdict) in verdicts {
            let i = series.0 as usize;
            if window.counts.len() <= i {
                window.counts.resize(i + 1, [0, 0]);
            }
            window.counts[i][0] = window.counts[i][0].saturating_add(verdict.good);
            window.counts[i][1] = window.counts[i][1].saturating_add(verdict.bad);
        }
        window.deferred.extend_from_slice(deferred);
        if let Some((id, seconds)) = latency {
            let i = id as usize;
            if window.latencies.len() <= i {
                window.latencies.resize(i + 1, None);
            }
            window.latencies[i]
                .get_or_insert_with(|| ExpHistogram::new(LATENCY_SCALE))
                .record(seconds);
        }
        Admission::Counted
    }

    /// Adds an event's feature values to its window's drift sketches. Call after [`Windows::add`]
    /// counted the event (a late event's window is gone).
    pub fn add_drift(&mut self, ts_ms: i64, observations: &[(u32, Observation<'_>)]) {
        if observations.is_empty() {
            return;
        }
        let start = ts_ms
            .div_euclid(self.config.size_ms)
            .saturating_mul(self.config.size_ms);
        let Some(window) = self.open.get_mut(&start) else {
            return;
        };
        for (series, value) in observations {
            let i = *series as usize;
            if window.drift.len() <= i {
                window.drift.resize(i + 1, None);
            }
            window.drift[i]
                .get_or_insert_with(|| Sketch::empty(value.kind()))
                .record(value);
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

    /// Forgets a source that left this pipeline (a revoked partition). Drain first: its holds go too.
    pub fn remove_source(&mut self, source: SourceId) {
        *self.source_mut(source) = SourceState::default();
        for w in self.open.values_mut() {
            w.holds.retain(|(s, _)| *s != source);
        }
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

    /// Closes every window the watermark has passed by the allowed lateness, oldest first.
    pub fn close_ready(&mut self) -> Vec<WindowCounts> {
        let Some(watermark) = self.watermark() else {
            return Vec::new();
        };
        let size = self.config.size_ms;
        let frontier = watermark
            .saturating_sub(self.config.allowed_lateness_ms)
            .div_euclid(size)
            .saturating_mul(size);
        if frontier <= self.closed_before {
            return Vec::new();
        }
        self.closed_before = frontier;
        let still_open = self
            .open
            .split_off(&frontier.saturating_sub(size).saturating_add(1));
        let ready = std::mem::replace(&mut self.open, still_open);
        ready
            .into_iter()
            .map(|(start, w)| emit(start, size, w, true))
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
            .map(|(start, w)| emit(start, size, w, true))
            .collect()
    }

    /// Hands out the counts of all open windows without closing them, and releases all holds:
    /// the checkpoint before a partition moves to another instance. Later events still count into
    /// those windows, and a later drain or close hands out only what came after.
    pub fn drain_open(&mut self) -> Vec<WindowCounts> {
        let size = self.config.size_ms;
        let mut drained = Vec::new();
        for (start, w) in &mut self.open {
            let counted = OpenWindow {
                counts: std::mem::take(&mut w.counts),
                latencies: std::mem::take(&mut w.latencies),
                deferred: std::mem::take(&mut w.deferred),
                holds: Vec::new(),
                drift: Vec::new(),
            };
            w.holds.clear();
            drained.push(emit(*start, size, counted, false));
        }
        // A window keeps only its drift sketches, judged when it closes.
        self.open.retain(|_, w| w.drift.iter().any(Option::is_some));
        drained
            .into_iter()
            .filter(|w| !w.counts.is_empty() || !w.latencies.is_empty() || !w.deferred.is_empty())
            .collect()
    }

    /// The lowest offset of `source` whose counts sit in an open window, if any.
    pub fn hold_floor(&self, source: SourceId) -> Option<i64> {
        self.open
            .values()
            .filter_map(|w| w.holds.iter().find(|(s, _)| *s == source).map(|h| h.1))
            .min()
    }

    /// Every window ending at or before this has closed (`i64::MIN` before the first close).
    pub fn closed_before(&self) -> i64 {
        self.closed_before
    }
}

fn emit(start: i64, size: i64, w: OpenWindow, closed: bool) -> WindowCounts {
    let counts = w
        .counts
        .iter()
        .enumerate()
        .filter(|(_, [g, b])| g.saturating_add(*b) > 0)
        .map(|(i, [g, b])| SeriesCount {
            series: SeriesId(i as u32),
            good: *g,
            bad: *b,
        })
        .collect();
    let latencies = w
        .latencies
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| h.map(|h| (i as u32, h)))
        .collect();
    WindowCounts {
        start_ms: start,
        end_ms: start.saturating_add(size),
        counts,
        latencies,
        deferred: w.deferred,
        closed,
        drift: w
            .drift
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (i as u32, s)))
            .collect(),
    }
}
