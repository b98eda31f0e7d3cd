//! AOTM, the autonomic takeover agent (DESIGN §5; B27-B35; the spec's T6-T10, T14a): agents as
//! hosts of their own (`a0`..), the heartbeat network a path of its own.
//!
//! Three clusters; c1 has `[[takeover]] at = 1, for = 0, mode = "wot"`, grace 10 s, retry 5 s;
//! c0 writes R00000 with RRD (a RUN copy at c1) first. Then one fault per test:
//! - T7, c0's node crashes, its agent stays: mounts of R00000 at c1 fail until the grace period
//!   has passed (B31, B34), then G0009 and c1 reads R00000 byte for byte (T14a) and writes it;
//! - T6, the grid path c0-c1 is cut, agents connected: three grace periods pass with no G0009
//!   and no takeover mode at c1; R00000 stays OWNER_UNREACHABLE there (B30, B68);
//! - T8, c0's node and agent crash together: no takeover (UNKNOWN is not DOWN); an operator's
//!   WOT at c1 then lets c1 read and write R00000 (B137);
//! - T9, c0 alive, its grid path and its agent's heartbeat path to c1 both cut: no takeover;
//! - T10, only the heartbeat path cut: c1 mounts R00000 through the handshake as always.

use std::time::Duration;

use vtgrid_node::config::TakeoverConfig;
use vtgrid_proto::pb::{self, Reason};
use vtgrid_sim::client::{self, ensure, expect_reason};
use vtgrid_sim::cluster::sim_grid;
use vtgrid_sim::grid::{GridControl, SimGrid, DEFAULT_DURATION, DEFAULT_TICK};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[7, 70];
const GRACE: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
enum Fault {
    NodeCrash,
    GridCut,
    SiteLost,
    GridAndHeartbeatCut,
    HeartbeatCut,
}

fn has_event(control: &GridControl, at: u8, code: &str) -> bool {
    control
        .cluster(at)
        .is_some_and(|c| c.probe().events().recent().iter().any(|e| e.code == code))
}

async fn scenario(
    control: GridControl,
    ledger: Ledger,
    fault: Fault,
) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "R00000", "000F").await?;
    let v1 = b"R00000 v1, written at c0 with a RUN copy at c1".to_vec();
    let done = client::write_job(
        0,
        client::with_class(client::specific("R00000"), "RRD"),
        &v1,
        &ledger,
    )
    .await?;
    ensure(done.copies.contains(&1), "R00000's RUN copy is at c1")?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    let t0 = tokio::time::Instant::now();
    match fault {
        Fault::NodeCrash => control.crash(0).await,
        Fault::GridCut => control.partition(0, 1),
        Fault::SiteLost => {
            control.crash_agent(0).await;
            control.crash(0).await;
        }
        Fault::GridAndHeartbeatCut => {
            control.partition(0, 1);
            control.cut_heartbeat(0, 1);
        }
        Fault::HeartbeatCut => control.cut_heartbeat(0, 1),
    }

    match fault {
        Fault::NodeCrash => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            expect_reason(
                "B31: R00000 at c1 during the grace period",
                client::read_job(1, "R00000").await,
                Reason::OwnerUnreachable,
            )?;
            client::wait_for(
                "B30/B32: G0009 at c1",
                GRACE + RETRY + Duration::from_secs(20),
                || has_event(&control, 1, "G0009"),
            )
            .await?;
            let took = t0.elapsed();
            ensure(
                took >= GRACE,
                &format!(
                    "B34: the takeover came {took:?} after the crash, before the grace period"
                ),
            )?;
            let (_, bytes) = client::read_job(1, "R00000").await?;
            ensure(bytes == v1, "T14a: R00000 reads back at c1 byte for byte")?;
            let v2 = client::write_job(1, client::specific("R00000"), b"R00000 v2 at c1", &ledger)
                .await?;
            ensure(
                v2.version == 2,
                "B21: c1 writes R00000 under the agents' WOT",
            )?;
            // B22: c0 comes back; the grant for it ends.
            control.restart(0).await;
            client::wait_ready(0, Duration::from_secs(60)).await?;
            client::wait_grants_cleared(&control, 1).await?;
        }
        Fault::GridCut | Fault::GridAndHeartbeatCut | Fault::SiteLost => {
            tokio::time::sleep(3 * GRACE).await;
            ensure(
                !has_event(&control, 1, "G0009") && !has_event(&control, 1, "G0010"),
                &format!("{fault:?}: no AOTM takeover (B30: only DOWN takes over)"),
            )?;
            let held = client::cluster_status(1).await?.takeovers;
            ensure(
                held.is_empty(),
                &format!("{fault:?}: c1 holds no mode: {held:?}"),
            )?;
            expect_reason(
                &format!("{fault:?}: R00000 at c1"),
                client::read_job(1, "R00000").await,
                Reason::OwnerUnreachable,
            )?;
            if let Fault::GridCut = fault {
                // B25/B35: the agents say c0 is alive, so a manual WOT is refused too.
                expect_reason(
                    "B25: WOT at c1 for c0, which its agent says is alive",
                    client::set_takeover(1, 0, pb::TakeoverMode::Wot, false).await,
                    Reason::PeerAlive,
                )?;
            }
            if let Fault::SiteLost = fault {
                // B137: the operator decides.
                client::set_takeover(1, 0, pb::TakeoverMode::Wot, false).await?;
                let (_, bytes) = client::read_job(1, "R00000").await?;
                ensure(
                    bytes == v1,
                    "T8: R00000 reads back at c1 after the operator's WOT",
                )?;
                client::write_job(1, client::specific("R00000"), b"R00000 v2 at c1", &ledger)
                    .await?;
                control.restart(0).await;
                client::wait_ready(0, Duration::from_secs(60)).await?;
            } else {
                control.heal();
                control.repair_heartbeat(0, 1);
            }
        }
        Fault::HeartbeatCut => {
            tokio::time::sleep(GRACE + RETRY).await;
            let (_, bytes) = client::read_job(1, "R00000").await?;
            ensure(
                bytes == v1,
                "T10: c1 mounts R00000 by handshake, heartbeat cut",
            )?;
            ensure(
                !has_event(&control, 1, "G0009"),
                "T10: no takeover with the grid whole",
            )?;
            control.repair_heartbeat(0, 1);
        }
    }
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

fn run(seed: u64, fault: Fault) -> Result<(), String> {
    let mut grid_file = sim_grid(3, 0);
    grid_file.takeovers.push(TakeoverConfig {
        at: 1,
        for_cluster: 0,
        mode: "wot".into(),
        grace_secs: GRACE.as_secs(),
        retry_secs: RETRY.as_secs(),
    });
    let mut grid = SimGrid::with_config(seed, grid_file, DEFAULT_DURATION, DEFAULT_TICK);
    grid.add_agents(Some(Duration::from_secs(5)));
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone(), fault));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn t7_node_crash_with_its_agent_alive_takes_over_after_the_grace_period() {
    for_each_seed("t7_node_crash_with_its_agent_alive", SEEDS, |s| {
        run(s, Fault::NodeCrash)
    });
}

#[test]
fn t6_grid_split_with_agents_connected_takes_nothing_over() {
    for_each_seed("t6_grid_split_with_agents_connected", SEEDS, |s| {
        run(s, Fault::GridCut)
    });
}

#[test]
fn t8_whole_site_lost_waits_for_the_operator() {
    for_each_seed("t8_whole_site_lost", SEEDS, |s| run(s, Fault::SiteLost));
}

#[test]
fn t9_grid_and_heartbeat_cut_with_the_node_alive_takes_nothing_over() {
    for_each_seed("t9_grid_and_heartbeat_cut", SEEDS, |s| {
        run(s, Fault::GridAndHeartbeatCut)
    });
}

#[test]
fn t10_heartbeat_path_down_alone_changes_nothing() {
    for_each_seed("t10_heartbeat_path_down", SEEDS, |s| {
        run(s, Fault::HeartbeatCut)
    });
}
