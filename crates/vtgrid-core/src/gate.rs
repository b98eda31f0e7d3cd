//! The one gate: may this cluster use a volume now? (DESIGN §3, "One gate"; B10.)
//!
//! A cluster decides from what it knows locally, with no consensus (local autonomy, B15): the
//! volume's token as its view and own journal show it, whether it is *in doubt* about a Transfer
//! it proposed, and what its mount table holds for the volume. Every path that starts or
//! finishes using a volume asks here: a mount before it registers, a rewind-unload before it
//! acknowledges, a sync cluster before it accepts a duplex, and the simulation's B10 invariant,
//! which counts the clusters the gate would let write.
//!
//! ```text
//!   Standing { me, token, in_doubt, caught_up, fenced, taken_over, local }
//!      may_mount()  owner, not in doubt, caught up since start,
//!                   nothing here holds V                             -> a new job may start
//!      may_write()  owner, not in doubt, not self-fenced, not taken
//!                   over, our job holds V under the token it
//!                   started with                                     -> that job may write/commit
//! ```
//!
//! A self-fenced cluster (its lease ran out, `crate::lease`) may still mount its volumes and
//! read them; nothing it has or starts may write, so B10 does not count it. The same holds while
//! its view shows a write-takeover grant for it (`taken_over`): the grant lets another cluster
//! take any of its volumes without asking, at any moment, so until its return has ended the
//! grant (`ClusterRestored`) its token is no longer its own to write under.
//!
//! ```text
//! ```
//!
//! A surrender hold (the owner handing V over) is neither: while it stands nobody here may mount
//! V, and the job that would write does not exist.

use thiserror::Error;

use crate::cluster::{ClusterId, OwnershipToken};

/// What this cluster's mount table holds for a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalUse {
    /// Nothing: no job, no surrender in progress.
    Free,
    /// A surrender of the volume is in progress here; no job may start.
    SurrenderHold,
    /// A host job has the volume mounted; `job_token` is the token it was mounted under.
    Mounted { job_token: OwnershipToken },
    /// A read-only job has the volume mounted (read takeover of an unavailable owner's volume,
    /// B20): it holds no token and writes nothing.
    Reading,
}

/// Where one cluster stands with one volume, from its own state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    pub me: ClusterId,
    /// The volume's token as this cluster sees it (catalog view plus its own journal).
    pub token: OwnershipToken,
    /// This cluster proposed a Transfer of the volume and does not know whether it committed.
    pub in_doubt: bool,
    /// This cluster's view has caught up with the catalog's leader once since it started. Until
    /// then its view may still name it the owner of a volume taken over while it was away
    /// (T20), so it may use no token.
    pub caught_up: bool,
    /// This cluster's self-fencing lease has run out (`crate::lease`): the majority may take its
    /// volumes at any moment, so it writes none of them.
    pub fenced: bool,
    /// This cluster's view shows a write-takeover grant for it (it was taken for failed while
    /// away): a grantee may take any of its volumes at any moment, so it writes none of them
    /// until its return ends the grant.
    pub taken_over: bool,
    pub local: LocalUse,
}

/// Why the gate is shut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum GateRefusal {
    #[error("owned by {owner}")]
    NotOwner { owner: ClusterId },
    #[error("a transfer of the volume from here may have committed; not settled yet")]
    InDoubt,
    #[error("this cluster has not caught up with the catalog since it started")]
    NotCaughtUp,
    #[error("in use here")]
    InUse,
    #[error("not mounted here")]
    NotMounted,
    #[error("mounted read-only here (read takeover): nothing may be written")]
    ReadOnly,
    #[error("this cluster's self-fencing lease ran out: it has not heard from the catalog's majority in time")]
    SelfFenced,
    #[error("a write takeover of this cluster's volumes stands in the catalog: it writes none of them until its return ends the grant")]
    TakenOver,
    #[error("the job's token (epoch {job}) is not the volume's (epoch {current})")]
    TokenMoved {
        job: crate::cluster::Epoch,
        current: crate::cluster::Epoch,
    },
}

impl Standing {
    fn owner_and_settled(&self) -> Result<(), GateRefusal> {
        if self.token.owner != self.me {
            return Err(GateRefusal::NotOwner {
                owner: self.token.owner,
            });
        }
        if self.in_doubt {
            return Err(GateRefusal::InDoubt);
        }
        if !self.caught_up {
            return Err(GateRefusal::NotCaughtUp);
        }
        Ok(())
    }

    /// May a new host job mount the volume here?
    pub fn may_mount(&self) -> Result<(), GateRefusal> {
        self.owner_and_settled()?;
        match self.local {
            LocalUse::Free => Ok(()),
            LocalUse::SurrenderHold | LocalUse::Mounted { .. } | LocalUse::Reading => {
                Err(GateRefusal::InUse)
            }
        }
    }

    /// May the job that has the volume mounted here write it, sync it or commit a version?
    /// Only while the token it was mounted under is still the volume's token.
    pub fn may_write(&self) -> Result<(), GateRefusal> {
        if self.local == LocalUse::Reading {
            return Err(GateRefusal::ReadOnly);
        }
        self.owner_and_settled()?;
        if self.fenced {
            return Err(GateRefusal::SelfFenced);
        }
        if self.taken_over {
            return Err(GateRefusal::TakenOver);
        }
        match self.local {
            LocalUse::Mounted { job_token } if job_token == self.token => Ok(()),
            LocalUse::Mounted { job_token } => Err(GateRefusal::TokenMoved {
                job: job_token.epoch,
                current: self.token.epoch,
            }),
            LocalUse::Free | LocalUse::SurrenderHold | LocalUse::Reading => {
                Err(GateRefusal::NotMounted)
            }
        }
    }

    /// Could this cluster write the volume now, through a job it has or one it may start? B10
    /// requires at most one such cluster per volume in the whole grid, at every instant.
    pub fn could_write(&self) -> bool {
        !self.fenced && !self.taken_over && (self.may_mount().is_ok() || self.may_write().is_ok())
    }

    /// Does a host job hold the volume here (whatever its token)? A job exists that may try to
    /// write; B10 counts it even when the gate would refuse it, since its token having moved
    /// under it is itself the violation. A self-fenced or taken-over cluster's job writes
    /// nothing whatever its token says: not counted.
    pub fn has_job(&self) -> bool {
        !self.fenced && !self.taken_over && matches!(self.local, LocalUse::Mounted { .. })
    }
}

/// May a sync cluster accept a duplex of the volume from `writer`, who says it holds the token at
/// `writer_epoch`? `view` is the token as the sync cluster sees it, after catching up once if it
/// looked behind. The same epoch must name the writer; an older epoch is a fenced writer; a newer
/// one means this view still trails (the catalog fences the version when it is committed anyway).
pub fn may_accept_duplex(
    view: OwnershipToken,
    writer: ClusterId,
    writer_epoch: crate::cluster::Epoch,
) -> Result<(), GateRefusal> {
    if view.epoch > writer_epoch {
        return Err(GateRefusal::TokenMoved {
            job: writer_epoch,
            current: view.epoch,
        });
    }
    if view.epoch == writer_epoch && view.owner != writer {
        return Err(GateRefusal::NotOwner { owner: view.owner });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Epoch;

    fn c(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    fn token(owner: u8, epoch: u64) -> OwnershipToken {
        OwnershipToken {
            owner: c(owner),
            epoch: Epoch(epoch),
        }
    }

    fn standing(me: u8, owner: u8, in_doubt: bool, local: LocalUse) -> Standing {
        Standing {
            caught_up: true,
            fenced: false,
            taken_over: false,
            me: c(me),
            token: token(owner, 3),
            in_doubt,
            local,
        }
    }

    #[test]
    fn the_settled_owner_with_nothing_mounted_may_mount() {
        assert_eq!(standing(0, 0, false, LocalUse::Free).may_mount(), Ok(()));
        assert_eq!(
            standing(0, 1, false, LocalUse::Free).may_mount(),
            Err(GateRefusal::NotOwner { owner: c(1) })
        );
        assert_eq!(
            standing(0, 0, true, LocalUse::Free).may_mount(),
            Err(GateRefusal::InDoubt)
        );
        assert_eq!(
            standing(0, 0, false, LocalUse::SurrenderHold).may_mount(),
            Err(GateRefusal::InUse)
        );
    }

    #[test]
    fn a_job_writes_only_under_the_token_it_mounted_with() {
        let same = LocalUse::Mounted {
            job_token: token(0, 3),
        };
        let older = LocalUse::Mounted {
            job_token: token(0, 2),
        };
        assert_eq!(standing(0, 0, false, same).may_write(), Ok(()));
        assert_eq!(
            standing(0, 0, false, older).may_write(),
            Err(GateRefusal::TokenMoved {
                job: Epoch(2),
                current: Epoch(3)
            })
        );
        assert_eq!(
            standing(0, 0, true, same).may_write(),
            Err(GateRefusal::InDoubt)
        );
        assert_eq!(
            standing(0, 1, false, same).may_write(),
            Err(GateRefusal::NotOwner { owner: c(1) })
        );
        assert_eq!(
            standing(0, 0, false, LocalUse::Free).may_write(),
            Err(GateRefusal::NotMounted)
        );
    }

    #[test]
    fn a_duplex_is_accepted_only_from_the_token_holder() {
        assert_eq!(may_accept_duplex(token(0, 3), c(0), Epoch(3)), Ok(()));
        assert_eq!(
            may_accept_duplex(token(1, 3), c(0), Epoch(3)),
            Err(GateRefusal::NotOwner { owner: c(1) })
        );
        assert!(matches!(
            may_accept_duplex(token(0, 4), c(0), Epoch(3)),
            Err(GateRefusal::TokenMoved { .. })
        ));
        // The sync cluster's view trails the writer's: the catalog fences at commit.
        assert_eq!(may_accept_duplex(token(1, 2), c(0), Epoch(3)), Ok(()));
    }

    #[test]
    fn a_surrender_hold_is_not_a_writer() {
        let hold = standing(0, 0, false, LocalUse::SurrenderHold);
        assert!(!hold.could_write());
        assert!(!hold.has_job());
        assert!(standing(0, 0, false, LocalUse::Free).could_write());
    }

    /// B20: a read-only job (read takeover) occupies the volume here but can never write it, not
    /// even when this cluster later becomes the owner.
    #[test]
    fn b20_a_reading_job_blocks_mounts_and_never_writes() {
        for owner in [c(0), c(1)] {
            let st = Standing {
                caught_up: true,
                fenced: false,
                taken_over: false,
                me: c(1),
                token: OwnershipToken {
                    owner,
                    epoch: Epoch(3),
                },
                in_doubt: false,
                local: LocalUse::Reading,
            };
            let refused = if owner == c(1) {
                GateRefusal::InUse
            } else {
                GateRefusal::NotOwner { owner }
            };
            assert_eq!(st.may_mount(), Err(refused));
            assert_eq!(st.may_write(), Err(GateRefusal::ReadOnly));
            assert!(!st.has_job(), "a reader is no writer for B10");
        }
    }

    /// T20: a cluster that has not caught up since it started uses no token, whatever its view
    /// says.
    #[test]
    fn t20_a_cluster_not_caught_up_since_its_start_may_not_mount_or_write() {
        let mut st = standing(0, 0, false, LocalUse::Free);
        st.caught_up = false;
        assert_eq!(st.may_mount(), Err(GateRefusal::NotCaughtUp));
        assert!(!st.could_write());
        st.caught_up = true;
        assert!(st.may_mount().is_ok());
    }

    /// Issue 10 item 5: a self-fenced owner mounts and reads, writes and commits nothing, and is
    /// no writer for B10, even with a job mounted under the current token.
    #[test]
    fn a_self_fenced_owner_reads_but_never_writes() {
        let job = LocalUse::Mounted {
            job_token: token(0, 3),
        };
        let mut st = standing(0, 0, false, job);
        st.fenced = true;
        assert_eq!(st.may_write(), Err(GateRefusal::SelfFenced));
        assert!(!st.could_write());
        assert!(!st.has_job());
        let mut free = standing(0, 0, false, LocalUse::Free);
        free.fenced = true;
        assert_eq!(free.may_mount(), Ok(()), "reads go on");
        assert!(!free.could_write());
    }

    /// B10, B22 (random takeover seed 13): back after a takeover, a cluster whose view still
    /// shows the grant for it writes none of its volumes, even caught up and holding the token
    /// in its view: the grantee may commit a `Takeover` of any of them at any moment.
    #[test]
    fn b22_an_owner_taken_over_writes_nothing_until_the_grant_ends() {
        let job = LocalUse::Mounted {
            job_token: token(0, 3),
        };
        let mut st = standing(0, 0, false, job);
        st.taken_over = true;
        assert_eq!(st.may_write(), Err(GateRefusal::TakenOver));
        assert!(!st.could_write());
        assert!(!st.has_job());
        let mut free = standing(0, 0, false, LocalUse::Free);
        free.taken_over = true;
        assert_eq!(free.may_mount(), Ok(()), "reads go on");
        assert!(!free.could_write());
        free.taken_over = false;
        assert!(
            free.could_write(),
            "once the grant ends it is the owner again"
        );
    }
}
