//! A grid of real processes: one `vtgrid node` per data cluster, one `vtgrid witness` per
//! witness, forming one catalog Raft group (DESIGN §2, §3) over loopback TCP.
//!
//! Faults here are whole processes: kill -9, SIGTERM, restart. Every wait polls with a deadline
//! ([`ProcessGrid::wait_for_leader`], [`ProcessGrid::wait_for_equal_catalogs`]); a failing test
//! prints every process's log.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use vtgrid_proto::pb;
use vtgrid_tests::support::host::{read_volume, write_volume};
use vtgrid_tests::support::{Payload, ProcessGrid, PRIVATE_CATEGORY};

/// How long a freshly started (or restarted) grid may take to agree on a leader.
const AGREE: Duration = Duration::from_secs(15);
/// The brief's bound on electing a new leader after the old one is killed.
const REELECT: Duration = Duration::from_secs(10);
/// How long a restarted cluster may take to catch up with the catalog.
const CATCH_UP: Duration = Duration::from_secs(15);

/// The VOLSER range each data cluster inserts (and so owns): C0 `A`, C1 `B`, C2 `C`.
fn owned_range(id: u8) -> (String, String) {
    let prefix = char::from(b'A' + id);
    (
        format!("{prefix}00000-{prefix}00009"),
        format!("{prefix}00000"),
    )
}

/// Whether `volumes` hold `volser` at `version`.
fn has_version(volumes: &[pb::Volume], volser: &str, version: u64) -> bool {
    volumes
        .iter()
        .any(|v| v.volser == volser && v.version == version)
}

/// Insert ten volumes through each data cluster in `ids`; each must come back owned by the
/// cluster it went through (DESIGN §3, "the inserting cluster owns them").
async fn insert_through_each(grid: &ProcessGrid, ids: &[u8]) {
    for &id in ids {
        let (range, _) = owned_range(id);
        let inserted = grid.insert(id, &range, PRIVATE_CATEGORY).await;
        assert_eq!(inserted.count, 10, "volumes inserted through C{id}");
        assert_eq!(inserted.owner, u32::from(id), "owner of {range}");
    }
}

fn voters(status: &pb::ClusterStatus) -> BTreeSet<u32> {
    status.voters.iter().copied().collect()
}

/// Three data cluster processes form one Raft group on first start and agree on its leader.
///
/// Sequence: start C0, C1, C2 as `vtgrid node` → all ready → all name the same leader → each
/// reports voters {0, 1, 2} → exactly one reports the role `leader`, and it is that leader.
#[tokio::test(flavor = "multi_thread")]
async fn three_clusters_form_one_raft_group_and_agree_on_a_leader() {
    let grid = ProcessGrid::start(3, 0).await;
    let leader = grid.wait_for_leader(&[0, 1, 2], AGREE).await;
    let mut leaders = Vec::new();
    for id in [0, 1, 2] {
        let status = grid.status(id).await;
        assert_eq!(
            voters(&status),
            BTreeSet::from([0, 1, 2]),
            "voters seen by C{id}"
        );
        assert!(status.ready, "C{id} is ready");
        if status.raft_role == "leader" {
            leaders.push(id);
        }
    }
    assert_eq!(
        leaders,
        vec![leader],
        "exactly the agreed leader says it leads"
    );
}

/// Two sites and a witness at a third place form a group of three voters; the witness answers
/// `StatusService` on its grid address, and with one site gone the other and the witness still
/// commit catalog changes (DESIGN §2: "a two-site grid runs a witness at a third place").
///
/// Sequence: start C0, C1 (`vtgrid node`) and W8 (`vtgrid witness`) → all ready → all name the
/// same leader → each, the witness via its grid address, reports voters {0, 1, 8}; the witness
/// is a follower or the leader → insert through C0 commits → kill -9 C1 → C0 and W8 agree on a
/// leader → an insert through C0 still commits.
#[tokio::test(flavor = "multi_thread")]
async fn two_sites_and_a_witness_form_a_group_of_three_voters() {
    let mut grid = ProcessGrid::start(2, 1).await;
    let leader = grid.wait_for_leader(&[0, 1, 8], AGREE).await;
    for id in [0, 1, 8] {
        let status = grid.status(id).await;
        assert_eq!(
            voters(&status),
            BTreeSet::from([0, 1, 8]),
            "voters seen by {id}"
        );
        assert_eq!(status.raft_leader, Some(u32::from(leader)));
    }
    let witness = grid.status(8).await;
    assert_eq!(witness.cluster, 8);
    assert_eq!(witness.name, grid.voter(8).name);
    assert!(
        ["leader", "follower"].contains(&witness.raft_role.as_str()),
        "the witness is a full voter: {:?}",
        witness.raft_role
    );
    assert_eq!(witness.volumes_owned, 0, "a witness owns no volumes");
    insert_through_each(&grid, &[0]).await;

    grid.kill9(1);
    grid.wait_for_leader(&[0, 8], REELECT).await;
    let inserted = grid.insert(0, "E00000-E00004", PRIVATE_CATEGORY).await;
    assert_eq!(
        inserted.count, 5,
        "C0 and the witness are a majority without C1"
    );
}

/// kill -9 of the Raft leader's process: the survivors elect a new leader within seconds, keep
/// committing, keep serving their own volumes, and the killed cluster rejoins with the same
/// catalog.
///
/// Sequence: start C0, C1, C2 → agree on leader L → insert A*, B*, C* through C0, C1, C2 (each
/// owns its range; B* is owned by C1) → kill -9 L → within 10 s the two survivors name the same
/// new leader → an insert (D*) through a survivor commits → a specific mount + write +
/// rewind-unload of a volume the other survivor owns, through that survivor, commits version 1 →
/// restart L → all three name the same leader and list the same volumes, D* and the new version
/// included.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_the_raft_leader_elects_a_new_leader_within_seconds() {
    let mut grid = ProcessGrid::start(3, 0).await;
    let old_leader = grid.wait_for_leader(&[0, 1, 2], AGREE).await;
    insert_through_each(&grid, &[0, 1, 2]).await;
    let before = grid
        .wait_for_equal_catalogs(&[0, 1, 2], CATCH_UP, |vs| vs.len() == 30)
        .await;
    assert!(
        before
            .iter()
            .filter(|v| v.volser.starts_with('B'))
            .all(|v| v.owner == 1),
        "C1 owns what it inserted"
    );

    grid.kill9(old_leader);
    let killed_at = Instant::now();
    let survivors: Vec<u8> = [0, 1, 2]
        .into_iter()
        .filter(|&id| id != old_leader)
        .collect();
    let new_leader = grid.wait_for_leader(&survivors, REELECT).await;
    assert_ne!(new_leader, old_leader);
    eprintln!(
        "C{new_leader} leads {:?} after C{old_leader} was killed",
        killed_at.elapsed()
    );

    let inserter = survivors[0];
    let inserted = grid
        .insert(inserter, "D00000-D00004", PRIVATE_CATEGORY)
        .await;
    assert_eq!(inserted.count, 5, "an insert through a survivor commits");
    assert_eq!(inserted.owner, u32::from(inserter));

    let writer = survivors[1];
    let (_, volser) = owned_range(writer);
    let payload = Payload::mib(40 + u64::from(writer), 1, 123);
    let done = write_volume(&mut grid.host(writer).await, &volser, payload).await;
    assert_eq!(
        done.version, 1,
        "{volser} got its first version on C{writer}"
    );

    // Rewind-unload returned once the owner's journal held the version; the catalog has it
    // when the owner's publication commits.
    let survived = grid
        .wait_for_equal_catalogs(&survivors, CATCH_UP, |vs| has_version(vs, &volser, 1))
        .await;
    assert_eq!(survived.len(), 35, "A*, B*, C* and D* on the survivors");
    let written = survived
        .iter()
        .find(|v| v.volser == volser)
        .expect("the written volume is listed");
    assert_eq!(written.version, 1);
    assert_eq!(written.digest, done.digest);
    assert_eq!(written.owner, u32::from(writer));

    grid.restart(old_leader).await;
    grid.wait_for_leader(&[0, 1, 2], AGREE).await;
    grid.wait_for_catalogs(&[0, 1, 2], &survived, CATCH_UP)
        .await;
}

/// Stopping every cluster and starting them again keeps the catalog: the group re-forms from
/// its logs (no second initialisation) and every volume is still there.
///
/// Sequence: start C0, C1, C2 → insert A*, B*, C* → write A00000 (version 1) through C0 → all
/// list the same volumes → SIGTERM all three (each exits 0) → start all three again → they agree
/// on a leader → the catalogs are equal to each other and to the one before → A00000 reads back
/// → only the very first start formed the Raft group.
///
/// The catalog before the stop is taken once A00000's version is published from C0's journal
/// to the catalog (see `ProcessGrid::wait_for_equal_catalogs`).
#[tokio::test(flavor = "multi_thread")]
async fn whole_grid_restart_keeps_the_catalog() {
    let mut grid = ProcessGrid::start(3, 0).await;
    grid.wait_for_leader(&[0, 1, 2], AGREE).await;
    insert_through_each(&grid, &[0, 1, 2]).await;
    let payload = Payload::mib(50, 2, 7);
    write_volume(&mut grid.host(0).await, "A00000", payload).await;
    let before = grid
        .wait_for_equal_catalogs(&[0, 1, 2], CATCH_UP, |vs| has_version(vs, "A00000", 1))
        .await;

    grid.stop_all();
    grid.restart_all(&[0, 1, 2]).await;
    grid.wait_for_leader(&[0, 1, 2], AGREE).await;

    grid.wait_for_catalogs(&[0, 1, 2], &before, CATCH_UP).await;
    let data = read_volume(&mut grid.host(0).await, "A00000").await;
    assert!(
        data == payload.to_vec(),
        "A00000 reads back after the restart"
    );
    let formed: usize = [0, 1, 2]
        .iter()
        .map(|&id| {
            grid.log(id)
                .matches("formed the catalog's Raft group")
                .count()
        })
        .sum();
    assert_eq!(
        formed, 1,
        "the Raft group is formed once, on the first start only"
    );
}

/// `vtgrid grid up` starts the witnesses too, and SIGTERM stops everything cleanly.
///
/// Sequence: a grid file with C0, C1 and W8 on free ports → `vtgrid grid up FILE` → all three
/// ready (C0, C1 on their host addresses, W8 on its grid address) with voters {0, 1, 8} → the
/// printed table lists each with its role → SIGTERM grid up → it exits 0 → no process listens
/// on any of the grid's addresses.
#[tokio::test(flavor = "multi_thread")]
async fn grid_up_starts_witnesses() {
    let mut grid = ProcessGrid::start_grid_up(2, 1).await;
    grid.wait_for_leader(&[0, 1, 8], AGREE).await;
    for id in [0, 1, 8] {
        assert_eq!(
            voters(&grid.status(id).await),
            BTreeSet::from([0, 1, 8]),
            "voters seen by {id}"
        );
    }
    let printed = grid.grid_up_log();
    for voter in &grid.layout().voters {
        let row = printed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(voter.name.as_str()))
            .unwrap_or_else(|| panic!("grid up lists {}:\n{printed}", voter.name));
        let role = if voter.id == 8 { "witness" } else { "data" };
        assert!(
            row.contains(role),
            "{} is listed as {role}: {row}",
            voter.name
        );
        assert!(
            row.contains(&voter.grid.to_string()),
            "its grid address: {row}"
        );
    }

    let status = grid.stop_grid_up();
    assert!(status.success(), "grid up exits 0 after SIGTERM: {status}");
    for voter in &grid.layout().voters {
        for addr in voter.listen_addrs() {
            assert!(
                !grid.accepts(addr),
                "{} still listens on {addr} after grid up stopped",
                voter.name
            );
        }
    }
}

/// B11 + B4 on real processes (issue "The grid, part 1", done-when): a volume written at C0 is
/// mounted at C1; ownership moves to C1 (epoch 2) and C1 serves C0's bytes over the grid network.
///
/// Sequence: three clusters → insert through C0 → write 3 MiB + 5 bytes to A00000 at C0 → read it
/// through C1 (specific mount at C1, remote read from C0's TVC) → identical bytes → C1's view says
/// C1 owns A00000 at epoch 2 → a second mount at C0 moves it back (epoch 3) and reads the same bytes.
#[tokio::test]
async fn b11_volume_written_at_c0_is_mounted_and_read_at_c1() {
    let grid = ProcessGrid::start(3, 0).await;
    grid.wait_for_leader(&[0, 1, 2], AGREE).await;
    grid.insert(0, "A00000-A00009", PRIVATE_CATEGORY).await;
    let payload = Payload::new(11, 3 * 1024 * 1024 + 5);
    write_volume(&mut grid.host(0).await, "A00000", payload).await;

    let at_c1 = read_volume(&mut grid.host(1).await, "A00000").await;
    assert!(
        at_c1 == payload.to_vec(),
        "C1 read different bytes than C0 wrote"
    );
    let seen = grid
        .admin(1)
        .await
        .get_volume(pb::GetVolumeRequest {
            volser: "A00000".into(),
            ..Default::default()
        })
        .await;
    let seen = seen.expect("get A00000 at C1").into_inner();
    assert_eq!(
        (seen.owner, seen.epoch),
        (1, 2),
        "ownership moved to C1 with the next epoch"
    );

    let back = read_volume(&mut grid.host(0).await, "A00000").await;
    assert!(
        back == payload.to_vec(),
        "C0 reads its own bytes after taking the volume back"
    );
    let seen = grid
        .admin(0)
        .await
        .get_volume(pb::GetVolumeRequest {
            volser: "A00000".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(seen.expect("get A00000 at C0").into_inner().epoch, 3);
}
