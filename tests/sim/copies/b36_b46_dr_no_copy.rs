//! B36 and B46: the class as defined on the writing cluster decides the copies, so a DR cluster
//! whose PROD class says No Copy for production keeps its test data to itself, while production's
//! copies to the DR cluster go on.
//!
//! Grid c0, c1 (production), c2 (DR). Class PROD: `RRD` on C0 and C1, `NNR` on C2.
//! Sequence: write P00001 at c0 → consistent at C0, C1 (RUN) and C2 (deferred) → write T00001 at
//! c2 with the same class name → consistent at C2 only, and still only there after C0's next
//! write P00002 reached C2 (so the copy engines ran meanwhile); T00001 carries C2's vector.

use std::time::Duration;

use vtgrid_proto::pb;
use vtgrid_sim::client::{self, deadline, ensure};
use vtgrid_sim::cluster::run_grid;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[6, 66];

fn with_class(volser: &str) -> pb::MountRequest {
    let mut m = client::specific(volser);
    m.constructs = Some(pb::Constructs {
        management_class: "PROD".into(),
        ..Default::default()
    });
    m
}

/// Wait until `volser` is consistent at `want`, then check it is consistent nowhere else.
async fn wait_consistent(volser: &str, want: &[u32]) -> Result<(), Box<dyn std::error::Error>> {
    let v = client::wait_consistent(0, volser, want, Duration::from_secs(30)).await?;
    let mut at: Vec<u32> = v
        .consistent_at
        .iter()
        .filter(|(_, n)| **n == v.version)
        .map(|(c, _)| *c)
        .collect();
    at.sort_unstable();
    ensure(
        at == want,
        &format!("{volser} consistent at {at:?}, wanted exactly {want:?}"),
    )
}

async fn scenario() -> turmoil::Result {
    for id in 0..3 {
        client::wait_ready(id, Duration::from_secs(60)).await?;
    }
    let class = pb::ManagementClass {
        name: "PROD".into(),
        copy_modes: [
            (0, "RRD".to_string()),
            (1, "RRD".to_string()),
            (2, "NNR".to_string()),
        ]
        .into(),
        on_sync_failure: String::new(),
    };
    deadline(
        client::admin(0).define_management_class(pb::DefineManagementClassRequest {
            management_class: Some(class),
        }),
    )
    .await?;
    let ledger = Ledger::new();
    client::insert(0, "P00000-P00004", "000F").await?;
    client::insert(2, "T00000-T00004", "000F").await?;

    client::write_job(0, with_class("P00001"), b"production data", &ledger).await?;
    wait_consistent("P00001", &[0, 1, 2]).await?;

    let done = client::write_job(2, with_class("T00001"), b"DR test data", &ledger).await?;
    ensure(done.copies == [2], "B46: the DR write waits for no copy")?;
    client::write_job(0, with_class("P00002"), b"more production", &ledger).await?;
    wait_consistent("P00002", &[0, 1, 2]).await?;
    wait_consistent("T00001", &[2]).await?;
    let v = client::volume(0, "T00001").await?;
    ensure(
        v.copy_modes == "NNR",
        &format!("B36: T00001 carries C2's vector: {:?}", v.copy_modes),
    )?;
    Ok(())
}

#[test]
fn b36_b46_dr_no_copy_keeps_test_data_at_the_dr_cluster() {
    for_each_seed(
        "b36_b46_dr_no_copy_keeps_test_data_at_the_dr_cluster",
        SEEDS,
        |seed| run_grid(seed, 3, Duration::from_secs(600), scenario()),
    );
}
