//! sliq's pure core: everything between the bytes of a record and the counters of a closed window.
//!
//! Invariant: this crate performs no I/O, spawns nothing and knows no clock; time arrives as
//! arguments. That keeps every number sliq exports reproducible from a test.

pub mod decode;
pub mod event;

pub use decode::{Decoder, FieldMap, Reject};
pub use event::{EvalResult, Event, Status, TestCounts};
pub mod sli;
pub mod slo;
pub mod window;

pub use sli::{LatencyMeasure, Outcome, Sli};
pub use slo::{Dimension, Evaluator, SeriesId, SeriesKey, Slo};
pub use window::{Admission, SeriesCount, SourceId, WindowConfig, WindowCounts, Windows};
