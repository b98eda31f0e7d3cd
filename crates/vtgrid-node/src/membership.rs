//! Amnesia (issue 9): a voter that lost its catalog takes no part in Raft until an operator says
//! how it comes back. The rule is [`vtgrid_core::membership`]; this is where it acts.
//!
//! ```text
//!   Cluster::start ── own log? recorded membership? ──> Member at once (a restart)
//!        └─ empty and unrecorded: Unformed ──> join_grid asks every peer (CatalogMembership)
//!              ├─ a peer's group formed ───────────────> Amnesiac: log, REJOIN_REQUIRED event,
//!              │                                         status AMNESIAC, Raft RPCs refused
//!              ├─ lowest voter, all peers empty ───────> record, Form at every peer, initialize
//!              └─ other voters: wait for the lowest voter's Form ──> record ──> Member
//!
//!   vtgrid admin rejoin --as-new (at the amnesiac)
//!        Readmit step 1 at a peer (forwarded to the leader, run in the leader's own task):
//!            remove it from the group altogether, while it still refuses the log (the leader
//!            must forget how far the lost log went: openraft stops a leader that sees a
//!            follower's log go backwards)
//!        ──> Rejoining: takes the log, still no votes
//!        ──> Readmit step 2: add_learner, blocking until caught up ──> make it a voter
//!        ──> the rejoiner records membership ──> Member
//! ```
//!
//! The membership record sits in the catalog store's `meta` column family beside Raft's vote, so
//! it is lost exactly when the log is: a voter with the record has (or is being sent) the log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers};
use vtgrid_core::membership::{start_decision, Membership, PeerCatalog, StartDecision};
use vtgrid_proto::internal;

use crate::cluster::Cluster;
use crate::error::{CatalogFailure, NodeError};
use crate::events::{REJOINED, REJOIN_REQUIRED};
use crate::member::RaftRpc;

/// How long one question to a peer may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an undecided voter asks its peers again.
const ASK_EVERY: Duration = Duration::from_secs(1);
/// How long a readmission may take: a learner catching up from a snapshot.
const READMIT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a rejoin keeps asking when no peer gets its readmission to a leader.
const READMIT_RETRY_FOR: Duration = Duration::from_secs(30);
/// How long a rejoin waits, once a voter again, for the cluster to serve before it answers.
const REJOIN_SETTLE: Duration = Duration::from_secs(30);

impl Cluster {
    /// The lowest-numbered voter of the grid file: the one that forms the grid.
    fn forms_the_grid(&self) -> bool {
        self.grid.voters().keys().next().copied() == Some(self.id.raft_id())
    }

    fn peer_ids(&self) -> Vec<u64> {
        let me = self.id.raft_id();
        self.grid
            .voters()
            .keys()
            .copied()
            .filter(|v| *v != me)
            .collect()
    }

    /// After start: settle an empty, unrecorded voter's place (ask, form, or find it lost its
    /// catalog), and finish a formation the lowest voter began before a crash.
    pub(crate) async fn join_grid(self: Arc<Self>) {
        let mut said_waiting = false;
        loop {
            match self.next_start_step().await {
                Ok(StartDecision::Member { .. }) => return,
                Ok(StartDecision::Amnesiac) => {
                    self.become_amnesiac("a peer holds the grid's catalog, this voter's is empty");
                    return;
                }
                Ok(StartDecision::Form) => match self.form().await {
                    Ok(true) => return,
                    Ok(false) => {
                        self.become_amnesiac("a peer refused to form: it is in a grid already");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(cluster = %self.id, error = %e, "forming the grid; retrying")
                    }
                },
                Ok(StartDecision::AskAgain) => {
                    if !said_waiting {
                        tracing::info!(cluster = %self.id, "empty catalog: waiting for every voter \
                            to answer (a new grid forms once all have)");
                        said_waiting = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(cluster = %self.id, error = %e, "deciding this voter's membership; retrying")
                }
            }
            tokio::time::sleep(ASK_EVERY).await;
        }
    }

    async fn next_start_step(&self) -> Result<StartDecision, NodeError> {
        let state = self.membership();
        if matches!(state, Membership::Amnesiac | Membership::Rejoining) {
            // Decided elsewhere: a leader reached this empty voter, or the operator spoke.
            return Ok(StartDecision::Member { record: false });
        }
        let has_log = self
            .catalog
            .raft
            .is_initialized()
            .await
            .map_err(|f| NodeError::catalog(CatalogFailure::Fatal(f)))?;
        let recorded = self.member_record.recorded().await?;
        let lowest = self.forms_the_grid();
        if state == Membership::Member && !(lowest && recorded && !has_log) {
            // A Form made this voter a member, or there is nothing left to do.
            return Ok(StartDecision::Member { record: false });
        }
        let peers = if has_log || recorded {
            Vec::new()
        } else {
            let asks = self.peer_ids().into_iter().map(|p| self.ask_catalog(p));
            futures::future::join_all(asks).await
        };
        let decision = start_decision(has_log, recorded, lowest, &peers);
        if let StartDecision::Member { record } = decision {
            if record {
                self.member_record.record().await?;
            }
            self.membership
                .change(Membership::Unformed, Membership::Member);
        }
        Ok(decision)
    }

    async fn ask_catalog(&self, peer: u64) -> Option<PeerCatalog> {
        let request = internal::CatalogMembershipRequest {
            from_cluster: u32::from(self.id.get()),
        };
        let answer = self
            .grid_call(peer as u8, ASK_TIMEOUT, |mut c| async move {
                c.catalog_membership(request).await
            })
            .await;
        match answer {
            Ok(r) => Some(PeerCatalog {
                formed: r.formed,
                member: r.member,
            }),
            _ => None,
        }
    }

    /// The lowest voter forms a new grid: record, every peer takes part, initialize. `Ok(false)`:
    /// a peer is in a grid already.
    async fn form(&self) -> Result<bool, NodeError> {
        self.member_record.record().await?;
        self.membership
            .change(Membership::Unformed, Membership::Member);
        for peer in self.peer_ids() {
            let request = internal::FormRequest {
                from_cluster: u32::from(self.id.get()),
            };
            let answer = self
                .grid_call(peer as u8, ASK_TIMEOUT, |mut c| async move {
                    c.form(request).await
                })
                .await;
            match answer {
                Ok(r) if r.accepted => {}
                Ok(r) if r.formed => return Ok(false),
                _ => {
                    return Err(NodeError::catalog(CatalogFailure::NoLeader));
                }
            }
        }
        let members: BTreeMap<u64, BasicNode> = self
            .grid
            .voters()
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect();
        match self.catalog.raft.initialize(members).await {
            Ok(()) => tracing::info!(cluster = %self.id, "formed the catalog's Raft group"),
            // Formed already (a retry after the first try got that far).
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => {}
            Err(openraft::error::RaftError::APIError(e)) => {
                tracing::error!(cluster = %self.id, error = %e, "forming the catalog's Raft group");
                return Err(NodeError::catalog(CatalogFailure::NoLeader));
            }
            Err(openraft::error::RaftError::Fatal(f)) => {
                return Err(NodeError::catalog(CatalogFailure::Fatal(f)))
            }
        }
        Ok(true)
    }

    /// `GridService.CatalogMembership`: what this voter's catalog is.
    pub(crate) async fn catalog_membership(
        &self,
    ) -> Result<internal::CatalogMembershipResponse, NodeError> {
        let formed = self
            .catalog
            .raft
            .is_initialized()
            .await
            .map_err(|f| NodeError::catalog(CatalogFailure::Fatal(f)))?;
        Ok(internal::CatalogMembershipResponse {
            formed,
            member: self.member_record.recorded().await?,
        })
    }

    /// `GridService.Form`: take part in a new grid, unless this voter is in one (or lost its
    /// catalog, which only the operator settles).
    pub(crate) async fn answer_form(&self) -> Result<internal::FormResponse, NodeError> {
        let _change = self.membership.change.lock().await;
        let formed = self
            .catalog
            .raft
            .is_initialized()
            .await
            .map_err(|f| NodeError::catalog(CatalogFailure::Fatal(f)))?;
        let state = self.membership();
        if formed || !matches!(state, Membership::Unformed | Membership::Member) {
            return Ok(internal::FormResponse {
                accepted: false,
                formed,
            });
        }
        // Recorded before the answer: a crash after it keeps this voter a member.
        self.member_record.record().await?;
        if self
            .membership
            .change(Membership::Unformed, Membership::Member)
        {
            tracing::info!(cluster = %self.id, "taking part in forming the grid");
        }
        Ok(internal::FormResponse {
            accepted: true,
            formed: false,
        })
    }

    /// May a peer's Raft RPC (from `sender`, the candidate or leader it names) reach openraft
    /// here? An unformed voter that is sent one learns that the grid formed without it: it lost
    /// its catalog. A survivor that was forced standalone refuses the lost group's members
    /// (`crate::standalone`).
    pub(crate) fn admit_raft(&self, rpc: RaftRpc, sender: Option<u64>) -> Result<(), NodeError> {
        self.admit_after_standalone(sender)?;
        let state = self.membership();
        let admitted = match rpc {
            RaftRpc::Vote => state.may_vote(),
            RaftRpc::Log => state.takes_the_log(),
        };
        if admitted {
            return Ok(());
        }
        if state == Membership::Unformed {
            self.become_amnesiac("a peer's Raft group reached this voter, whose catalog is empty");
        }
        Err(NodeError::RejoinRequired {
            cluster: self.id,
            membership: self.membership().name(),
        })
    }

    /// Lost catalog: say so (log, event, status) and take no part until the operator decides.
    fn become_amnesiac(&self, why: &str) {
        if !self
            .membership
            .change(Membership::Unformed, Membership::Amnesiac)
        {
            return;
        }
        let name = self.grid.name_of(self.id.get()).unwrap_or("?").to_string();
        let message = format!(
            "{name} lost its catalog ({why}): it does not vote or form the grid. Run `vtgrid admin \
             rejoin --as-new` at it to join as a new member, or stop it and restore its data dir"
        );
        tracing::error!(cluster = %self.id, "{message}");
        self.events.raise(REJOIN_REQUIRED, None, message);
    }

    /// `AdminService.Rejoin{as_new}` at an amnesiac voter: the leader readmits it; then it
    /// records membership and votes again. Runs in its own task: an operator who gives up waiting
    /// does not leave the readmission half done here.
    pub async fn rejoin_as_new(self: Arc<Self>) -> Result<(), NodeError> {
        {
            let _change = self.membership.change.lock().await;
            match self.membership() {
                // Refusing the log again until step 1 (a rerun of a rejoin that stopped half way).
                Membership::Amnesiac | Membership::Rejoining => {
                    self.membership.set(Membership::Amnesiac)
                }
                Membership::Member | Membership::Unformed => {
                    return Err(NodeError::NotAmnesiac { cluster: self.id })
                }
                // Its old log stays its own: only an empty data dir comes back as a new member.
                Membership::Superseded => return Err(NodeError::Superseded { cluster: self.id }),
            }
        }
        tracing::info!(cluster = %self.id, "rejoining the grid as a new member");
        let task = tokio::spawn(async move {
            // Step 1 while this voter still refuses the log: the leader's replication progress
            // remembers the log this voter lost, and openraft stops a leader that sees a
            // follower's log go backwards. Removed altogether, it is added back from nothing.
            self.readmit_step(1).await?;
            self.membership.set(Membership::Rejoining);
            self.readmit_step(2).await?;
            self.member_record.record().await?;
            self.membership.set(Membership::Member);
            let name = self.grid.name_of(self.id.get()).unwrap_or("?").to_string();
            self.events.raise(
                REJOINED,
                None,
                format!("{name} rejoined the grid as a new member and votes again"),
            );
            tracing::info!(cluster = %self.id, "rejoined the grid as a voter");
            // The operator is answered once the cluster serves again: its start-up settle
            // (a barrier through the leader, the TVC reconciled) finishes only now that it is a
            // member, and until then hosts would be told CATALOG_UNAVAILABLE.
            if !self.settled_within(REJOIN_SETTLE).await {
                tracing::warn!(cluster = %self.id, limit = ?REJOIN_SETTLE,
                    "rejoined, but not yet caught up with the catalog; hosts wait until it is");
            }
            Ok(())
        });
        task.await.unwrap_or_else(|join| {
            tracing::error!(error = %join, "rejoin task");
            Err(NodeError::catalog(CatalogFailure::NoLeader))
        })
    }

    /// Ask the peers, in turn, to have the leader do readmission `step` for this voter; a round
    /// in which no peer got it to a leader (a peer or the leader not up yet, an election under
    /// way) is tried again every [`ASK_EVERY`] for up to [`READMIT_RETRY_FOR`]. A refusal, or a
    /// leader that took the whole [`READMIT_TIMEOUT`], is final: the operator sees it.
    async fn readmit_step(&self, step: u32) -> Result<(), NodeError> {
        let until = tokio::time::Instant::now() + READMIT_RETRY_FOR;
        loop {
            let mut last = NodeError::catalog(CatalogFailure::NoLeader);
            for peer in self.peer_ids() {
                let request = internal::ReadmitRequest {
                    cluster: u32::from(self.id.get()),
                    step,
                };
                let answer = self
                    .grid_call(peer as u8, READMIT_TIMEOUT, |mut c| async move {
                        c.readmit(request).await
                    })
                    .await;
                match answer {
                    Ok(_) => return Ok(()),
                    Err(status) if status.code() == tonic::Code::DeadlineExceeded => {
                        return Err(NodeError::catalog(CatalogFailure::Timeout(READMIT_TIMEOUT)))
                    }
                    Err(status) => {
                        let transient = matches!(
                            vtgrid_proto::reason_of(&status),
                            None | Some(vtgrid_proto::pb::Reason::CatalogUnavailable)
                        );
                        last = NodeError::leader_unreachable(format!("voter {peer}"), status);
                        if !transient {
                            return Err(last);
                        }
                    }
                }
            }
            if tokio::time::Instant::now() + ASK_EVERY > until {
                return Err(last);
            }
            tracing::info!(cluster = %self.id, step, error = %last,
                "readmission: no peer reached a leader; asking again");
            tokio::time::sleep(ASK_EVERY).await;
        }
    }

    /// Readmission step 1, on the leader: the voter lost its data dir, so none of the copies the
    /// catalog counts for it exist any more. `CopiesLost` stops counting them (its copy engine
    /// then owes them again, and no read, retention decision or B6 check relies on them). Safe to
    /// repeat; a witness holds no copies.
    async fn forget_copies_of(&self, voter: u64) -> Result<(), NodeError> {
        let Some(lost) = u8::try_from(voter)
            .ok()
            .and_then(|id| vtgrid_core::ClusterId::new(id).ok())
            .filter(|id| id.is_data_cluster())
        else {
            return Ok(());
        };
        let reply = self
            .catalog
            .propose_local(vtgrid_core::CatalogCommand::CopiesLost { cluster: lost })
            .await?;
        match reply.response {
            Ok(applied) => {
                tracing::info!(
                    voter,
                    ?applied,
                    "readmission: the voter's old copies no longer count"
                )
            }
            Err(refusal) => {
                tracing::warn!(voter, %refusal, "readmission: the voter's old copies still count")
            }
        }
        Ok(())
    }

    /// `GridService.Readmit`: on the leader, remove `voter`, catch it up as a learner and make
    /// it a voter again; a follower passes it to the leader. Each step is safe to repeat, so an
    /// operator whose call failed runs it again.
    pub(crate) async fn readmit(self: Arc<Self>, voter: u64, step: u32) -> Result<(), NodeError> {
        let leader = self.catalog.raft.metrics().borrow().current_leader;
        match leader {
            Some(l) if l == self.id.raft_id() => {}
            Some(l) => {
                let request = internal::ReadmitRequest {
                    cluster: voter as u32,
                    step,
                };
                return self
                    .grid_call(l as u8, READMIT_TIMEOUT, |mut c| async move {
                        c.readmit(request).await
                    })
                    .await
                    .map(|_| ())
                    .map_err(|status| NodeError::leader_unreachable(format!("voter {l}"), status));
            }
            None => return Err(NodeError::catalog(CatalogFailure::NoLeader)),
        }
        if voter == self.id.raft_id() {
            return Err(NodeError::InvalidArgument {
                field: "cluster",
                problem: "the leader is not amnesiac",
            });
        }
        let addr = self
            .grid
            .voters()
            .get(&voter)
            .cloned()
            .ok_or(NodeError::InvalidArgument {
                field: "cluster",
                problem: "not a voter of the grid file",
            })?;
        // In its own task: a caller that goes away does not stop it between two steps.
        let cluster = self.clone();
        let steps = tokio::spawn(async move {
            let raft = &cluster.catalog.raft;
            let membership_error = |e: openraft::error::RaftError<
                u64,
                openraft::error::ClientWriteError<u64, BasicNode>,
            >| match e {
                openraft::error::RaftError::APIError(
                    openraft::error::ClientWriteError::ChangeMembershipError(c),
                ) => NodeError::catalog(CatalogFailure::MembershipChange(c)),
                openraft::error::RaftError::APIError(
                    openraft::error::ClientWriteError::ForwardToLeader(_),
                ) => NodeError::catalog(CatalogFailure::NoLeader),
                openraft::error::RaftError::Fatal(f) => {
                    NodeError::catalog(CatalogFailure::Fatal(f))
                }
            };
            let in_group = {
                let m = raft.metrics().borrow().membership_config.clone();
                let found = m.membership().nodes().any(|(id, _)| *id == voter);
                found
            };
            if step == 1 {
                if in_group {
                    tracing::info!(voter, "readmission: removing the voter from the group");
                    raft.change_membership(
                        ChangeMembers::RemoveVoters(BTreeSet::from([voter])),
                        false,
                    )
                    .await
                    .map_err(membership_error)?;
                    let still = {
                        let m = raft.metrics().borrow().membership_config.clone();
                        let found = m.membership().nodes().any(|(id, _)| *id == voter);
                        found
                    };
                    if still {
                        // It was a learner only (an earlier readmission stopped half way).
                        raft.change_membership(
                            ChangeMembers::RemoveNodes(BTreeSet::from([voter])),
                            false,
                        )
                        .await
                        .map_err(membership_error)?;
                    }
                }
                cluster.forget_copies_of(voter).await?;
                return Ok(());
            }
            tracing::info!(
                voter,
                "readmission: adding it as a learner and catching it up"
            );
            raft.add_learner(voter, BasicNode { addr }, true)
                .await
                .map_err(membership_error)?;
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([voter])), false)
                .await
                .map_err(membership_error)?;
            tracing::info!(voter, "readmission: a voter again");
            Ok::<(), NodeError>(())
        });
        match tokio::time::timeout(READMIT_TIMEOUT, steps).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => {
                tracing::error!(error = %join, "readmission task");
                Err(NodeError::catalog(CatalogFailure::NoLeader))
            }
            Err(_) => Err(NodeError::catalog(CatalogFailure::Timeout(READMIT_TIMEOUT))),
        }
    }
}
