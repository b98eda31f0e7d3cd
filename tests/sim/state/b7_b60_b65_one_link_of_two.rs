//! B7, B60, B65 (failover scenario 3): two grid links between c0 and c1, one fails during remote
//! mounts.
//!
//! Grid c0, c1, each with a second grid link (a second grid address). Class REMOTE = `NR` on C1
//! keeps what C1 writes at C1 only, so C0 reads it over the grid (remote TVC, B4).
//!
//! Sequence: write L00001 and L00002 at c1 → c0 sees both links of c1 up, no flags → mount
//! L00001 at c0 and start reading → cut the link the read runs on → that job fails (B7) → the
//! resubmitted job reads every byte over the other link (B65) → c0 shows GRID_LINKS_DEGRADED and
//! VTS_OPERATIONS_DEGRADED, c1 reachable, one of its links down, and *not*
//! COPY_OPERATIONS_DISABLED (B60) → a RUN copy from c0 to c1 still completes before unload →
//! repair: the flags clear → cut both links: a mount at c0 that needs c1 fails, copies stop
//! (COPY_OPERATIONS_DISABLED) → repair both: the flags clear.

use std::time::Duration;

use futures::StreamExt;
use vtgrid_proto::pb::{self, Reason};
use vtgrid_sim::client::{self, deadline, ensure};
use vtgrid_sim::cluster::{host_name, run_grid_with, sim_grid, GRID_PORT};
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::net::Link;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[3, 33];
/// The second grid link's port on every cluster.
const LINK2_PORT: u16 = 7411;

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7) ^ (i >> 13) as u8)
        .collect()
}

fn paths_up(s: &pb::GridState, peer: u32) -> Vec<bool> {
    s.links
        .iter()
        .filter(|l| l.peer == peer)
        .flat_map(|l| l.paths.iter().map(|p| p.reachable))
        .collect()
}

fn link(port: u16) -> Link {
    Link::new(&host_name(0), &host_name(1), port)
}

fn with_class(mut m: pb::MountRequest, class: &str) -> pb::MountRequest {
    m.constructs = Some(pb::Constructs {
        management_class: class.into(),
        ..Default::default()
    });
    m
}

async fn scenario() -> turmoil::Result {
    for id in 0..2 {
        client::wait_ready(id, Duration::from_secs(60)).await?;
    }
    let class = |name: &str, modes: [(u32, &str); 2]| pb::ManagementClass {
        name: name.into(),
        copy_modes: modes.iter().map(|(c, v)| (*c, v.to_string())).collect(),
        on_sync_failure: String::new(),
    };
    let mut admin = client::admin(0);
    for mc in [
        class("REMOTE", [(0, "RN"), (1, "NR")]),
        class("BOTH", [(0, "RR"), (1, "RR")]),
    ] {
        deadline(
            admin.define_management_class(pb::DefineManagementClassRequest {
                management_class: Some(mc),
            }),
        )
        .await?;
    }
    let ledger = Ledger::new();
    client::insert(1, "L00000-L00009", "000F").await?;
    client::insert(0, "K00000-K00009", "000F").await?;
    let data = pattern(4 * 1024 * 1024);
    for v in ["L00001", "L00002"] {
        client::write_job(1, with_class(client::specific(v), "REMOTE"), &data, &ledger).await?;
    }
    client::wait_grid_state(
        0,
        "both links of c1 up, no flags",
        Duration::from_secs(15),
        |s| paths_up(s, 1) == [true, true] && s.flags.is_empty(),
    )
    .await?;

    // B7: a remote read in flight on the primary link fails when that link is cut.
    let mut host = client::host(0);
    let m = deadline(host.mount(client::specific("L00001")))
        .await?
        .into_inner();
    let mut stream = deadline(host.read(pb::ReadRequest {
        mount_id: m.mount_id.clone(),
    }))
    .await?
    .into_inner();
    let first = deadline(async { Ok(stream.next().await) }).await?;
    ensure(
        matches!(first, Some(Ok(_))),
        "the remote read starts over the primary link",
    )?;
    link(GRID_PORT).cut();
    let mut received = first.map_or(0, |c| c.map_or(0, |c| c.data.len()));
    let mut failed = false;
    while let Some(chunk) = deadline(async { Ok(stream.next().await) }).await? {
        match chunk {
            Ok(c) => received += c.data.len(),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    ensure(
        failed && received < data.len(),
        &format!(
            "B7: the job on the cut link fails ({received} of {} bytes)",
            data.len()
        ),
    )?;
    client::unload(&mut host, &m.mount_id).await?;

    // B65: resubmitted, it runs over the other link.
    let (_, bytes) = client::read_job(0, "L00001").await?;
    ensure(
        bytes == data,
        "B65: the resubmitted job reads every byte over link 2",
    )?;
    let s = client::wait_grid_state(0, "scenario 3 flags at c0", Duration::from_secs(15), |s| {
        client::has_flag(s, "GRID_LINKS_DEGRADED")
            && client::has_flag(s, "VTS_OPERATIONS_DEGRADED")
            && paths_up(s, 1) == [false, true]
    })
    .await?;
    ensure(
        !client::has_flag(&s, "COPY_OPERATIONS_DISABLED")
            && s.links.iter().any(|l| l.peer == 1 && l.reachable),
        "B60: c1 still reachable and copies not disabled",
    )?;
    let done = client::write_job(
        0,
        with_class(client::specific("K00001"), "BOTH"),
        &data[..100_000],
        &ledger,
    )
    .await?;
    ensure(
        done.copies.contains(&1) && !done.immediate_copy_deferred,
        "B60: a RUN copy to c1 completes over the remaining link",
    )?;

    link(GRID_PORT).repair();
    client::wait_grid_state(
        0,
        "flags clear after the repair",
        Duration::from_secs(15),
        |s| paths_up(s, 1) == [true, true] && s.flags.is_empty(),
    )
    .await?;

    // B7: with every link cut, a mount that needs c1 fails and copies stop.
    link(GRID_PORT).cut();
    link(LINK2_PORT).cut();
    client::wait_grid_state(
        0,
        "c1 unreachable, copies disabled",
        Duration::from_secs(15),
        |s| {
            client::has_flag(s, "COPY_OPERATIONS_DISABLED")
                && s.links.iter().any(|l| l.peer == 1 && !l.reachable)
        },
    )
    .await?;
    let mounted = deadline(client::host(0).mount(client::specific("L00002"))).await;
    let reason = mounted.as_ref().err().and_then(vtgrid_proto::reason_of);
    ensure(
        matches!(reason, Some(Reason::OwnerUnreachable | Reason::NoValidCopy)),
        &format!("B7: a mount needing c1 fails with every link down: {mounted:?}"),
    )?;
    link(GRID_PORT).repair();
    link(LINK2_PORT).repair();
    client::wait_grid_state(
        0,
        "flags clear after both repairs",
        Duration::from_secs(15),
        |s| paths_up(s, 1) == [true, true] && s.flags.is_empty(),
    )
    .await?;
    Ok(())
}

#[test]
fn b7_b60_b65_one_link_of_two_fails_then_all() {
    for_each_seed("b7_b60_b65_one_link_of_two_fails_then_all", SEEDS, |seed| {
        let mut grid = sim_grid(2, 0);
        for c in &mut grid.clusters {
            c.grid_links = vec![format!("{}:{LINK2_PORT}", host_name(c.id))];
        }
        run_grid_with(seed, grid, Duration::from_secs(600), scenario())
    });
}
