//! Amnesia (issue 9): a voter whose data dir was lost comes back with an empty catalog. It must
//! not vote (it may have voted in this term, or counted towards entries it no longer holds) and,
//! as the lowest-numbered voter, must not form a second Raft group. It says so (log, the
//! `REJOIN_REQUIRED` event, status membership `AMNESIAC`, never ready) and waits for the
//! operator: `vtgrid admin rejoin --as-new` readmits it as a new member, which then votes again.

use std::collections::BTreeSet;
use std::time::Duration;

use vtgrid_proto::pb;
use vtgrid_tests::support::copy_watch::{is_consistent_at, read_sha256};
use vtgrid_tests::support::host::{ok, specific, write_job};
use vtgrid_tests::support::payload::Payload;
use vtgrid_tests::support::{wait_for, CliCall, ProcessGrid, PRIVATE_CATEGORY};

/// How long a grid may take to agree on a leader.
const AGREE: Duration = Duration::from_secs(15);
/// How long a restarted voter may take to find out it lost its catalog.
const NOTICE: Duration = Duration::from_secs(20);
/// How long a readmitted voter may take to catch up.
const CATCH_UP: Duration = Duration::from_secs(30);

async fn membership(grid: &ProcessGrid, id: u8) -> Option<String> {
    grid.try_status(id).await.map(|s| s.membership)
}

async fn events(grid: &ProcessGrid, id: u8) -> Vec<pb::Event> {
    let endpoint = grid.voter(id).status_endpoint();
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .expect("a status endpoint")
        .connect()
        .await
        .expect("connect to the status endpoint");
    pb::status_service_client::StatusServiceClient::new(channel)
        .list_events(pb::ListEventsRequest::default())
        .await
        .expect("ListEvents")
        .into_inner()
        .events
}

/// The lowest voter loses its data dir: it does not re-form the grid, waits, and rejoins.
///
/// Sequence: C0, C1, C2 form a grid → insert A* through C0 and B* through C1 → every catalog
/// has them → kill -9 C0, delete its data dir, start it again → C0 reports membership AMNESIAC,
/// not ready, raises REJOIN_REQUIRED, and its catalog stays empty → C1 and C2 keep a leader among
/// themselves and still count C0 as a voter → only the first start formed the group → an insert
/// through C1 still commits → `vtgrid admin rejoin --as-new` at C0 succeeds → C0 is a ready
/// MEMBER with every volume, voters {0, 1, 2} → kill -9 the leader: the two left (C0 one of
/// them) elect a new leader, so C0 votes again.
#[tokio::test(flavor = "multi_thread")]
async fn the_lowest_voter_that_lost_its_data_dir_waits_for_rejoin_as_new_and_votes_again() {
    let mut grid = ProcessGrid::start(3, 0).await;
    grid.wait_for_leader(&[0, 1, 2], AGREE).await;
    grid.insert(0, "A00000-A00004", PRIVATE_CATEGORY).await;
    grid.insert(1, "B00000-B00004", PRIVATE_CATEGORY).await;
    grid.wait_for_equal_catalogs(&[0, 1, 2], CATCH_UP, |vs| vs.len() == 10)
        .await;

    grid.kill9(0);
    let data_dir = grid.voter(0).data_dir.clone();
    std::fs::remove_dir_all(&data_dir).expect("delete C0's data dir");
    grid.spawn(0);

    wait_for("C0 to say it lost its catalog", NOTICE, || async {
        (membership(&grid, 0).await.as_deref() == Some("AMNESIAC")).then_some(())
    })
    .await;
    let status = grid.status(0).await;
    assert!(!status.ready, "an amnesiac voter is not ready: {status:?}");
    assert_eq!(
        status.volumes, 0,
        "C0's catalog stays empty: it takes no log"
    );
    assert!(
        events(&grid, 0)
            .await
            .iter()
            .any(|e| e.code == "REJOIN_REQUIRED"),
        "C0 raised REJOIN_REQUIRED"
    );
    let leader = grid.wait_for_leader(&[1, 2], AGREE).await;
    let voters: BTreeSet<u32> = grid.status(1).await.voters.into_iter().collect();
    assert_eq!(voters, BTreeSet::from([0, 1, 2]), "C0 is still a voter");
    let formed = grid
        .log(0)
        .matches("formed the catalog's Raft group")
        .count();
    assert_eq!(
        formed, 1,
        "C0 formed the grid on its first start only, not again empty"
    );

    let inserted = grid.insert(1, "B00005", PRIVATE_CATEGORY).await;
    assert_eq!(inserted.count, 1, "the grid goes on without C0");

    grid.rejoin_as_new(0).await;

    wait_for("C0 to be a ready member again", CATCH_UP, || async {
        let s = grid.try_status(0).await?;
        (s.ready && s.membership == "MEMBER").then_some(())
    })
    .await;
    grid.wait_for_equal_catalogs(&[0, 1, 2], CATCH_UP, |vs| vs.len() == 11)
        .await;
    let voters: BTreeSet<u32> = grid.status(leader).await.voters.into_iter().collect();
    assert_eq!(voters, BTreeSet::from([0, 1, 2]), "C0 is a voter again");

    grid.kill9(leader);
    let left: Vec<u8> = [0, 1, 2].into_iter().filter(|c| *c != leader).collect();
    grid.wait_for_leader(&left, AGREE).await;
}

/// A witness that lost its data dir waits the same way, and rejoins through its grid address.
///
/// Sequence: C0, C1 and witness W8 form a grid → insert A* through C0 → kill -9 W8, delete its
/// data dir, start it again → W8 reports AMNESIAC and is not ready → C0 and C1 keep their leader
/// → an insert through the witness is refused (it owns no volumes) → `vtgrid admin rejoin
/// --as-new` at W8's grid address → W8 is a ready MEMBER, voters {0, 1, 8} → kill -9 the leader
/// among C0/C1: the other one and W8 elect a leader, so W8 votes again.
#[tokio::test(flavor = "multi_thread")]
async fn a_witness_that_lost_its_data_dir_rejoins_as_new_through_its_grid_address() {
    let mut grid = ProcessGrid::start(2, 1).await;
    let witness = 8;
    grid.wait_for_leader(&[0, 1, witness], AGREE).await;
    grid.insert(0, "A00000-A00004", PRIVATE_CATEGORY).await;

    grid.kill9(witness);
    std::fs::remove_dir_all(&grid.voter(witness).data_dir).expect("delete W8's data dir");
    grid.spawn(witness);
    wait_for("W8 to say it lost its catalog", NOTICE, || async {
        (membership(&grid, witness).await.as_deref() == Some("AMNESIAC")).then_some(())
    })
    .await;
    assert!(
        !grid.status(witness).await.ready,
        "an amnesiac witness is not ready"
    );
    let leader = grid.wait_for_leader(&[0, 1], AGREE).await;

    let endpoint = grid.voter(witness).status_endpoint();
    let refused = CliCall::new(&["--endpoint", &endpoint, "volume", "insert", "W00000"])
        .run()
        .await;
    assert_eq!(refused.code(), Some(2), "a witness inserts no volumes");

    grid.rejoin_as_new(witness).await;
    wait_for("W8 to be a ready member again", CATCH_UP, || async {
        let s = grid.try_status(witness).await?;
        (s.ready && s.membership == "MEMBER").then_some(())
    })
    .await;
    let voters: BTreeSet<u32> = grid.status(leader).await.voters.into_iter().collect();
    assert_eq!(voters, BTreeSet::from([0, 1, 8]), "W8 is a voter again");

    grid.kill9(leader);
    let other = 1 - leader;
    grid.wait_for_leader(&[other, witness], AGREE).await;
}

/// A voter readmitted after losing its data dir holds none of the copies the catalog counted
/// for it: the readmission takes it out of every volume's copies (`CopiesLost`), and its copy
/// engine makes them again. Until then the grid counts only the copies that exist.
///
/// Sequence: C0, C1, C2 with class DUAL (RUN at C0 and C1, No Copy at C2) → insert D00000 at
/// C1, write v1 there: the unload names C0 and C1 → every catalog has v1 → kill -9 C0, delete its data dir, start it,
/// `vtgrid admin rejoin --as-new` → whenever the catalog counts C0 for D00000 v1 again, C0's
/// data dir holds the version's file → it does within the catch-up time → a read through C0
/// returns the bytes written.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejoined_voter_counts_for_no_copy_until_it_has_made_it_again() {
    const VOLSER: &str = "D00000";
    let classes = "[[management_class]]\nname = \"DUAL\"\n\
                   copy_modes = { C0 = \"RRN\", C1 = \"RRN\", C2 = \"RRN\" }\n"
        .to_string();
    let mut grid = ProcessGrid::start_configured(3, 0, false, |layout| {
        layout.management_classes = Some(classes);
    })
    .await;
    grid.wait_for_leader(&[0, 1, 2], AGREE).await;
    grid.insert(1, VOLSER, PRIVATE_CATEGORY).await;
    let payload = Payload::new(0xA3_0001, 200_000);
    let mut host = grid.host(1).await;
    let mut request = specific(VOLSER);
    request.constructs = Some(pb::Constructs {
        management_class: "DUAL".into(),
        ..Default::default()
    });
    let done = ok(
        write_job(&mut host, request, payload).await,
        "write D00000 v1 at C1",
    );
    assert!(
        done.copies.contains(&0) && done.copies.contains(&1),
        "the unload names C0 and C1: {done:?}"
    );
    // v1 is published everywhere before C0 loses its data: a publish still in C1's journal at
    // that moment would name C0 after the readmission (see docs/decisions.md).
    grid.wait_for_equal_catalogs(&[0, 1, 2], CATCH_UP, |vs| vs.iter().any(|v| v.version == 1))
        .await;

    grid.kill9(0);
    let data_dir = grid.voter(0).data_dir.clone();
    std::fs::remove_dir_all(&data_dir).expect("delete C0's data dir");
    grid.spawn(0);
    wait_for("C0 to say it lost its catalog", NOTICE, || async {
        (membership(&grid, 0).await.as_deref() == Some("AMNESIAC")).then_some(())
    })
    .await;
    let leader = grid.wait_for_leader(&[1, 2], AGREE).await;
    grid.rejoin_as_new(0).await;

    let file = vtgrid_tvc::version_path(&data_dir.join("tvc"), VOLSER.parse().unwrap(), 1);
    // The leader's view: it applied the readmission's commands before the rejoin returned.
    let at_leader = grid.endpoint(leader);
    wait_for("the catalog to count C0's copy again", CATCH_UP, || async {
        is_consistent_at(&at_leader, VOLSER, 0).await.then_some(())
    })
    .await;
    assert!(
        file.exists(),
        "the catalog counts C0 for {VOLSER} v1, but C0 lost its data dir and {} does not exist",
        file.display()
    );
    let (sha, len) = read_sha256(&grid.endpoint(0), VOLSER, Duration::from_secs(30)).await;
    assert_eq!(
        (sha, len),
        (payload.sha256(), payload.len()),
        "a read through C0 returns v1"
    );
}
