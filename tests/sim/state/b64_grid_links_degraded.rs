//! B64 (failover scenario 2) as c0 reports it: with the grid links between c0 and c1 down, c0's
//! `GetGridState` shows the link to c1 unreachable and the flags GRID_LINKS_DEGRADED,
//! VTS_OPERATIONS_DEGRADED and COPY_OPERATIONS_DISABLED, and c0 raises G0013 naming c1, the
//! state events GRID_LINKS_DEGRADED, CBR3786E and CBR3785E, and Call Home once (B59); when the
//! links come back the state clears and each state's end is an event (B62).
//!
//! Sequence: c0, c1, c2 → c0 sees every link up and no flags, and has raised no state event →
//! cut c0-c1 → c0's state and events as above, the link to c2 still up → repair → every link
//! up, no flags, and COPY_OPERATIONS_RESTORED, VTS_OPERATIONS_RESTORED, GRID_LINKS_RESTORED.

use std::time::Duration;

use vtgrid_proto::pb;
use vtgrid_sim::client::{self, deadline};
use vtgrid_sim::cluster::run_grid;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[8, 80];

async fn state(at: u8) -> Result<pb::GridState, tonic::Status> {
    let mut s = pb::status_service_client::StatusServiceClient::new(client::channel(at));
    Ok(deadline(s.get_grid_state(pb::GetGridStateRequest {}))
        .await?
        .into_inner())
}

/// Poll c`at`'s grid state until `ok` holds, within `within` of simulated time.
async fn wait_state(
    at: u8,
    what: &str,
    within: Duration,
    ok: impl Fn(&pb::GridState) -> bool,
) -> Result<pb::GridState, Box<dyn std::error::Error>> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let s = state(at).await?;
        if ok(&s) {
            return Ok(s);
        }
        if tokio::time::Instant::now() > until {
            return Err(format!("{what}: last state {s:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn event_codes(at: u8) -> Result<Vec<String>, tonic::Status> {
    let events = deadline(
        pb::status_service_client::StatusServiceClient::new(client::channel(at))
            .list_events(pb::ListEventsRequest::default()),
    )
    .await?
    .into_inner()
    .events;
    Ok(events.into_iter().map(|e| e.code).collect())
}

/// Poll c`at`'s events until every code in `want` is among them.
async fn wait_events(
    at: u8,
    want: &[&str],
    within: Duration,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let codes = event_codes(at).await?;
        if want.iter().all(|w| codes.iter().any(|c| c == w)) {
            return Ok(codes);
        }
        if tokio::time::Instant::now() > until {
            return Err(format!("events {want:?} not all raised; c{at} has {codes:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn link(s: &pb::GridState, peer: u32) -> bool {
    s.links.iter().any(|l| l.peer == peer && l.reachable)
}

async fn scenario() -> Result<(), Box<dyn std::error::Error>> {
    for id in 0..3 {
        client::wait_ready(id, Duration::from_secs(60)).await?;
    }
    wait_state(0, "every link up, no flags", Duration::from_secs(10), |s| {
        link(s, 1) && link(s, 2) && s.flags.is_empty()
    })
    .await?;
    let quiet = event_codes(0).await?;
    if quiet
        .iter()
        .any(|c| ["CBR3786E", "CBR3785E", "CALL_HOME"].contains(&c.as_str()))
    {
        return Err(format!("a grid that started together is not degraded: {quiet:?}").into());
    }

    turmoil::partition("c0", "c1");
    let s = wait_state(0, "the link to c1 down", Duration::from_secs(10), |s| {
        !link(s, 1)
    })
    .await?;
    for flag in [
        "GRID_LINKS_DEGRADED",
        "VTS_OPERATIONS_DEGRADED",
        "COPY_OPERATIONS_DISABLED",
    ] {
        if !s.flags.iter().any(|f| f == flag) {
            return Err(format!("{flag} missing from {:?}", s.flags).into());
        }
    }
    if !link(&s, 2) {
        return Err("the link to c2 went down too".into());
    }
    let events = deadline(
        pb::status_service_client::StatusServiceClient::new(client::channel(0))
            .list_events(pb::ListEventsRequest::default()),
    )
    .await?
    .into_inner()
    .events;
    if !events
        .iter()
        .any(|e| e.code == "G0013" && e.message.contains("peer library C1"))
    {
        return Err(format!("no G0013 naming C1 in {events:?}").into());
    }
    let codes = wait_events(
        0,
        &["GRID_LINKS_DEGRADED", "CBR3786E", "CBR3785E", "CALL_HOME"],
        Duration::from_secs(10),
    )
    .await?;
    if codes.iter().filter(|c| *c == "CALL_HOME").count() != 1 {
        return Err(format!("Call Home fires once per outage: {codes:?}").into());
    }

    turmoil::repair("c0", "c1");
    wait_state(
        0,
        "every link up again, no flags",
        Duration::from_secs(10),
        |s| link(s, 1) && link(s, 2) && s.flags.is_empty(),
    )
    .await?;
    wait_events(
        0,
        &[
            "COPY_OPERATIONS_RESTORED",
            "VTS_OPERATIONS_RESTORED",
            "GRID_LINKS_RESTORED",
        ],
        Duration::from_secs(10),
    )
    .await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    run_grid(seed, 3, Duration::from_secs(300), scenario())
}

#[test]
fn b64_grid_links_down_shows_degraded_flags_and_g0013_and_state_events() {
    for_each_seed(
        "b64_grid_links_down_shows_degraded_flags_and_g0013_and_state_events",
        SEEDS,
        run,
    );
}
