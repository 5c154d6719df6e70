//! The state folder of one process: locked while it runs (two processes sharing one `state.dir`
//! would overwrite each other's checkpoints), and home of the instance id that must survive a
//! plain restart.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use sliq_archive::FileModes;

use crate::error::PipelineError;

const LOCK_FILE: &str = ".lock";
const INSTANCE_ID_FILE: &str = "instance-id";

/// A locked state folder; the lock is released when this is dropped (or the process dies).
#[derive(Debug)]
pub(crate) struct StateDir {
    path: PathBuf,
    instance_id: String,
    _lock: File,
}

impl StateDir {
    /// Creates and locks `path`. The instance id is `requested` when given, else the one kept in
    /// the folder, else a new one, kept for the next start.
    pub(crate) fn open(path: &Path, requested: Option<&str>) -> Result<StateDir, PipelineError> {
        let io = |action: &'static str, at: &Path| {
            let at = at.to_path_buf();
            move |source| PipelineError::State {
                action,
                path: at,
                source,
            }
        };
        FileModes::STATE
            .create_dir_all(path)
            .map_err(io("create", path))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = FileModes::STATE
            .create_file(&lock_path)
            .map_err(io("create", &lock_path))?;
        if lock.try_lock().is_err() {
            return Err(PipelineError::StateLocked {
                path: path.to_path_buf(),
            });
        }
        let id_path = path.join(INSTANCE_ID_FILE);
        let instance_id = match requested {
            Some(id) => id.to_owned(),
            None => match std::fs::read_to_string(&id_path) {
                Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
                _ => {
                    let random = std::collections::hash_map::RandomState::new()
                        .build_hasher()
                        .finish();
                    let id = format!("sliq-{:08x}", random as u32);
                    sliq_archive::write_atomically(&id_path, id.as_bytes())?;
                    id
                }
            },
        };
        Ok(StateDir {
            path: path.to_path_buf(),
            instance_id,
            _lock: lock,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn instance_id(&self) -> &str {
        &self.instance_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_id_survives_a_restart_and_the_folder_takes_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDir::open(dir.path(), None).unwrap();
        let id = first.instance_id().to_owned();
        assert!(id.starts_with("sliq-") && id.len() == 13, "{id}");
        let second = StateDir::open(dir.path(), None).unwrap_err();
        assert!(
            second
                .to_string()
                .contains(&dir.path().display().to_string()),
            "{second}"
        );
        drop(first);
        let again = StateDir::open(dir.path(), None).unwrap();
        assert_eq!(again.instance_id(), id);
        drop(again);
        let named = StateDir::open(dir.path(), Some("pod-0")).unwrap();
        assert_eq!(named.instance_id(), "pod-0");
    }
}
