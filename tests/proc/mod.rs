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
//! - `services`: gRPC health and reflection.
//! - `grid_processes`: several clusters and a witness as one Raft group: leader agreement, kill -9
//!   of the leader, whole-grid restart, `grid up` with witnesses.
//! - `grid_files`: the shipped grid files, the two-voter warning, node/witness id checks.
//! - `bench`: `vtgrid bench copy` at a small size: its code path and its table, not its figures.

mod bad_input;
mod bench;
mod corruption;
mod durability;
mod grid_files;
mod grid_processes;
mod roundtrip;
mod services;
mod telemetry;
