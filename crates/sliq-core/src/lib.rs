//! sliq's pure core: everything between the bytes of a record and the counters of a closed window.
//!
//! Invariant: this crate performs no I/O, spawns nothing and knows no clock; time arrives as
//! arguments. That keeps every number sliq exports reproducible from a test.

/// Test support: decodes a `json!` record with the decoder `$d` and binds the event to `$e`; the
/// record's bytes and captures live in the caller's scope, as the event borrows them.
#[cfg(test)]
macro_rules! decoded {
    ($e:ident = $d:expr, $v:expr) => {
        let bytes = serde_json::to_vec(&$v).expect("serializable");
        let record = $d.parse(&bytes).expect("valid JSON");
        let $e = $d.decode(&record).expect("valid record");
    };
}

pub mod budget;
pub mod decode;
pub mod drift;
pub mod event;
pub mod histogram;
mod intern;
pub mod ledger;

pub use decode::{
    Decoder, FieldMap, Leaf, MAX_EVENT_TS_MS, MIN_EVENT_TS_MS, Record, Reject, check_future_skew,
};
pub use event::{EvalResult, Event, Status, TestCounts};
pub mod sli;
pub mod slo;
pub mod window;

pub use budget::{
    AlertRule, BudgetConfig, BudgetStatus, Granularity, Ledger, Period, PolicyState, RollupEntry,
    Severity,
};
pub use histogram::{ExpHistogram, LATENCY_SCALE, LatencyKey, LatencySeries};
pub use sli::{
    LatencyMeasure, MAX_TEST_COUNT, Missing, Outcome, RuleKind, Rules, ScorePass, Sli, TestsMode,
    TextField, Verdict,
};
pub use slo::{
    BadRequest, DEFAULT_MAX_SERIES, Deferred, Dimension, Evaluator, Filter, OTHER, SeriesId,
    SeriesKey, Slo, SloContract,
};
pub use window::{
    Admission, SeriesCount, SourceId, SourceSnapshot, WindowConfig, WindowCounts, WindowPart,
    Windows,
};
