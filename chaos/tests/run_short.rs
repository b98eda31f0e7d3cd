//! `vtgrid-chaos run` on real processes (issue 11): the short fixed-seed schedule
//! (`three-site-ha-dr`, 40 s, while two hosts work) passes the checker, and every file of the run
//! is there. As root each voter runs in its own network namespace and the schedule cuts paths
//! too; otherwise it runs on loopback with kill -9s and SIGSTOPs only. Needs the `vtgrid` binary
//! (`cargo build -p vtgrid-cli`, or `VTGRID_BIN`).

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{is_root_with_ip, vtgrid_bin};

#[test]
fn the_short_fixed_seed_schedule_passes_the_checker() {
    let out = tempfile::tempdir().unwrap();
    let config =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cluster-config/three-site-ha-dr.toml");
    let run = Command::new(env!("CARGO_BIN_EXE_vtgrid-chaos"))
        .args([
            "run",
            "--seed",
            "3",
            "--secs",
            "40",
            "--max-faults",
            "4",
            "--grace-secs",
            "3",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(out.path())
        .arg("--vtgrid")
        .arg(vtgrid_bin())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{text}");
    assert!(text.contains("checker: no violation"), "{text}");
    let root = is_root_with_ip();
    assert_eq!(
        text.contains("network namespaces: process, path and disk faults"),
        root,
        "as root the run uses namespaces: {text}"
    );
    for file in [
        "grid.toml",
        "history.jsonl",
        "state.json",
        "report.txt",
        "node-0.log",
        "agent-0.log",
    ] {
        assert!(out.path().join(file).is_file(), "{file} missing: {text}");
    }
    // The run did something: faults struck and hosts were acknowledged.
    let history = std::fs::read_to_string(out.path().join("history.jsonl")).unwrap();
    assert!(
        history.contains(r#""type":"fault""#),
        "no fault in the run: {text}"
    );
    assert!(history.matches(r#""result":"ok""#).count() >= 20, "{text}");
    // The checker agrees when run alone on the saved files.
    let check = Command::new(env!("CARGO_BIN_EXE_vtgrid-chaos"))
        .arg("check")
        .arg("--history")
        .arg(out.path().join("history.jsonl"))
        .arg("--state")
        .arg(out.path().join("state.json"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
