//! Jobs that end without their host: a cancelled call, an idle mount, an operator's force
//! demount (issue 9; B1: a job whose call fails abends, and the host reruns it).
//!
//! Every `.await` in a handler is a cancellation point: a host that gives up or whose deadline
//! expires drops the handler's future there. So nothing that must happen may depend on that
//! future going on:
//!
//! - a write or sync carries an [`AbandonOnDrop`] guard; dropped armed, it abandons the job
//!   (demount at once, partial version dropped by a task of its own);
//! - a rewind-unload runs its commit in a task of its own, and [`CommitEnd`] ends the job and
//!   records the outcome however that task ends (see `Cluster::rewind_unload`);
//! - every mount has an idle watch: a job with no call for `[jobs] idle_timeout_secs` is
//!   abandoned, so a host that vanished without closing anything frees its volume;
//! - `AdminService.ForceDemount` abandons the job on a volume at once.
//!
//! A job whose commit runs is never abandoned; its commit is bounded and ends it.

use std::sync::{Arc, Weak};

use vtgrid_core::Volser;

use crate::cluster::Cluster;
use crate::error::NodeError;
use crate::mounts::{Mount, UnloadOutcome};

impl Cluster {
    /// End a job without its host: mark it abandoned, demount at once, and drop its partial
    /// version in a task of its own. False when the job had ended already or its commit runs.
    pub(crate) fn abandon_job(self: &Arc<Self>, mount: &Arc<Mount>) -> bool {
        mount.mark_abandoned();
        if !self.mounts.abandon(&mount.id) {
            return false;
        }
        tracing::warn!(volser = %mount.volser, mount = %mount.id, "job abandoned; volume demounted");
        // Outside a runtime (a process stopping) nothing can be spawned; dropping the mount then
        // drops its writer, which deletes the partial file all the same.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cluster, mount) = (self.clone(), mount.clone());
            runtime.spawn(async move {
                let mut io = mount.io.lock().await;
                cluster.abort_job(&mount, &mut io).await;
            });
        }
        true
    }

    /// `AdminService.ForceDemount`: abandon the job on `volser` (its host is gone, or an operator
    /// says so). Returns the mount id it ended. A volume whose rewind-unload is committing is
    /// left to finish (`VOLUME_IN_USE`): cutting a commit short is what loses versions.
    pub fn force_demount(self: &Arc<Self>, volser: Volser) -> Result<String, NodeError> {
        let mount = self
            .mounts
            .mount_of(&volser)
            .ok_or(NodeError::NotMounted { volser })?;
        if self.abandon_job(&mount) {
            tracing::warn!(%volser, mount = %mount.id, "force demount");
            return Ok(mount.id.clone());
        }
        if self.mounts.is_registered(&mount.id) {
            return Err(NodeError::UnloadInProgress { volser });
        }
        Err(NodeError::NotMounted { volser })
    }

    /// Abandon `mount` once it has gone [`crate::config::JobsConfig::mount_idle_timeout`] with
    /// no host call. The watch holds the cluster and the mount weakly: it ends with either.
    pub(crate) fn watch_idle(self: &Arc<Self>, mount: &Arc<Mount>) {
        let idle = self.grid.jobs.mount_idle_timeout();
        let (cluster, mount): (Weak<Cluster>, Weak<Mount>) =
            (Arc::downgrade(self), Arc::downgrade(mount));
        tokio::spawn(async move {
            loop {
                let wake = {
                    let Some(m) = mount.upgrade() else { return };
                    let now = tokio::time::Instant::now();
                    now + idle.saturating_sub(m.idle_for(now))
                };
                tokio::time::sleep_until(wake).await;
                let (Some(c), Some(m)) = (cluster.upgrade(), mount.upgrade()) else {
                    return;
                };
                if !c.mounts.is_registered(&m.id) {
                    return;
                }
                if m.idle_for(tokio::time::Instant::now()) >= idle {
                    tracing::warn!(volser = %m.volser, mount = %m.id, idle_secs = idle.as_secs(), "mount idle too long");
                    if c.abandon_job(&m) {
                        return;
                    }
                }
            }
        });
    }
}

/// Abandons the job when a write or sync call is dropped before it finished (the host
/// cancelled, or its deadline expired); [`AbandonOnDrop::disarm`] once the call has an outcome.
pub(crate) struct AbandonOnDrop<'a> {
    cluster: &'a Arc<Cluster>,
    mount: &'a Arc<Mount>,
    armed: bool,
}

impl<'a> AbandonOnDrop<'a> {
    pub(crate) fn arm(cluster: &'a Arc<Cluster>, mount: &'a Arc<Mount>) -> Self {
        AbandonOnDrop {
            cluster,
            mount,
            armed: true,
        }
    }

    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            tracing::warn!(volser = %self.mount.volser, mount = %self.mount.id, "host call cancelled mid-job");
            self.cluster.abandon_job(self.mount);
        }
    }
}

/// Ends a committing job with its outcome, however its commit task ends: with an outcome, or
/// (a panic) without one, which ends the job as an unknown mount rather than leaving it mounted.
pub(crate) struct CommitEnd<'a> {
    pub(crate) cluster: &'a Arc<Cluster>,
    pub(crate) mount: &'a Arc<Mount>,
    pub(crate) tx: tokio::sync::watch::Sender<Option<UnloadOutcome>>,
    pub(crate) ended: bool,
}

impl CommitEnd<'_> {
    pub(crate) fn finish(mut self, outcome: Result<crate::mounts::Unloaded, NodeError>) {
        self.end(Arc::new(outcome));
        self.ended = true;
    }

    fn end(&self, outcome: UnloadOutcome) {
        self.cluster
            .mounts
            .end_commit(&self.mount.id, outcome.clone());
        let _ = self.tx.send(Some(outcome));
    }
}

impl Drop for CommitEnd<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        self.end(Arc::new(Err(NodeError::UnknownMount {
            mount_id: self.mount.id.clone(),
        })));
    }
}
