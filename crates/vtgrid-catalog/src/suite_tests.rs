//! openraft's storage conformance suite, run against both engines.
//!
//! `Suite::test_all` builds a fresh log store and state machine for every case through a
//! `StoreBuilder`: RocksDB in a `TempDir` (the guard, dropped after each case) and a new
//! `MemEngine` (no guard). Each case runs in its own tokio runtime, so these are plain `#[test]`s.

use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

use crate::types::{StorageError, TypeConfig};
use crate::{open_catalog, LogStore, MemEngine, RocksEngine, StateMachineStore};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore<RocksEngine>, StateMachineStore<RocksEngine>, TempDir>
    for RocksBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (
            TempDir,
            LogStore<RocksEngine>,
            StateMachineStore<RocksEngine>,
        ),
        StorageError,
    > {
        let dir = tempfile::tempdir().expect("temp dir for RocksDB");
        let engine = RocksEngine::open(dir.path()).expect("open RocksDB");
        let (log, state_machine, _view) = open_catalog(engine).expect("open catalog");
        Ok((dir, log, state_machine))
    }
}

struct MemBuilder;

impl StoreBuilder<TypeConfig, LogStore<MemEngine>, StateMachineStore<MemEngine>> for MemBuilder {
    async fn build(
        &self,
    ) -> Result<((), LogStore<MemEngine>, StateMachineStore<MemEngine>), StorageError> {
        let (log, state_machine, _view) = open_catalog(MemEngine::new()).expect("open catalog");
        Ok(((), log, state_machine))
    }
}

#[test]
fn rocks_engine_passes_openraft_storage_suite() {
    Suite::test_all(RocksBuilder).unwrap();
}

#[test]
fn mem_engine_passes_openraft_storage_suite() {
    Suite::test_all(MemBuilder).unwrap();
}
