//! The run-folder lock: one writer per run folder, for the whole run.
//!
//! `ae train` (and everything that writes a run) holds an exclusive advisory
//! lock (`flock`-style, [`std::fs::File::try_lock`]) on `DIR/.lock` from before
//! it reads or writes anything in `DIR` until it returns. A second writer is
//! refused at once with [`TrainError::Locked`], which names the holder's
//! process id (written into the file by the holder). The lock belongs to the
//! open file, so the operating system releases it when the holder exits in
//! any way, `kill -9` included: a stale `.lock` file never blocks a later run.
//! Readers (`eval`, `encode`, ...) take no lock: every file they read is
//! replaced atomically (see [`crate::checkpoint`]).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::io_err;
use crate::{Result, TrainError};

/// The lock file inside a run folder.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a run folder, released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Creates `dir` if needed and locks it for writing, or fails at once with
    /// [`TrainError::Locked`] naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder writes its pid right after locking; it may not be there yet.
                let _ = file.read_to_string(&mut text);
                return Err(TrainError::Locked {
                    dir: dir.into(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| writeln!(file, "{pid}"))
            .and_then(|()| file.sync_all())
            .map_err(io_err(&path))?;
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let held = RunLock::acquire(&run).unwrap();
        // Another open file description conflicts even within one process.
        let e = RunLock::acquire(&run).unwrap_err();
        match &e {
            TrainError::Locked { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("{other}"),
        }
        assert!(
            e.to_string().contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(held);
        let again = RunLock::acquire(&run).unwrap();
        assert!(again.path().ends_with(LOCK_FILE));
    }
}
