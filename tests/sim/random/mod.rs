//! Random schedules, seeded (issue 9; DESIGN §8: "Seeds are fixed in CI and swept in longer
//! runs"; spec §4.1 O1-O5, T1, T18, T34): per seed, a grid takes faults and host jobs drawn from
//! the seed, keeps the invariants after every step, and settles completely afterwards. One
//! harness, two profiles ([`plan::Profile`]):
//!
//! - **Full**: a grid drawn from five topologies (2 clusters + a witness, 3, 3 + a witness, 4,
//!   5) takes every fault the harness has, each on its own probability (at most one voter down
//!   at a time): a grid path cut between two voters, both ways or one way; a voter isolated; a
//!   full heal; every message between two voters *held* for 6..15 s and then released in order,
//!   longer than any RPC deadline (T18); one catalog command (Transfer, Reclaim, UpdateVolume,
//!   CopyDone, Barrier) *stalled* on its own connection for 6..15 s while later connections pass
//!   (`vtgrid_sim::net::Stall`: the reordering turmoil's per-pair hold cannot make, sequence A),
//!   or *duplicated* 1..10 s later on a new connection (`vtgrid_sim::net::Tap`); the tape host's
//!   path to one data cluster lost for 2..8 s (T1); a voter crashed (power cut) and restarted
//!   1..4 s later; a disk fault on one data cluster's volume store for 2..8 s
//!   (`vtgrid_tvc::faults`: ENOSPC on every write, EIO on every write, EIO on every fsync, or
//!   every fsync 0.5..3 s slow); a crash point (`vtgrid_node::faults::FaultPoint`: mount, obtain,
//!   surrender, unload, publish, copy, adopt, Sync duplex) armed at every data cluster, 1st or
//!   2nd arrival; the first cluster to reach it within [`plan::ARMED_FOR`] is crashed right
//!   after that step and restarted 1..4 s later. Jobs: specific-mount writes, scratch writes,
//!   reads, category changes, appends (the host reads the base first, so it knows the new
//!   version's bytes), writes with a host sync point between their halves, writes of several
//!   1 MiB chunks, and two cancelling clients: one drops its write stream mid-way and walks
//!   away, one gives up on its rewind-unload after a few milliseconds (the host then does not
//!   know whether the version exists: the ledger holds it in doubt).
//! - **Light** (at the owner, or anywhere): the shape of the first random schedules, many cheap
//!   seeds of the ownership and copy paths. c0, c1, c2 and witness w8; links cut, voters isolated,
//!   healed, crashed (at most two, restarted 1..4 s later); specific and scratch writes, reads and
//!   category changes. With jobs at the owner (each cluster owns more scratch volumes than the
//!   schedule can use) no ownership moves: B15 local autonomy, owner journals, crash durability
//!   and catch-up. With jobs anywhere mounts and category changes move ownership (B11, B13, B14)
//!   while faults hit; its predecessor found the B10 bug that
//!   `ownership/b10_surrender_outcome_unknown.rs` pins down and the B14 one in
//!   `ownership/b14_stale_owner_view_refusal.rs` (seed 107).
//! - **Takeover** (issue 10): the light grid with a takeover agent beside each data cluster
//!   (`a0`..; they fence a node silent for 3 s before they say DOWN) and, per seed, `[[takeover]]`
//!   entries for some ordered pairs of data clusters (WOT three times in four, else ROT; grace
//!   2..5 s, retry 2 s) and in three seeds of ten a self-fencing lease (6 s + 2 s margin). Faults:
//!   cuts, isolations, heals, at most two node crashes or whole sites lost (node and agent) for
//!   4..16 s, so the agents (or the lease) take volumes over while jobs run anywhere; agent
//!   crashes and heartbeat cuts, which explain no host error (T10). A seed that cuts off a
//!   cluster some survivor may take over with WOT adds a worker that writes the cut-off owner's
//!   own volume while the cut lasts and then at that survivor (the fenced-version path, B134).
//!   The sweep counts the schedules that saw a volume taken over, G0009, G0010, a lease grant
//!   and a quarantine, and requires each.
//!
//! Every write picks a management class mixing RUN, Deferred, Sync (strict and deferred) and No
//! Copy, the same vector on every cluster or a different one per cluster (B36), so RUN copies are
//! made or deferred (B37, B39), Sync jobs duplex, fail or go on alone (B42, B43), deferred copies
//! queue and catch up (B40) and remote TVCs serve reads (B4) while faults hit. A read must return
//! the version its mount announced with bytes the host wrote.
//!
//! An error is expected only when the schedule made it so, and the history names why
//! ([`jobs::why_expected`]): a fault active during the job or up to [`history::SETTLE`] before
//! it (a crash point counts from the step it fired in), a disk fault at a cluster the job wrote
//! to (its mount cluster, and the sync clusters for a Sync class), the other worker holding the
//! same volume, a cancelled job still holding it, or a used-up scratch pool. DATA_LOSS is never
//! expected. At the end every path is healed and every voter restarted (no restart of a stuck
//! owner: nothing may stay stuck), then within bounded simulated time ([`client::wait_settled`])
//! every voter is ready, catalogs are identical with the whole log applied, every owed copy is
//! made, nothing is left mounted, held, in doubt, duplexed or reserved, a quarantine holds only
//! versions a takeover fenced (the catalog records the volume as taken from that cluster at the
//! version's epoch or later; without takeover: nothing), and every volume reads back through its
//! owner with the catalog's digest, at or after its last acknowledged version that was not so
//! fenced. Checked after every step ([`Invariants`]): B10 from each mount's own token and state,
//! acknowledged versions held at their owner and every cluster their unload named.
//!
//! Seeds: 0..200 full, 0..400 for each light mix and 0..100 takeover by default (1,100 schedules);
//! `VTGRID_SIM_SEEDS=n` sweeps 0..n for each, `VTGRID_SIM_SEED=s` replays one exactly
//! (`VTGRID_SIM_LOG=vtgrid_node=info` adds the clusters' logs, `VTGRID_SIM_HISTORY=1` prints a
//! passing seed's history too): the schedule, the network and
//! openraft's election timeouts all come from the seed ([`a_seed_replays_the_same_trace`]).

mod faults;
mod history;
mod jobs;
mod plan;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vtgrid_node::config::{LeaseConfig, TakeoverConfig};
use vtgrid_sim::client;
use vtgrid_sim::cluster::sim_grid;
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::{self, Invariants};
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed_in_parallel;

use faults::{heal, run_faults};
use history::History;
use jobs::{read_back, run_worker};
use plan::{plan, scratch_per_cluster, Profile, PRIVATE_PER_CLUSTER};

/// Simulated time per step: fewer steps (and invariant checks) per simulated second than
/// turmoil's 1 ms, well below Raft's 100 ms heartbeat.
const TICK: Duration = Duration::from_millis(10);
const DURATION: Duration = Duration::from_secs(900);
/// `[jobs] idle_timeout_secs` of the random schedules' grids: a job whose client walked away
/// ends within the schedule's horizon (the default, 300 s, would cost each such seed 30,000
/// steps of waiting), still far beyond any fault, hold or RPC deadline a live job meets.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

async fn scenario(
    seed: u64,
    profile: Profile,
    control: GridControl,
    ledger: Ledger,
    history: Arc<Mutex<Option<History>>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let plan = plan(seed, profile);
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    let at_owner = plan.at_owner;
    let last = scratch_per_cluster(at_owner) - 1;
    let inserts = (0..plan.clusters).flat_map(|i| {
        [
            (
                i,
                format!("P{i}0000-P{i}{:04}", PRIVATE_PER_CLUSTER - 1),
                "000F",
            ),
            (i, format!("S{i}0000-S{i}{last:04}"), "0001"),
        ]
        .into_iter()
        .chain((profile == Profile::Takeover).then(|| (i, plan::fenced_volser(i), "000F")))
    });
    futures::future::try_join_all(
        inserts
            .map(|(i, range, category)| async move { client::insert(i, &range, category).await }),
    )
    .await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    let h = History::new(control.clone());
    *history.lock().unwrap_or_else(|p| p.into_inner()) = Some(h.clone());
    h.note(format!(
        "grid of {} clusters and {} witnesses (voters {:?}), jobs {}",
        plan.clusters,
        plan.witnesses,
        plan.voters,
        if at_owner { "at the owner" } else { "anywhere" }
    ));
    let workers = futures::future::try_join_all(
        plan.workers
            .iter()
            .enumerate()
            .map(|(w, jobs)| run_worker(seed, w, jobs, &ledger, &h)),
    );
    let data: Vec<u8> = (0..plan.clusters).collect();
    futures::future::try_join(run_faults(&control, &plan.faults, &data, &h), workers).await?;

    h.note("heal everything, restart what is down".into());
    heal(&control);
    for id in control.voters() {
        if control.is_down(id) {
            control.restart(id).await;
        }
    }
    client::wait_settled(&control).await?;
    h.note("quiet, every copy owed made, nothing left behind".into());
    let running: Vec<_> = control
        .voters()
        .into_iter()
        .filter_map(|id| control.cluster(id))
        .collect();
    invariants::quarantine_only_of_fenced_versions(&running)?;
    if profile == Profile::Takeover {
        count_takeovers(&running, &h);
    }
    read_back(&control, &ledger, &h).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

/// Per kind, how many takeover schedules this process ran saw it happen: a volume taken over
/// (WOT or service), a G0009 (an agent's DOWN, WOT set), a G0010 (ROT set), a lease grant, a
/// fenced version quarantined. The takeover sweep prints and checks it: the schedules must reach
/// takeover, or they prove less than they claim.
pub static TAKEOVERS_SEEN: Mutex<[u32; 5]> = Mutex::new([0; 5]);

fn count_takeovers(running: &[Arc<vtgrid_node::Cluster>], h: &History) {
    let Some(any) = running.first() else {
        return;
    };
    let taken = any.probe().view().read(|s| {
        s.volumes
            .values()
            .filter(|r| r.taken_from.is_some())
            .count()
    });
    let event = |code: &str| {
        running
            .iter()
            .any(|c| c.probe().events().recent().iter().any(|e| e.code == code))
    };
    let quarantined = running.iter().any(|c| {
        c.probe()
            .journal_store()
            .quarantined()
            .is_ok_and(|q| !q.is_empty())
    });
    let seen = [
        taken > 0,
        event("G0009"),
        event("G0010"),
        event("LEASE_TAKEOVER"),
        quarantined,
    ];
    h.note(format!(
        "takeovers seen (taken, G0009, G0010, lease, quarantine): {seen:?}"
    ));
    let mut counts = TAKEOVERS_SEEN.lock().unwrap_or_else(|p| p.into_inner());
    for (count, saw) in counts.iter_mut().zip(seen) {
        *count += u32::from(saw);
    }
}

fn run(seed: u64, profile: Profile) -> Result<(), String> {
    let p = plan(seed, profile);
    let mut config = sim_grid(p.clusters, p.witnesses);
    config.jobs.idle_timeout_secs = IDLE_TIMEOUT.as_secs();
    if let Some(t) = &p.takeover {
        config.takeovers = t
            .entries
            .iter()
            .map(|(at, failed, mode)| TakeoverConfig {
                at: *at,
                for_cluster: *failed,
                mode: (*mode).into(),
                grace_secs: t.grace.as_secs(),
                retry_secs: 2,
            })
            .collect();
        if let Some((after, margin)) = t.lease {
            config.lease = LeaseConfig {
                self_fence_after_secs: after.as_secs(),
                drift_margin_secs: margin.as_secs(),
            };
        }
    }
    let mut grid = SimGrid::with_config(seed, config, DURATION, TICK);
    if p.takeover.is_some() {
        grid.add_agents(Some(plan::AGENT_FENCE_AFTER));
    }
    let ledger = Ledger::new();
    let history = Arc::new(Mutex::new(None::<History>));
    grid.client(
        "tape-host",
        scenario(
            seed,
            profile,
            grid.control(),
            ledger.clone(),
            history.clone(),
        ),
    );
    let outcome = Invariants::new(ledger).run(&mut grid);
    let lines = || {
        history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(History::dump)
            .unwrap_or_default()
    };
    if outcome.is_ok() && std::env::var_os("VTGRID_SIM_HISTORY").is_some() {
        eprintln!("{profile:?} seed {seed} passed; history:\n  {}", lines());
    }
    outcome.map_err(|e| format!("{e}\nfaults {:?}\nhistory:\n  {}", p.faults, lines()))
}

fn sweep(test: &str, profile: Profile, seeds: u64) {
    let fixed: Vec<u64> = (0..seeds).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for_each_seed_in_parallel(test, &fixed, threads, |seed| run(seed, profile));
}

#[test]
fn adversarial_schedules_on_every_topology_keep_the_invariants_and_settle() {
    const SEEDS: u64 = 200;
    sweep(
        "adversarial_schedules_on_every_topology_keep_the_invariants_and_settle",
        Profile::Full,
        SEEDS,
    );
    let points = faults::POINTS_FIRED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let [stalls, duplicates] = *faults::MESSAGES_CAUGHT
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "crash points (armed, fired): {points:?}; stalls caught {}/{}, duplicates {}/{}",
        stalls.0, stalls.1, duplicates.0, duplicates.1
    );
    // Coverage, on the default seeds or a longer sweep: the faults must reach the code, or the
    // schedules prove less than they claim (0..200 fired 12 of the 14 points, caught 31 stalls
    // and 26 duplicates).
    if vtgrid_sim::seed::seeds(&[]).is_empty() || vtgrid_sim::seed::seeds(&[]).len() as u64 >= SEEDS
    {
        let fired = points.values().filter(|(_, fired)| *fired > 0).count();
        assert!(fired >= 10, "only {fired} crash points fired: {points:?}");
        assert!(stalls.0 >= 10, "only {} stalls caught a message", stalls.0);
        assert!(
            duplicates.0 >= 10,
            "only {} duplicates caught a message",
            duplicates.0
        );
    }
}

/// Seeds the sweep found, kept as their own tests (always these, also under `VTGRID_SIM_SEEDS`,
/// which the full profile's own test sweeps): full seed 276 had no leader for 120 s after the
/// heal (a fresh leader turned its elections off; `vtgrid_node::elections`); 1386 and 1406 found
/// the harness unfair (a job whose mount answer was lost still held its volume; an unanswered
/// unload after a timed-out write was not in the ledger's doubts); 3939 broke B45 (a stale sync
/// duplex, held 11 s, replaced a verified copy of the published version; `vtgrid_node::sync`);
/// 4465 found a class-less job's disk fault at a sync cluster unexplained (the volume's class was
/// Sync). 6574: a mount that obtained its volume lost it to another cluster's job before it
/// registered, and the host heard OWNER_UNREACHABLE of an owner that answered (now VOLUME_IN_USE).
#[test]
fn full_seeds_the_sweep_found_settle() {
    for seed in [276, 1386, 1406, 3939, 4465, 6574] {
        if let Err(e) = run(seed, Profile::Full) {
            panic!(
                "full seed {seed}: {e}\nreplay: VTGRID_SIM_SEED={seed} cargo test -p vtgrid-tests \
                 --test grid adversarial_schedules_on_every_topology"
            );
        }
    }
}

#[test]
fn light_schedules_with_jobs_at_the_owner_keep_the_invariants_and_converge() {
    sweep(
        "light_schedules_with_jobs_at_the_owner_keep_the_invariants_and_converge",
        Profile::Light { at_owner: true },
        400,
    );
}

/// Issue 10: takeover in the random schedules (agents, `[[takeover]]` entries, sometimes a lease;
/// nodes and whole sites down past the grace period, agents crashed, heartbeat paths cut).
#[test]
fn takeover_schedules_keep_the_invariants_and_converge() {
    const SEEDS: u64 = 100;
    sweep(
        "takeover_schedules_keep_the_invariants_and_converge",
        Profile::Takeover,
        SEEDS,
    );
    let seen = *TAKEOVERS_SEEN.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "takeover schedules that saw (a volume taken over, G0009, G0010, a lease grant, a \
         quarantine): {seen:?}"
    );
    if vtgrid_sim::seed::seeds(&[]).is_empty() || vtgrid_sim::seed::seeds(&[]).len() as u64 >= SEEDS
    {
        // A fenced version quarantined needs a job at the cut-off owner and then one at a
        // survivor on the same volume before the owner is back: `plan::fenced_version_worker`
        // makes them (0..100 saw 26 volumes taken over, 30 G0009, 14 G0010, 12 lease grants, 9
        // quarantines).
        for (what, n) in [
            "volume taken over",
            "G0009",
            "G0010",
            "lease grant",
            "quarantine",
        ]
        .iter()
        .zip(seen)
        {
            assert!(n >= 2, "only {n} takeover schedules saw a {what}: {seen:?}");
        }
    }
}

/// Takeover seeds the sweep found, kept as their own tests: 13 broke B10 (C2, cut off, crashed
/// and back, caught up while its view still showed the WOT grant for it; C0 took its volume
/// before C2's return ended the grant, and both could write it; now a cluster writes none of its
/// volumes while a grant for it stands, `vtgrid_core::gate::Standing::taken_over`). 459 found
/// the harness unfair: the cut-off owner's version 1 and the taker's version 1 of one volume
/// were called one number reused for two data (the fenced one is quarantined; the invariant now
/// excuses a pair when the volume was taken from one of the writers). 3511: the same pair made
/// the taker's read of its own version 1 look like DATA_LOSS (the read check compared with the
/// fenced owner's acknowledgement only).
#[test]
fn takeover_seeds_the_sweep_found_settle() {
    for seed in [13, 459, 3511] {
        if let Err(e) = run(seed, Profile::Takeover) {
            panic!(
                "takeover seed {seed}: {e}\nreplay: VTGRID_SIM_SEED={seed} cargo test -p \
                 vtgrid-tests --test grid takeover_schedules_keep"
            );
        }
    }
}

#[test]
fn light_schedules_with_jobs_anywhere_keep_the_invariants_and_converge() {
    sweep(
        "light_schedules_with_jobs_anywhere_keep_the_invariants_and_converge",
        Profile::Light { at_owner: false },
        400,
    );
}

/// DESIGN §8: one seed replays exactly. The same seed runs twice with the trace on (every byte
/// written on a simulated connection, every host result, every voter's commits); the two traces
/// must be equal, or the test prints where they first part. Seed 7 of the full profile crashes a
/// voter, fails a disk, stalls a Transfer and holds two paths while jobs run. `VTGRID_SIM_SEED`
/// picks another.
#[test]
fn a_seed_replays_the_same_trace() {
    let seed = vtgrid_sim::seed::seeds(&[7])[0];
    let traced = || {
        vtgrid_sim::trace::record();
        let outcome = run(seed, Profile::Full);
        (outcome, vtgrid_sim::trace::take())
    };
    let (first, a) = traced();
    if let Some(path) = std::env::var_os("VTGRID_SIM_TRACE_OUT") {
        // For comparing runs in separate processes: the first run's trace, one line each.
        std::fs::write(path, a.0.join("\n")).expect("write the trace");
    }
    let (second, b) = traced();
    assert!(
        a.0.iter().any(|l| l.contains(" net "))
            && a.0.iter().any(|l| l.contains(" raft "))
            && a.0.iter().any(|l| l.contains(" host ")),
        "seed {seed}: the trace lacks messages, commits or host results ({} lines)",
        a.len()
    );
    if let Some(diff) = a.first_difference(&b) {
        panic!(
            "seed {seed} did not replay: trace hashes {} and {}\n{diff}\n\
             replay: VTGRID_SIM_SEED={seed} cargo test -p vtgrid-tests --test grid a_seed_replays",
            a.hash(),
            b.hash()
        );
    }
    assert_eq!(first, second, "seed {seed}: same trace, different outcome");
    eprintln!("seed {seed}: {} trace lines, hash {}", a.len(), a.hash());
}
