//! B15 with B37: the publisher takes a journal entry whose version the catalog already holds for
//! a replay (a crash between the commit and the entry's removal) only when the catalog holds that
//! version with the entry's digest. An entry of the same number with other bytes is not a replay
//! but a second version under one number: it is quarantined with `OWNERSHIP_CONFLICT`, never
//! dropped, and the catalog keeps the version it has.
//!
//! Sequence: c0 alone → insert A00000 into private 000F → a job writes and unloads version 1 →
//! the journal is published (empty) → an owner-journal entry for version 1 of A00000 under the
//! current epoch, with the digest of other bytes, is written into c0's journal store (what
//! sequence B left behind: two entries of one number) → the publisher empties the journal → c0's quarantine
//! holds version 1 with the other digest, an `OWNERSHIP_CONFLICT` event names A00000, and the
//! catalog still holds version 1 with the job's digest.

use std::time::Duration;

use vtgrid_core::catalog::{CatalogCommand, NewVersion, VolumeChange};
use vtgrid_core::{Digest, Volser};
use vtgrid_sim::client::{self, digest_hex, ensure};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[15];

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000", "000F").await?;
    let data = vec![3u8; 20_000];
    let done = client::write_job(0, client::specific("A00000"), &data, &ledger).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    let c0 = control.cluster(0).ok_or("c0 runs")?;
    let volser: Volser = "A00000".parse()?;
    let record = c0.effective(&volser)?;
    let other = blake3::hash(b"other bytes under the same number");
    let duplicate = CatalogCommand::UpdateVolume {
        volser,
        by: record.token.owner,
        epoch: record.token.epoch,
        change: VolumeChange {
            version: Some(NewVersion {
                version: done.version,
                size: 33,
                digest: Digest(*other.as_bytes()),
                written_at: record.token.owner,
                copy_modes: None,
                held_by: Vec::new(),
            }),
            ..VolumeChange::default()
        },
    };
    // Straight into the journal's store: the overlay is this run's view and would show the
    // entry's digest until it is judged; the publisher reads the store.
    c0.probe().journal_store().append(&duplicate)?;
    c0.probe().journal().appended.notify_one();
    client::wait_for("the journal published", Duration::from_secs(30), || {
        c0.probe()
            .journal_store()
            .entries()
            .is_ok_and(|e| e.is_empty())
    })
    .await?;

    let quarantined = c0.quarantine().await?;
    ensure(
        quarantined.iter().any(|q| {
            q.volser == volser && q.version == done.version && q.digest.0 == *other.as_bytes()
        }),
        &format!("the entry with the other digest is quarantined: {quarantined:?}"),
    )?;
    ensure(
        c0.probe()
            .events()
            .recent()
            .iter()
            .any(|e| e.code == "OWNERSHIP_CONFLICT" && e.volser == Some(volser)),
        "an OWNERSHIP_CONFLICT event names A00000",
    )?;
    let v = client::volume(0, "A00000").await?;
    ensure(
        v.version == done.version && v.digest == digest_hex(&data),
        &format!("the catalog keeps the job's version: {v:?}"),
    )?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 1, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b15_replay_with_another_digest_is_quarantined_not_dropped() {
    for_each_seed(
        "b15_replay_with_another_digest_is_quarantined_not_dropped",
        SEEDS,
        run,
    );
}
