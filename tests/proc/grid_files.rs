//! The grid files in `cluster-config/` and what `vtgrid config check`, `node` and `witness` say
//! about multi-voter grids (DESIGN §2: an odd number of voters, a witness for two sites).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vtgrid_node::config::GridConfig;
use vtgrid_tests::support::{CliCall, GridLayout};

/// `cluster-config/` of this repository.
fn cluster_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository root")
        .join("cluster-config")
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("test paths are UTF-8").to_string()
}

/// Every grid file shipped in `cluster-config/` loads, has an odd number of voters, passes
/// `vtgrid config check` without a warning, keeps its data under `vtgrid-data/<name>`, and uses
/// addresses no other shipped file uses (so any two grids can run side by side).
#[tokio::test(flavor = "multi_thread")]
async fn every_grid_file_in_cluster_config_passes_config_check() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cluster_config_dir())
        .expect("list cluster-config/")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for wanted in ["two-site-witness", "three-site-ha-dr", "four-site", "local"] {
        assert!(
            files
                .iter()
                .any(|f| f.file_stem().is_some_and(|s| s == wanted)),
            "cluster-config/{wanted}.toml exists"
        );
    }
    let mut owner_of_addr: BTreeMap<String, String> = BTreeMap::new();
    for file in &files {
        let shown = file.display();
        let grid = GridConfig::load(file).unwrap_or_else(|e| panic!("{shown} does not load: {e}"));
        let voters = grid.voters().len();
        assert!(voters % 2 == 1, "{shown}: {voters} voters, an even count");

        let dirs = grid
            .clusters
            .iter()
            .map(|c| (&c.name, &c.data_dir))
            .chain(grid.witnesses.iter().map(|w| (&w.name, &w.data_dir)));
        for (name, dir) in dirs {
            // local.toml's C0 keeps its data in vtgrid-data/c0, as the README says.
            assert_eq!(
                dir.to_string_lossy().to_lowercase(),
                format!("vtgrid-data/{}", name.to_lowercase()),
                "{shown}: {name} keeps its data under vtgrid-data/<name>"
            );
        }
        let addrs = grid
            .clusters
            .iter()
            .flat_map(|c| {
                [&c.host, &c.grid, &c.heartbeat]
                    .into_iter()
                    .chain(&c.metrics)
            })
            .chain(grid.witnesses.iter().flat_map(|w| [&w.grid, &w.heartbeat]));
        for addr in addrs {
            if let Some(other) = owner_of_addr.insert(addr.clone(), shown.to_string()) {
                panic!("{addr} is in both {other} and {shown}");
            }
        }

        let run = CliCall::new(&["config", "check", &path_arg(file)])
            .run()
            .await;
        run.assert_success();
        assert!(
            !run.stdout.contains("warning"),
            "config check warns about {shown}:\n{}",
            run.stdout
        );
    }
}

/// A two-cluster grid without a witness passes `config check` with a warning that says what it
/// costs: no catalog change commits while one of the two is down. Adding a witness silences it.
#[tokio::test(flavor = "multi_thread")]
async fn config_check_warns_on_two_voters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let two = dir.path().join("two.toml");
    std::fs::write(&two, GridLayout::on_free_ports(dir.path(), 2, 0).to_toml())
        .expect("write the grid file");
    let run = CliCall::new(&["config", "check", &path_arg(&two)])
        .run()
        .await;
    run.assert_success();
    let out = run.stdout.to_lowercase();
    for words in [
        "warning",
        "2 voters",
        "no catalog change",
        "down",
        "witness",
    ] {
        assert!(
            out.contains(words),
            "the warning mentions {words:?}:\n{}",
            run.stdout
        );
    }

    let with_witness = dir.path().join("three.toml");
    std::fs::write(
        &with_witness,
        GridLayout::on_free_ports(dir.path(), 2, 1).to_toml(),
    )
    .expect("write the grid file");
    let run = CliCall::new(&["config", "check", &path_arg(&with_witness)])
        .run()
        .await;
    run.assert_success();
    assert!(
        !run.stdout.contains("warning"),
        "no warning with a witness:\n{}",
        run.stdout
    );
}

/// `vtgrid node` refuses a witness id and `vtgrid witness` a data cluster id, each naming the
/// command to use instead, before touching the data dir.
#[tokio::test(flavor = "multi_thread")]
async fn node_and_witness_refuse_each_others_ids() {
    let dir = tempfile::tempdir().expect("temp dir");
    let layout = GridLayout::on_free_ports(dir.path(), 2, 1);
    let file = dir.path().join("grid.toml");
    std::fs::write(&file, layout.to_toml()).expect("write the grid file");
    let cases = [
        ("node", "8", "vtgrid witness"),
        ("witness", "0", "vtgrid node"),
        ("witness", "9", "neither a cluster nor a witness"),
    ];
    for (command, id, hint) in cases {
        let run = CliCall::new(&[command, "--config", &path_arg(&file), "--id", id])
            .timeout(Duration::from_secs(30))
            .run()
            .await;
        assert_eq!(
            run.code(),
            Some(1),
            "vtgrid {command} --id {id}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(hint),
            "vtgrid {command} --id {id} says {hint:?}:\n{}",
            run.stderr
        );
    }
    for voter in &layout.voters {
        assert!(
            !voter.data_dir.exists(),
            "a refused start created {}",
            voter.data_dir.display()
        );
    }
}
