//! Replay: the archived records of a run through the same core as the live pipeline (decoder,
//! evaluator, windows, drift monitor, budget ledger), for a backfill over OTLP, a what-if
//! comparison of two specs, or a report.
//!
//! The archive is read one event hour at a time (its `date=…/hour=…` folders), each hour's
//! records sorted by event time, and fed to one window store as one source: nothing can turn late
//! in that order, and a window closes as soon as the watermark (newest event time − out-of-
//! orderness) passes its end + allowed lateness, as in the run. Whether a record was late is not
//! decided again: it was a fact of when it arrived, which the archive's `late` column records, so
//! a record the run refused as late is refused as late here too (whatever the new spec's windows).

mod attainment;
mod engine;
mod error;
pub mod report;
#[cfg(test)]
mod tests;

pub use attainment::{Attainment, SloAttainment, compare_table, slo_label};
pub use engine::{Closed, Replay, ReplayCounts};
pub use error::ReplayError;
