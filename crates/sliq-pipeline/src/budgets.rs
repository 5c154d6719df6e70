//! Budgets across restarts: the ledger of rollups, loaded from the state folder at start, fed by
//! every exported window, persisted with every checkpoint.

use std::path::Path;

use sliq_archive::rollups::{RollupKind, RollupRow, RollupStore};
use sliq_core::{
    BudgetStatus, Evaluator, Granularity, Ledger, RollupEntry, SeriesId, WindowCounts,
};
use tracing::warn;

use crate::error::PipelineError;

const MINUTE_MS: i64 = 60_000;

/// The budget state of one pipeline.
#[derive(Debug)]
pub(crate) struct Budgets {
    ledger: Ledger,
    /// `None` for the ledger role, whose state is the window topic's.
    store: Option<RollupStore>,
    /// Event time budgets are computed at: the end of the newest window counted.
    now_ms: Option<i64>,
    /// Budgets loaded from disk are exported once even before a window closes.
    loaded: bool,
}

impl Budgets {
    /// Loads the rollups as of checkpoint `resumed` (files newer than it are rolled back: the
    /// replay closes their windows again). Rows starting after `horizon_ms` (ahead of the clock:
    /// written by a process that saw a poisoned timestamp) are ignored.
    pub(crate) fn load(
        dir: &Path,
        instance: &str,
        evaluator: &mut Evaluator,
        resumed: Option<u64>,
        horizon_ms: i64,
    ) -> Result<Self, PipelineError> {
        let mut ledger = Ledger::new(evaluator.slos().iter().map(|s| &s.budget));
        let (store, rows) = RollupStore::open(dir, instance, resumed)?;
        let mut now_ms: Option<i64> = None;
        let mut orphans = 0;
        let mut future = 0;
        for row in &rows {
            if row.start_ms > horizon_ms {
                future += 1;
                continue;
            }
            let dims: Vec<(&str, &str)> = row
                .dimensions
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let Some(series) = evaluator.intern(&row.slo, &dims) else {
                orphans += 1;
                continue;
            };
            let entry = |granularity| RollupEntry {
                series,
                granularity,
                start_ms: row.start_ms,
                good: row.good,
                bad: row.bad,
            };
            match row.kind {
                RollupKind::Add => ledger.add(series, row.start_ms, row.good, row.bad),
                RollupKind::Minute => ledger.restore(&entry(Granularity::Minute)),
                RollupKind::Hour => ledger.restore(&entry(Granularity::Hour)),
            }
            if row.kind != RollupKind::Hour {
                let end = row.start_ms - row.start_ms.rem_euclid(MINUTE_MS) + MINUTE_MS;
                now_ms = Some(now_ms.map_or(end, |n| n.max(end)));
            }
        }
        if future > 0 {
            warn!(
                rows = future,
                "rollups in {} start after this machine's clock (a poisoned timestamp from an \
                 older run); ignored",
                dir.display()
            );
        }
        if orphans > 0 {
            warn!(
                rows = orphans,
                "rollups in {} belong to SLOs or dimensions no longer in the spec; ignored",
                dir.display()
            );
        }
        Ok(Budgets {
            ledger,
            store: Some(store),
            now_ms,
            loaded: !rows.is_empty(),
        })
    }

    /// Budgets kept in memory only (the ledger role rebuilds them from the window topic).
    pub(crate) fn in_memory(evaluator: &Evaluator) -> Self {
        Budgets {
            ledger: Ledger::new(evaluator.slos().iter().map(|s| &s.budget)),
            store: None,
            now_ms: None,
            loaded: false,
        }
    }

    /// Every rollup bucket and the event time budgets stand at (the ledger's snapshot).
    pub(crate) fn rollups(&self) -> (Vec<RollupEntry>, Option<i64>) {
        (self.ledger.snapshot(), self.now_ms)
    }

    /// Continues from a snapshot's rollups.
    pub(crate) fn restore_rollups(&mut self, entries: &[RollupEntry], now_ms: Option<i64>) {
        for entry in entries {
            self.ledger.restore(entry);
        }
        self.now_ms = now_ms;
    }

    /// Counts exported windows into the ledger and returns every series' budget state, or nothing
    /// when event time did not move (no window) since the last call.
    pub(crate) fn update(
        &mut self,
        windows: &[WindowCounts],
        evaluator: &Evaluator,
    ) -> (Vec<(SeriesId, BudgetStatus)>, i64) {
        if windows.is_empty() && !self.loaded {
            return (Vec::new(), 0);
        }
        self.loaded = false;
        self.ledger.record(windows);
        for w in windows {
            self.now_ms = Some(self.now_ms.map_or(w.end_ms, |n| n.max(w.end_ms)));
        }
        let Some(now) = self.now_ms else {
            return (Vec::new(), 0);
        };
        self.ledger.prune(now);
        (self.ledger.statuses(evaluator, now), now)
    }

    /// Persists what `update` counted, as part of checkpoint `seq` (written before it).
    pub(crate) fn persist(
        &mut self,
        windows: &[WindowCounts],
        evaluator: &Evaluator,
        seq: u64,
    ) -> Result<(), PipelineError> {
        let row = |kind, series: SeriesId, start_ms, good, bad| {
            let key = evaluator.series(series);
            let slo = evaluator.slo_of(series);
            RollupRow {
                kind,
                slo: slo.name.clone(),
                dimensions: slo
                    .dimensions
                    .iter()
                    .zip(key.values.iter())
                    .map(|(d, v)| (d.attribute().to_owned(), v.to_string()))
                    .collect(),
                start_ms,
                good,
                bad,
            }
        };
        let Some(store) = &mut self.store else {
            return Ok(());
        };
        if store.wants_snapshot() {
            let rows: Vec<RollupRow> = self
                .ledger
                .snapshot()
                .iter()
                .map(|e| {
                    let kind = match e.granularity {
                        Granularity::Minute => RollupKind::Minute,
                        Granularity::Hour => RollupKind::Hour,
                    };
                    row(kind, e.series, e.start_ms, e.good, e.bad)
                })
                .collect();
            store.snapshot(&rows, seq)?;
        } else {
            let rows: Vec<RollupRow> = windows
                .iter()
                .flat_map(|w| w.counts.iter().map(move |c| (w.start_ms, c)))
                .map(|(start, c)| row(RollupKind::Add, c.series, start, c.good, c.bad))
                .collect();
            store.append(&rows, seq)?;
        }
        Ok(())
    }

    /// Checkpoint `seq` is durable: rollup files a snapshot replaced can go.
    pub(crate) fn checkpointed(&mut self, seq: u64) -> Result<(), PipelineError> {
        match &mut self.store {
            Some(store) => Ok(store.checkpointed(seq)?),
            None => Ok(()),
        }
    }
}
