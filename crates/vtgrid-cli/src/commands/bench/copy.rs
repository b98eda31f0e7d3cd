//! `vtgrid bench copy`: RUN copies and Sync writes as ratios to the machine's own limits, all
//! measured in the same run on the same filesystem (the project's rule for speed targets).
//!
//! ```text
//!   (a) sender thread ──127.0.0.1 TCP──> receiver thread ──write──> file ──fsync, rename, fsync dir
//!   (b) host ──Write──> C0 (class NOCOPY, "RN": C0 keeps the only copy) ──RewindUnload
//!       RUN:  host ──Write──> C0 (class RUN, "RR") ──RewindUnload──> C1 PullCopy ──> answer
//!       Sync: host ──Write──> C0 (class SYNC, "SS") ──SyncWrite──> C1, both durable ──> answer
//! ```
//!
//! Every job mounts a fresh volume at C0 of a two-cluster grid of real `vtgrid node` processes
//! and is timed from its first chunk sent to rewind-unload answered (the mount is not timed). The
//! RUN copy is what rewind-unload with RR adds to rewind-unload with RN: both commit and journal
//! the same version locally, and only RR makes C1 pull it (read from C0 over the grid network,
//! verify, write, fsync, journal CopyDone) before answering. Each run measures (a), RN, RR and SS
//! in that order, so a change in machine load over time touches all of them; the table shows
//! medians over the runs (the RUN copy: the median of each run's difference). Before each
//! measurement the filesystem is synced (`syncfs`, untimed), so none pays for writing back the
//! gigabytes of the one before it, and every measurement writes new files that stay until the end
//! (no job reuses page cache another one freed). That needs six times the size per run on disk,
//! checked before the grid starts.
//!
//! The bytes are deterministic: one pseudo-random MiB, each chunk stamped with its index, so no
//! two chunks are equal and making them costs one memory copy per MiB, for the baseline's sender
//! and the host alike.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use vtgrid_proto::pb::{self, host_service_client::HostServiceClient, write_request};

use super::{machine, remove_dir, specific, Grid};
use crate::client::{self, CliError};

/// Bytes per write message and per baseline write: the volume store's chunk size.
const CHUNK: usize = 1 << 20;
const MIB: u64 = 1 << 20;
/// Data clusters in the benchmark grid: the writer C0 and the copy (or sync) target C1.
const CLUSTERS: usize = 2;
/// Bounds on the command's arguments, so a typo cannot start an endless run.
const MAX_RUNS: usize = 100;
const MAX_SIZE_MIB: u64 = 1 << 20;
/// Longest a baseline socket read may wait for bytes.
const SOCKET_IDLE: Duration = Duration::from_secs(60);
/// Longest the grid may take to show the grid file's management classes.
const CLASSES_VISIBLE: Duration = Duration::from_secs(30);

/// The classes every job uses, defined on both clusters; jobs run at C0. `on_sync_failure =
/// "fail"`: a Sync job that lost C1 fails rather than measuring a single-cluster write.
const CLASSES: &str = r#"[[management_class]]
name = "NOCOPY"
copy_modes = { C0 = "RN", C1 = "NR" }
[[management_class]]
name = "RUN"
copy_modes = { C0 = "RR", C1 = "RR" }
[[management_class]]
name = "SYNC"
copy_modes = { C0 = "SS", C1 = "SS" }
on_sync_failure = "fail"
"#;

/// One kind of host job: its class, the volumes it writes, and which clusters must hold the
/// version when rewind-unload answers (else the figure would not measure what it claims).
struct JobKind {
    class: &'static str,
    vector: &'static str,
    prefix: char,
    holders: &'static [u32],
}

const NOCOPY: JobKind = JobKind {
    class: "NOCOPY",
    vector: "RN",
    prefix: 'N',
    holders: &[0],
};
const RUN: JobKind = JobKind {
    class: "RUN",
    vector: "RR",
    prefix: 'R',
    holders: &[0, 1],
};
const SYNC: JobKind = JobKind {
    class: "SYNC",
    vector: "SS",
    prefix: 'S',
    holders: &[0, 1],
};

/// Deterministic bytes of a given size, generated one chunk at a time.
#[derive(Clone)]
struct Data {
    base: Bytes,
    size: u64,
}

impl Data {
    fn new(size: u64) -> Data {
        // xorshift64 with a fixed seed: the same bytes on every machine and run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut base = Vec::with_capacity(CHUNK);
        while base.len() < CHUNK {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            base.extend_from_slice(&x.to_le_bytes());
        }
        Data {
            base: Bytes::from(base),
            size,
        }
    }

    fn chunks(&self) -> u64 {
        self.size.div_ceil(CHUNK as u64)
    }

    /// Chunk `k`: the base MiB with `k` in its first eight bytes, cut short at the end of `size`.
    fn chunk(&self, k: u64) -> Bytes {
        let len = (self.size - k * CHUNK as u64).min(CHUNK as u64) as usize;
        let mut c = self.base[..len].to_vec();
        let stamp = k.to_le_bytes();
        let n = stamp.len().min(len);
        c[..n].copy_from_slice(&stamp[..n]);
        Bytes::from(c)
    }
}

/// What baseline (a) took.
struct Baseline {
    /// Connect → the directory's fsync returned.
    took: Duration,
    /// The file's fsync, rename and the directory's fsync.
    durable: Duration,
}

/// What one host job took.
struct Job {
    /// First chunk sent → rewind-unload answered: what the host waits for.
    total: Duration,
    /// Rewind-unload sent → answered.
    unload: Duration,
}

/// The medians the table prints.
struct Figures {
    tcp: Duration,
    single: Duration,
    run_copy: Duration,
    run_write: Duration,
    sync_write: Duration,
}

pub(super) async fn run(
    size_mib: u64,
    runs: usize,
    dir: Option<PathBuf>,
    tls: bool,
) -> Result<(), CliError> {
    if !(1..=MAX_SIZE_MIB).contains(&size_mib) {
        return Err(CliError::Usage(format!(
            "--size-mib must be 1..={MAX_SIZE_MIB}"
        )));
    }
    if !(1..=MAX_RUNS).contains(&runs) {
        return Err(CliError::Usage(format!("--runs must be 1..={MAX_RUNS}")));
    }
    let parent = dir.unwrap_or_else(std::env::temp_dir);
    let size = size_mib * MIB;
    check_space(&parent, size, runs)?;
    let grid = Grid::start(&parent, CLUSTERS, CLASSES, tls).await?;
    match measure(&grid, size, runs).await {
        Ok(figures) => {
            print_table(&grid.dir, size_mib, runs, &figures, grid.tls);
            grid.stop().await;
            Ok(())
        }
        Err(e) => {
            remove_dir(&grid.dir.join("baseline"));
            grid.stop_after_failure().await;
            Err(e)
        }
    }
}

async fn measure(grid: &Grid, size: u64, runs: usize) -> Result<Figures, CliError> {
    let c0 = &grid.hosts[0];
    wait_for_classes(c0).await?;
    let mut admin = client::admin(c0).await?;
    // Warm-up volumes W00000-W00002, one per class, then `runs` volumes per class.
    admin
        .insert_volumes(pb::InsertVolumesRequest {
            range: range('W', 3),
            category: "000F".into(),
        })
        .await?;
    for kind in [&NOCOPY, &RUN, &SYNC] {
        admin
            .insert_volumes(pb::InsertVolumesRequest {
                range: range(kind.prefix, runs),
                category: "000F".into(),
            })
            .await?;
    }
    let mut host = client::host(c0).await?;

    // One small job per class first: connections, RocksDB and the grid links are warm before
    // anything is timed, and a class that cannot work fails here, in a second.
    let small = Data::new(MIB);
    for (k, kind) in [&NOCOPY, &RUN, &SYNC].into_iter().enumerate() {
        job(&mut host, &format!("W{k:05}"), kind, &small).await?;
    }

    let data = Data::new(size);
    let baselines = grid.dir.join("baseline");
    std::fs::create_dir_all(&baselines).map_err(|source| CliError::Io {
        what: "creating the baseline directory",
        source,
    })?;
    let mut tcp = Vec::new();
    let mut single = Vec::new();
    let mut copy = Vec::new();
    let mut run_write = Vec::new();
    let mut sync_write = Vec::new();
    for r in 0..runs {
        settle(&grid.dir).await?;
        let t = baseline(&baselines, r, &data).await?;
        settle(&grid.dir).await?;
        let n = job(&mut host, &volser(&NOCOPY, r), &NOCOPY, &data).await?;
        settle(&grid.dir).await?;
        let rr = job(&mut host, &volser(&RUN, r), &RUN, &data).await?;
        settle(&grid.dir).await?;
        let ss = job(&mut host, &volser(&SYNC, r), &SYNC, &data).await?;
        let copy_s = rr.unload.as_secs_f64() - n.unload.as_secs_f64();
        eprintln!(
            "run {}/{runs}: TCP+fsync {:.3} s (fsync {:.3} s), RN {:.3} s (unload {:.3} s), RR {:.3} s (unload {:.3} s), SS {:.3} s",
            r + 1,
            t.took.as_secs_f64(),
            t.durable.as_secs_f64(),
            n.total.as_secs_f64(),
            n.unload.as_secs_f64(),
            rr.total.as_secs_f64(),
            rr.unload.as_secs_f64(),
            ss.total.as_secs_f64(),
        );
        tcp.push(t.took.as_secs_f64());
        single.push(n.total.as_secs_f64());
        copy.push(copy_s);
        run_write.push(rr.total.as_secs_f64());
        sync_write.push(ss.total.as_secs_f64());
    }
    let run_copy = median(copy);
    if run_copy <= 0.0 {
        return Err(CliError::Grid(format!(
            "rewind-unload with RR was not slower than with RN (median difference {run_copy:.4} s): \
             the copy is lost in the noise; use a larger --size-mib"
        )));
    }
    Ok(Figures {
        tcp: Duration::from_secs_f64(median(tcp)),
        single: Duration::from_secs_f64(median(single)),
        run_copy: Duration::from_secs_f64(run_copy),
        run_write: Duration::from_secs_f64(median(run_write)),
        sync_write: Duration::from_secs_f64(median(sync_write)),
    })
}

/// Refuse to start when the filesystem under `parent` cannot hold every file the run writes:
/// per run the baseline (1×), RN at C0 (1×), RR and SS at C0 and C1 (4×), plus a margin.
fn check_space(parent: &Path, size: u64, runs: usize) -> Result<(), CliError> {
    let needed = size * 6 * runs as u64 + 256 * MIB;
    let fs = nix::sys::statvfs::statvfs(parent).map_err(|e| CliError::Io {
        what: "reading the free space under the bench directory",
        source: e.into(),
    })?;
    let free = fs.blocks_available() as u64 * fs.fragment_size() as u64;
    if free < needed {
        return Err(CliError::Usage(format!(
            "{} has {} MiB free; {runs} run(s) of {} MiB need {} MiB: lower --runs or --size-mib, or pass --dir",
            parent.display(),
            free / MIB,
            size / MIB,
            needed / MIB
        )));
    }
    Ok(())
}

/// `W00000` alone, or `W00000-W00002`.
fn range(prefix: char, n: usize) -> String {
    if n == 1 {
        format!("{prefix}00000")
    } else {
        format!("{prefix}00000-{prefix}{:05}", n - 1)
    }
}

fn volser(kind: &JobKind, run: usize) -> String {
    format!("{}{run:05}", kind.prefix)
}

/// The grid file's classes are defined through the catalog as the clusters start; wait until C0
/// sees all three, so the first mount does not race the definitions.
async fn wait_for_classes(endpoint: &str) -> Result<(), CliError> {
    let mut admin = client::admin(endpoint).await?;
    let deadline = Instant::now() + CLASSES_VISIBLE;
    loop {
        let classes = admin
            .list_management_classes(pb::ListManagementClassesRequest::default())
            .await?
            .into_inner()
            .classes;
        if [&NOCOPY, &RUN, &SYNC]
            .iter()
            .all(|k| classes.iter().any(|c| c.name == k.class))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CliError::Grid(
                "the bench grid's management classes did not appear at C0".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Longest one host job may take: generous for a slow debug build, but bounded.
fn job_deadline(size: u64) -> Duration {
    Duration::from_secs(120) + Duration::from_secs(size / MIB)
}

/// Mount `volser` at C0 with the kind's class, write `data`, rewind-unload; check that exactly
/// the kind's clusters hold the version when the host is answered.
async fn job(
    host: &mut HostServiceClient<crate::client::Conn>,
    volser: &str,
    kind: &JobKind,
    data: &Data,
) -> Result<Job, CliError> {
    let mount = pb::MountRequest {
        constructs: Some(pb::Constructs {
            management_class: kind.class.into(),
            ..Default::default()
        }),
        ..specific(volser)
    };
    let m = host.mount(mount).await?.into_inner();
    let timed = async {
        let started = Instant::now();
        let written = host
            .write(futures::stream::iter(write_requests(
                m.mount_id.clone(),
                data.clone(),
            )))
            .await?
            .into_inner();
        let unload_started = Instant::now();
        let done = host
            .rewind_unload(pb::RewindUnloadRequest {
                mount_id: m.mount_id.clone(),
            })
            .await?
            .into_inner();
        let ended = Instant::now();
        Ok::<_, CliError>((
            written,
            done,
            Job {
                total: ended - started,
                unload: ended - unload_started,
            },
        ))
    };
    let (written, done, job) = tokio::time::timeout(job_deadline(data.size), timed)
        .await
        .map_err(|_| {
            CliError::Grid(format!(
                "writing {volser} with class {} took longer than {:?}",
                kind.class,
                job_deadline(data.size)
            ))
        })??;
    if written.bytes != data.size || done.size != data.size || !done.written {
        return Err(CliError::Grid(format!(
            "{volser}: C0 took {} and committed {} of {} bytes",
            written.bytes, done.size, data.size
        )));
    }
    let mut holders = done.copies.clone();
    holders.sort_unstable();
    if done.immediate_copy_deferred || done.sync_deferred || holders != kind.holders {
        return Err(CliError::Grid(format!(
            "{volser} (class {}, \"{}\" at C0) held by {:?} at unload (wanted {:?}; deferred: RUN {}, Sync {}): \
             the figure would not measure the copy mode",
            kind.class,
            kind.vector,
            holders,
            kind.holders,
            done.immediate_copy_deferred,
            done.sync_deferred
        )));
    }
    Ok(job)
}

/// Open, every chunk, end: made lazily, so only the chunks gRPC has in flight are in memory.
fn write_requests(mount_id: String, data: Data) -> impl Iterator<Item = pb::WriteRequest> {
    let open = pb::WriteRequest {
        msg: Some(write_request::Msg::Open(pb::WriteOpen { mount_id })),
    };
    let end = pb::WriteRequest {
        msg: Some(write_request::Msg::End(pb::WriteEnd {
            total_bytes: data.size,
        })),
    };
    let chunks = (0..data.chunks()).map(move |k| pb::WriteRequest {
        msg: Some(write_request::Msg::Chunk(data.chunk(k))),
    });
    std::iter::once(open)
        .chain(chunks)
        .chain(std::iter::once(end))
}

/// Write back every dirty page of the filesystem under `dir` (syncfs), untimed, before each
/// measurement: otherwise the kernel is still flushing the previous measurement's gigabytes while
/// the next one runs, and whichever comes second pays for both.
async fn settle(dir: &Path) -> Result<(), CliError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let d = File::open(&dir)?;
        nix::unistd::syncfs(&d).map_err(std::io::Error::from)
    })
    .await
    .map_err(|e| CliError::Grid(format!("syncfs thread: {e}")))?
    .map_err(|source| CliError::Io {
        what: "syncing the bench filesystem between measurements",
        source,
    })
}

/// Baseline (a) of run `run`, on a blocking thread, into `dir/run-N`. The file stays until the
/// benchmark ends, as the volumes do: were it removed, the next job would write into the page
/// cache it freed (already backed by memory, on a virtual machine) while every other
/// measurement takes fresh pages, which made the RN job look faster than it is.
async fn baseline(dir: &Path, run: usize, data: &Data) -> Result<Baseline, CliError> {
    let dir = dir.to_path_buf();
    let data = data.clone();
    tokio::task::spawn_blocking(move || {
        loopback_tcp_write_fsync(&dir, &format!("run-{run}"), &data)
    })
    .await
    .map_err(|e| CliError::Grid(format!("baseline thread: {e}")))?
    .map_err(|source| CliError::Io {
        what: "measuring loopback TCP + write + fsync",
        source,
    })
}

/// The machine's limit for moving bytes from one process to durable storage: one sender thread
/// streams `data` over a 127.0.0.1 TCP connection; a receiver thread writes each MiB to a new file,
/// then fsyncs it, renames it into place and fsyncs the directory (what a volume store does to make
/// a version durable). Timed from connect to the directory's fsync returned.
fn loopback_tcp_write_fsync(dir: &Path, name: &str, data: &Data) -> std::io::Result<Baseline> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let started = Instant::now();
    // Connect before the receiver accepts: the kernel queues the connection, and a failed
    // connect leaves no thread waiting in accept.
    let mut sock = TcpStream::connect(addr)?;
    let (received, durable) = std::thread::scope(|s| {
        let receiver = s.spawn(|| receive_to_file(&listener, dir, name));
        let sent = (0..data.chunks())
            .try_for_each(|k| sock.write_all(&data.chunk(k)))
            .and_then(|()| sock.shutdown(Shutdown::Write));
        // On a send error the socket closes when `sock` is dropped below; the receiver sees EOF.
        drop(sock);
        let received = receiver
            .join()
            .map_err(|_| std::io::Error::other("the receiver thread panicked"))?;
        sent.and(received)
    })?;
    let took = started.elapsed();
    if received != data.size {
        return Err(std::io::Error::other(format!(
            "received {received} of {} bytes",
            data.size
        )));
    }
    Ok(Baseline { took, durable })
}

/// Receive into the file; returns the bytes and how long making them durable took.
fn receive_to_file(
    listener: &TcpListener,
    dir: &Path,
    name: &str,
) -> std::io::Result<(u64, Duration)> {
    let (mut sock, _) = listener.accept()?;
    sock.set_read_timeout(Some(SOCKET_IDLE))?;
    let partial = dir.join(format!("{name}.partial"));
    let mut file = File::create(&partial)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < CHUNK {
            match sock.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        file.write_all(&buf[..filled])?;
        total += filled as u64;
        if filled < CHUNK {
            break;
        }
    }
    let syncing = Instant::now();
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, dir.join(name))?;
    File::open(dir)?.sync_all()?;
    Ok((total, syncing.elapsed()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One table row: seconds, MB/s (10^6 bytes), and the throughput as a ratio to a baseline's.
fn row(label: &str, size: u64, took: Duration, baseline: Option<(&str, Duration)>) {
    let secs = took.as_secs_f64();
    let mbs = size as f64 / secs / 1e6;
    match baseline {
        Some((name, base)) => println!(
            "{label:<46} {secs:>9.3} {mbs:>9.1} {:>7.3}  {name}",
            base.as_secs_f64() / secs
        ),
        None => println!("{label:<46} {secs:>9.3} {mbs:>9.1} {:>7}", "-"),
    }
}

fn print_table(dir: &Path, size_mib: u64, runs: usize, f: &Figures, tls: bool) {
    let size = size_mib * MIB;
    println!(
        "copy benchmark: {size_mib} MiB per measurement, median of {runs} run(s), {CLUSTERS} clusters on loopback, {}, {}",
        super::transport(tls),
        machine()
    );
    println!(
        "data under {} (one filesystem for the baseline and both clusters); MB = 10^6 bytes",
        dir.display()
    );
    println!(
        "{:<46} {:>9} {:>9} {:>7}  to",
        "measurement", "seconds", "MB/s", "ratio"
    );
    row("(a) loopback TCP + write + fsync", size, f.tcp, None);
    row(
        "(b) single-cluster write, RN at C0",
        size,
        f.single,
        Some(("(a)", f.tcp)),
    );
    row(
        "RUN copy C0->C1 = unload(RR) - unload(RN)",
        size,
        f.run_copy,
        Some(("(a)", f.tcp)),
    );
    row(
        "RUN write, RR at C0, host view",
        size,
        f.run_write,
        Some(("(b)", f.single)),
    );
    row(
        "Sync write, SS at C0, host view",
        size,
        f.sync_write,
        Some(("(b)", f.single)),
    );
    for note in [
        "(a)  one 127.0.0.1 TCP connection: a thread sends, another writes each MiB to a new file,",
        "     then fsync, rename, fsync of the directory",
        "(b), RUN write, Sync write: first chunk sent to rewind-unload answered (mount not timed)",
        "each measurement starts after a syncfs of the bench filesystem (not timed)",
        "RUN copy: what RR adds to rewind-unload over RN: C1 pulls the version from C0 over the",
        "     grid network, verifies it, writes and fsyncs it and journals CopyDone",
    ] {
        println!("{note}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated bytes are the same every time and no two chunks are equal; a size that is
    /// not a whole number of chunks ends with a short one.
    #[test]
    fn data_is_deterministic_and_chunks_differ() {
        let a = Data::new(2 * MIB + 5);
        let b = Data::new(2 * MIB + 5);
        assert_eq!(a.chunks(), 3);
        assert_eq!(a.chunk(1), b.chunk(1));
        assert_ne!(a.chunk(0), a.chunk(1));
        assert_eq!(a.chunk(2).len(), 5);
        let total: u64 = (0..a.chunks()).map(|k| a.chunk(k).len() as u64).sum();
        assert_eq!(total, a.size);
    }

    /// Baseline (a) moves every byte into a durable file and leaves it for the caller to remove.
    #[test]
    fn loopback_baseline_receives_every_byte() {
        let dir = std::env::temp_dir().join(format!("vtgrid-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = Data::new(3 * MIB);
        let took = loopback_tcp_write_fsync(&dir, "run-0", &data).unwrap();
        assert!(took.took > took.durable && took.durable > Duration::ZERO);
        let len = std::fs::metadata(dir.join("run-0")).unwrap().len();
        remove_dir(&dir);
        assert_eq!(len, data.size);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![-1.0]), -1.0);
    }

    #[test]
    fn ranges_name_one_volume_or_many() {
        assert_eq!(range('N', 1), "N00000");
        assert_eq!(range('R', 3), "R00000-R00002");
    }
}
