//! Who may read what sliq writes, whatever the process umask: the archive is for its owner and
//! the group that audits it; state (checkpoints, quarantined records, unsent exports, which carry
//! records or their counts) is for the owner alone.

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The permission bits of the folders and files of one kind of output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileModes {
    pub dir: u32,
    pub file: u32,
}

impl FileModes {
    /// The archive: its owner writes, its group (auditors, query engines) reads.
    pub const ARCHIVE: FileModes = FileModes {
        dir: 0o750,
        file: 0o640,
    };
    /// Everything under `state.dir`: the owner only.
    pub const STATE: FileModes = FileModes {
        dir: 0o700,
        file: 0o600,
    };

    /// Creates `path` and its missing parents, each folder it creates with `dir` bits set
    /// explicitly (the umask only narrows a mode given at creation); folders that existed keep
    /// theirs.
    pub fn create_dir_all(self, path: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut at = path;
        while !at.as_os_str().is_empty() && !at.exists() {
            missing.push(at);
            match at.parent() {
                Some(parent) => at = parent,
                None => break,
            }
        }
        for folder in missing.into_iter().rev() {
            match std::fs::create_dir(folder) {
                Ok(()) => std::fs::set_permissions(folder, Permissions::from_mode(self.dir))?,
                // Made meanwhile by another writer, who set its mode.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Creates (or truncates) a file for writing, with `file` bits set explicitly.
    pub fn create_file(self, path: &Path) -> io::Result<File> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(self.file)
            .open(path)?;
        file.set_permissions(Permissions::from_mode(self.file))?;
        Ok(file)
    }
}
