//! The floor for one replicated commit on this machine, for `bench ownership` to print its
//! figures against (issue 14): no Raft, no gRPC, no catalog, only what any three-member majority
//! commit has to do at the least.
//!
//! Each client is a leader with two followers of its own, all threads of this process on
//! loopback TCP. One commit: the leader sends a 64-byte record to both followers, appends it to
//! its own file and fsyncs (`sync_data`), while each follower appends it to its file, fsyncs and
//! answers with the record's number; the commit is done when the leader's fsync has returned and
//! one follower has answered (a majority of three). The clients run side by side, each on its own
//! files, so nothing is batched: at 64 clients the disk sees 64 commits' fsyncs at once, as a
//! grid without batching would give it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// One record: its number, then padding (about a small Raft entry).
const RECORD: usize = 64;

/// What one level of the floor measured: every commit's latency, and the wall time it took.
pub(super) struct Floor {
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

/// Run `clients` leaders side by side, each committing until `duration` has passed or it has
/// made `max_per_client` commits; files go under `dir` (which the caller removes).
pub(super) fn replicated_commits(
    dir: &Path,
    clients: usize,
    duration: Duration,
    max_per_client: usize,
) -> io::Result<Floor> {
    std::fs::create_dir_all(dir)?;
    let started = Instant::now();
    let until = started + duration;
    let leaders: Vec<_> = (0..clients)
        .map(|k| {
            let dir = dir.to_path_buf();
            thread::spawn(move || leader(&dir, k, until, max_per_client))
        })
        .collect();
    let mut latencies = Vec::new();
    for l in leaders {
        let lat = l
            .join()
            .map_err(|_| io::Error::other("a floor client thread panicked"))??;
        latencies.extend(lat);
    }
    Ok(Floor {
        latencies,
        elapsed: started.elapsed(),
    })
}

fn log_file(dir: &Path, name: &str) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
}

/// A follower: append each record, fsync, answer with its number; ends when the leader closes.
fn follower(listener: TcpListener, mut file: File) -> io::Result<()> {
    let (mut conn, _) = listener.accept()?;
    conn.set_nodelay(true)?;
    let mut record = [0u8; RECORD];
    loop {
        match conn.read_exact(&mut record) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        file.write_all(&record)?;
        file.sync_data()?;
        conn.write_all(&record[..8])?;
    }
}

/// Forward each answer's record number from one follower to the leader.
fn answers(mut conn: TcpStream, to: mpsc::Sender<u64>) {
    let mut n = [0u8; 8];
    while conn.read_exact(&mut n).is_ok() {
        if to.send(u64::from_le_bytes(n)).is_err() {
            return;
        }
    }
}

fn leader(dir: &Path, k: usize, until: Instant, max: usize) -> io::Result<Vec<Duration>> {
    let mut own = log_file(dir, &format!("client-{k}-leader.log"))?;
    let (acks, acked) = mpsc::channel();
    let mut followers = Vec::new();
    let mut threads = Vec::new();
    for f in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let file = log_file(dir, &format!("client-{k}-follower-{f}.log"))?;
        threads.push(thread::spawn(move || follower(listener, file)));
        let conn = TcpStream::connect(addr)?;
        conn.set_nodelay(true)?;
        let reader = conn.try_clone()?;
        let acks = acks.clone();
        thread::spawn(move || answers(reader, acks));
        followers.push(conn);
    }
    drop(acks);
    let mut latencies = Vec::new();
    let mut record = [0xA5u8; RECORD];
    for n in 1..=max as u64 {
        if Instant::now() >= until {
            break;
        }
        record[..8].copy_from_slice(&n.to_le_bytes());
        let started = Instant::now();
        for conn in &mut followers {
            conn.write_all(&record)?;
        }
        own.write_all(&record)?;
        own.sync_data()?;
        // The first follower to answer this record makes the majority; a slower one's answer
        // to an earlier record is passed over.
        loop {
            let got = acked
                .recv()
                .map_err(|_| io::Error::other("both floor followers went away"))?;
            if got == n {
                break;
            }
        }
        latencies.push(started.elapsed());
    }
    // Half-close: each follower writes what it still has, answers it and then sees the end.
    for conn in followers {
        let _ = conn.shutdown(std::net::Shutdown::Write);
    }
    for t in threads {
        t.join()
            .map_err(|_| io::Error::other("a floor follower thread panicked"))??;
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_commit_is_counted_and_the_followers_hold_every_record() {
        let dir = std::env::temp_dir().join(format!("vtgrid-floor-test-{}", std::process::id()));
        let floor = replicated_commits(&dir, 2, Duration::from_secs(30), 25).unwrap();
        assert_eq!(floor.latencies.len(), 50, "two clients, 25 commits each");
        for k in 0..2 {
            for f in 0..2 {
                let len = std::fs::metadata(dir.join(format!("client-{k}-follower-{f}.log")))
                    .unwrap()
                    .len();
                assert_eq!(len, 25 * RECORD as u64, "client {k} follower {f}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
