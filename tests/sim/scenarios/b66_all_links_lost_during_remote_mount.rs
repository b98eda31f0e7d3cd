//! B66 (failover scenario 4, spec §4.2 T4): every grid link between c0 and c1 fails while a job
//! on c0 reads a volume whose only copy is in c1's TVC; the ownership trap.
//!
//! Sequence: c0, c1 and witness w8 → c1 inserts private V00000 and scratch T00000, c0 inserts
//! scratch S00000-S00001 (B16: each owns its own) → c1 writes V00000 (16 MiB) with STANDARD,
//! whose vector at C1 is "NR": the data exists only at C1 → quiet → a job on c0 mounts V00000
//! (B11: C0 now owns it; B4: its I/O TVC is C1) and reads the first chunk → the c0↔c1 link is
//! cut → the rest of the read fails (the job using C1 as TVC fails), the host unloads → c0 shows
//! GRID_LINKS_DEGRADED, VTS_OPERATIONS_DEGRADED and COPY_OPERATIONS_DISABLED → V00000 through
//! c1 → OWNER_UNREACHABLE (the trap: C0 owns it); through c0 → NO_VALID_COPY (B6) → scratch
//! mounts on c0 succeed for S00000 and S00001 (the second with class DDR, whose deferred copy
//! to C1 cannot be made: copies stop), the third → NO_SCRATCH_AVAILABLE although c1 has a free
//! scratch volume (B8) → repair → c0's flags clear, the deferred copy is made (B62), and c0
//! reads V00000 from C1 again, byte for byte.

use std::time::Duration;

use vtgrid_proto::pb::Reason;
use vtgrid_sim::client::{self, ensure, expect_reason, has_flag};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[6, 66];

/// Big enough that most of it is still at C1 when the link goes (each hop's flow-control window
/// holds a few 1 MiB chunks).
const V_LEN: usize = 16 << 20;

const DEGRADED: [&str; 3] = [
    "GRID_LINKS_DEGRADED",
    "VTS_OPERATIONS_DEGRADED",
    "COPY_OPERATIONS_DISABLED",
];

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7) ^ (i >> 13) as u8)
        .collect()
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(1, "V00000", "000F").await?;
    client::insert(1, "T00000", "0001").await?;
    client::insert(0, "S00000-S00001", "0001").await?;
    let data = pattern(V_LEN);
    let done = client::write_job(
        1,
        client::with_class(client::specific("V00000"), "STANDARD"),
        &data,
        &ledger,
    )
    .await?;
    ensure(done.copies == [1], "V00000's only copy is at C1")?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    // The job on c0: C0 obtains V00000; its data stays at C1, read over the grid.
    let mut c0 = client::host(0);
    let m = client::deadline(c0.mount(client::specific("V00000")))
        .await?
        .into_inner();
    client::wait_for("c1 sees C0 owning V00000", Duration::from_secs(10), || {
        control
            .cluster(1)
            .and_then(|c| c.effective(&"V00000".parse().ok()?).ok())
            .is_some_and(|r| r.token.owner.get() == 0)
    })
    .await?;
    let mut stream = client::deadline(c0.read(vtgrid_proto::pb::ReadRequest {
        mount_id: m.mount_id.clone(),
    }))
    .await?
    .into_inner();
    let first = client::deadline(stream.message()).await?;
    ensure(
        first.is_some_and(|c| !c.data.is_empty()),
        "the read through c0 starts",
    )?;
    control.partition(0, 1);
    let mut got = 0usize;
    let failed = loop {
        match client::deadline(stream.message()).await {
            Ok(Some(chunk)) => got += chunk.data.len(),
            Ok(None) => break false,
            // c0 does not end the stalled stream itself: the host's deadline ends the job.
            Err(_) => break true,
        }
    };
    ensure(
        failed,
        &format!("B66: the job using C1 as TVC fails when the links go (read {got} more bytes)"),
    )?;
    let _ = client::unload(&mut c0, &m.mount_id).await;

    let state = client::wait_grid_state(0, "the link to c1 down", Duration::from_secs(10), |s| {
        DEGRADED.iter().all(|f| has_flag(s, f))
    })
    .await?;
    ensure(
        state.links.iter().any(|l| l.peer == 8 && l.reachable),
        "c0 still reaches the witness",
    )?;
    expect_reason(
        "B66 ownership trap: V00000 through c1",
        client::deadline(client::host(1).mount(client::specific("V00000"))).await,
        Reason::OwnerUnreachable,
    )?;
    expect_reason(
        "B66/B6: V00000 through c0, its only copy at C1",
        client::deadline(client::host(0).mount(client::specific("V00000"))).await,
        Reason::NoValidCopy,
    )?;

    let first = client::write_job(0, client::scratch("0001"), b"scratch 1", &ledger).await?;
    ensure(
        first.volser == "S00000",
        &format!("B8: c0's first scratch mount gets its own S00000: {first:?}"),
    )?;
    let second = client::write_job(
        0,
        client::with_class(client::scratch("0001"), "DDR"),
        b"scratch 2, owes C1 a deferred copy",
        &ledger,
    )
    .await?;
    ensure(
        second.volser == "S00001" && second.copies == [0] && !second.immediate_copy_deferred,
        &format!(
            "B8: the second gets S00001, a Deferred copy does not hold the unload: {second:?}"
        ),
    )?;
    expect_reason(
        "B8: c0's third scratch mount, its own scratch volumes used up",
        client::deadline(client::host(0).mount(client::scratch("0001"))).await,
        Reason::NoScratchAvailable,
    )?;
    let s1 = client::volume(0, "S00001").await?;
    ensure(
        !s1.consistent_at.contains_key(&1),
        "copies to C1 stop: S00001 not at C1",
    )?;

    control.repair(0, 1);
    client::wait_grid_state(0, "the flags clear", Duration::from_secs(10), |s| {
        s.flags.is_empty()
    })
    .await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    let s1 = client::volume(0, "S00001").await?;
    ensure(
        s1.consistent_at.get(&1) == Some(&s1.version),
        "B62: the deferred copy to C1 is made after the repair",
    )?;
    let (_, bytes) = client::read_job(0, "V00000").await?;
    ensure(
        bytes == data,
        "after the repair c0 reads V00000 from C1 again",
    )?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 2, 1);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b66_all_links_lost_during_a_remote_mount_fails_the_job_and_traps_ownership() {
    for_each_seed(
        "b66_all_links_lost_during_a_remote_mount_fails_the_job_and_traps_ownership",
        SEEDS,
        run,
    );
}
