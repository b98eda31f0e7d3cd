//! The volume store seen from async code.
//!
//! `vtgrid-tvc` is synchronous: its file store fsyncs and hashes whole chunks, which must not run on
//! a tokio worker (it would stall every other request on that worker). [`Tvc`] runs such calls in
//! `spawn_blocking`. The in-memory store used by turmoil simulations is called inline instead,
//! because a blocking pool would take work off the simulated clock and break determinism.

use std::sync::Arc;

use vtgrid_tvc::VolumeStore;

/// A shared handle on the cluster's volume store.
#[derive(Clone)]
pub struct Tvc {
    store: Arc<dyn VolumeStore>,
}

impl Tvc {
    pub fn new(store: Arc<dyn VolumeStore>) -> Self {
        Tvc { store }
    }

    pub fn store(&self) -> &Arc<dyn VolumeStore> {
        &self.store
    }

    /// Run `f` against the store, off the async workers when the store blocks.
    pub async fn run<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&dyn VolumeStore) -> T + Send + 'static,
    {
        let store = self.store.clone();
        offload(self.store.is_blocking(), move || f(&*store)).await
    }

    /// Append `data` to a version being written, off the async workers when the store blocks.
    /// The writer goes in and comes back with the result, as it must cross to the blocking pool.
    pub async fn write(
        &self,
        mut writer: Box<dyn vtgrid_tvc::VersionWriter>,
        data: bytes::Bytes,
    ) -> (
        Box<dyn vtgrid_tvc::VersionWriter>,
        Result<(), vtgrid_tvc::TvcError>,
    ) {
        self.offload(move || {
            let r = writer.write(&data);
            (writer, r)
        })
        .await
    }

    /// A durable point of a version being written (fsync), after the store's simulated fsync
    /// delay, if any (a slow disk in a simulation, `vtgrid_tvc::faults`). The writer comes back
    /// with the result, as for [`Tvc::write`].
    pub async fn sync(
        &self,
        mut writer: Box<dyn vtgrid_tvc::VersionWriter>,
    ) -> (
        Box<dyn vtgrid_tvc::VersionWriter>,
        Result<u64, vtgrid_tvc::TvcError>,
    ) {
        self.fsync_delay().await;
        self.offload(move || {
            let r = writer.sync();
            (writer, r)
        })
        .await
    }

    /// Commit a version being written, after the store's simulated fsync delay, if any.
    pub async fn commit(
        &self,
        writer: Box<dyn vtgrid_tvc::VersionWriter>,
    ) -> Result<vtgrid_tvc::VersionMeta, vtgrid_tvc::TvcError> {
        self.fsync_delay().await;
        self.offload(move || writer.commit()).await
    }

    async fn fsync_delay(&self) {
        if let Some(delay) = self.store.fsync_delay() {
            tokio::time::sleep(delay).await;
        }
    }

    /// Run `f` (typically on a writer or reader taken from this store) the same way.
    pub async fn offload<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        offload(self.store.is_blocking(), f).await
    }
}

/// Run `f` on the blocking pool when `blocking`, inline otherwise (see the module doc).
pub use vtgrid_copy::offload;
