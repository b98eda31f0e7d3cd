//! vtgrid's integration tests: one crate, one binary (it links once), a directory per topic.
//!
//! - `proc/`: real `vtgrid` processes on loopback, with real RocksDB, files and gRPC.
//! - `sim/`: turmoil simulations of clusters with memory storage, fixed seeds.

mod proc;
mod sim;
