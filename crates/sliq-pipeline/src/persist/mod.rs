//! What survives a restart: under `state.dir`, the checkpoint (`checkpoint`), the stream-built
//! drift reference (`drift_reference`), and the folder's lock and instance id (`state_dir`); in
//! Kafka, the ledger's snapshots (`ledger_snapshot`).

pub(crate) mod checkpoint;
pub(crate) mod drift_reference;
pub(crate) mod ledger_snapshot;
pub(crate) mod state_dir;
