//! Copy policy overrides, per cluster (B48-B52).
//!
//! - B50(a) + B51: C1 has "force volume copy to local". A volume whose only copy is at C0 (class
//!   LOCAL0 = `RN` on C0) mounted at C1 is first copied into C1's TVC as part of the mount: the
//!   catalog has C1 consistent and C1 reads its own copy. C0, without the override, mounts a
//!   volume held only at C1 with a remote TVC and makes no copy (the override is per cluster).
//! - B50(b): a scratch mount at C1 with a class whose vector on C1 says N for C1 records the
//!   version with R at C1 (the class itself is unchanged).
//! - B52: C0 "allows 2 RUN consistent copies". With class ALL = `RRR` on C0 and C2 cut off, the
//!   unload returns once C0 and C1 hold the version, well before a RUN copy to an unreachable
//!   cluster would time out; C2's copy is immediate-deferred and arrives after the repair.

use std::time::Duration;

use vtgrid_proto::pb;
use vtgrid_sim::client::{self, deadline, ensure};
use vtgrid_sim::cluster::{host_name, run_grid_with, sim_grid};
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[4, 64];

async fn define(name: &str, modes: &[(u32, &str)]) -> Result<(), tonic::Status> {
    let class = pb::ManagementClass {
        name: name.into(),
        copy_modes: modes.iter().map(|(c, v)| (*c, v.to_string())).collect(),
        on_sync_failure: String::new(),
    };
    deadline(
        client::admin(0).define_management_class(pb::DefineManagementClassRequest {
            management_class: Some(class),
        }),
    )
    .await?;
    Ok(())
}

fn with_class(mut m: pb::MountRequest, class: &str) -> pb::MountRequest {
    m.constructs = Some(pb::Constructs {
        management_class: class.into(),
        ..Default::default()
    });
    m
}

async fn force_local() -> turmoil::Result {
    for id in 0..2 {
        client::wait_ready(id, Duration::from_secs(60)).await?;
    }
    define("LOCAL0", &[(0, "RN"), (1, "NR")]).await?;
    let ledger = Ledger::new();
    client::insert(0, "F00000-F00004", "000F").await?;
    client::insert(1, "G00000-G00004", "000F").await?;
    let at_c0 = b"written at C0 only".repeat(2000);
    let at_c1 = b"written at C1 only".repeat(2000);
    client::write_job(
        0,
        with_class(client::specific("F00001"), "LOCAL0"),
        &at_c0,
        &ledger,
    )
    .await?;
    client::write_job(
        1,
        with_class(client::specific("G00001"), "LOCAL0"),
        &at_c1,
        &ledger,
    )
    .await?;
    let v = client::volume(0, "F00001").await?;
    ensure(
        v.consistent_at.keys().copied().collect::<Vec<_>>() == [0],
        "LOCAL0 at C0: only C0 holds F00001",
    )?;

    // B50(a): the mount at C1 copies F00001 into C1's TVC first.
    let (_, bytes) = client::read_job(1, "F00001").await?;
    ensure(bytes == at_c0, "C1 reads F00001 as C0 wrote it")?;
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = client::volume(0, "F00001").await?;
        if v.consistent_at.get(&1) == Some(&v.version) {
            break;
        }
        ensure(
            tokio::time::Instant::now() < until,
            "B50(a): the forced local copy at C1 reaches the catalog",
        )?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // B51: C0 has no override; its mount of G00001 reads C1's copy remotely and copies nothing.
    let (_, bytes) = client::read_job(0, "G00001").await?;
    ensure(bytes == at_c1, "C0 reads G00001 through C1's TVC (B4)")?;
    tokio::time::sleep(Duration::from_secs(3)).await; // give a wrong copy time to show up
    let v = client::volume(0, "G00001").await?;
    ensure(
        v.consistent_at.keys().copied().collect::<Vec<_>>() == [1],
        "B51: no copy at C0, whose override is off",
    )?;

    // B50(b): a scratch mount at C1 under a class that says N for C1 on C1.
    define("REMOTE", &[(0, "RN"), (1, "RN")]).await?;
    client::change_category(1, "G00002", "0001").await?;
    let done = client::write_job(
        1,
        with_class(client::scratch("0001"), "REMOTE"),
        b"scratch",
        &ledger,
    )
    .await?;
    let v = client::volume(1, &done.volser).await?;
    ensure(
        v.copy_modes == "RR",
        &format!(
            "B50(b): the version counts C1 as RUN: vector {:?}",
            v.copy_modes
        ),
    )?;
    Ok(())
}

async fn fewer_run_copies() -> turmoil::Result {
    for id in 0..3 {
        client::wait_ready(id, Duration::from_secs(60)).await?;
    }
    define("ALL", &[(0, "RRR"), (1, "RRR")]).await?;
    let ledger = Ledger::new();
    client::insert(0, "R00000-R00004", "000F").await?;
    turmoil::partition(host_name(0), host_name(2));
    let started = tokio::time::Instant::now();
    let done = client::write_job(
        0,
        with_class(client::specific("R00001"), "ALL"),
        &[7u8; 100_000],
        &ledger,
    )
    .await?;
    let took = started.elapsed();
    ensure(
        done.copies.contains(&0) && done.copies.contains(&1) && !done.copies.contains(&2),
        &format!("B52: the unload returns with C0 and C1: {:?}", done.copies),
    )?;
    ensure(
        done.immediate_copy_deferred,
        "B52: the host is told a RUN copy is still owed",
    )?;
    ensure(
        took < vtgrid_node::copies::run_copy_timeout(100_000),
        &format!("B52: the unload did not wait for C2 ({took:?})"),
    )?;
    turmoil::repair(host_name(0), host_name(2));
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = client::volume(0, "R00001").await?;
        if (0..3).all(|c| v.consistent_at.get(&c) == Some(&v.version)) {
            break;
        }
        ensure(
            tokio::time::Instant::now() < until,
            "B52: C2's RUN copy completes after the repair",
        )?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[test]
fn b50_b51_force_local_copy_is_per_cluster() {
    for_each_seed("b50_b51_force_local_copy_is_per_cluster", SEEDS, |seed| {
        let mut grid = sim_grid(2, 0);
        grid.clusters[1].overrides.force_local_copy = true;
        run_grid_with(seed, grid, Duration::from_secs(600), force_local())
    });
}

#[test]
fn b52_fewer_run_copies_before_unload() {
    for_each_seed("b52_fewer_run_copies_before_unload", SEEDS, |seed| {
        let mut grid = sim_grid(3, 0);
        grid.clusters[0].overrides.run_copies_required = Some(2);
        run_grid_with(seed, grid, Duration::from_secs(600), fewer_run_copies())
    });
}
