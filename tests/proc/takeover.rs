//! Takeover between real processes (issue 10; the spec's T21, T7 and T14a on processes):
//! `vtgrid node` and `vtgrid agent` processes on loopback, the agents on the heartbeat addresses.
//!
//! Class RRN: C0 and C1 RUN, C2 No Copy. C1 holds `[[takeover]] at = 1, for = 0, mode = "wot"`,
//! grace 3 s, retry 2 s; the agents fence a node silent for 3 s.

use std::time::Duration;

use nix::sys::signal::Signal;
use vtgrid_proto::pb;
use vtgrid_tests::support::host::{read_volume, write_job};
use vtgrid_tests::support::{ok, wait_until, CliCall, Payload, ProcessGrid, PRIVATE_CATEGORY};

const CLASSES: &str = r#"
[[management_class]]
name = "RRN"
copy_modes = { C0 = "RRN", C1 = "RRN", C2 = "RRN" }
"#;

const TAKEOVER: &str = r#"
[[takeover]]
at = 1
for = 0
mode = "wot"
grace_secs = 3
retry_secs = 2

[agent]
fence_after_secs = 3
"#;

fn rrn(volser: &str) -> pb::MountRequest {
    let mut m = vtgrid_tests::support::host::specific(volser);
    m.constructs = Some(pb::Constructs {
        management_class: "RRN".into(),
        ..Default::default()
    });
    m
}

async fn has_event(grid: &ProcessGrid, id: u8, code: &str) -> bool {
    let mut status = vtgrid_tests::support::host::status_client(&grid.endpoint(id)).await;
    status
        .list_events(pb::ListEventsRequest::default())
        .await
        .is_ok_and(|r| r.into_inner().events.iter().any(|e| e.code == code))
}

/// T21 then T7 and T14a. Sequence: C0, C1, C2 and their agents → C0 writes R00000 with RRN (a RUN
/// copy at C1) → SIGSTOP C0 (a zombie owner: alive, silent) → C1 loses grid contact, waits the
/// grace period, asks its agent, which asks C0's: C0's agent kills the stopped node before it
/// says DOWN → G0009 at C1 → C0's process is dead of SIGKILL, so a SIGCONT has nothing to wake →
/// R00000 reads back at C1 byte for byte (T14a) and C1 writes it.
#[tokio::test(flavor = "multi_thread")]
async fn t21_a_stopped_owner_is_fenced_by_its_agent_before_the_survivor_takes_over() {
    let mut grid = ProcessGrid::start_configured(3, 0, false, |layout| {
        layout.management_classes = Some(CLASSES.to_string());
        layout.extra_toml.push_str(TAKEOVER);
    })
    .await;
    grid.start_agents();
    grid.insert(0, "R00000", PRIVATE_CATEGORY).await;
    let payload = Payload::mib(0x21, 2, 5);
    let mut c0 = grid.host(0).await;
    let done = ok(
        write_job(&mut c0, rrn("R00000"), payload).await,
        "write R00000 at C0",
    );
    assert!(
        done.copies.contains(&1),
        "R00000's RUN copy is at C1: {done:?}"
    );

    grid.signal(0, Signal::SIGSTOP);
    wait_until("G0009 at C1", Duration::from_secs(60), || {
        has_event(&grid, 1, "G0009")
    })
    .await;
    let status = grid
        .wait_exit(0, Duration::from_secs(10))
        .expect("T21: C0's agent killed the stopped node before it reported it down");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(Signal::SIGKILL as i32),
        "T21: C0 died of SIGKILL (fenced): {status}"
    );
    assert!(
        grid.agent_log(0).contains("fenced"),
        "C0's agent says it fenced the node"
    );

    let status = CliCall::new(&["status", "--endpoint", &grid.endpoint(1)])
        .run()
        .await;
    assert!(
        status.stdout.contains("takeover  WOT for C0"),
        "vtgrid status at C1 shows the mode: {}",
        status.stdout
    );

    let mut c1 = grid.host(1).await;
    let bytes = read_volume(&mut c1, "R00000").await;
    let want = payload.to_vec();
    assert!(
        bytes == want,
        "T14a: R00000 reads back at C1 byte for byte ({} bytes, want {})",
        bytes.len(),
        want.len()
    );
    let v2 = ok(
        write_job(
            &mut c1,
            vtgrid_tests::support::host::specific("R00000"),
            Payload::mib(0x22, 1, 0),
        )
        .await,
        "B21: C1 writes R00000 after the takeover",
    );
    assert_eq!(v2.version, 2);
}

/// The operator's commands on real processes: `vtgrid admin takeover` and `vtgrid admin
/// service`, their refusals by reason (exit status 2) and what `vtgrid status` shows.
///
/// Sequence: C0, C1 and a witness → `admin takeover --for C0 --mode wot` at C1 → PEER_ALIVE (C0
/// answers, B25) → `--mode rot` → `status` at C1 shows "takeover  ROT for C0" → `--mode none` →
/// it is gone → `admin service enter C0` before prep → SERVICE_MODE → `service prep C0` →
/// `status` shows C0 in prep or service (it drains at once: nothing is mounted) → `service exit
/// C0` → `--for C9` is a usage error (exit 1).
#[tokio::test(flavor = "multi_thread")]
async fn operators_set_and_clear_takeover_modes_and_service_states_through_the_cli() {
    let grid = ProcessGrid::start(2, 1).await;
    let c1 = grid.endpoint(1);
    let cli = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--endpoint".to_string(), c1.clone()]);
        CliCall::new(&all).run_blocking()
    };
    let refused = cli(&["admin", "takeover", "--for", "C0", "--mode", "wot"]);
    assert_eq!(refused.code(), Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("PEER_ALIVE"), "{}", refused.stderr);
    cli(&["admin", "takeover", "--for", "C0", "--mode", "rot"]).assert_success();
    assert!(cli(&["status"]).stdout.contains("takeover  ROT for C0"));
    cli(&["admin", "takeover", "--for", "0", "--mode", "none"]).assert_success();
    assert!(!cli(&["status"]).stdout.contains("takeover"));
    let early = cli(&["admin", "service", "enter", "C0"]);
    assert_eq!(early.code(), Some(2), "{}", early.stderr);
    assert!(early.stderr.contains("SERVICE_MODE"), "{}", early.stderr);
    cli(&["admin", "service", "prep", "C0"]).assert_success();
    let status = cli(&["status"]).stdout;
    assert!(
        status.contains("service   C0 in prep") || status.contains("service   C0 in service"),
        "{status}"
    );
    cli(&["admin", "service", "exit", "C0"]).assert_success();
    let bad = cli(&["admin", "takeover", "--for", "C9x", "--mode", "wot"]);
    assert_eq!(bad.code(), Some(1), "a usage error: {}", bad.stderr);
}

/// The self-fencing lease on real processes (issue 10 item 5): `[lease]` 3 s + 2 s margin. C0
/// writes L00000 and `vtgrid status` shows the lease held → C1 and C2 are killed (C0 alone is no
/// majority: nobody answers its renewals) → within the lease and a renewal round C0's status
/// says FENCED, `SELF_FENCED` is raised, and a write of its own volume is refused with
/// WRITE_PROTECTED naming the lease, while a read of it goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_that_cannot_renew_its_lease_fences_itself_and_still_serves_reads() {
    let mut grid = ProcessGrid::start_configured(3, 0, false, |layout| {
        layout
            .extra_toml
            .push_str("\n[lease]\nself_fence_after_secs = 3\ndrift_margin_secs = 2\n");
    })
    .await;
    grid.insert(0, "L00000", PRIVATE_CATEGORY).await;
    let mut c0 = grid.host(0).await;
    let payload = Payload::new(0x1EA5E, 64 * 1024);
    ok(
        write_job(
            &mut c0,
            vtgrid_tests::support::host::specific("L00000"),
            payload,
        )
        .await,
        "C0 writes L00000 while its lease holds",
    );
    let c0_endpoint = grid.endpoint(0);
    let status = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--endpoint".to_string(), c0_endpoint.clone()]);
        CliCall::new(&all).run_blocking()
    };
    let held = status(&["status"]);
    assert!(held.stdout.contains("lease     held"), "{}", held.stdout);

    grid.kill9(1);
    grid.kill9(2);
    wait_until("C0 fences itself", Duration::from_secs(15), || async {
        status(&["status", "--json"]).json()["lease"]["fenced"] == true
    })
    .await;
    assert!(status(&["status"]).stdout.contains("lease     FENCED"));
    assert!(has_event(&grid, 0, "SELF_FENCED").await);
    let refused = write_job(
        &mut c0,
        vtgrid_tests::support::host::specific("L00000"),
        Payload::new(0x1EA5F, 1024),
    )
    .await
    .expect_err("a fenced cluster commits nothing");
    assert_eq!(
        vtgrid_proto::reason_of(&refused),
        Some(pb::Reason::WriteProtected),
        "{refused:?}"
    );
    assert!(
        refused.message().contains("self-fencing lease"),
        "{refused:?}"
    );
    let bytes = read_volume(&mut c0, "L00000").await;
    assert!(bytes == payload.to_vec(), "reads go on at a fenced cluster");
}
