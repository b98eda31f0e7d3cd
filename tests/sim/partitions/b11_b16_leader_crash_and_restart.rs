//! The catalog's Raft leader crashes and comes back: the survivors elect a new leader, and what
//! the rules allow with a majority still works: inserts (B16), transfers between the survivors
//! (B11); mounts of the crashed cluster's volumes fail with OWNER_UNREACHABLE (B14). After its
//! restart the crashed cluster rejoins and its catalog converges (B15 catch-up).
//!
//! Sequence: c0, c1, c2 form one Raft group → each Ci inserts three volumes named after it
//! (A.. for c0, B.. for c1, C.. for c2) and writes the first → the grid is quiet → the driver
//! crashes the leader L → within 10 s of simulated time the two survivors agree on a new leader
//! → an insert of N00000-N00001 through survivor S succeeds (S owns them) → S mounts the other
//! survivor T's first volume (transfer T→S, epoch 2) and reads T's bytes → a mount at S of L's
//! first volume fails with OWNER_UNREACHABLE → L restarts, is ready, and once the grid is quiet
//! every catalog (L's too) is the same and holds N00000 → S now mounts L's first volume (transfer
//! L→S) and reads L's bytes → the grid is quiet again. B10 and B37 are checked after every step,
//! the crash included.

use std::time::Duration;

use vtgrid_proto::pb::Reason;
use vtgrid_sim::client::{self, expect_reason, wait_for};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[3, 77, 1001];

fn prefix(id: u8) -> char {
    char::from(b'A' + id)
}

fn first_volume(id: u8) -> String {
    format!("{}00000", prefix(id))
}

fn payload(id: u8) -> Vec<u8> {
    format!("first volume of C{id}").into_bytes()
}

fn check(cond: bool, what: String) -> Result<(), Box<dyn std::error::Error>> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// The leader every voter in `among` agrees on, other than `not`.
async fn leader_among(control: &GridControl, among: &[u8], not: Option<u8>) -> Result<u8, String> {
    let mut leader = None;
    wait_for(
        "the voters agree on a leader",
        Duration::from_secs(10),
        || {
            let seen: Vec<Option<u8>> = among
                .iter()
                .map(|id| {
                    control
                        .cluster(*id)
                        .and_then(|c| c.probe().leader())
                        .map(|l| l.get())
                })
                .collect();
            leader = seen[0];
            leader.is_some_and(|l| Some(l) != not && among.contains(&l))
                && seen.iter().all(|l| *l == leader)
        },
    )
    .await?;
    leader.ok_or_else(|| "no leader".to_string())
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    for id in 0..3u8 {
        let p = prefix(id);
        client::insert(id, &format!("{p}00000-{p}00002"), "000F").await?;
        client::write_job(
            id,
            client::specific(&first_volume(id)),
            &payload(id),
            &ledger,
        )
        .await?;
    }
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    let all = [0u8, 1, 2];
    let old = leader_among(&control, &all, None).await?;
    control.crash(old).await;
    let survivors: Vec<u8> = all.into_iter().filter(|c| *c != old).collect();
    let new = leader_among(&control, &survivors, Some(old)).await?;
    let (s, t) = (survivors[0], survivors[1]);

    let inserted = client::insert(s, "N00000-N00001", "000F").await?;
    check(
        inserted.count == 2 && inserted.owner == u32::from(s),
        format!("B16: insert through C{s} with leader C{new}: {inserted:?}"),
    )?;
    let (m, bytes) = client::read_job(s, &first_volume(t)).await?;
    check(
        bytes == payload(t) && m.version == 1,
        format!(
            "B11: C{s} reads C{t}'s {} after the transfer",
            first_volume(t)
        ),
    )?;
    let v = client::volume(s, &first_volume(t)).await?;
    check(
        v.owner == u32::from(s) && v.epoch == 2,
        format!("B11: C{s} owns {} at epoch 2: {v:?}", first_volume(t)),
    )?;
    let mut host = client::host(s);
    expect_reason(
        &format!(
            "B14: mount at C{s} of crashed C{old}'s {}",
            first_volume(old)
        ),
        client::deadline(host.mount(client::specific(&first_volume(old)))).await,
        Reason::OwnerUnreachable,
    )?;

    control.restart(old).await;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    let rejoined = control
        .cluster(old)
        .ok_or("the restarted leader is not running")?;
    check(
        rejoined
            .probe()
            .view()
            .read(|st| st.volumes.contains_key(&"N00000".parse().expect("valid"))),
        format!("C{old} learnt of N00000 after its restart"),
    )?;
    let (_, bytes) = client::read_job(s, &first_volume(old)).await?;
    check(
        bytes == payload(old),
        format!(
            "C{s} reads C{old}'s {} after its restart",
            first_volume(old)
        ),
    )?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b11_b16_leader_crash_elects_a_new_leader_and_the_old_one_rejoins() {
    for_each_seed(
        "b11_b16_leader_crash_elects_a_new_leader_and_the_old_one_rejoins",
        SEEDS,
        run,
    );
}
