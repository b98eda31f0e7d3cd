//! B11, B4, B14, B15 on a three-cluster grid.
//!
//! Sequence: c0, c1, c2 form one Raft group → the host inserts A00000-A00009 through c0 (B16: c0
//! owns them) and writes A00001 at c0 → mounts A00001 at c1: c1 obtains ownership from c0 (B11;
//! epoch 2) and reads the bytes from c0's TVC (B4) → partitions c0 from c1 and c2 → at c2, a mount
//! of A00002 (owned by c0) fails with OWNER_UNREACHABLE (B14); at c0, A00003 is mounted, written
//! and unloaded anyway (B15: the journal holds it, c0 sees version 1) → the partition heals → the
//! catalog at c2 shows A00003 at version 1, consistent at c0, and c0's journal is empty.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use vtgrid_proto::pb::{self, write_request, Reason};
use vtgrid_proto::reason_of;
use vtgrid_sim::client::{self, deadline};
use vtgrid_sim::cluster::run_grid;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[5, 17, 2024];

type Host = pb::host_service_client::HostServiceClient<tonic::transport::Channel>;

async fn write_job(
    host: &mut Host,
    volser: &str,
    data: &[u8],
) -> Result<pb::RewindUnloadResponse, tonic::Status> {
    let m = deadline(host.mount(client::specific(volser)))
        .await?
        .into_inner();
    let msgs = vec![
        pb::WriteRequest {
            msg: Some(write_request::Msg::Open(pb::WriteOpen {
                mount_id: m.mount_id.clone(),
            })),
        },
        pb::WriteRequest {
            msg: Some(write_request::Msg::Chunk(Bytes::copy_from_slice(data))),
        },
        pb::WriteRequest {
            msg: Some(write_request::Msg::End(pb::WriteEnd {
                total_bytes: data.len() as u64,
            })),
        },
    ];
    deadline(host.write(futures::stream::iter(msgs))).await?;
    Ok(deadline(host.rewind_unload(pb::RewindUnloadRequest {
        mount_id: m.mount_id,
    }))
    .await?
    .into_inner())
}

async fn volume(at: u8, volser: &str) -> Result<pb::Volume, tonic::Status> {
    Ok(deadline(client::admin(at).get_volume(pb::GetVolumeRequest {
        volser: volser.into(),
        consistency: pb::Consistency::Local.into(),
    }))
    .await?
    .into_inner())
}

async fn scenario() -> Result<(), Box<dyn std::error::Error>> {
    for id in 0..3 {
        client::wait_ready(id, Duration::from_secs(60)).await?;
    }
    deadline(client::admin(0).insert_volumes(pb::InsertVolumesRequest {
        range: "A00000-A00009".into(),
        category: "000F".into(),
    }))
    .await?;
    let data = b"written at c0, read at c1".to_vec();
    write_job(&mut client::host(0), "A00001", &data).await?;

    // B11 + B4: mount at c1 moves ownership and reads c0's copy over the grid.
    let mut c1 = client::host(1);
    let m = deadline(c1.mount(client::specific("A00001")))
        .await?
        .into_inner();
    let mut stream = deadline(c1.read(pb::ReadRequest {
        mount_id: m.mount_id.clone(),
    }))
    .await?
    .into_inner();
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk?.data);
    }
    client::ensure(got == data, "c1 reads the bytes written at c0")?;
    deadline(c1.rewind_unload(pb::RewindUnloadRequest {
        mount_id: m.mount_id,
    }))
    .await?;
    // c1 waited for the transfer to apply before mounting; c2 may still trail.
    let v = volume(1, "A00001").await?;
    client::ensure(
        v.owner == 1 && v.epoch == 2,
        "c1's catalog says c1 owns A00001 at epoch 2",
    )?;

    // c2's view may still lack the insert: without it, its mount needs a read barrier through
    // the leader, which may be c0 (then CATALOG_UNAVAILABLE, not the B14 answer this tests).
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while volume(2, "A00002").await.is_err() {
        client::ensure(
            tokio::time::Instant::now() < until,
            "c2's catalog learns of the insert",
        )?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // B14 / B15: c0 cut off from c1 and c2.
    turmoil::partition("c0", "c1");
    turmoil::partition("c0", "c2");
    match deadline(client::host(2).mount(client::specific("A00002"))).await {
        Err(s) if reason_of(&s) == Some(Reason::OwnerUnreachable) => {}
        other => {
            return Err(format!(
                "mount at c2 of c0's volume: expected OWNER_UNREACHABLE, got {other:?}"
            )
            .into())
        }
    }
    let isolated = write_job(&mut client::host(0), "A00003", b"written while cut off").await?;
    client::ensure(
        isolated.version == 1 && isolated.written,
        "the isolated owner commits version 1 locally",
    )?;
    let seen_at_c0 = volume(0, "A00003").await?;
    client::ensure(
        seen_at_c0.version == 1,
        "c0 sees its own unpublished version",
    )?;

    turmoil::repair("c0", "c1");
    turmoil::repair("c0", "c2");
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = volume(2, "A00003").await?;
        if v.version == 1 && v.consistent_at.get(&0) == Some(&1) {
            break;
        }
        client::ensure(
            tokio::time::Instant::now() < until,
            "the catalog catches up with c0's journal after the heal",
        )?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The catalog holds v1 once the commit is applied; c0 forgets its journal entry when its
    // publisher hears the answer, a moment later.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = deadline(
            pb::status_service_client::StatusServiceClient::new(client::channel(0))
                .get_status(pb::GetStatusRequest {}),
        )
        .await?
        .into_inner();
        client::ensure(status.quarantined == 0, "c0 quarantined nothing")?;
        if status.journal_pending == 0 {
            break;
        }
        client::ensure(
            tokio::time::Instant::now() < until,
            &format!(
                "c0's journal drains: {} entries left",
                status.journal_pending
            ),
        )?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    run_grid(seed, 3, Duration::from_secs(600), scenario())
}

#[test]
fn b11_transfer_on_mount_and_b14_b15_owner_partitioned_away() {
    for_each_seed(
        "b11_transfer_on_mount_and_b14_b15_owner_partitioned_away",
        SEEDS,
        run,
    );
}
