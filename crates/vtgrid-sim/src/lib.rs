//! Simulation support: vtgrid clusters as turmoil hosts, on memory storage, reachable over
//! turmoil's simulated network. Only `tests/` uses this crate.
//!
//! # Layout
//! - [`net`]: tonic over turmoil: a [`net::SimConnector`] for clients and Raft peers, and the
//!   incoming-connection stream servers use.
//! - [`cluster`]: [`cluster::SimDisks`] (the storage that outlives a crash) and
//!   [`cluster::run_cluster`], the body of a cluster host; a grid file for N simulated clusters.
//! - [`client`]: host-side gRPC clients with deadlines, and waiting for a cluster to be ready.
//! - [`seed`]: fixed seeds, seed sweeps from the environment, and printing the failing seed.
//!
//! Why memory storage: RocksDB and file fsyncs block the thread, and turmoil runs every host on
//! one thread with a simulated clock, so one blocking call would stall the whole grid. The memory
//! stores keep only what was made durable, so `sim.crash` + `sim.bounce` loses exactly what a real
//! crash would (DESIGN §8).

pub mod client;
pub mod cluster;
pub mod net;
pub mod seed;
