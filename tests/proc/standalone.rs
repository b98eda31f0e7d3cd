//! Force-standalone on real processes (issue 10 item 6, DESIGN §3 "Disaster recovery of the Raft
//! group"): the majority is gone for good, one survivor becomes the whole grid offline, the lost
//! clusters come back only as new members.

use std::collections::BTreeSet;
use std::time::Duration;

use vtgrid_proto::pb;
use vtgrid_tests::support::host::{read_volume, specific, write_job};
use vtgrid_tests::support::{ok, wait_for, CliCall, Payload, ProcessGrid, PRIVATE_CATEGORY};

const CLASSES: &str = r#"
[[management_class]]
name = "RRN"
copy_modes = { C0 = "RRN", C1 = "RRN", C2 = "RRN" }
"#;

const AGREE: Duration = Duration::from_secs(20);
const CATCH_UP: Duration = Duration::from_secs(60);

fn rrn(volser: &str) -> pb::MountRequest {
    let mut m = specific(volser);
    m.constructs = Some(pb::Constructs {
        management_class: "RRN".into(),
        ..Default::default()
    });
    m
}

async fn event_codes(grid: &ProcessGrid, id: u8) -> Vec<String> {
    let mut status = vtgrid_tests::support::host::status_client(&grid.endpoint(id)).await;
    match status.list_events(pb::ListEventsRequest::default()).await {
        Ok(r) => r.into_inner().events.into_iter().map(|e| e.code).collect(),
        Err(_) => Vec::new(),
    }
}

/// Sequence: C0, C1, C2 → C1 writes R00000 with RRN (a RUN copy at C0); C2 inserts C00000 →
/// kill -9 all three (C1 and C2 are gone for good) → `admin force-standalone` without `--yes`
/// refuses → with `--yes` it reports C1 and C2 lost → C0 starts alone: ready, voters {0},
/// status shows the record, event FORCED_STANDALONE → R00000 reads back byte for byte at C0
/// (T14a: the RUN copy) and C0 writes it and C00000 (it owns everything) → C2 comes back with its
/// old data dir: C0 refuses its Raft messages, C2 reports SUPERSEDED and raises REJOIN_REQUIRED,
/// C0 keeps voters {0} → C2 wiped, started empty (AMNESIAC), `admin rejoin --as-new` → a ready
/// MEMBER, voters {0, 2}, the same catalog as C0.
#[tokio::test(flavor = "multi_thread")]
async fn a_survivor_forced_standalone_owns_everything_and_the_lost_come_back_only_as_new() {
    let mut grid = ProcessGrid::start_configured(3, 0, false, |layout| {
        layout.management_classes = Some(CLASSES.to_string());
    })
    .await;
    grid.wait_for_leader(&[0, 1, 2], AGREE).await;
    grid.insert(1, "R00000", PRIVATE_CATEGORY).await;
    grid.insert(2, "C00000", PRIVATE_CATEGORY).await;
    let payload = Payload::mib(0x5a, 2, 3);
    let mut c1 = grid.host(1).await;
    let done = ok(
        write_job(&mut c1, rrn("R00000"), payload).await,
        "write R00000 at C1",
    );
    assert!(done.copies.contains(&0), "the RUN copy is at C0: {done:?}");
    grid.wait_for_equal_catalogs(&[0, 1, 2], CATCH_UP, |vs| vs.len() == 2)
        .await;

    for id in [1, 2, 0] {
        grid.kill9(id);
    }
    let config = grid.config_path().display().to_string();
    let force = |confirm: &[&str]| {
        let mut args = vec![
            "--json",
            "admin",
            "force-standalone",
            "--config",
            &config,
            "--id",
            "0",
        ];
        args.extend_from_slice(confirm);
        CliCall::new(&args).run()
    };
    let refused = force(&[]).await;
    assert!(
        !refused.status.success(),
        "no --yes, no change: {refused:?}"
    );
    let forced = force(&["--yes"]).await;
    forced.assert_success();
    let report = forced.json();
    assert_eq!(report["lost"], serde_json::json!(["C1", "C2"]), "{report}");
    assert_eq!(report["volumes_taken"], 2, "{report}");

    grid.restart(0).await;
    let status = grid.status(0).await;
    assert_eq!(status.voters, vec![0], "a grid of C0 alone");
    let record = status.forced_standalone.expect("status shows the record");
    assert_eq!((record.survivor, record.lost), (0, vec![1, 2]));
    assert!(event_codes(&grid, 0)
        .await
        .iter()
        .any(|c| c == "FORCED_STANDALONE"));
    let text = CliCall::new(&["status", "--endpoint", &grid.endpoint(0)])
        .run()
        .await;
    assert!(
        text.stdout.contains("forced standalone"),
        "vtgrid status says so: {}",
        text.stdout
    );

    let mut c0 = grid.host(0).await;
    let bytes = read_volume(&mut c0, "R00000").await;
    assert!(
        bytes == payload.to_vec(),
        "T14a: R00000 reads back at C0 byte for byte"
    );
    let v2 = ok(
        write_job(&mut c0, specific("R00000"), Payload::mib(0x5b, 1, 0)).await,
        "C0 writes R00000, C1's volume",
    );
    assert_eq!(v2.version, 2);
    ok(
        write_job(&mut c0, specific("C00000"), Payload::mib(0x5c, 1, 0)).await,
        "C0 writes C00000, C2's volume",
    );

    // C2 comes back with its old data dir: the old group's member is told it was superseded.
    grid.spawn(2);
    wait_for("C2 to learn it was superseded", CATCH_UP, || async {
        let s = grid.try_status(2).await?;
        (s.membership == "SUPERSEDED").then_some(())
    })
    .await;
    assert!(event_codes(&grid, 2)
        .await
        .iter()
        .any(|c| c == "REJOIN_REQUIRED"));
    let mut c2 = grid.host(2).await;
    assert!(
        write_job(&mut c2, specific("C00000"), Payload::mib(0x5d, 1, 0))
            .await
            .is_err(),
        "a superseded cluster writes nothing"
    );
    let status = grid.status(0).await;
    assert_eq!(
        status.voters,
        vec![0],
        "the old group changed nothing at C0"
    );
    assert_eq!(status.raft_leader, Some(0));

    // Wiped, it rejoins as a new member.
    grid.kill9(2);
    std::fs::remove_dir_all(&grid.voter(2).data_dir).expect("move C2's data dir away");
    grid.spawn(2);
    wait_for("C2 to start empty and wait", CATCH_UP, || async {
        let s = grid.try_status(2).await?;
        (s.membership == "AMNESIAC").then_some(())
    })
    .await;
    grid.rejoin_as_new(2).await;
    wait_for("C2 to be a ready member", CATCH_UP, || async {
        let s = grid.try_status(2).await?;
        (s.ready && s.membership == "MEMBER").then_some(())
    })
    .await;
    let voters: BTreeSet<u32> = grid.status(0).await.voters.into_iter().collect();
    assert_eq!(voters, BTreeSet::from([0, 2]));
    grid.wait_for_equal_catalogs(&[0, 2], CATCH_UP, |vs| {
        vs.iter().all(|v| v.owner == 0) && vs.len() == 2
    })
    .await;
}
