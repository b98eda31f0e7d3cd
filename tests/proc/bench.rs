//! The benchmarks' code paths at a size small enough for the test suite. The figures themselves
//! are not asserted: they belong to the machine (speed targets live in the benchmarks' ratios,
//! never in timed tests).

use std::time::Duration;

use vtgrid_tests::support::CliCall;

/// A run of `vtgrid bench copy` at 8 MiB completes inside a deadline.
const BENCH_DEADLINE: Duration = Duration::from_secs(120);

/// The ratio column of the table row whose label starts with `label`: the second-to-last field,
/// before the name of the baseline it is a ratio to.
fn ratio(stdout: &str, label: &str) -> (f64, String) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in:\n{stdout}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let value = fields[fields.len() - 2]
        .parse()
        .unwrap_or_else(|e| panic!("row {line:?} has no ratio: {e}"));
    (value, fields[fields.len() - 1].to_string())
}

/// `vtgrid bench copy` (B37 RUN, B42 Sync) runs its whole path at 8 MiB: its own two-cluster
/// grid, baseline (a) loopback TCP + write + fsync, (b) a single-cluster RN write, then RR and SS
/// jobs whose unloads must report both clusters holding the version (the command fails
/// otherwise), and prints one table with positive ratios to the right baselines. Its data
/// directory is gone afterwards.
///
/// Sequence: `vtgrid bench copy --size-mib 8 --runs 3 --dir TMP` → exit 0 → the RUN copy row is a
/// ratio > 0 to (a), the Sync row a ratio > 0 to (b), (b) a ratio > 0 to (a) → TMP is empty.
#[test]
fn bench_copy_at_8_mib_prints_positive_ratios_to_its_own_baselines() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir_arg = dir.path().display().to_string();
    let run = CliCall::new(&[
        "bench",
        "copy",
        "--size-mib",
        "8",
        "--runs",
        "3",
        "--dir",
        &dir_arg,
    ])
    .timeout(BENCH_DEADLINE)
    .run_blocking();
    run.assert_success();

    for (label, baseline) in [
        ("(b) single-cluster write", "(a)"),
        ("RUN copy C0->C1", "(a)"),
        ("RUN write", "(b)"),
        ("Sync write", "(b)"),
    ] {
        let (value, to) = ratio(&run.stdout, label);
        assert!(
            value > 0.0 && value.is_finite(),
            "{label}: ratio {value} is not positive:\n{}",
            run.stdout
        );
        assert_eq!(to, baseline, "{label} is a ratio to {baseline}");
    }
    assert!(
        run.stdout.contains("loopback TCP + write + fsync") && run.stdout.contains("CPU(s)"),
        "the table names its baseline and the machine:\n{}",
        run.stdout
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the bench dir's parent is readable")
        .collect();
    assert!(
        left.is_empty(),
        "the benchmark removed its grid and baseline data, left {left:?}"
    );
}

/// `vtgrid bench takeover` runs its whole path with a 3 s grace period: its own three-cluster
/// grid and agents, kill -9 of C0, C1 writing C0's volume under the agents' WOT; then a grid with
/// a 3 s self-fencing lease, C0's node and agent killed together, C1 writing under the lease's
/// WOT. The figure is
/// the machine's; the test checks only that it is a time no shorter than the grace period less one
/// ping interval (B34: never before the grace period from the last answer).
#[test]
fn bench_takeover_prints_the_time_from_the_kill_to_the_first_write_mount() {
    let run = CliCall::new(&[
        "bench",
        "takeover",
        "--grace-secs",
        "3",
        "--lease-secs",
        "3",
    ])
    .timeout(BENCH_DEADLINE)
    .run_blocking();
    run.assert_success();
    let seconds = |prefix: &str| -> f64 {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} row in:\n{}", run.stdout));
        line.split_whitespace()
            .last()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("row {line:?} has no time"))
    };
    // The grace period runs from C1's last answer from C0, which comes up to one ping interval
    // (1 s) before the kill.
    let by_agents = seconds("kill -9 of C0 ->");
    assert!(
        (2.0..120.0).contains(&by_agents),
        "the takeover took {by_agents} s with a 3 s grace period"
    );
    // The lease: 3 s + a 2 s margin from the leader's last renewal answered for C0, up to a
    // renewal interval (0.75 s) before the kill.
    let by_lease = seconds("kill -9 of C0 node + agent");
    assert!(
        (4.0..120.0).contains(&by_lease),
        "the lease takeover took {by_lease} s with a 3 s lease and a 2 s margin"
    );
}
