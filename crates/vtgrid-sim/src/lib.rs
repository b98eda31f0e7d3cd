//! Simulation support: vtgrid clusters as turmoil hosts, on memory storage, reachable over
//! turmoil's simulated network. Only `tests/` uses this crate.
//!
//! # Layout
//! - [`net`]: tonic over turmoil: a [`net::SimConnector`] for clients and Raft peers, and the
//!   incoming-connection stream servers use.
//! - [`cluster`]: [`cluster::SimDisks`] (the storage that outlives a crash, and the slot where
//!   the driver finds the running cluster) and [`cluster::run_cluster`], the body of a cluster or
//!   witness host; a grid file for N simulated clusters and W witnesses.
//! - [`grid`]: [`grid::SimGrid`], a whole grid and the driver loop (faults between steps,
//!   invariants after each), [`grid::GridControl`], the same faults from inside a client, and
//!   [`grid::LogTripwire`], a link cut timed to a Raft log entry.
//! - [`invariants`]: B10 single writable owner, no acknowledged version lost (B15/B37), no
//!   acknowledged RUN copy missing (B37/B39), catalogs converge after repair, every copy verified
//!   (B45); one function each.
//! - [`ledger`]: what the tape host was told (acknowledged and in-doubt versions).
//! - [`client`]: host-side gRPC clients with deadlines, host jobs, waiting for a condition.
//! - [`scenario`]: a tape host's script on a new grid, under the invariants.
//! - [`seed`]: fixed seeds, seed sweeps from the environment, and printing the failing seed.
//! - [`trace`]: what a run did (bytes on the wire, host results, commits), to compare replays.
//!
//! Why memory storage: RocksDB and file fsyncs block the thread, and turmoil runs every host on
//! one thread with a simulated clock, so one blocking call would stall the whole grid. The memory
//! stores keep only what was made durable, so `sim.crash` + `sim.bounce` loses exactly what a real
//! crash would (DESIGN §8).
//!
//! Determinism (DESIGN §8): one seed fixes every random choice: turmoil's network and the
//! tests' schedules draw from it, openraft's election timeouts come from a per-thread RNG seeded
//! from it (`vtgrid_catalog::runtime`), and with `--cfg tokio_unstable` (the workspace's
//! `.cargo/config.toml`) turmoil seeds Tokio's own RNG, which orders `select!` branches. So a
//! seed replays exactly; `tests/sim/random/replay.rs` checks it on the whole trace.

pub mod agent;
pub mod client;
pub mod cluster;
pub mod grid;
pub mod invariants;
pub mod ledger;
pub mod net;
pub mod scenario;
pub mod seed;
pub mod trace;

/// The seeded RNG the randomized schedules use (re-exported so tests need no extra dependency).
pub use rand;
