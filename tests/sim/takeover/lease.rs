//! The self-fencing lease (issue 10 item 5; `vtgrid_core::lease`): a cluster cut off from the
//! catalog's majority stops writing by itself, and only then does the majority take its volumes,
//! with no agent and no operator.
//!
//! Three clusters, no agents; `[lease]` 10 s + 3 s margin; `[[takeover]] at = 1, for = 0, mode =
//! "wot"`. c0 writes L00000 v1 with RRD (a RUN copy at c1), c1 leads. Then the cut, and two hosts
//! at once: one writes L00000 at c0 every half second until c0 refuses (WRITE_PROTECTED, "self-
//! fencing lease"), noting when each write was acknowledged; the other watches c1's view every
//! 10 ms for the grant, then reads L00000 at c1 (the mount takes the volume over). Then heal: c0
//! clears the grant (it is back), renews (LEASE_RENEWED) and settles.
//! - whole cut, c0's clock at rate 1 and at 0.85 (slow, within the tolerated 3/13): every write c0
//!   acknowledged comes before the grant; c1 reads v1;
//! - one-way cut, c0 heard but never answered: c0 fences, the leader keeps hearing it and grants
//!   nothing in three lease periods;
//! - c0's clock at 0.5, beyond the tolerance: the assumption broken, c0 acknowledges a write after
//!   the grant (or B10 sees two writers). The test expects that failure: it shows the drift
//!   tests can fail.

use std::time::Duration;

use tokio::time::Instant;
use vtgrid_core::ClusterId;
use vtgrid_node::config::{LeaseConfig, TakeoverConfig};
use vtgrid_proto::pb::Reason;
use vtgrid_sim::client::{self, ensure};
use vtgrid_sim::cluster::{host_name, sim_grid};
use vtgrid_sim::grid::{GridControl, SimGrid, DEFAULT_DURATION, DEFAULT_TICK};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[5, 50];
const AFTER: Duration = Duration::from_secs(10);
const MARGIN: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cut {
    /// c0 cut off from c1 and c2 both ways.
    Whole,
    /// Only what c1 and c2 send to c0 is lost: c0 is heard, never answered.
    AnswersLost,
}

fn c(n: u8) -> ClusterId {
    ClusterId::new(n).expect("a cluster id")
}

fn granted(control: &GridControl, at: u8) -> bool {
    control.cluster(at).is_some_and(|cl| {
        cl.probe()
            .view()
            .read(|s| s.write_takeovers.contains(&(c(0), c(1))))
    })
}

/// What the two hosts saw.
#[derive(Debug, Default)]
struct Seen {
    /// When c0 acknowledged each write after the cut, from the cut.
    acks: Vec<Duration>,
    /// When c0 first refused a write for its lease, from the cut.
    fenced: Option<Duration>,
    /// When c1's view first held the grant, from the cut.
    grant: Option<Duration>,
}

/// Write L00000 at c0 until it refuses for its lease (at most 60 s).
async fn write_at_c0(
    cut: Instant,
    ledger: &Ledger,
    seen: &std::cell::RefCell<Seen>,
) -> Result<(), String> {
    for n in 0..120u32 {
        let data = format!("L00000 written at c0 after the cut, #{n}").into_bytes();
        match client::write_job(0, client::specific("L00000"), &data, ledger).await {
            Ok(done) if done.written => seen.borrow_mut().acks.push(cut.elapsed()),
            Ok(done) => return Err(format!("c0 answered an unwritten unload: {done:?}")),
            Err(s) if vtgrid_proto::reason_of(&s) == Some(Reason::WriteProtected) => {
                if !s.message().contains("self-fencing lease") {
                    return Err(format!("WRITE_PROTECTED says why: {}", s.message()));
                }
                seen.borrow_mut().fenced = Some(cut.elapsed());
                return Ok(());
            }
            // A RUN copy to c1 that hangs on a one-way cut outlasts the host's deadline: the
            // write is in doubt (the ledger knows), the next one goes on.
            Err(s) if s.code() == tonic::Code::DeadlineExceeded => {}
            Err(s) => return Err(format!("write #{n} at c0: {s}")),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err("c0 never fenced itself".into())
}

/// Watch c1's view for the grant (within `within`), then read L00000 at c1.
async fn take_over_at_c1(
    control: &GridControl,
    cut: Instant,
    within: Duration,
    v1: &[u8],
    seen: &std::cell::RefCell<Seen>,
) -> Result<(), String> {
    while cut.elapsed() < within {
        if granted(control, 1) {
            seen.borrow_mut().grant = Some(cut.elapsed());
            let (_, bytes) = client::read_job(1, "L00000")
                .await
                .map_err(|e| format!("read L00000 at c1 under the lease grant: {e}"))?;
            return if bytes == v1 {
                Ok(())
            } else {
                Err("c1 reads L00000 v1".into())
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn scenario(
    control: GridControl,
    ledger: Ledger,
    cut_kind: Cut,
    c0_clock_rate: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "L00000", "000F").await?;
    let v1 = b"L00000 v1, written at c0 with a RUN copy at c1".to_vec();
    let done = client::write_job(
        0,
        client::with_class(client::specific("L00000"), "RRD"),
        &v1,
        &ledger,
    )
    .await?;
    ensure(done.copies.contains(&1), "L00000's RUN copy is at c1")?;
    client::make_leader(&control, 1, Duration::from_secs(30)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    let cut = Instant::now();
    match cut_kind {
        Cut::Whole => control.isolate(0),
        Cut::AnswersLost => {
            for other in [1, 2] {
                turmoil::partition_oneway(host_name(other), host_name(0));
            }
        }
    }
    let seen = std::cell::RefCell::new(Seen::default());
    let watch_for = match cut_kind {
        Cut::Whole => AFTER * 4,
        Cut::AnswersLost => (AFTER + MARGIN) * 3,
    };
    let (writes, takeover) = tokio::join!(
        write_at_c0(cut, &ledger, &seen),
        take_over_at_c1(&control, cut, watch_for, &v1, &seen)
    );
    writes?;
    takeover?;
    let seen = seen.into_inner();
    let fenced = seen.fenced.ok_or("c0 fenced itself")?;
    // Its clock sees the lease pass in AFTER / rate of real time; then a renewal round and the
    // next write's turn.
    let bound = AFTER.div_f64(c0_clock_rate) + Duration::from_secs(2);
    ensure(
        fenced <= bound,
        &format!(
            "c0 fences within its lease (and a renewal round) of the cut, {bound:?}: {seen:?}"
        ),
    )?;
    match (cut_kind, seen.grant) {
        (Cut::Whole, None) => {
            return Err(
                format!("the leader grants WOT once c0's lease surely ran out: {seen:?}").into(),
            )
        }
        (Cut::Whole, Some(grant)) => {
            if let Some(late) = seen.acks.iter().find(|a| **a >= grant) {
                return Err(format!(
                    "c0 acknowledged a write {late:?} after the cut, at or after the grant ({grant:?})"
                )
                .into());
            }
            ensure(
                grant >= AFTER,
                &format!("no grant before the lease could have run out: {seen:?}"),
            )?;
        }
        (Cut::AnswersLost, Some(_)) => {
            return Err(format!("a leader that still hears c0 grants nothing: {seen:?}").into())
        }
        (Cut::AnswersLost, None) => {}
    }

    control.heal();
    if cut_kind == Cut::AnswersLost {
        for other in [1, 2] {
            turmoil::repair(host_name(other), host_name(0));
        }
    }
    client::wait_grants_cleared(&control, 1).await?;
    client::wait_for(
        "c0 renews its lease after the heal",
        Duration::from_secs(60),
        || {
            control.cluster(0).is_some_and(|c0| {
                c0.probe()
                    .events()
                    .recent()
                    .iter()
                    .any(|e| e.code == "LEASE_RENEWED")
            })
        },
    )
    .await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

fn run(seed: u64, cut: Cut, c0_clock_rate: f64) -> Result<(), String> {
    let mut grid_file = sim_grid(3, 0);
    grid_file.takeovers.push(TakeoverConfig {
        at: 1,
        for_cluster: 0,
        mode: "wot".into(),
        grace_secs: 1200,
        retry_secs: 300,
    });
    grid_file.lease = LeaseConfig {
        self_fence_after_secs: AFTER.as_secs(),
        drift_margin_secs: MARGIN.as_secs(),
    };
    let mut grid = SimGrid::with_config(seed, grid_file, DEFAULT_DURATION, DEFAULT_TICK);
    grid.disks(0).faults.set_clock_rate(c0_clock_rate);
    let ledger = Ledger::new();
    grid.client(
        "tape-host",
        scenario(grid.control(), ledger.clone(), cut, c0_clock_rate),
    );
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn lease_a_cut_off_owner_fences_itself_before_the_majority_takes_its_volumes() {
    for_each_seed("lease_a_cut_off_owner_fences_itself", SEEDS, |s| {
        run(s, Cut::Whole, 1.0)
    });
}

#[test]
fn lease_a_slow_clock_within_the_margin_still_fences_before_the_grant() {
    for_each_seed("lease_a_slow_clock_within_the_margin", SEEDS, |s| {
        run(s, Cut::Whole, 0.85)
    });
}

#[test]
fn lease_an_owner_heard_but_not_answered_fences_and_is_never_taken_over() {
    for_each_seed("lease_an_owner_heard_but_not_answered", SEEDS, |s| {
        run(s, Cut::AnswersLost, 1.0)
    });
}

/// The assumption broken on purpose: c0's clock runs at 0.5, far beyond the tolerated slowdown of
/// 3/13. It fences at about 17 s of real time after its last renewal, the grant comes at about 13 s: the run must fail
/// (an acknowledgement after the grant, or B10's two writers), or the drift tests prove nothing.
#[test]
fn lease_a_clock_slower_than_the_margin_allows_breaks_the_rule_and_the_test_sees_it() {
    for seed in SEEDS {
        let outcome = run(*seed, Cut::Whole, 0.5);
        let err = outcome.expect_err("a clock beyond the tolerance must show a violation");
        assert!(
            err.contains("after the grant") || err.contains("B10"),
            "seed {seed}: the failure names the broken rule: {err}"
        );
    }
}
