//! B10 when a surrender's outcome is lost: the owner Cw proposes `Transfer { V, w → r }`, the
//! catalog commits it, but Cw never hears so (cut off right after its proposal reached the
//! leader). Cw's surrender then gives up and releases V; Cw must not go on serving V as its own,
//! because the catalog gave V to Cr: a version Cw writes now is acknowledged to the host and later
//! refused (stale epoch) and quarantined, while Cr writes V too (DESIGN §3: "Nobody takes a live
//! owner's volumes"; B10: one writable owner).
//!
//! Sequence: c0, c1, c2 form one Raft group; L is the leader, Cw and Cr the two followers → Cw
//! inserts A00000 (V) and writes V v1 → the grid is quiet → the driver arms a tripwire on L's Raft
//! log → the host mounts V at Cr: Cr asks Cw to surrender, Cw forwards the Transfer to L; the step
//! L appends it, the driver cuts Cw off from every voter → L and Cr commit the Transfer (Cr owns V
//! at epoch 2); Cw's proposal times out → once Cw no longer holds V: at most one of Cw, Cr may
//! write V (B10) → the host mounts V at Cw and writes v2: Cw must refuse (its token's fate is
//! unknown to it) → a write at Cr fails with NO_VALID_COPY (B6: v1's only copy is on Cw) → heal,
//! quiet → the host writes v2 at Cr → no acknowledged version is in a quarantine, and V's catalog
//! version is the last one acknowledged.
//!
//! Found by the randomized suite (about one seed in six) and pinned down here: before commit
//! 062e320 (ownership doubt), Cw answered `may_write` for V beside Cr, served the mount and
//! acknowledged v2 under epoch 1; after the heal its publisher got StaleEpoch and quarantined that
//! acknowledged v2, and the catalog held Cr's v2 instead. The same happened after a crash: an
//! owner that crashed right after forwarding its Transfer restarted with a view from before the
//! commit and served V until it caught up.
//!
//! Invariants: V is exempt from the per-step B10 check so that the sequence reaches its host-side
//! assertions; the test asserts B10 for V itself, at the moment it matters.

use std::time::Duration;

use vtgrid_core::Volser;
use vtgrid_proto::pb::Reason;
use vtgrid_sim::client::{self, wait_for};
use vtgrid_sim::grid::{GridControl, LogTripwire, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[10, 110];

const V: &str = "A00000";

async fn scenario(
    control: GridControl,
    ledger: Ledger,
    trip: LogTripwire,
) -> Result<(), Box<dyn std::error::Error>> {
    let v: Volser = V.parse()?;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    let mut leader = None;
    wait_for(
        "one leader all voters agree on",
        Duration::from_secs(20),
        || {
            let seen: Vec<_> = (0..3u8)
                .filter_map(|id| control.cluster(id))
                .map(|c| c.probe().leader())
                .collect();
            leader = seen[0];
            leader.is_some() && seen.len() == 3 && seen.iter().all(|l| *l == leader)
        },
    )
    .await?;
    let l = leader.map(|l| l.get()).ok_or("no leader")?;
    let followers: Vec<u8> = (0..3).filter(|c| *c != l).collect();
    let (w, r) = (followers[0], followers[1]);

    client::insert(w, V, "000F").await?;
    client::write_job(w, client::specific(V), b"V v1, written at Cw", &ledger).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    let cut_w = control
        .voters()
        .into_iter()
        .filter(|c| *c != w)
        .map(|c| (w, c));
    // The requester's read barrier comes first (it asks only while a leader answers), then
    // the Transfer the tripwire is for.
    trip.arm_after(&control, l, 1, cut_w.collect());
    let mut at_r = client::host(r);
    let first = client::deadline(at_r.mount(client::specific(V))).await;
    if !trip.fired() {
        return Err(format!("the tripwire never fired (mount at C{r}: {first:?})").into());
    }
    if let Ok(m) = &first {
        client::unload(&mut at_r, &m.get_ref().mount_id).await?;
    }

    let (cw, cr) = (
        control.cluster(w).ok_or("Cw not running")?,
        control.cluster(r).ok_or("Cr not running")?,
    );
    wait_for(
        "Cw releases V after its surrender",
        Duration::from_secs(20),
        || !cw.probe().mounts().is_mounted(&v),
    )
    .await?;
    wait_for("Cr applies the Transfer", Duration::from_secs(20), || {
        cr.may_write(&v)
    })
    .await?;
    let mut problems = Vec::new();
    if cw.may_write(&v) {
        problems.push(format!(
            "B10: C{w} (epoch {}) and C{r} (epoch {}) both may write {V}",
            cw.effective(&v)?.token.epoch,
            cr.effective(&v)?.token.epoch
        ));
    }
    // The right answer is a refusal: the token's fate is unknown to Cw.
    let at_w = client::write_job(w, client::specific(V), b"V v2, written at Cw", &ledger).await;
    if let Ok(done) = at_w {
        problems.push(format!(
            "C{w}, whose Transfer of {V} committed without it, acknowledged {V} v{} under \
             epoch 1",
            done.version
        ));
    }
    // B6: the only copy of v1 is on the cut-off Cw, so Cr cannot mount V until Cw is back.
    let at_r = client::write_job(r, client::specific(V), b"V v2, written at Cr", &ledger).await;
    if let Err(e) = client::expect_reason(
        "a write of V at Cr while Cw is cut off",
        at_r,
        Reason::NoValidCopy,
    ) {
        problems.push(e);
    }

    control.heal();
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    client::write_job(r, client::specific(V), b"V v2, written at Cr", &ledger).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    let quarantined = cw.probe().journal_store().quarantined()?;
    if !quarantined.is_empty() {
        let listed: Vec<String> = quarantined
            .iter()
            .map(|q| format!("{} v{} ({})", q.volser, q.version, q.rejection))
            .collect();
        problems.push(format!(
            "acknowledged versions ended in C{w}'s quarantine: {listed:?}"
        ));
    }
    let latest = ledger.latest();
    let seen = client::volume(r, V).await?;
    if let Some(ack) = latest.get(&v) {
        if seen.digest != ack.digest {
            problems.push(format!(
                "{V}'s catalog version v{} is not the last acknowledged one (v{} at C{})",
                seen.version, ack.version, ack.written_at
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("L = C{l}, Cw = C{w}, Cr = C{r}: {}", problems.join("; ")).into())
    }
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    let trip = LogTripwire::default();
    grid.client(
        "tape-host",
        scenario(grid.control(), ledger.clone(), trip.clone()),
    );
    let invariants = Invariants::new(ledger).exempt(V.parse().map_err(|e| format!("{e}"))?);
    grid.run(|g| {
        invariants.after_step(g)?;
        trip.check(g);
        Ok(())
    })?;
    invariants.at_end(&grid).map_err(|e| grid.failure(&e))
}

#[test]
fn b10_owner_that_missed_its_transfer_commit_stops_serving_the_volume() {
    for_each_seed(
        "b10_owner_that_missed_its_transfer_commit_stops_serving_the_volume",
        SEEDS,
        run,
    );
}
