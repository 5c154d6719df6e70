//! The running pipeline: the I/O edges around `sliq-core`.
//!
//! One thread drives a Kafka consumer and walks each record one way:
//! source → decode → SLI evaluation → windows → (OTLP export | Parquet archive | dead letters) →
//! commit. Offsets are committed only below the lowest record whose counts, archive row or dead
//! letter is not yet durable (see [`checkpoint`]).

mod admin;
mod budgets;
mod checkpoint;
mod dead_letter;
mod dead_letter_readback;
mod error;
mod export;
mod judge;
mod kafka_client;
mod kafka_log;
mod ledger;
mod outage;
mod partials;
mod persist;
mod produce;
mod progress;
mod rebalance;
mod redaction;
mod run;
mod source;
pub mod window_topic;

pub use error::PipelineError;
pub use export::open_exporter;
pub use kafka_client::{check_kafka_client, check_kafka_connection};
pub use produce::{ProduceReport, produce_generated};
pub use progress::{DriftProgress, Progress, SeriesBudget, SloProgress};
pub use run::{Role, RunLimits, RunSummary, run};
