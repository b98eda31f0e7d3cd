//! B37: after rewind-unload returns, the version survives the cluster's crash; the data of a job
//! running at the crash is not provided ("Access to data of incomplete jobs ... is not provided").
//!
//! Sequence: c0 starts on memory storage → the host inserts A00000-A00004 → writes A00001 v1
//! (3 MiB + 17 bytes) and B-volume A00002 v1, both unloaded (acknowledged) → mounts A00001 again and
//! streams part of a v2 → the driver crashes c0 mid-stream and bounces it → the host, on a fresh
//! channel, finds A00001 at version 1 with v1's digest, reads exactly v1, mounts it again (the old
//! job holds no mount), finds A00002 intact, and the volume store holds no partial version.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use vtgrid_proto::pb::{self, mount_request, write_request};
use vtgrid_sim::client::{self, deadline};
use vtgrid_sim::cluster::{run_cluster, sim_grid, SimDisks};
use vtgrid_sim::seed::for_each_seed;

/// Seeds CI runs; `VTGRID_SIM_SEEDS=n` sweeps more.
const SEEDS: &[u64] = &[1, 7, 42, 1234, 99991];

const WAITING: u8 = 0;
const MID_WRITE: u8 = 1;
const RESTARTED: u8 = 2;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

fn chunk_msgs(data: &[u8]) -> Vec<pb::WriteRequest> {
    data.chunks(1 << 20)
        .map(|c| pb::WriteRequest {
            msg: Some(write_request::Msg::Chunk(Bytes::copy_from_slice(c))),
        })
        .collect()
}

fn open(mount_id: &str) -> pb::WriteRequest {
    pb::WriteRequest {
        msg: Some(write_request::Msg::Open(pb::WriteOpen {
            mount_id: mount_id.into(),
        })),
    }
}

fn end(total: u64) -> pb::WriteRequest {
    pb::WriteRequest {
        msg: Some(write_request::Msg::End(pb::WriteEnd { total_bytes: total })),
    }
}

fn specific(volser: &str) -> pb::MountRequest {
    pb::MountRequest {
        target: Some(mount_request::Target::Volser(volser.into())),
        append: false,
        constructs: None,
        private_category: String::new(),
    }
}

/// Mount, write `data` in one stream, unload; returns the digest unload reported.
async fn write_volume(volser: &str, data: &[u8]) -> Result<String, String> {
    let mut host = client::host(0);
    let m = deadline(host.mount(specific(volser)))
        .await
        .map_err(|e| format!("mount {volser}: {e}"))?
        .into_inner();
    let mut msgs = vec![open(&m.mount_id)];
    msgs.extend(chunk_msgs(data));
    msgs.push(end(data.len() as u64));
    deadline(host.write(futures::stream::iter(msgs)))
        .await
        .map_err(|e| format!("write {volser}: {e}"))?;
    let done = deadline(host.rewind_unload(pb::RewindUnloadRequest {
        mount_id: m.mount_id,
    }))
    .await
    .map_err(|e| format!("unload {volser}: {e}"))?
    .into_inner();
    if done.version != 1 || done.size != data.len() as u64 {
        return Err(format!(
            "unload of {volser} reported version {} size {}",
            done.version, done.size
        ));
    }
    Ok(done.digest)
}

/// Mount and read the whole volume, then unload.
async fn read_volume(volser: &str) -> Result<Vec<u8>, String> {
    let mut host = client::host(0);
    let m = deadline(host.mount(specific(volser)))
        .await
        .map_err(|e| format!("mount {volser}: {e}"))?
        .into_inner();
    let mut stream = deadline(host.read(pb::ReadRequest {
        mount_id: m.mount_id.clone(),
    }))
    .await
    .map_err(|e| format!("read {volser}: {e}"))?
    .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = deadline(async { Ok(stream.next().await) })
        .await
        .map_err(|e| e.to_string())?
    {
        out.extend_from_slice(&chunk.map_err(|e| format!("read {volser}: {e}"))?.data);
    }
    deadline(host.rewind_unload(pb::RewindUnloadRequest {
        mount_id: m.mount_id,
    }))
    .await
    .map_err(|e| e.to_string())?;
    Ok(out)
}

fn run(seed: u64) -> Result<(), String> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(300))
        .build();
    let grid = Arc::new(sim_grid(1, 0));
    let disks = SimDisks::new();
    {
        let (grid, disks) = (grid.clone(), disks.clone());
        sim.host("c0", move || run_cluster(grid.clone(), 0, disks.clone()));
    }
    let phase = Arc::new(AtomicU8::new(WAITING));
    let v1 = pattern(3 * (1 << 20) + 17, 1);
    let other = pattern(200_000, 2);
    {
        let (phase, v1, other) = (phase.clone(), v1.clone(), other.clone());
        sim.client("tape-host", async move {
            client::wait_ready(0, Duration::from_secs(30)).await?;
            let mut admin = client::admin(0);
            deadline(admin.insert_volumes(pb::InsertVolumesRequest {
                range: "A00000-A00004".into(),
                category: "000F".into(),
            }))
            .await?;
            let digest = write_volume("A00001", &v1).await?;
            write_volume("A00002", &other).await?;

            // A second job on A00001: stream part of v2, then hold the stream open.
            let mut host = client::host(0);
            let m = deadline(host.mount(specific("A00001"))).await?.into_inner();
            let (tx, rx) = tokio::sync::mpsc::channel::<pb::WriteRequest>(8);
            tx.send(open(&m.mount_id)).await?;
            for msg in chunk_msgs(&pattern(2 << 20, 9)) {
                tx.send(msg).await?;
            }
            let writer = tokio::spawn(async move {
                host.write(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
            });
            tokio::time::sleep(Duration::from_millis(500)).await; // pacing: let the chunks arrive
            phase.store(MID_WRITE, Ordering::SeqCst);

            // The driver crashes and restarts c0; the job's stream dies with it.
            let until = tokio::time::Instant::now() + Duration::from_secs(60);
            while phase.load(Ordering::SeqCst) != RESTARTED {
                if tokio::time::Instant::now() > until {
                    return Err("the driver never restarted c0".into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            drop(tx);
            let _ = writer.await;
            client::wait_ready(0, Duration::from_secs(60)).await?;

            let mut admin = client::admin(0);
            let a = deadline(admin.get_volume(pb::GetVolumeRequest {
                volser: "A00001".into(),
                consistency: pb::Consistency::Local.into(),
            }))
            .await?
            .into_inner();
            if (a.version, a.size, a.digest.as_str()) != (1, v1.len() as u64, digest.as_str()) {
                return Err(format!(
                    "A00001 after the crash: version {} size {} digest {}",
                    a.version, a.size, a.digest
                )
                .into());
            }
            if read_volume("A00001").await? != v1 {
                return Err("A00001 does not read back as its committed version".into());
            }
            if read_volume("A00002").await? != other {
                return Err("A00002 changed across the crash".into());
            }
            Ok(())
        });
    }
    let mut crashed = false;
    loop {
        let done = sim.step().map_err(|e| e.to_string())?;
        if done {
            break;
        }
        if !crashed && phase.load(Ordering::SeqCst) == MID_WRITE {
            sim.crash("c0");
            sim.bounce("c0");
            crashed = true;
            phase.store(RESTARTED, Ordering::SeqCst);
        }
    }
    if !crashed {
        return Err("the crash never happened".into());
    }
    let held = vtgrid_tvc::VolumeStore::versions(&disks.volumes).map_err(|e| e.to_string())?;
    let names: Vec<String> = held.iter().map(|(v, n)| format!("{v}@{n}")).collect();
    if names != ["A00001@1", "A00002@1"] {
        return Err(format!("volume store after the crash holds {names:?}"));
    }
    Ok(())
}

#[test]
fn b37_crash_mid_write_keeps_the_committed_version_and_drops_the_job() {
    for_each_seed("b37_crash_mid_write", SEEDS, run);
}
