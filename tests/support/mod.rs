//! Support for the real-process tests in `tests/proc/`: real `vtgrid` processes on loopback.
//!
//! # Layout
//! - [`test_grid`]: [`TestGrid`], one cluster process (`vtgrid node` or `vtgrid grid up`) with its
//!   grid file, data and log in a temp dir; start until ready, `kill9`, `restart`, `stop`.
//! - [`grid_file`]: the one-cluster grid file on free loopback ports.
//! - [`host`]: gRPC clients and host jobs (mount → write/read → rewind-unload), reason asserts.
//! - [`cli`]: finding the `vtgrid` binary and running one command with a deadline, stdin fed
//!   from a [`Payload`] and stdout kept or only hashed.
//! - [`payload`]: deterministic bytes generated on demand, so no test holds a big buffer.
//! - [`wait`]: polling a condition with a deadline and a message; nothing here sleeps to
//!   synchronise.
//!
//! What it leaves out: more than one cluster (the grid tests run in `sim/` and `chaos/`).

pub mod cli;
pub mod grid_file;
pub mod host;
pub mod payload;
pub mod test_grid;
pub mod wait;

pub use cli::{vtgrid_bin, CliCall, CliRun};
pub use grid_file::{GridFile, PRIVATE_CATEGORY, SCRATCH_CATEGORY, STANDARD_CLASS};
pub use host::{assert_reason, ok};
pub use payload::Payload;
pub use test_grid::{GridOptions, Launch, TestGrid};
pub use wait::{wait_for, wait_until};

/// One MiB: the volume store's chunk size.
pub const MIB: u64 = 1 << 20;
