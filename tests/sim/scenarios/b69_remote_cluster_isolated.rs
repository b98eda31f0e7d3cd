//! B69 (failover scenario 7, spec §4.2 T11) with B61 and B62: in a three-cluster grid both links
//! to the remote C2 fail. Copies between C0 and C1 go on, copies to C2 stop and wait, the flags
//! the seed lists are set (IMMEDIATE_COPY_DEFERRED only once a class with RUN for C2 is used),
//! and after the repair the copies are made and the flags clear.
//!
//! Sequence: c0, c1, c2 → c0 inserts A00000-A00003, c1 inserts B00000 → c0 writes A00000 with
//! class RRD (C1 RUN, C2 Deferred) and every cluster gets it → C2 is isolated → c0 and c1 show
//! GRID_LINKS_DEGRADED, VTS_OPERATIONS_DEGRADED and COPY_OPERATIONS_DISABLED, not
//! IMMEDIATE_COPY_DEFERRED → c0 writes A00001 with RRD: the unload returns with the RUN copy at
//! C1 made and nothing deferred (C2's copy is Deferred); still no IMMEDIATE_COPY_DEFERRED → c1
//! writes B00000 with RRD: the RUN copy to C0 is made (copies go both ways) → c0 writes A00002
//! with DDR (C1 Deferred, C2 RUN): the unload returns with `immediate_copy_deferred`, C1 gets
//! its deferred copy while C2 is away, and c0 now shows IMMEDIATE_COPY_DEFERRED → in every
//! catalog C2 still owes all three copies → repair → c0's and c1's flags clear, every copy owed
//! is made (every volume consistent on each cluster its vector asks for), and A00002 reads back
//! at c2 from c2's own copy.

use std::time::Duration;

use vtgrid_proto::pb;
use vtgrid_sim::client::{self, ensure, has_flag};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[7, 69];

const DEGRADED: [&str; 3] = [
    "GRID_LINKS_DEGRADED",
    "VTS_OPERATIONS_DEGRADED",
    "COPY_OPERATIONS_DISABLED",
];
const RUN_DEFERRED: &str = "IMMEDIATE_COPY_DEFERRED";

fn payload(volser: &str, len: usize) -> Vec<u8> {
    volser.bytes().cycle().take(len).collect()
}

/// Write `volser` at cluster `at` with `class` and return the unload's answer.
async fn write(
    at: u8,
    volser: &str,
    class: &str,
    ledger: &Ledger,
) -> Result<pb::RewindUnloadResponse, Box<dyn std::error::Error>> {
    let request = client::with_class(client::specific(volser), class);
    Ok(client::write_job(at, request, &payload(volser, 300_000), ledger).await?)
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000-A00003", "000F").await?;
    client::insert(1, "B00000", "000F").await?;
    write(0, "A00000", "RRD", &ledger).await?;
    client::wait_consistent(0, "A00000", &[0, 1, 2], Duration::from_secs(30)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.isolate(2);
    for at in [0, 1] {
        let s = client::wait_grid_state(at, "C2's links down", Duration::from_secs(10), |s| {
            DEGRADED.iter().all(|f| has_flag(s, f))
        })
        .await?;
        ensure(
            !has_flag(&s, RUN_DEFERRED),
            &format!("c{at}: no RUN copy deferred yet: {:?}", s.flags),
        )?;
        ensure(
            s.links
                .iter()
                .any(|l| l.peer == 1 - u32::from(at) && l.reachable),
            &format!("c{at} still reaches the other production cluster"),
        )?;
    }

    let a1 = write(0, "A00001", "RRD", &ledger).await?;
    ensure(
        a1.copies == [0, 1] && !a1.immediate_copy_deferred,
        &format!("B61: the RUN copy C0→C1 is made with C2 away; nothing deferred: {a1:?}"),
    )?;
    client::wait_consistent(0, "A00001", &[0, 1], Duration::from_secs(30)).await?;
    let s = client::grid_state(0).await?;
    ensure(
        !has_flag(&s, RUN_DEFERRED),
        &format!(
            "B69: no RUN for C2 in RRD, so no IMMEDIATE_COPY_DEFERRED: {:?}",
            s.flags
        ),
    )?;

    let b0 = write(1, "B00000", "RRD", &ledger).await?;
    ensure(
        b0.copies == [1, 0] && !b0.immediate_copy_deferred,
        &format!("B61: the RUN copy C1→C0 is made too: {b0:?}"),
    )?;

    let a2 = write(0, "A00002", "DDR", &ledger).await?;
    ensure(
        a2.copies == [0] && a2.immediate_copy_deferred,
        &format!("B39: the RUN copy to the isolated C2 is deferred: {a2:?}"),
    )?;
    client::wait_consistent(0, "A00002", &[0, 1], Duration::from_secs(30)).await?;
    client::wait_grid_state(
        0,
        "IMMEDIATE_COPY_DEFERRED once RUN for C2 is used",
        Duration::from_secs(10),
        |s| has_flag(s, RUN_DEFERRED) && DEGRADED.iter().all(|f| has_flag(s, f)),
    )
    .await?;
    for volser in ["A00001", "B00000", "A00002"] {
        for at in [0, 1] {
            let v = client::volume(at, volser).await?;
            ensure(
                !v.consistent_at.contains_key(&2) || v.consistent_at[&2] < v.version,
                &format!("B69: copies to C2 stop: c{at} says {volser} is at C2: {v:?}"),
            )?;
        }
    }

    control.heal();
    for at in [0, 1] {
        client::wait_grid_state(at, "B62: the flags clear", Duration::from_secs(30), |s| {
            s.flags.is_empty()
        })
        .await?;
    }
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    for volser in ["A00001", "B00000", "A00002"] {
        client::wait_consistent(2, volser, &[0, 1, 2], Duration::from_secs(30)).await?;
    }
    let mut c2 = client::host(2);
    let m = client::deadline(c2.mount(client::specific("A00002")))
        .await?
        .into_inner();
    let bytes = client::read_all(&mut c2, &m.mount_id).await?;
    client::unload(&mut c2, &m.mount_id).await?;
    ensure(
        bytes == payload("A00002", 300_000),
        "A00002 reads back at c2 after the repair",
    )?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b69_remote_cluster_isolated_copies_continue_among_the_rest_and_catch_up() {
    for_each_seed(
        "b69_remote_cluster_isolated_copies_continue_among_the_rest_and_catch_up",
        SEEDS,
        run,
    );
}
