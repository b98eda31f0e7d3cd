//! Watching copies as an operator does, through the `vtgrid` CLI: the copy queue
//! (`vtgrid copies --json`), where a volume is consistent (`vtgrid volume show --json`), and its
//! bytes (`vtgrid volume read`, hashed). Also the copy throttle and classes of a shipped grid
//! file, for grids that copy like it does.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vtgrid_proto::pb;

use super::cli::CliCall;
use super::host::status_client;
use super::wait::POLL;

/// How long one query command may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// One queue summary of `vtgrid copies --json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedCopies {
    pub priority: String,
    pub count: u64,
    pub bytes: u64,
}

/// The copy queue of the cluster at `endpoint`, per priority (`vtgrid copies --json`).
pub async fn copy_queue(endpoint: &str) -> Vec<QueuedCopies> {
    let run = CliCall::new(&["--endpoint", endpoint, "copies", "--json"])
        .timeout(QUERY_TIMEOUT)
        .run()
        .await;
    let json = run.assert_success().json();
    json["summary"]
        .as_array()
        .unwrap_or_else(|| panic!("vtgrid copies --json has no summary: {json}"))
        .iter()
        .map(|s| QueuedCopies {
            priority: s["priority"].as_str().unwrap_or_default().to_string(),
            count: s["count"].as_u64().unwrap_or_default(),
            bytes: s["bytes"].as_u64().unwrap_or_default(),
        })
        .collect()
}

/// How many copies the cluster at `endpoint` has queued, all priorities together.
pub async fn queued_count(endpoint: &str) -> u64 {
    copy_queue(endpoint).await.iter().map(|q| q.count).sum()
}

/// The version of `volser` that cluster `cluster` holds consistently, as the cluster at
/// `endpoint` sees the catalog (`vtgrid volume show --json`, `consistent_at`), and the volume's
/// current version.
pub async fn consistent_at(endpoint: &str, volser: &str, cluster: u8) -> (Option<u64>, u64) {
    let run = CliCall::new(&["--endpoint", endpoint, "volume", "show", volser, "--json"])
        .timeout(QUERY_TIMEOUT)
        .run()
        .await;
    let json = run.assert_success().json();
    let held = json["consistent_at"][cluster.to_string()].as_u64();
    let version = json["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("vtgrid volume show --json has no version: {json}"));
    (held, version)
}

/// Whether the current version of `volser` is consistent at `cluster`, seen from `endpoint`.
pub async fn is_consistent_at(endpoint: &str, volser: &str, cluster: u8) -> bool {
    let (held, version) = consistent_at(endpoint, volser, cluster).await;
    held == Some(version)
}

/// Read `volser` through the cluster at `endpoint` with `vtgrid volume read`; returns the
/// SHA-256 and length of what it printed. The read must succeed.
pub async fn read_sha256(endpoint: &str, volser: &str, timeout: Duration) -> ([u8; 32], u64) {
    let run = CliCall::new(&["--endpoint", endpoint, "volume", "read", volser])
        .hash_stdout()
        .timeout(timeout)
        .run()
        .await;
    run.assert_success();
    (run.stdout_sha256, run.stdout_len)
}

/// Versions being written or copied into a data cluster's volume store right now: the entries
/// of `<data_dir>/tvc/.partial` (a copy in progress leaves one there until it is renamed into
/// place; a crash leaves it until the next start deletes it).
pub fn partial_versions(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("tvc").join(".partial"))
        .map(|dir| dir.flatten().count())
        .unwrap_or(0)
}

/// How often [`wait_for_copy_in_progress`] looks: a copy of a few MiB sits in `.partial` for a
/// fraction of a second.
const PULL_POLL: Duration = Duration::from_millis(5);

/// Wait until the data cluster at `endpoint` (data in `data_dir`) is pulling a copy, a version in
/// its `.partial` directory, while its queue holds at least `min_queued` copies; returns the
/// queue count seen then. Polls the directory every few milliseconds and the queue over gRPC
/// (`ListCopyQueue`, what `vtgrid copies` shows) only when a partial version is there.
pub async fn wait_for_copy_in_progress(
    endpoint: &str,
    data_dir: &Path,
    min_queued: u64,
    timeout: Duration,
) -> u64 {
    let deadline = Instant::now() + timeout;
    let mut status = status_client(endpoint).await;
    let mut last_queued = None;
    loop {
        if partial_versions(data_dir) > 0 {
            let q = status
                .list_copy_queue(pb::ListCopyQueueRequest { per_volume: false })
                .await
                .unwrap_or_else(|s| panic!("ListCopyQueue at {endpoint}: {s:?}"))
                .into_inner();
            let queued: u64 = q.summary.iter().map(|s| s.count).sum();
            if queued >= min_queued {
                return queued;
            }
            last_queued = Some(queued);
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint} pulled no copy with {min_queued} or more queued within {timeout:?} \
             (queue at the last partial version seen: {last_queued:?})"
        );
        tokio::time::sleep(PULL_POLL).await;
    }
}

/// Poll `vtgrid copies --json` at `endpoint` every [`POLL`] until the queue is empty, within
/// `timeout`; returns every count seen, the last one 0.
pub async fn queue_counts_until_drained(endpoint: &str, timeout: Duration) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    let mut counts = Vec::new();
    loop {
        let count = queued_count(endpoint).await;
        counts.push(count);
        if count == 0 {
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "the copy queue at {endpoint} did not drain within {timeout:?}; counts seen: {counts:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Counts as runs, for a log line: `[2, 2, 2, 1, 0]` is `2×3 1×1 0×1`.
pub fn count_runs(counts: &[u64]) -> String {
    let mut runs: Vec<(u64, usize)> = Vec::new();
    for &c in counts {
        match runs.last_mut() {
            Some((v, n)) if *v == c => *n += 1,
            _ => runs.push((c, 1)),
        }
    }
    runs.iter()
        .map(|(v, n)| format!("{v}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A grid file shipped in `cluster-config/`.
pub fn shipped_grid_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("cluster-config")
        .join(format!("{name}.toml"))
}

/// The `[[management_class]]` tables and the `[copy]` table of a shipped grid file, as TOML
/// text, so a test grid on free ports copies exactly as the shipped one does. The shipped files
/// put the classes after the categories and `[copy]` before `[telemetry]`.
pub fn shipped_classes_and_copy(name: &str) -> (String, String) {
    let path = shipped_grid_file(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let section = |from: &str, to: &str| -> String {
        let start = text
            .find(from)
            .unwrap_or_else(|| panic!("{} has no {from}", path.display()));
        let end = text[start..].find(to).map_or(text.len(), |e| start + e);
        text[start..end].to_string()
    };
    (
        section("[[management_class]]", "\n[copy]"),
        section("[copy]", "\n[telemetry]"),
    )
}
