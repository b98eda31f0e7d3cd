//! One module per command group.

pub mod admin;
pub mod bench;
pub mod config;
pub mod constructs;
pub mod grid;
pub mod node;
pub mod quarantine;
pub mod security;
pub mod status;
pub mod volume;
