//! The host's jobs: what each kind does, what its result must be, and when an error is one the
//! schedule explains ([`why_expected`]).

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use vtgrid_core::Volser;
use vtgrid_proto::pb::{self, Reason};
use vtgrid_proto::reason_of;
use vtgrid_sim::client::{self, digest_hex};
use vtgrid_sim::cluster::SYNC_CLASSES;
use vtgrid_sim::grid::GridControl;
use vtgrid_sim::ledger::Ledger;

use super::history::{History, SCRATCH, SETTLE, WALKED_AWAY};
use super::plan::{Job, Kind, LARGE};

/// Unique bytes for one job, so every write has its own digest.
fn payload(seed: u64, worker: usize, n: usize, len: usize) -> Vec<u8> {
    let tag = format!("seed {seed} worker {worker} job {n}|");
    tag.bytes().cycle().take(len.max(tag.len())).collect()
}

/// The mount request with the job's management class, if it names one.
fn classed(
    request: vtgrid_proto::pb::MountRequest,
    class: Option<&str>,
) -> vtgrid_proto::pb::MountRequest {
    match class {
        Some(class) => client::with_class(request, class),
        None => request,
    }
}

/// A write stream that sends its open and first chunk and then never ends: the client gives up
/// on it (the call is dropped), as a cancelling host would.
async fn cancel_write(at: u8, mount_id: &str, data: &[u8]) {
    let mut host = client::host(at);
    let first = vec![
        pb::WriteRequest {
            msg: Some(pb::write_request::Msg::Open(pb::WriteOpen {
                mount_id: mount_id.into(),
            })),
        },
        pb::WriteRequest {
            msg: Some(pb::write_request::Msg::Chunk(Bytes::copy_from_slice(data))),
        },
    ];
    let stream =
        futures::StreamExt::chain(futures::stream::iter(first), futures::stream::pending());
    let _ = tokio::time::timeout(Duration::from_millis(300), host.write(stream)).await;
}

/// Run one job; Ok(what it did) or the host's error (DATA_LOSS when a read returned bytes it
/// must not have).
async fn job_outcome(
    seed: u64,
    worker: usize,
    n: usize,
    job: &Job,
    ledger: &Ledger,
) -> Result<String, tonic::Status> {
    let at = job.at;
    let data = payload(seed, worker, n, job.len);
    let specific = || classed(client::specific(&job.volser), job.class);
    match job.kind {
        Kind::Write => client::write_job(at, specific(), &data, ledger)
            .await
            .map(|d| format!("wrote {} v{} copies {:?}", d.volser, d.version, d.copies)),
        Kind::Large => {
            let data = payload(seed, worker, n, LARGE);
            client::write_job(at, specific(), &data, ledger)
                .await
                .map(|d| format!("wrote {} v{} ({} bytes)", d.volser, d.version, d.size))
        }
        Kind::Scratch => client::write_job(
            at,
            classed(client::scratch("0001"), job.class),
            &data,
            ledger,
        )
        .await
        .map(|d| format!("scratch {} v{}", d.volser, d.version)),
        Kind::Read => {
            let (m, bytes) = client::read_job(at, &job.volser).await?;
            check_read(ledger, &job.volser, &m, &bytes).map_err(tonic::Status::data_loss)?;
            Ok(format!(
                "read {} v{} ({} bytes)",
                job.volser,
                m.version,
                bytes.len()
            ))
        }
        Kind::Recategorise => {
            let category = if n.is_multiple_of(2) { "0001" } else { "000F" };
            client::change_category(at, &job.volser, category)
                .await
                .map(|v| format!("{} now in {}", job.volser, v.category))
        }
        Kind::Append | Kind::SyncPoint => {
            let mut host = client::host(at);
            let mut request = specific();
            request.append = job.kind == Kind::Append;
            let m = client::deadline(host.mount(request)).await?.into_inner();
            let volser: Volser = m
                .volser
                .parse()
                .map_err(|_| tonic::Status::internal("volser"))?;
            // The version this job builds on (an append's base, read first).
            let mut base = Vec::new();
            let result = async {
                if job.kind == Kind::Append {
                    base = client::read_all(&mut host, &m.mount_id).await?;
                }
                let (a, b) = data.split_at(data.len() / 2);
                client::write(&mut host, &m.mount_id, a).await?;
                if job.kind == Kind::SyncPoint {
                    client::deadline(host.sync(pb::SyncRequest {
                        mount_id: m.mount_id.clone(),
                    }))
                    .await?;
                    // Tape semantics (T17): if the job ends before its unload, the bytes up to
                    // this sync point become the version.
                    let prefix = [base.as_slice(), a].concat();
                    ledger.in_doubt(volser, &digest_hex(&prefix));
                }
                client::write(&mut host, &m.mount_id, b).await?;
                Ok::<_, tonic::Status>(())
            }
            .await;
            let whole = [base.as_slice(), &data].concat();
            if let Err(e) = result {
                // The cluster may not have failed the job (the host only gave up waiting, e.g. on
                // a sync point its Sync peer was slow to answer): then this unload commits what
                // was written, a version the host must count as its own. Unanswered, it may have
                // committed the base and the first half, or the whole.
                match client::unload(&mut host, &m.mount_id).await {
                    Ok(done) if done.written => ledger.acknowledge_unload(volser, &done, at),
                    Ok(_) => {}
                    Err(_) => {
                        let (a, _) = data.split_at(data.len() / 2);
                        ledger.in_doubt(volser, &digest_hex(&[base.as_slice(), a].concat()));
                        ledger.in_doubt(volser, &digest_hex(&whole));
                    }
                }
                return Err(e);
            }
            match client::unload(&mut host, &m.mount_id).await {
                Ok(done) => {
                    ledger.acknowledge_unload(volser, &done, at);
                    Ok(format!("{:?} {} v{}", job.kind, done.volser, done.version))
                }
                Err(e) => {
                    ledger.in_doubt(volser, &digest_hex(&whole));
                    Err(e)
                }
            }
        }
        Kind::CancelWrite => {
            let mut host = client::host(at);
            let m = client::deadline(host.mount(specific())).await?.into_inner();
            cancel_write(at, &m.mount_id, &data).await;
            Ok(format!("cancelled a write of {} and walked away", m.volser))
        }
        Kind::CancelUnload => {
            let mut host = client::host(at);
            let m = client::deadline(host.mount(specific())).await?.into_inner();
            client::write(&mut host, &m.mount_id, &data).await?;
            let volser: Volser = m
                .volser
                .parse()
                .map_err(|_| tonic::Status::internal("volser"))?;
            ledger.in_doubt(volser, &digest_hex(&data));
            let gave_up = tokio::time::timeout(
                Duration::from_millis(2),
                host.rewind_unload(pb::RewindUnloadRequest {
                    mount_id: m.mount_id.clone(),
                }),
            )
            .await;
            match gave_up {
                Ok(Ok(done)) => {
                    let done = done.into_inner();
                    ledger.acknowledge_unload(volser, &done, at);
                    Ok(format!("unload of {} answered before the cancel", m.volser))
                }
                _ => Ok(format!("gave up on the unload of {}", m.volser)),
            }
        }
    }
}

/// The data clusters whose volume store a job writes to: its mount cluster, and with a Sync
/// class both sync clusters (C0 and C1, [`SYNC_CLASSES`]), which duplex its bytes. A job that
/// names no class runs under the one the volume has already (full seed 4465: a Sync class an
/// earlier job set), so it may duplex too.
fn touched(job: &Job) -> Vec<u8> {
    let mut at = vec![job.at];
    if job
        .class
        .is_none_or(|c| SYNC_CLASSES.iter().any(|(name, _)| *name == c))
    {
        at.extend([0, 1]);
    }
    at
}

/// Why an error was expected, or None.
fn why_expected(
    status: &tonic::Status,
    h: &History,
    job: &Job,
    worker: usize,
    from: Instant,
) -> Option<String> {
    if status.code() == tonic::Code::DataLoss {
        // A checksum mismatch, or a read that returned bytes the host never wrote
        // ([`check_read`]): no fault excuses either.
        return None;
    }
    let now = Instant::now();
    let faults = h.faults_during(from, now);
    if !faults.is_empty() {
        return Some(format!("faults {faults:?}"));
    }
    let disk = h.disk_faults_during(&touched(job), from, now);
    if !disk.is_empty() {
        return Some(format!(
            "disk faults {disk:?} at a cluster the job wrote to"
        ));
    }
    match reason_of(status) {
        Some(Reason::VolumeInUse)
            if job.volser.starts_with('S')
                && h.contended(SCRATCH, worker, from - SETTLE, now).is_some() =>
        {
            Some(format!(
                "another worker's scratch mount may have taken {}",
                job.volser
            ))
        }
        Some(Reason::VolumeInUse) => {
            h.contended(&job.volser, worker, from - SETTLE, now)
                .map(|w| match w {
                    WALKED_AWAY => format!(
                        "a job the host gave up on (cancelled or unanswered) may still hold {}",
                        job.volser
                    ),
                    w => format!("worker {w} held {} meanwhile", job.volser),
                })
        }
        Some(Reason::NoScratchAvailable) if job.kind == Kind::Scratch => {
            Some("the scratch pool is used up".into())
        }
        _ => None,
    }
}

pub async fn run_worker(
    seed: u64,
    worker: usize,
    jobs: &[(Duration, Job)],
    ledger: &Ledger,
    h: &History,
) -> Result<(), String> {
    for (n, (pause, job)) in jobs.iter().enumerate() {
        tokio::time::sleep(*pause).await;
        // A scratch mount picks its own volume: its span is kept under SCRATCH, so a job on a
        // scratch volume that meets it knows why.
        let key = if job.kind == Kind::Scratch {
            SCRATCH
        } else {
            job.volser.as_str()
        };
        let began = h.job_began(key, worker);
        let outcome = job_outcome(seed, worker, n, job, ledger).await;
        h.job_ended(key, worker, began);
        // A job the host gave up on may hold its volume until the cluster's idle timeout: a
        // cancelling client's, and any that failed (its mount or unload unanswered, the host
        // may not even know its mount id).
        if matches!(job.kind, Kind::CancelWrite | Kind::CancelUnload) || outcome.is_err() {
            h.job_lingers(key, worker, began);
        }
        match outcome {
            Ok(done) => h.note(format!("worker {worker} job {n} at C{}: {done}", job.at)),
            Err(status) => match why_expected(&status, h, job, worker, began) {
                Some(why) => h.note(format!(
                    "worker {worker} job {n} at C{}: {job:?} failed ({why}): {:?} {}",
                    job.at,
                    reason_of(&status),
                    status.message()
                )),
                None => {
                    let line = format!(
                        "worker {worker} job {n} at C{}: {job:?} FAILED with no fault to explain \
                         it: {:?} {:?}: {}",
                        job.at,
                        reason_of(&status),
                        status.code(),
                        status.message()
                    );
                    h.note(line.clone());
                    return Err(line);
                }
            },
        }
    }
    Ok(())
}

/// Every volume the host wrote holds a version the host wrote, at or after the last acknowledged
/// one, and reads back through its owner with the catalog's digest.
pub async fn read_back(control: &GridControl, ledger: &Ledger, h: &History) -> Result<(), String> {
    let latest = ledger.latest_kept(|volser, ack| {
        // Fenced by a takeover and quarantined at its writer (checked strictly by
        // `invariants::quarantine_only_of_fenced_versions`): not the grid's any more (B134).
        control
            .cluster(ack.written_at)
            .is_some_and(|w| vtgrid_sim::invariants::quarantined(&w, volser, ack))
    });
    for v in ledger.volumes() {
        let volser = v.to_string();
        let seen = client::volume(0, &volser)
            .await
            .map_err(|e| format!("GetVolume {volser}: {e}"))?;
        if let Some(ack) = latest.get(&v) {
            if seen.version < ack.version
                || (seen.version == ack.version && seen.digest != ack.digest)
            {
                return Err(format!(
                    "B37: {volser} was acknowledged at v{} ({}) at C{}, the healed catalog has \
                     v{} ({})",
                    ack.version, ack.digest, ack.written_at, seen.version, seen.digest
                ));
            }
        }
        if seen.version == 0 {
            continue;
        }
        if !ledger.wrote(v, &seen.digest) {
            return Err(format!(
                "{volser} v{} has a digest the host never wrote ({})",
                seen.version, seen.digest
            ));
        }
        let owner = u8::try_from(seen.owner).map_err(|e| e.to_string())?;
        if seen.category == "0001" {
            client::change_category(owner, &volser, "000F")
                .await
                .map_err(|e| format!("making {volser} private to read it: {e}"))?;
        }
        let (_, bytes) = client::read_job(owner, &volser)
            .await
            .map_err(|e| format!("reading {volser} back through C{owner}: {e}"))?;
        if digest_hex(&bytes) != seen.digest {
            return Err(format!(
                "{volser} v{} reads back as {}, the catalog says {}",
                seen.version,
                digest_hex(&bytes),
                seen.digest
            ));
        }
        h.note(format!(
            "read back {volser} v{} through C{owner}",
            seen.version
        ));
    }
    Ok(())
}

/// A read returns the version the mount announced: empty when blank, else bytes the host wrote
/// (the acknowledged ones when that version was acknowledged).
fn check_read(
    ledger: &Ledger,
    volser: &str,
    m: &vtgrid_proto::pb::MountResponse,
    bytes: &[u8],
) -> Result<(), String> {
    if m.blank || m.version == 0 {
        return if bytes.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{volser}: a blank mount read {} bytes",
                bytes.len()
            ))
        };
    }
    let v: Volser = volser.parse().map_err(|e| format!("{e}"))?;
    let got = digest_hex(bytes);
    // A version number acknowledged twice (a cut-off owner's journalled version and its taker's,
    // takeover seed 3511) may read back as either while the fenced one waits for its owner's
    // return; which one the grid keeps is checked at the end (`read_back`, fenced versions set
    // aside) and the reuse itself after every step (`invariants::one_version_per_number`).
    let acked = ledger.acked_digests(v, m.version);
    if acked.contains(&got) || (acked.is_empty() && ledger.wrote(v, &got)) {
        return Ok(());
    }
    Err(match acked.first() {
        Some(d) => format!(
            "{volser} v{} read back as {got}, acknowledged as {d}",
            m.version
        ),
        None => format!(
            "{volser} v{} read back bytes the host never wrote ({got})",
            m.version
        ),
    })
}
