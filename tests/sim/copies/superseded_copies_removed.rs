//! Copies of superseded versions do not pile up: the writer drops its old version when the new one
//! is published, and the clusters that got theirs as copies (RUN and Deferred) drop theirs within
//! the sweep interval, while the current version stays everywhere its vector names.
//!
//! Sequence: c0, c1, c2 → c0 writes T00001 v1, v2, v3 with class RRD (RUN to C1, Deferred to C2),
//! each settling before the next → within a minute every cluster's store holds T00001 at v3 only.

use std::time::Duration;

use vtgrid_core::Volser;
use vtgrid_sim::client::{self, wait_for};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[12, 21];

async fn scenario(control: GridControl, ledger: Ledger) -> turmoil::Result {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "T00000-T00002", "000F").await?;
    let volser: Volser = "T00001".parse()?;
    for n in 1..=3u8 {
        let data = vec![n; 50_000];
        let request = client::with_class(client::specific("T00001"), "RRD");
        client::write_job(0, request, &data, &ledger).await?;
        client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    }
    wait_for(
        "every cluster holds T00001 at v3 only",
        Duration::from_secs(90),
        || {
            (0..3u8).all(|id| {
                control.cluster(id).is_some_and(|c| {
                    c.probe().store().versions().is_ok_and(|held| {
                        let mine: Vec<u64> = held
                            .iter()
                            .filter(|(v, _)| *v == volser)
                            .map(|(_, n)| *n)
                            .collect();
                        mine == [3]
                    })
                })
            })
        },
    )
    .await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn superseded_copies_are_removed_from_every_cluster() {
    for_each_seed(
        "superseded_copies_are_removed_from_every_cluster",
        SEEDS,
        run,
    );
}
