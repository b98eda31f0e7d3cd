//! Support code shared by the integration tests in `grid.rs`.

pub mod support;
