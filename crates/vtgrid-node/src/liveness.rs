//! The node's side of its agent's local channel (DESIGN §5): a pid file and a Unix socket in the
//! data directory, so the agent beside it can tell "gone" from "silent" without the grid or
//! heartbeat network (a grid cut must never look like a dead node, T6).
//!
//! ```text
//!   data_dir/node.pid    this process's pid, written through a temp name, fsynced, renamed
//!   data_dir/node.sock   every connection gets one byte, b'1', and is closed
//! ```
//!
//! A stopped process (SIGSTOP) still has its socket: the kernel queues a connection, but nobody
//! answers it, so the agent sees silence, and fences.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;

/// The pid file's name in the data directory.
pub const PID_FILE: &str = "node.pid";
/// The liveness socket's name in the data directory.
pub const SOCKET: &str = "node.sock";

/// Write this process's pid to `data_dir/node.pid` durably (temp name, fsync, rename, directory
/// fsync).
pub fn write_pid_file(data_dir: &Path) -> std::io::Result<PathBuf> {
    let path = data_dir.join(PID_FILE);
    let tmp = data_dir.join(format!("{PID_FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{}", std::process::id())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(path)
}

/// Bind `data_dir/node.sock` (a stale one from an earlier run is replaced).
pub fn bind(data_dir: &Path) -> std::io::Result<UnixListener> {
    let path = data_dir.join(SOCKET);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    UnixListener::bind(&path)
}

/// Answer every connection with one byte, until the task is dropped.
pub async fn serve(listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((mut stream, _)) => {
                tokio::spawn(async move {
                    let _ = stream.write_all(b"1").await;
                    let _ = stream.shutdown().await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "liveness socket accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
