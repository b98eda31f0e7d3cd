//! B6: a volume whose only valid copy is on an unreachable cluster fails to mount with
//! NO_VALID_COPY, and ownership does not move for a mount that cannot read anything.
//!
//! Sequence: c0, c1, c2 → insert at c0 → write A00001 at c0 with no management class (No Copy
//! everywhere else: only C0 holds it) → mount and unload it at c1 without writing (C1 becomes the
//! owner; the data stays at C0) → cut c0 off from c1 and c2 → a mount of A00001 at c2 fails with
//! NO_VALID_COPY, and C1 still owns it (epoch 2) → heal → the mount at c2 succeeds and reads the
//! bytes from C0.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use vtgrid_proto::pb::{self, write_request, Reason};
use vtgrid_proto::reason_of;
use vtgrid_sim::client::{self, deadline};
use vtgrid_sim::cluster::run_grid;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[4, 44];

async fn scenario() -> Result<(), Box<dyn std::error::Error>> {
    for id in 0..3 {
        client::wait_ready(id, Duration::from_secs(60)).await?;
    }
    deadline(client::admin(0).insert_volumes(pb::InsertVolumesRequest {
        range: "A00000-A00004".into(),
        category: "000F".into(),
    }))
    .await?;
    let data = b"only at c0".to_vec();
    let mut c0 = client::host(0);
    let m = deadline(c0.mount(client::specific("A00001")))
        .await?
        .into_inner();
    let msgs = vec![
        pb::WriteRequest {
            msg: Some(write_request::Msg::Open(pb::WriteOpen {
                mount_id: m.mount_id.clone(),
            })),
        },
        pb::WriteRequest {
            msg: Some(write_request::Msg::Chunk(Bytes::from(data.clone()))),
        },
        pb::WriteRequest {
            msg: Some(write_request::Msg::End(pb::WriteEnd {
                total_bytes: data.len() as u64,
            })),
        },
    ];
    deadline(c0.write(futures::stream::iter(msgs))).await?;
    deadline(c0.rewind_unload(pb::RewindUnloadRequest {
        mount_id: m.mount_id,
    }))
    .await?;

    let mut c1 = client::host(1);
    let m = deadline(c1.mount(client::specific("A00001")))
        .await?
        .into_inner();
    deadline(c1.rewind_unload(pb::RewindUnloadRequest {
        mount_id: m.mount_id,
    }))
    .await?;

    // c2's view must hold the write and the transfer before the cut (publishing is asynchronous).
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = deadline(client::admin(2).get_volume(pb::GetVolumeRequest {
            volser: "A00001".into(),
            consistency: pb::Consistency::Local.into(),
        }))
        .await?
        .into_inner();
        if v.owner == 1 && v.version == 1 {
            break;
        }
        client::ensure(
            tokio::time::Instant::now() < until,
            "c2 sees C1 owning version 1 of A00001",
        )?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    turmoil::partition("c0", "c1");
    turmoil::partition("c0", "c2");
    match deadline(client::host(2).mount(client::specific("A00001"))).await {
        Err(s) if reason_of(&s) == Some(Reason::NoValidCopy) => {}
        other => {
            return Err(format!(
                "mount at c2 with C0 cut off: expected NO_VALID_COPY, got {other:?}"
            )
            .into())
        }
    }
    let v = deadline(client::admin(1).get_volume(pb::GetVolumeRequest {
        volser: "A00001".into(),
        consistency: pb::Consistency::Local.into(),
    }))
    .await?
    .into_inner();
    client::ensure(
        v.owner == 1 && v.epoch == 2,
        "the refused mount did not move ownership",
    )?;

    turmoil::repair("c0", "c1");
    turmoil::repair("c0", "c2");
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut c2 = client::host(2);
    let m = loop {
        match deadline(c2.mount(client::specific("A00001"))).await {
            Ok(m) => break m.into_inner(),
            // Right after the heal the probe may still time out: retry until the deadline.
            Err(_) if tokio::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("mount at c2 after the heal: {e}").into()),
        }
    };
    let mut stream = deadline(c2.read(pb::ReadRequest {
        mount_id: m.mount_id.clone(),
    }))
    .await?
    .into_inner();
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk?.data);
    }
    client::ensure(got == data, "after the heal c2 reads C0's bytes")?;
    deadline(c2.rewind_unload(pb::RewindUnloadRequest {
        mount_id: m.mount_id,
    }))
    .await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    run_grid(seed, 3, Duration::from_secs(600), scenario())
}

#[test]
fn b6_no_reachable_copy_fails_the_mount_and_keeps_the_owner() {
    for_each_seed(
        "b6_no_reachable_copy_fails_the_mount_and_keeps_the_owner",
        SEEDS,
        run,
    );
}
