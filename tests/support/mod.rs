//! Support for the real-process tests in `tests/proc/`: real `vtgrid` processes on loopback.
//!
//! # Layout
//! - [`test_grid`]: [`TestGrid`], one cluster process (`vtgrid node` or `vtgrid grid up`) with its
//!   grid file, data and log in a temp dir; start until ready, `kill9`, `restart`, `stop`.
//! - [`grid_file`]: the one-cluster grid file on free loopback ports.
//! - [`process_grid`]: [`ProcessGrid`], a whole grid of processes (one `vtgrid node` per data
//!   cluster, one `vtgrid witness` per witness, or one `vtgrid grid up`), each with its own log,
//!   killable and restartable alone; leader and catalog agreement waits.
//! - [`grid_layout`]: the multi-voter grid file on free loopback ports.
//! - [`host`]: gRPC clients and host jobs (mount → write/read → rewind-unload), reason asserts.
//! - [`copy_watch`]: the copy queue, consistency and read-back through the CLI, as an operator
//!   watches copies; the classes and copy throttle of a shipped grid file.
//! - [`cli`]: finding the `vtgrid` binary and running one command with a deadline, stdin fed
//!   from a [`Payload`] and stdout kept or only hashed.
//! - [`payload`]: deterministic bytes generated on demand, so no test holds a big buffer.
//! - [`wait`]: polling a condition with a deadline and a message; nothing here sleeps to
//!   synchronise.
//!
//! What it leaves out: network faults between clusters (those run in `sim/` and `chaos/`); here a
//! fault is a whole process killed or stopped.

pub mod cli;
pub mod copy_watch;
pub mod grid_file;
pub mod grid_layout;
pub mod host;
pub mod payload;
pub mod process_grid;
pub mod test_grid;
pub mod wait;

pub use cli::{vtgrid_bin, CliCall, CliRun};
pub use grid_file::{GridFile, PRIVATE_CATEGORY, SCRATCH_CATEGORY, STANDARD_CLASS};
pub use grid_layout::{GridLayout, Voter};
pub use host::{assert_reason, ok};
pub use payload::Payload;
pub use process_grid::ProcessGrid;
pub use test_grid::{GridOptions, Launch, TestGrid};
pub use wait::{wait_for, wait_until};

/// One MiB: the volume store's chunk size.
pub const MIB: u64 = 1 << 20;
