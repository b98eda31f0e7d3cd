//! Full disks (issue 11 item 2). As root, each data cluster's volume cache (`data_dir/tvc`, where
//! host data and copies land) is a small filesystem of its own, a tmpfs with a size limit, and a
//! [`DiskFull`](crate::history::FaultKind::DiskFull) fault fills it with a ballast file until the
//! kernel answers ENOSPC; the fault's `Heal` removes the ballast. The cluster must then refuse
//! writes and copies with `STORAGE_FULL` and lose nothing, and go on once there is room.
//!
//! The catalog (RocksDB under `data_dir/catalog`) stays on the machine's disk: a full volume
//! cache is the case an operator meets (DESIGN §4's cache quota and its throttling), while a
//! full catalog device stops the Raft log itself, which is a different fault. A tmpfs lives in
//! memory, not on a device, but a kill -9 of the node leaves it exactly as a disk would.
//!
//! Mounted before the nodes start (`ip netns exec` gives each node a copy of the mount table as
//! it stands then), unmounted when the [`Disks`] is dropped, after the processes are gone.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Each cluster's volume cache filesystem, in bytes.
pub const SIZE: u64 = 512 << 20;

/// The ballast file's name in a volume cache (the volume store ignores names it does not know).
const BALLAST: &str = "chaos-ballast";

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{0}` failed: {1}")]
    Command(String, String),
    #[error("C{0} has no volume cache filesystem of its own")]
    NoDisk(u8),
}

/// The mounted volume caches; unmounted on drop.
pub struct Disks {
    mounts: Vec<(u8, PathBuf)>,
}

fn run(cmd: &mut Command) -> Result<(), DiskError> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| DiskError::Command(shown.clone(), e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DiskError::Command(
            shown,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

impl Disks {
    /// Mount a [`SIZE`] tmpfs at `data_dir/tvc` of every cluster (root only).
    pub fn mount(data_dirs: &[(u8, PathBuf)]) -> Result<Disks, DiskError> {
        let mut disks = Disks { mounts: Vec::new() };
        for (id, dir) in data_dirs {
            let tvc = dir.join("tvc");
            fs::create_dir_all(&tvc).map_err(|source| DiskError::Io {
                what: "creating",
                path: tvc.clone(),
                source,
            })?;
            run(Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={SIZE},mode=0700"))
                .arg("vtgrid-chaos")
                .arg(&tvc))?;
            // Pushed at once: a later failure unmounts this one on drop.
            disks.mounts.push((*id, tvc));
        }
        Ok(disks)
    }

    fn cache(&self, cluster: u8) -> Result<&Path, DiskError> {
        self.mounts
            .iter()
            .find(|(id, _)| *id == cluster)
            .map(|(_, p)| p.as_path())
            .ok_or(DiskError::NoDisk(cluster))
    }

    /// Fill `cluster`'s volume cache until ENOSPC; the ballast's size in bytes.
    pub fn fill(&self, cluster: u8) -> Result<u64, DiskError> {
        let path = self.cache(cluster)?.join(BALLAST);
        let io = |what, source| DiskError::Io {
            what,
            path: path.clone(),
            source,
        };
        let mut file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("opening", e))?;
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        // Bounded: the filesystem holds SIZE bytes at most.
        for _ in 0..=SIZE / chunk.len() as u64 + 1 {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => return Err(io("writing", e)),
            }
        }
        Ok(written)
    }

    /// Remove every ballast file: every cache has room again.
    pub fn free_all(&self) -> Result<(), DiskError> {
        for (_, tvc) in &self.mounts {
            let path = tvc.join(BALLAST);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(DiskError::Io {
                        what: "removing",
                        path,
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        for (_, tvc) in self.mounts.drain(..).rev() {
            if let Err(e) = run(Command::new("umount").arg("-l").arg(&tvc)) {
                eprintln!("vtgrid-chaos: unmounting {}: {e}", tvc.display());
            }
        }
    }
}
