//! Why a replay could not run.

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Archive(#[from] sliq_archive::ArchiveError),
    /// The spec's `drift:` section could not be opened (e.g. its baseline file).
    #[error("drift: {0}")]
    Drift(String),
}
