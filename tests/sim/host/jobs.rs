//! Host job semantics on one simulated cluster.
//!
//! Sequence: c0 starts → insert A00000-A00009 into scratch 0001 → scratch mount (B8) gets the
//! lowest free volume this cluster owns, A00000; while it is mounted a second scratch mount gets
//! A00001 → the first job writes 10 bytes, syncs (durable point reports 10), writes 5 more and
//! unloads: version 1, 15 bytes, moved to private 000F → the second job unloads without writing:
//! nothing changes, A00001 stays scratch → an append mount of A00000 adds 7 bytes: version 2 holds
//! the 15 old bytes then the 7 new → ListVolumes pages 3 at a time through the 10 volumes in
//! order and filters by category and prefix → scratch mounts take the remaining 9 scratch volumes,
//! then fail with NO_SCRATCH_AVAILABLE (B8).

use std::time::Duration;

use vtgrid_proto::pb::{self, mount_request, Reason};
use vtgrid_proto::reason_of;
use vtgrid_sim::client::{self, deadline};
use vtgrid_sim::cluster::run_grid;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[3, 11];

fn mount_req(target: mount_request::Target, append: bool) -> pb::MountRequest {
    pb::MountRequest {
        target: Some(target),
        append,
        constructs: None,
        private_category: String::new(),
    }
}

fn scratch() -> pb::MountRequest {
    mount_req(mount_request::Target::ScratchCategory("0001".into()), false)
}

async fn scenario() -> Result<(), Box<dyn std::error::Error>> {
    client::wait_ready(0, Duration::from_secs(30)).await?;
    let mut admin = client::admin(0);
    let mut host = client::host(0);
    deadline(admin.insert_volumes(pb::InsertVolumesRequest {
        range: "A00000-A00009".into(),
        category: String::new(),
    }))
    .await?;

    // B8: scratch mounts pick the lowest free volume this cluster owns.
    let first = deadline(host.mount(scratch())).await?.into_inner();
    let second = deadline(host.mount(scratch())).await?.into_inner();
    client::ensure(
        first.volser == "A00000" && first.blank,
        "first scratch mount is blank A00000",
    )?;
    client::ensure(
        second.volser == "A00001",
        "second scratch mount skips the mounted A00000",
    )?;

    // A sync point reports the durable bytes; the version appears only at unload.
    client::write(&mut host, &first.mount_id, b"0123456789").await?;
    let synced = deadline(host.sync(pb::SyncRequest {
        mount_id: first.mount_id.clone(),
    }))
    .await?
    .into_inner();
    client::ensure(
        synced.durable_bytes == 10,
        "sync point covers the 10 bytes written",
    )?;
    let before = deadline(admin.get_volume(pb::GetVolumeRequest {
        volser: "A00000".into(),
        ..Default::default()
    }))
    .await?
    .into_inner();
    client::ensure(
        before.version == 0 && before.mounted,
        "no version before unload; the volume shows mounted",
    )?;
    client::write(&mut host, &first.mount_id, b"abcde").await?;
    let done = deadline(host.rewind_unload(pb::RewindUnloadRequest {
        mount_id: first.mount_id,
    }))
    .await?
    .into_inner();
    client::ensure(
        done.written && done.version == 1 && done.size == 15,
        "unload commits version 1 of 15 bytes",
    )?;
    client::ensure(
        done.category == "000F",
        "a scratch-mounted volume moves to the private category at commit",
    )?;

    let idle = deadline(host.rewind_unload(pb::RewindUnloadRequest {
        mount_id: second.mount_id,
    }))
    .await?
    .into_inner();
    client::ensure(
        !idle.written && idle.version == 0 && idle.category == "0001",
        "an unwritten scratch job changes nothing",
    )?;

    // Append mount: the new version is the old bytes followed by the new ones.
    let app = deadline(host.mount(mount_req(
        mount_request::Target::Volser("A00000".into()),
        true,
    )))
    .await?
    .into_inner();
    client::ensure(
        !app.blank && app.size == 15,
        "append mount sees the 15 committed bytes",
    )?;
    let w = client::write(&mut host, &app.mount_id, b"APPENDS").await?;
    client::ensure(
        w.bytes == 7 && w.volume_bytes == 22,
        "append write reports 7 new of 22 bytes",
    )?;
    deadline(host.rewind_unload(pb::RewindUnloadRequest {
        mount_id: app.mount_id,
    }))
    .await?;
    let rd = deadline(host.mount(mount_req(
        mount_request::Target::Volser("A00000".into()),
        false,
    )))
    .await?
    .into_inner();
    client::ensure(rd.version == 2, "append committed version 2")?;
    let bytes = client::read_all(&mut host, &rd.mount_id).await?;
    client::ensure(
        bytes == b"0123456789abcdeAPPENDS",
        "version 2 = version 1 + appended bytes",
    )?;
    deadline(host.rewind_unload(pb::RewindUnloadRequest {
        mount_id: rd.mount_id,
    }))
    .await?;

    // Paging and filters.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = deadline(admin.list_volumes(pb::ListVolumesRequest {
            page_size: 3,
            page_token: token.clone(),
            ..Default::default()
        }))
        .await?
        .into_inner();
        client::ensure(
            page.volumes.len() <= 3,
            "a page holds at most page_size volumes",
        )?;
        seen.extend(page.volumes.into_iter().map(|v| v.volser));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let all: Vec<String> = (0..10).map(|i| format!("A0000{i}")).collect();
    client::ensure(seen == all, "paging returns every volume once, in order")?;
    let private = deadline(admin.list_volumes(pb::ListVolumesRequest {
        category: "000F".into(),
        ..Default::default()
    }))
    .await?
    .into_inner();
    client::ensure(
        private.volumes.len() == 1 && private.volumes[0].volser == "A00000",
        "category filter",
    )?;
    let prefixed = deadline(admin.list_volumes(pb::ListVolumesRequest {
        volser_prefix: "a0000".into(),
        ..Default::default()
    }))
    .await?
    .into_inner();
    client::ensure(prefixed.volumes.len() == 10, "prefix filter ignores case")?;

    // B8: when this cluster's scratch volumes are all taken, scratch mounts fail.
    let mut held = Vec::new();
    for _ in 0..9 {
        held.push(deadline(host.mount(scratch())).await?.into_inner());
    }
    client::ensure(
        held.len() == 9 && !held.iter().any(|m| m.volser == "A00000"),
        "nine scratch mounts take the nine scratch volumes",
    )?;
    match deadline(host.mount(scratch())).await {
        Err(s) if reason_of(&s) == Some(Reason::NoScratchAvailable) => {}
        other => {
            return Err(format!(
                "tenth scratch mount: expected NO_SCRATCH_AVAILABLE, got {other:?}"
            )
            .into())
        }
    }
    // The host lets go of the nine (the run's end checks require nothing left mounted).
    for m in held {
        deadline(host.rewind_unload(pb::RewindUnloadRequest {
            mount_id: m.mount_id,
        }))
        .await?;
    }
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    run_grid(seed, 1, Duration::from_secs(120), scenario())
}

#[test]
fn b8_scratch_selection_append_sync_and_listing() {
    for_each_seed("b8_scratch_selection_append_sync_and_listing", SEEDS, run);
}
