//! A small file system that really fills up, for the disk-full scenario (f):
//! a size-limited tmpfs mounted on a folder of the scenario (needs root, as
//! CI and the sessions run; writes past the size fail with ENOSPC exactly as
//! on a full volume). Unmounted on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs of a fixed size.
pub struct SmallDisk {
    pub path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size_bytes` on `path` (created if missing).
    pub fn mount(path: &Path, size_bytes: u64) -> SmallDisk {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes},mode=0755"), "canopy-fault-disk"])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "scenario (f) needs a size-limited tmpfs (mount as root), mount of {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path: path.to_path_buf() }
    }

    /// Bytes still free for writing (`df`'s available column).
    pub fn available_bytes(&self) -> u64 {
        let out = Command::new("df").args(["-B1", "--output=avail"]).arg(&self.path).output().expect("run df");
        String::from_utf8_lossy(&out.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or(0)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
