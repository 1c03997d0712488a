//! A temporary directory removed on drop unless kept.

use std::io;
use std::path::{Path, PathBuf};

/// A fresh directory `emspool-PREFIX-PID-RANDOM` in a base directory; removed with its
/// contents on drop unless [`TempDir::keep`] was asked for (to look at configs and logs after
/// a run).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// A new directory under the system temp dir.
    pub fn new(prefix: &str) -> io::Result<TempDir> {
        TempDir::new_in(&std::env::temp_dir(), prefix)
    }

    /// A new directory under `base`.
    pub fn new_in(base: &Path, prefix: &str) -> io::Result<TempDir> {
        let pid = std::process::id();
        let mut last = None;
        // A name can be taken only by another process's leftover: a few tries suffice.
        for _ in 0..100 {
            let path = base.join(format!(
                "emspool-{prefix}-{pid}-{:08x}",
                rand::random::<u32>()
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path, keep: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot create {}: {e}", path.display()),
                    ));
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free temp dir name")))
    }

    /// Keep the directory (and say nothing) when `keep`; remove it on drop otherwise.
    pub fn keep(mut self, keep: bool) -> TempDir {
        self.keep = keep;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_on_drop_unless_kept() {
        let d = TempDir::new("unit").expect("temp dir");
        let p = d.path().to_path_buf();
        std::fs::write(p.join("f"), "x").expect("write");
        drop(d);
        assert!(!p.exists());
        let d = TempDir::new("unit").expect("temp dir").keep(true);
        let p = d.path().to_path_buf();
        drop(d);
        assert!(p.is_dir());
        std::fs::remove_dir_all(&p).expect("clean up");
    }
}
