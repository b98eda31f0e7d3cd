//! Real-process tests: `vtgrid` binaries on loopback, with real RocksDB, volume files and gRPC.
//!
//! Each test starts its own cluster ([`vtgrid_tests::support::TestGrid`]) or grid of processes
//! ([`vtgrid_tests::support::ProcessGrid`]) in a temp dir on free ports, so tests run in
//! parallel. They need the binary: `cargo build -p vtgrid-cli` first (or set `VTGRID_BIN`).
//!
//! - `roundtrip`: `grid up`, 256 MiB through the CLI's stdin and stdout.
//! - `durability`: kill -9 after rewind-unload and during a write.
//! - `corruption`: a flipped byte on disk is CHECKSUM_MISMATCH, never data.
//! - `bad_input`: one refusal per reason, malformed grid files, B84, `--json`.
//! - `telemetry`: OTLP span export and Prometheus metrics.
//! - `services`: gRPC health per service, reflection v1 and v1alpha.
//! - `python_client`: `examples/python/` against `grid up` (skipped when PyPI is unreachable),
//!   every reason through Python's generic `rpc_status.from_call`.
//! - `public_api`: issue 12's public API: linearizable reads across clusters, fields checked at
//!   the edge.
//! - `grid_processes`: several clusters and a witness as one Raft group: leader agreement, kill -9
//!   of the leader, whole-grid restart, `grid up` with witnesses.
//! - `amnesia`: a voter whose data dir was lost neither votes nor re-forms the grid; it waits
//!   for `vtgrid admin rejoin --as-new` and then votes again.
//! - `grid_files`: the shipped grid files, the two-voter warning, node/witness id checks.
//! - `copies_restart`: kill -9 of the cluster pulling deferred copies, restart, the queue drains.
//! - `sync_processes`: Sync mode over the real grid network, strict and deferred (B42, B43).
//! - `demo_1gib`: the 1 GiB R-R-D demo under `grid up`; runs only with
//!   `VTGRID_DEMO_1GIB=1`.
//! - `setup_script`: `scripts/setup.sh`'s libclang detection on fake trees (libclang-cpp is not
//!   libclang).
//! - `cancelled_calls`: 32 cancelled write streams on one volume, `vtgrid admin demount`, the
//!   unload's outcome from `vtgrid volume write`, SIGTERM with a `WatchEvents` stream open.
//! - `security`: issue 13: every RPC with no token and with each role's token, mutual TLS and
//!   the grid network's sender checks, mount ids bound to their token, the mount and insert
//!   limits, the audit log.
//! - `takeover`: T21, T7, T14a with `vtgrid agent` processes: a stopped owner fenced by its agent.
//! - `standalone`: `vtgrid admin force-standalone` on a survivor; a lost cluster's old group is
//!   superseded, and comes back only as a new member.
//! - `chaos_workload`: a round of the chaos workload through a real grid, its history and final
//!   state judged by the chaos checker, which also fails it once a version is rolled back.
//! - `bench`: `vtgrid bench copy` at a small size: its code path and its table, not its figures.

mod amnesia;
mod bad_input;
mod bench;
mod cancelled_calls;
mod chaos_workload;
mod copies_restart;
mod corruption;
mod demo_1gib;
mod durability;
mod grid_files;
mod grid_processes;
mod public_api;
mod python_client;
mod roundtrip;
mod security;
mod services;
mod setup_script;
mod standalone;
mod sync_processes;
mod takeover;
mod telemetry;
