//! DESIGN §4 "Retention" (B40, B62): a DR site waiting for a deferred copy of the new version
//! keeps the version it holds until the new one is held there, so it is never left holding
//! nothing of a volume it is owed.
//!
//! Class HUB is `RND` at C0: C1 No Copy, C2 (the DR site) Deferred, C0 the only source. So that C2
//! learns of v6 while it cannot copy it, C1 leads the catalog and only the C0↔C2 link is cut (as
//! in `b40_b62_deferred_backlog`).
//!
//! Sequence: c0, c1, c2 → c0 inserts R00000-R00002 → c0 writes R00001 v1..v5 with HUB, each
//! settling (C2 holds v5) → C1 made the catalog leader → the c0↔c2 link is cut → c0 writes v6
//! → C2's view has v6 and two of C2's sweeps pass after that → C2 still holds v5 → the link is
//! repaired → C2 becomes consistent at v6 and then holds v6 only.

use std::time::Duration;

use vtgrid_core::Volser;
use vtgrid_sim::client::{self, ensure, wait_for};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[56, 65];

const V: &str = "R00001";

/// The versions of `volser` cluster `id`'s volume store holds.
fn held(control: &GridControl, id: u8, volser: Volser) -> Vec<u64> {
    control
        .cluster(id)
        .and_then(|c| c.probe().store().versions().ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|(v, _)| *v == volser)
        .map(|(_, n)| n)
        .collect()
}

async fn hub_write(n: u8, ledger: &Ledger) -> Result<(), Box<dyn std::error::Error>> {
    let data = vec![n; 40_000];
    let request = client::with_class(client::specific(V), "HUB");
    let done = client::write_job(0, request, &data, ledger).await?;
    ensure(
        done.version == u64::from(n),
        &format!("the write of v{n}: {done:?}"),
    )
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    let volser: Volser = V.parse()?;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "R00000-R00002", "000F").await?;
    for n in 1..=5u8 {
        hub_write(n, &ledger).await?;
        client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    }
    wait_for("C2 holds v5 only", Duration::from_secs(90), || {
        held(&control, 2, volser) == [5]
    })
    .await?;
    client::make_leader(&control, 1, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.partition(0, 2);
    hub_write(6, &ledger).await?;
    let c2 = control.cluster(2).ok_or("c2 runs")?;
    wait_for("C2's view has v6", Duration::from_secs(30), || {
        c2.probe()
            .view()
            .read(|s| s.volumes.get(&volser).is_some_and(|r| r.version == 6))
    })
    .await?;
    let swept = c2.sweeps();
    wait_for("two sweeps at C2", Duration::from_secs(90), || {
        c2.sweeps() >= swept + 2
    })
    .await?;
    let now = held(&control, 2, volser);
    ensure(
        now == [5],
        &format!("the DR site keeps v5 until it holds v6; it holds {now:?}"),
    )?;

    control.repair(0, 2);
    client::wait_consistent(2, V, &[0, 2], Duration::from_secs(60)).await?;
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    wait_for(
        "C2 drops v5 once it holds v6",
        Duration::from_secs(90),
        || held(&control, 2, volser) == [6],
    )
    .await?;
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
fn retention_dr_site_keeps_v5_until_it_holds_v6() {
    for_each_seed("retention_dr_site_keeps_v5_until_it_holds_v6", SEEDS, run);
}
