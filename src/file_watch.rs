//! Noticing, without a restart, that a file mounted from a Kubernetes
//! ConfigMap or Secret changed: at most once per period, one look at its
//! modification time, size and inode (an update swaps the file through a
//! symlink, so the inode changes even when time and size do not). What a
//! changed file means is the caller's: the admin tokens fail closed on a bad
//! one, the node's metadata keeps the last good one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What tells a changed file: modification time, size, inode; `None` when it
/// cannot be read.
type Stamp = Option<(Option<SystemTime>, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok(), m.len(), m.ino()))
}

/// A file as last accepted, and when it was last looked at.
pub struct FileWatch {
    path: PathBuf,
    every: Duration,
    stamp: Stamp,
    checked: Instant,
}

/// A change seen by [`FileWatch::changed`], to [`FileWatch::accept`] once
/// the caller has dealt with it; until then it is reported at every look.
pub struct Change(Stamp);

impl FileWatch {
    /// Watches `path` as it is now (the caller has just read it).
    pub fn new(path: &Path, every: Duration) -> Self {
        Self {
            path: path.to_owned(),
            every,
            stamp: stamp(path),
            checked: Instant::now(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Once `every` has passed since the last look: a change when the file
    /// differs from the last accepted one, or cannot be read.
    pub fn changed(&mut self) -> Option<Change> {
        if self.checked.elapsed() < self.every {
            return None;
        }
        self.checked = Instant::now();
        let now = stamp(&self.path);
        (now.is_none() || now != self.stamp).then_some(Change(now))
    }

    pub fn accept(&mut self, change: Change) {
        self.stamp = change.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_is_a_change_once_accepted_and_only_after_the_period() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "one").unwrap();
        let mut w = FileWatch::new(&path, Duration::from_millis(50));
        // Swapped as the kubelet does it: a new file renamed in.
        let tmp = dir.path().join("f.new");
        std::fs::write(&tmp, "two").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(w.changed().is_none(), "looked before the period");
        std::thread::sleep(Duration::from_millis(60));
        let change = w.changed().expect("the replaced file");
        std::thread::sleep(Duration::from_millis(60));
        let change = w.changed().map(|_| change).expect("not accepted: again");
        w.accept(change);
        std::thread::sleep(Duration::from_millis(60));
        assert!(w.changed().is_none(), "accepted: no change");
        std::fs::remove_file(&path).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert!(w.changed().is_some(), "a missing file is a change");
    }
}
