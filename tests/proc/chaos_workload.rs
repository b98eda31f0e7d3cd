//! Issue 11, the chaos runner's parts on real processes: a round of the workload (the failover
//! mix of 10 specific reads and 5 scratch writes, plus random RUN, Deferred and No Copy writes
//! and appends) through both clusters of a real grid, recorded as a history; the final state
//! asked of each cluster; the checker passes it, and fails it once an acknowledged version is
//! taken out of the catalog it is judged against (the checker can fail on real data).

use std::time::Duration;

use vtgrid_chaos::history::{CopyMode, OpKind, Outcome};
use vtgrid_chaos::workload::{self, Class, Mix, Recorder};
use vtgrid_chaos::{check, FinalState, History, Violation};
use vtgrid_tests::support::{ProcessGrid, PRIVATE_CATEGORY, SCRATCH_CATEGORY};

const SEED: u64 = 11;

#[tokio::test(flavor = "multi_thread")]
async fn a_workload_round_on_real_processes_passes_the_checker_which_can_fail() {
    let classes = r#"
[[management_class]]
name = "RUN2"
copy_modes = { C0 = "RR", C1 = "RR" }

[[management_class]]
name = "DEF2"
copy_modes = { C0 = "RD", C1 = "DR" }

[[management_class]]
name = "NOCOPY"
copy_modes = { C0 = "RN", C1 = "NR" }
"#;
    let grid = ProcessGrid::start_configured(2, 1, false, |layout| {
        layout.management_classes = Some(classes.to_string());
    })
    .await;
    grid.insert(0, "A00000-A00007", PRIVATE_CATEGORY).await;
    grid.insert(0, "S00000-S00004", SCRATCH_CATEGORY).await;
    grid.insert(1, "S10000-S10004", SCRATCH_CATEGORY).await;
    let modes = |m: CopyMode| vec![m, m];
    let classes = [
        Class {
            name: "RUN2".into(),
            modes: modes(CopyMode::Run),
        },
        Class {
            name: "DEF2".into(),
            modes: modes(CopyMode::Deferred),
        },
        Class {
            name: "NOCOPY".into(),
            modes: modes(CopyMode::NoCopy),
        },
    ];
    let mix = Mix {
        volumes: (0..8).map(|n| format!("A0000{n}")).collect(),
        scratch_category: SCRATCH_CATEGORY.into(),
        classes: classes.iter().map(|c| c.name.clone()).collect(),
        random_writes: 8,
        max_len: 200_000,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let recorder = Recorder::new(std::fs::File::create(&path).unwrap());
    let ops = workload::round(SEED, 0, &mix, 2);
    for (cluster, planned) in &ops {
        let endpoint = grid.endpoint(*cluster);
        workload::run(&recorder, SEED, *cluster, &endpoint, planned, &classes)
            .await
            .unwrap();
    }
    let history =
        History::read(std::io::BufReader::new(std::fs::File::open(&path).unwrap())).unwrap();
    assert_eq!(history.ops.len(), ops.len(), "every operation recorded");
    // No fault: every write is acknowledged (a few reads of never-written volumes may refuse).
    let writes: Vec<_> = history.ops.iter().filter(|o| o.kind.writes()).collect();
    for w in &writes {
        assert_eq!(w.outcome, Outcome::Ok, "with no fault, {w:?}");
    }
    assert_eq!(writes.len(), 5 + 8);

    let acked: Vec<(String, u64)> = writes
        .iter()
        .map(|w| (w.volser.clone(), w.version.unwrap()))
        .collect();
    grid.wait_for_equal_catalogs(&[0, 1], Duration::from_secs(60), |vols| {
        acked.iter().all(|(volser, version)| {
            vols.iter()
                .any(|v| &v.volser == volser && v.version >= *version && !v.mounted)
        })
    })
    .await;
    let mut state = FinalState::default();
    for id in [0, 1] {
        state.clusters.push(
            vtgrid_chaos::collect::cluster_state(id, &grid.endpoint(id))
                .await
                .unwrap(),
        );
    }
    let report = check(&history, &state);
    assert!(report.passed(), "{report}");
    let rpo = &report.measures.rpo;
    assert_eq!(
        rpo.values().map(|r| r.acknowledged).sum::<u32>() as usize,
        writes.len(),
        "{report}"
    );
    assert!(history.ops.iter().any(|o| o.kind == OpKind::ScratchWrite));

    // The checker on real data can fail: roll one acknowledged volume back by a version in
    // every cluster's catalog, and it names the lost version's operation.
    let last = writes.iter().max_by_key(|w| w.end_ms).unwrap();
    let mut broken = state.clone();
    for c in &mut broken.clusters {
        for v in c.catalog.iter_mut().filter(|v| v.volser == last.volser) {
            v.version -= 1;
        }
    }
    let report = check(&history, &broken);
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, Violation::Lost { op, .. } if *op == last.id)),
        "{report}"
    );
}
