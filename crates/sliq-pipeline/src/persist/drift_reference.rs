//! Stream-built drift references (trailing, first-N) across restarts: written under `state.dir`
//! whenever they change in substance (a trailing step began, the first-N reference completed) and
//! at shutdown, read back at start. A crash loses at most the step in progress.

use std::path::{Path, PathBuf};

use sliq_core::drift::{DriftMonitor, REFERENCE_STATE_FORMAT, ReferenceState, stored_format};
use tracing::{info, warn};

use crate::error::PipelineError;

fn path(dir: &Path, instance: &str) -> PathBuf {
    dir.join(format!("drift-reference-{instance}.json"))
}

/// Restores this instance's persisted reference, if any. An unreadable or foreign file is
/// reported and ignored: the reference then builds up again from the stream.
pub(crate) fn load(dir: &Path, instance: &str, monitor: &mut DriftMonitor) {
    let path = path(dir, instance);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            warn!(
                "cannot read {}: {e}; the drift reference starts empty",
                path.display()
            );
            return;
        }
    };
    if let Some(format) = stored_format(text.as_bytes()).filter(|f| f != REFERENCE_STATE_FORMAT) {
        warn!(
            "{} has format {format:?}, this sliq reads {REFERENCE_STATE_FORMAT:?}; the drift reference starts empty",
            path.display(),
        );
        return;
    }
    match serde_json::from_str::<ReferenceState>(&text) {
        Ok(state) => {
            let dropped = monitor.restore(&state);
            info!(
                path = %path.display(),
                dropped,
                "drift reference restored (sketches of features no longer watched are dropped)"
            );
        }
        Err(e) => warn!(
            "{} is not a drift reference ({e}); the drift reference starts empty",
            path.display()
        ),
    }
}

/// Writes the monitor's stream-built reference durably (nothing for a baseline reference).
pub(crate) fn save(
    dir: &Path,
    instance: &str,
    monitor: &DriftMonitor,
) -> Result<(), PipelineError> {
    let Some(state) = monitor.reference_state() else {
        return Ok(());
    };
    let path = path(dir, instance);
    let bytes = serde_json::to_vec(&state)
        .map_err(|e| PipelineError::Drift(format!("cannot encode the drift reference: {e}")))?;
    sliq_archive::write_atomically(&path, &bytes)?;
    Ok(())
}
