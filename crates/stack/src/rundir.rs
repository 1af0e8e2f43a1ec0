//! A fresh private directory (mode 0700) under the system temp directory, for the
//! sockets of one run; removed with everything in it when dropped.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Directories made by this process so far: two made in the same nanosecond still
/// differ.
static MADE: AtomicU32 = AtomicU32::new(0);

pub struct RunDir(PathBuf);

impl RunDir {
    /// Creates `<temp dir>/<prefix>-<pid>-<unique>`.
    pub fn create(prefix: &str) -> Result<RunDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let unique = if n == 0 {
            format!("{nanos:x}")
        } else {
            format!("{nanos:x}-{n}")
        };
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{unique}", std::process::id()));
        // create, not create_all: a directory that already exists is someone else's.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("cannot create the run directory {}: {e}", path.display()))?;
        Ok(RunDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `unix:<dir>/<name>`: the address of a socket in this directory.
    pub fn sock(&self, name: &str) -> String {
        format!("unix:{}", self.0.join(name).display())
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
