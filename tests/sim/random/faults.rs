//! The fault task: applies the plan's faults at their times, and ends each one (a release, a
//! restart, a healed disk) after its duration, recording every span in the history.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use vtgrid_node::faults::FaultPoint;
use vtgrid_sim::cluster::host_name;
use vtgrid_sim::grid::GridControl;
use vtgrid_sim::net::{Stall, Tap};

use super::history::History;
use super::plan::{Fault, ARMED_FOR};

const TICK: Duration = Duration::from_millis(10);

/// How often each crash point was armed and how often it fired, across the schedules this
/// process ran (a coverage figure the full sweep prints and checks).
pub static POINTS_FIRED: Mutex<BTreeMap<FaultPoint, (u32, u32)>> = Mutex::new(BTreeMap::new());
/// How many stalls and duplicates caught a message, of how many were armed.
pub static MESSAGES_CAUGHT: Mutex<[(u32, u32); 2]> = Mutex::new([(0, 0); 2]);

pub async fn run_faults(
    control: &GridControl,
    faults: &[(Duration, Fault)],
    data: &[u8],
    h: &History,
) -> Result<(), String> {
    let mut tasks = Vec::new();
    for (at, fault) in faults {
        tokio::time::sleep_until(h.start + *at).await;
        h.note(format!("fault {fault:?}"));
        match *fault {
            Fault::Cut(a, b) => {
                h.fault_began(format!("{fault:?}"));
                control.partition(a, b)
            }
            Fault::OneWay(a, b) => {
                h.fault_began(format!("{fault:?}"));
                turmoil::partition_oneway(host_name(a), host_name(b));
            }
            Fault::Isolate(x) => {
                h.fault_began(format!("{fault:?}"));
                control.isolate(x)
            }
            Fault::Heal => {
                heal(control);
                h.end_all_faults();
            }
            Fault::Hold(a, b, d) => {
                let i = h.fault_began(format!("{fault:?}"));
                turmoil::hold(host_name(a), host_name(b));
                let h = h.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    turmoil::release(host_name(a), host_name(b));
                    h.note(format!("released C{a}-C{b}"));
                    h.fault_ended(i);
                }));
            }
            Fault::HostPathLost(c, d) => {
                let i = h.fault_began(format!("{fault:?}"));
                turmoil::partition("tape-host", host_name(c));
                let h = h.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    turmoil::repair("tape-host", host_name(c));
                    h.note(format!("tape host reaches C{c} again"));
                    h.fault_ended(i);
                }));
            }
            Fault::Crash(x, d) => {
                if (0..16).any(|id| control.is_down(id)) || h.point_pending.load(Relaxed) {
                    h.note("no crash: a voter is down already or a crash point is armed".into());
                    continue;
                }
                let i = h.fault_began(format!("{fault:?}"));
                control.crash(x).await;
                let (control, h) = (control.clone(), h.clone());
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    control.restart(x).await;
                    h.note(format!("restarted C{x}"));
                    h.fault_ended(i);
                }));
            }
            // Neither explains a host's error: the agents and their network only ever decide
            // whether a survivor takes over, never whether a job at a live cluster succeeds
            // (T10).
            Fault::AgentCrash(x, d) => {
                control.crash_agent(x).await;
                let control = control.clone();
                let h = h.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    control.restart_agent(x).await;
                    h.note(format!("restarted C{x}'s agent"));
                }));
            }
            Fault::HeartbeatCut(a, b) => control.cut_heartbeat(a, b),
            Fault::SiteLost(x, d) => {
                if (0..16).any(|id| control.is_down(id)) || h.point_pending.load(Relaxed) {
                    h.note("no site lost: a voter is down already".into());
                    continue;
                }
                let i = h.fault_began(format!("{fault:?}"));
                control.crash_agent(x).await;
                control.crash(x).await;
                let (control, h) = (control.clone(), h.clone());
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    control.restart_agent(x).await;
                    control.restart(x).await;
                    h.note(format!("restarted C{x} and its agent"));
                    h.fault_ended(i);
                }));
            }
            Fault::CutOffThenCrash(x, cut, d) => {
                if (0..16).any(|id| control.is_down(id)) || h.point_pending.load(Relaxed) {
                    h.note("no cut-off crash: a voter is down already".into());
                    continue;
                }
                let i = h.fault_began(format!("{fault:?}"));
                for v in control.voters().into_iter().filter(|v| *v != x) {
                    control.partition(x, v);
                }
                let (control, h) = (control.clone(), h.clone());
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(cut).await;
                    control.crash(x).await;
                    for v in control.voters().into_iter().filter(|v| *v != x) {
                        control.repair(x, v);
                    }
                    h.note(format!("C{x}, cut off, crashed"));
                    tokio::time::sleep(d).await;
                    control.restart(x).await;
                    h.note(format!("restarted C{x}"));
                    h.fault_ended(i);
                }));
            }
            Fault::Disk(c, kind, d) => {
                let Some(store) = control.volumes(c) else {
                    continue;
                };
                let i = h.disk_fault_began(c, format!("{fault:?}"));
                store.set_faults(kind.faults());
                let h = h.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    store.clear_faults();
                    h.note(format!(
                        "C{c}'s disk healed ({} calls failed so far)",
                        store.faults_injected()
                    ));
                    h.disk_fault_ended(i);
                }));
            }
            Fault::CrashAt(point, nth, down) => {
                if (0..16).any(|id| control.is_down(id)) || h.point_pending.load(Relaxed) {
                    h.note("no crash point: a voter is down already or one is armed".into());
                    continue;
                }
                h.point_pending.store(true, Relaxed);
                tasks.push(tokio::spawn(crash_at(
                    control.clone(),
                    h.clone(),
                    data.to_vec(),
                    point,
                    nth,
                    down,
                )));
            }
            Fault::Stall(command, d) => {
                let i = h.fault_began(format!("{fault:?}"));
                let stalls: Vec<(u8, u8, Stall)> = pairs(control)
                    .map(|(a, b)| {
                        (
                            a,
                            b,
                            Stall::arm(&host_name(a), &host_name(b), command.as_bytes()),
                        )
                    })
                    .collect();
                let h = h.clone();
                tasks.push(tokio::spawn(async move {
                    // One message only: once one pair caught it, the others are disarmed. It is
                    // held for `d` from then.
                    let until = Instant::now() + ARMED_FOR;
                    let fired = || stalls.iter().find(|(_, _, s)| s.fired());
                    while fired().is_none() && Instant::now() < until {
                        tokio::time::sleep(TICK).await;
                    }
                    stalls.iter().for_each(|(_, _, s)| {
                        s.disarm();
                    });
                    if fired().is_some() {
                        tokio::time::sleep(d).await;
                    }
                    stalls.iter().for_each(|(_, _, s)| s.release());
                    count_caught(0, fired().is_some());
                    match fired() {
                        Some((a, b, _)) => {
                            h.note(format!("released the {command} held from C{a} to C{b}"))
                        }
                        None => h.note(format!("no {command} was sent: nothing held")),
                    }
                    // The late message lands a moment after the release.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    h.fault_ended(i);
                }));
            }
            Fault::Duplicate(command, d) => {
                let i = h.fault_began(format!("{fault:?}"));
                let taps: Vec<(u8, u8, Tap)> = pairs(control)
                    .map(|(a, b)| {
                        (
                            a,
                            b,
                            Tap::arm(&host_name(a), &host_name(b), command.as_bytes()),
                        )
                    })
                    .collect();
                let h = h.clone();
                tasks.push(tokio::spawn(async move {
                    // The first message caught is sent again `d` later.
                    let until = Instant::now() + ARMED_FOR;
                    let caught = || taps.iter().find(|(_, _, t)| t.caught());
                    while caught().is_none() && Instant::now() < until {
                        tokio::time::sleep(TICK).await;
                    }
                    taps.iter().for_each(|(_, _, t)| {
                        t.disarm();
                    });
                    if caught().is_some() {
                        tokio::time::sleep(d).await;
                    }
                    count_caught(1, caught().is_some());
                    match caught() {
                        Some((a, b, tap)) => {
                            tap.duplicate();
                            h.note(format!("sent the {command} from C{a} to C{b} again"));
                        }
                        None => h.note(format!("no {command} was sent: nothing duplicated")),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    h.fault_ended(i);
                }));
            }
        }
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Every ordered pair of voters.
fn pairs(control: &GridControl) -> impl Iterator<Item = (u8, u8)> {
    let voters = control.voters();
    let others = voters.clone();
    voters.into_iter().flat_map(move |a| {
        others
            .clone()
            .into_iter()
            .filter(move |b| *b != a)
            .map(move |b| (a, b))
    })
}

fn count_caught(which: usize, caught: bool) {
    let mut c = MESSAGES_CAUGHT.lock().unwrap_or_else(|p| p.into_inner());
    c[which].1 += 1;
    c[which].0 += u32::from(caught);
}

/// Arm `point` at every data cluster; the first that reaches it (its `nth` arrival) is crashed by
/// the driver right after that step and restarted `down` later; the others are disarmed then, or
/// after [`ARMED_FOR`] if none reaches it. Two reaching it in the same step both crash (and
/// both restart).
async fn crash_at(
    control: GridControl,
    h: History,
    data: Vec<u8>,
    point: FaultPoint,
    nth: u32,
    down: Duration,
) {
    let before: Vec<usize> = data.iter().map(|x| fired_at(&control, *x)).collect();
    for x in &data {
        control.arm(*x, point, nth);
    }
    let fired = |control: &GridControl| -> Vec<u8> {
        data.iter()
            .zip(&before)
            .filter(|(x, b)| fired_at(control, **x) > **b)
            .map(|(x, _)| *x)
            .collect()
    };
    let until = Instant::now() + ARMED_FOR;
    while fired(&control).is_empty() && Instant::now() < until {
        tokio::time::sleep(TICK).await;
    }
    // Disarm the rest. One that fired in this very step is crashed by the driver after it: wait
    // for that crash to be recorded.
    let late: Vec<u8> = data
        .iter()
        .copied()
        .filter(|x| control.disarm(*x))
        .collect();
    let recorded_by = Instant::now() + Duration::from_secs(1);
    while late.iter().any(|x| !fired(&control).contains(x)) && Instant::now() < recorded_by {
        tokio::time::sleep(TICK).await;
    }
    let crashed = fired(&control);
    {
        let mut tally = POINTS_FIRED.lock().unwrap_or_else(|p| p.into_inner());
        let entry = tally.entry(point).or_default();
        entry.0 += 1;
        entry.1 += u32::from(!crashed.is_empty());
    }
    if crashed.is_empty() {
        h.note(format!("crash point {point:?} not reached; disarmed"));
    } else {
        let i = h.fault_began(format!("crash point {point:?} fired at {crashed:?}"));
        h.note(format!(
            "crash point {point:?} fired at {crashed:?}: crashed"
        ));
        tokio::time::sleep(down).await;
        for x in &crashed {
            control.restart(*x).await;
            h.note(format!("restarted C{x}"));
        }
        h.fault_ended(i);
    }
    h.point_pending.store(false, Relaxed);
}

/// How many crashes crash points caused at voter `x` so far.
fn fired_at(control: &GridControl, x: u8) -> usize {
    control
        .point_crashes()
        .iter()
        .filter(|c| c.voter == x)
        .count()
}

/// Repair every path between voters and to the tape host, release every hold.
pub fn heal(control: &GridControl) {
    control.heal(); // the heartbeat paths too, when agents run
    let mut hosts: Vec<String> = control.voters().into_iter().map(host_name).collect();
    hosts.push("tape-host".into());
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            turmoil::repair(a.as_str(), b.as_str());
            turmoil::release(a.as_str(), b.as_str());
        }
    }
}
