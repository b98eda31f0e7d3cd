//! B37: rewind-unload returns when every reachable RUN cluster holds the version; B40: Deferred
//! clusters get it afterwards; B39: an unreachable RUN cluster turns into an immediate-deferred copy,
//! the host is told, and the copy is made after the partition heals with no operator action.
//!
//! Sequence: c0, c1, c2 → define class HADR = `RRD` on C0 (B36: C0's vector applies to C0's
//! writes) → insert at c0 → write A00001 at c0 with HADR: the unload reports copies at C0 and C1
//! and nothing deferred → C2's deferred copy arrives (catalog: consistent at C0, C1, C2) → cut c0
//! from c1 → write A00002: the unload still succeeds, reports only C0 and `immediate_copy_deferred`,
//! and c0 lists an IMMEDIATE_COPY_DEFERRED event, also sent to a live WatchEvents stream → C2 still gets its deferred copy → heal → C1
//! pulls its immediate-deferred copy by itself → A00001 read at c2 from c2's own copy is identical.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use vtgrid_proto::pb::{self, mount_request, write_request};
use vtgrid_sim::client::{self, deadline};
use vtgrid_sim::cluster::run_grid;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[2, 31, 777];

type Host = pb::host_service_client::HostServiceClient<tonic::transport::Channel>;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

async fn write_with_class(
    host: &mut Host,
    volser: &str,
    data: &[u8],
) -> Result<pb::RewindUnloadResponse, tonic::Status> {
    let mount = pb::MountRequest {
        target: Some(mount_request::Target::Volser(volser.into())),
        append: false,
        constructs: Some(pb::Constructs {
            management_class: "HADR".into(),
            ..Default::default()
        }),
        private_category: String::new(),
    };
    let m = deadline(host.mount(mount)).await?.into_inner();
    let mut msgs = vec![pb::WriteRequest {
        msg: Some(write_request::Msg::Open(pb::WriteOpen {
            mount_id: m.mount_id.clone(),
        })),
    }];
    msgs.extend(data.chunks(64 * 1024).map(|c| pb::WriteRequest {
        msg: Some(write_request::Msg::Chunk(Bytes::copy_from_slice(c))),
    }));
    msgs.push(pb::WriteRequest {
        msg: Some(write_request::Msg::End(pb::WriteEnd {
            total_bytes: data.len() as u64,
        })),
    });
    deadline(host.write(futures::stream::iter(msgs))).await?;
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        host.rewind_unload(pb::RewindUnloadRequest {
            mount_id: m.mount_id,
        }),
    );
    match done.await {
        Ok(r) => Ok(r?.into_inner()),
        Err(_) => Err(tonic::Status::deadline_exceeded("rewind-unload")),
    }
}

async fn scenario() -> Result<(), Box<dyn std::error::Error>> {
    for id in 0..3 {
        client::wait_ready(id, Duration::from_secs(60)).await?;
    }
    let mut admin = client::admin(0);
    let class = pb::ManagementClass {
        name: "HADR".into(),
        copy_modes: [(0, "RRD".to_string())].into(),
        ..Default::default()
    };
    deadline(
        admin.define_management_class(pb::DefineManagementClassRequest {
            management_class: Some(class),
        }),
    )
    .await?;
    deadline(admin.insert_volumes(pb::InsertVolumesRequest {
        range: "A00000-A00009".into(),
        category: "000F".into(),
    }))
    .await?;

    let first = pattern(300_000, 1);
    let done = write_with_class(&mut client::host(0), "A00001", &first).await?;
    client::ensure(
        !done.immediate_copy_deferred,
        "both RUN clusters reachable: nothing deferred",
    )?;
    client::ensure(
        done.copies.contains(&0) && done.copies.contains(&1),
        "B37: unload returns with the RUN copy at C1 made",
    )?;
    client::wait_consistent(0, "A00001", &[0, 1, 2], Duration::from_secs(30)).await?;

    // Watch c0's events live from here on (StatusService.WatchEvents).
    let mut watch = deadline(
        pb::status_service_client::StatusServiceClient::new(client::channel(0)).watch_events(
            pb::WatchEventsRequest {
                new_only: true,
                ..Default::default()
            },
        ),
    )
    .await?
    .into_inner();
    turmoil::partition("c0", "c1");
    let second = pattern(200_000, 2);
    let done = write_with_class(&mut client::host(0), "A00002", &second).await?;
    client::ensure(
        done.written && done.immediate_copy_deferred,
        "B39: unload succeeds and reports the RUN copy deferred",
    )?;
    client::ensure(
        done.copies == [0],
        "only C0 holds the version when the unload returns",
    )?;
    let events = deadline(
        pb::status_service_client::StatusServiceClient::new(client::channel(0))
            .list_events(pb::ListEventsRequest::default()),
    )
    .await?
    .into_inner()
    .events;
    client::ensure(
        events
            .iter()
            .any(|e| e.code == "IMMEDIATE_COPY_DEFERRED" && e.volser == "A00002"),
        "IMMEDIATE_COPY_DEFERRED raised",
    )?;
    // The partition raises its own events (C0 sees C1 go, G0013) on the same stream, before or
    // after the deferral depending on how long the copy request waited on the cut link.
    let streamed = deadline(async {
        while let Some(e) = watch.message().await? {
            if e.code == "IMMEDIATE_COPY_DEFERRED" && e.volser == "A00002" {
                return Ok(true);
            }
        }
        Ok::<_, tonic::Status>(false)
    })
    .await?;
    client::ensure(streamed, "the event arrives on the live WatchEvents stream")?;
    client::wait_consistent(0, "A00002", &[0, 2], Duration::from_secs(30)).await?;

    turmoil::repair("c0", "c1");
    client::wait_consistent(0, "A00002", &[0, 1, 2], Duration::from_secs(60)).await?;
    // Every cluster's copy queue has drained (ListCopyQueue, what `vtgrid copies` shows).
    for id in 0..3 {
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut status =
                pb::status_service_client::StatusServiceClient::new(client::channel(id));
            let q = deadline(status.list_copy_queue(pb::ListCopyQueueRequest { per_volume: true }))
                .await?
                .into_inner();
            if q.summary.is_empty() && q.copies.is_empty() {
                break;
            }
            client::ensure(
                tokio::time::Instant::now() < until,
                "every copy queue drains after the heal",
            )?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // C2's own copy serves a read at C2 (B3), bytes identical.
    let mut c2 = client::host(2);
    let spec = pb::MountRequest {
        target: Some(mount_request::Target::Volser("A00001".into())),
        append: false,
        constructs: None,
        private_category: String::new(),
    };
    let m = deadline(c2.mount(spec)).await?.into_inner();
    let mut stream = deadline(c2.read(pb::ReadRequest {
        mount_id: m.mount_id.clone(),
    }))
    .await?
    .into_inner();
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk?.data);
    }
    client::ensure(got == first, "A00001 read at C2 is what C0 wrote")?;
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
fn b37_b39_run_copies_before_unload_deferred_when_cut_off() {
    for_each_seed(
        "b37_b39_run_copies_before_unload_deferred_when_cut_off",
        SEEDS,
        run,
    );
}
