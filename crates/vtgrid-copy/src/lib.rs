//! The copy engine (DESIGN §4; B36-B45, B40, B62): each cluster pulls the copies it owes.
//!
//! ```text
//!   catalog (this cluster's view)         CopyEngine (this crate)
//!   version v of V, vector "RRD"  ──> CopySite::owed ──schedule──> CopyQueue (durable, by priority)
//!                                                                      │ next(concurrency)
//!                                       pace (the [copy] throttle) <───┘
//!   a cluster consistent at v  <──────── CopySite::pull (verified, CopyDone journalled)
//! ```
//!
//! The engine decides *what* to pull and *when*: it queues every copy the catalog says this
//! cluster owes, takes them in priority order (immediate, sync-deferred, immediate-deferred,
//! deferred), a batch of `concurrency` at a time, spaced by the byte-rate throttle, and retries
//! what failed. *How* a copy is made — the grid transport, the volume store, the owner journal —
//! is the node's, behind [`CopySite`]. So the policy can be read (and tested) on its own, and the
//! node can be simulated under it unchanged.

pub mod engine;
pub mod site;

pub use engine::{offload, CopyEngine, Throttle};
pub use site::{CopySite, OwedCopy};
