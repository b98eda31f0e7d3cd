//! B40 + B62: a deferred backlog builds while its target cannot reach the only source, survives
//! crashes of the target and of the writer, and drains with no operator action after the repair.
//!
//! Copies are pulled by their target, which learns what it owes from the catalog. So that C2
//! keeps learning while it cannot copy, C2 is cut off from the writer C0 only, and C1, which both
//! still reach, leads the catalog. Class HUB is `RND` at C0: C1 No Copy, so C0 is the only
//! source of C2's Deferred copies.
//!
//! Sequence: c0, c1, c2 → c0 inserts D00000-D00009 → C1 made the catalog leader → the c0↔c2
//! link is cut → c0 writes D00001..D00004 with HUB, each unload returning at once (nothing is
//! RUN), and after each write c2's `ListCopyQueue` shows one more deferred copy → c2 crashes
//! and restarts: its queue still holds the four → one more write, five → c0 (the writer, the
//! only holder) crashes and restarts: the five versions are still there and c2's queue still
//! holds five → the link is repaired → c2's queue drains to 0, every volume is consistent at C2,
//! and no copy is owed anywhere.

use std::time::Duration;

use vtgrid_sim::client::{self, ensure};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[40, 62];

/// Wait until cluster `at`'s queue holds exactly `n` deferred copies and nothing else.
async fn wait_deferred(at: u8, n: u64, what: &str) -> Result<(), String> {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let last = match client::copy_queue(at).await {
            Ok(q) => {
                let total: u64 = q.summary.iter().map(|s| s.count).sum();
                if client::queued(&q, "deferred") == n && total == n {
                    return Ok(());
                }
                format!("{:?}", q.summary)
            }
            Err(e) => format!("ListCopyQueue failed: {e}"),
        };
        if tokio::time::Instant::now() > until {
            return Err(format!(
                "{what}: c{at}'s queue should hold {n} deferred copies; last: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn hub_write(volser: &str, ledger: &Ledger) -> Result<(), Box<dyn std::error::Error>> {
    let data: Vec<u8> = volser.bytes().cycle().take(100_000).collect();
    let request = client::with_class(client::specific(volser), "HUB");
    let done = client::write_job(0, request, &data, ledger).await?;
    ensure(
        done.copies == [0] && !done.immediate_copy_deferred,
        &format!("B40: a Deferred copy does not hold the unload: {done:?}"),
    )?;
    Ok(())
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "D00000-D00009", "000F").await?;
    client::make_leader(&control, 1, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.partition(0, 2);
    for n in 1..=4u64 {
        hub_write(&format!("D0000{n}"), &ledger).await?;
        wait_deferred(2, n, "B40: the backlog grows with every Deferred write").await?;
    }

    control.crash(2).await;
    control.restart(2).await;
    client::wait_ready(2, Duration::from_secs(60)).await?;
    wait_deferred(2, 4, "the backlog survives the target's crash").await?;
    hub_write("D00005", &ledger).await?;
    wait_deferred(2, 5, "and grows again").await?;

    control.crash(0).await;
    control.restart(0).await;
    client::wait_ready(0, Duration::from_secs(60)).await?;
    for n in 1..=5 {
        let v = client::volume(0, &format!("D0000{n}")).await?;
        ensure(
            v.version == 1 && v.consistent_at.get(&0) == Some(&1),
            &format!("the writer's crash keeps D0000{n}: {v:?}"),
        )?;
    }
    wait_deferred(2, 5, "the backlog survives the writer's crash").await?;

    control.repair(0, 2);
    wait_deferred(2, 0, "B62: the backlog drains after the repair").await?;
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    for n in 1..=5 {
        let v = client::volume(2, &format!("D0000{n}")).await?;
        ensure(
            v.consistent_at.get(&2) == Some(&1) && !v.consistent_at.contains_key(&1),
            &format!("D0000{n} at C2 and, No Copy, not at C1: {v:?}"),
        )?;
    }
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
fn b40_b62_deferred_backlog_survives_crashes_and_drains_after_repair() {
    for_each_seed(
        "b40_b62_deferred_backlog_survives_crashes_and_drains_after_repair",
        SEEDS,
        run,
    );
}
