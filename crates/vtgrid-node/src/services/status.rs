//! `StatusService`: what one cluster sees.

use std::sync::Arc;

use openraft::ServerState;
use tonic::{Request, Response, Status};
use vtgrid_proto::pb::{self, status_service_server::StatusService};

use crate::cluster::Cluster;

pub struct StatusApi {
    cluster: Arc<Cluster>,
}

impl StatusApi {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        StatusApi { cluster }
    }
}

fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

/// Who raised the events a stream carries: the cluster and when its process started.
#[derive(Clone, Copy)]
struct Source {
    cluster: u32,
    boot: std::time::SystemTime,
}

impl Source {
    fn of(cluster: &Cluster) -> Source {
        Source {
            cluster: cluster.id.get().into(),
            boot: cluster.events.boot(),
        }
    }

    fn event(self, e: crate::events::Event) -> pb::Event {
        pb::Event {
            code: e.code.to_string(),
            message: e.message,
            volser: e.volser.map(|v| v.to_string()).unwrap_or_default(),
            at_ms: e.at_ms,
            time: Some(e.time.into()),
            cluster: self.cluster,
            sequence: e.sequence,
            boot: Some(self.boot.into()),
        }
    }

    /// The event a watcher gets in place of `missed` events it asked for but cannot have.
    fn events_missed(self, missed: u64, why: &str) -> pb::Event {
        pb::Event {
            code: "EVENTS_MISSED".into(),
            message: format!("{missed} events {why}; ListEvents has the recent ones"),
            volser: String::new(),
            at_ms: 0,
            time: Some(std::time::SystemTime::now().into()),
            cluster: self.cluster,
            sequence: 0,
            boot: Some(self.boot.into()),
        }
    }
}

#[tonic::async_trait]
impl StatusService for StatusApi {
    async fn get_grid_state(
        &self,
        _request: Request<pb::GetGridStateRequest>,
    ) -> Result<Response<pb::GridState>, Status> {
        let c = &self.cluster;
        let m = c.catalog.raft.metrics().borrow().clone();
        let now = tokio::time::Instant::now();
        let links = c.links.peer_states();
        let paths = c.links.path_states();
        let peers = c
            .grid
            .voters()
            .into_keys()
            .filter(|id| *id != c.id.raft_id());
        let links = peers
            .filter_map(|id| vtgrid_core::ClusterId::from_raft_id(id).ok())
            .map(|peer| {
                let state = links.get(&peer).copied().unwrap_or_default();
                pb::PeerLink {
                    peer: u32::from(peer.get()),
                    name: c.grid.name_of(peer.get()).unwrap_or_default().to_string(),
                    role: match c.grid.role_of(peer.get()) {
                        Some(crate::config::Role::Witness) => "witness".into(),
                        _ => "data".into(),
                    },
                    reachable: state.reachable(),
                    last_answer_ms_ago: state
                        .last_answer
                        .map_or(0, |t| now.duration_since(t).as_millis() as u64),
                    paths: c
                        .grid
                        .grid_paths(peer.get())
                        .into_iter()
                        .map(|address| {
                            let s = paths.get(&address).copied().unwrap_or_default();
                            pb::LinkPath {
                                reachable: s.reachable(),
                                last_answer_ms_ago: s
                                    .last_answer
                                    .map_or(0, |t| now.duration_since(t).as_millis() as u64),
                                address,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(Response::new(pb::GridState {
            cluster: u32::from(c.id.get()),
            raft_role: role_name(m.state).into(),
            raft_leader: m.current_leader.map(|l| l as u32),
            links,
            flags: c.grid_flags().into_iter().map(String::from).collect(),
        }))
    }

    type WatchEventsStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::Event, Status>> + Send>>;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        use futures::StreamExt;
        let req = request.into_inner();
        let source = Source::of(&self.cluster);
        let watch = self.cluster.events.watch_from(req.from_sequence);
        let mut first = Vec::new();
        // Only a watcher that names where to resume is owed word of what it cannot have.
        if req.from_sequence > 0 && watch.missed > 0 {
            first.push(source.events_missed(watch.missed, "asked for are no longer remembered"));
        }
        if req.from_sequence > 0 || !req.new_only {
            first.extend(watch.backlog.into_iter().map(|e| source.event(e)));
        }
        let backlog = futures::stream::iter(first.into_iter().map(Ok));
        let live = tokio_stream::wrappers::BroadcastStream::new(watch.live).map(move |item| {
            Ok(match item {
                Ok(e) => source.event(e),
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    source.events_missed(n, "were missed: this watcher fell behind")
                }
            })
        });
        // The stream ends when the process stops: graceful shutdown waits for every stream in
        // flight, and a follower never ends its own.
        let mut stopping = self.cluster.stopping.subscribe();
        let stopped = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        Ok(Response::new(Box::pin(
            backlog.chain(live).take_until(Box::pin(stopped)),
        )))
    }

    async fn list_copy_queue(
        &self,
        request: Request<pb::ListCopyQueueRequest>,
    ) -> Result<Response<pb::ListCopyQueueResponse>, Status> {
        let per_volume = request.into_inner().per_volume;
        let (summary, copies) = self
            .cluster
            .copy_queue_view(if per_volume { 1000 } else { 0 })
            .await?;
        let now = crate::copies::now_ms();
        Ok(Response::new(pb::ListCopyQueueResponse {
            summary: summary
                .into_iter()
                .map(|(p, count, bytes, oldest_age_ms)| pb::CopyQueueSummary {
                    priority: crate::copies::priority_name(p).into(),
                    count,
                    bytes,
                    oldest_age_ms,
                })
                .collect(),
            copies: copies
                .into_iter()
                .map(|c| pb::QueuedCopyEntry {
                    volser: c.volser.to_string(),
                    version: c.version,
                    size: c.size,
                    priority: crate::copies::priority_name(c.priority).into(),
                    age_ms: now.saturating_sub(c.queued_at_ms),
                })
                .collect(),
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let from = request.into_inner().from_sequence;
        let source = Source::of(&self.cluster);
        let events = self
            .cluster
            .events
            .recent()
            .into_iter()
            .filter(|e| e.sequence >= from)
            .map(|e| source.event(e))
            .collect();
        Ok(Response::new(pb::ListEventsResponse { events }))
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let c = &self.cluster;
        c.refresh_gauges();
        let m = c.catalog.raft.metrics().borrow().clone();
        let role = role_name(m.state);
        let voters = m
            .membership_config
            .membership()
            .voter_ids()
            .map(|id| id as u32)
            .collect();
        let usage = c.tvc.store().usage();
        let name = c.grid.name_of(c.id.get()).unwrap_or_default().to_string();
        Ok(Response::new(pb::ClusterStatus {
            grid: c.grid.grid.name.clone(),
            cluster: u32::from(c.id.get()),
            name,
            raft_role: role.into(),
            raft_leader: m.current_leader.map(|l| l as u32),
            raft_term: m.current_term,
            last_applied: m.last_applied.map_or(0, |l| l.index),
            voters,
            volumes: c.metrics.volumes.get() as u64,
            volumes_owned: c.metrics.volumes_owned.get() as u64,
            mounts: c.mounts.count() as u64,
            cache_used_bytes: usage.used_bytes,
            cache_quota_bytes: usage.quota_bytes,
            version: env!("CARGO_PKG_VERSION").into(),
            ready: c.is_ready(),
            journal_pending: c.journal.pending_count() as u64,
            quarantined: c.quarantine().await.map(|q| q.len() as u64).unwrap_or(0),
            membership: c.membership().name().into(),
            takeovers: c
                .takeover_modes()
                .into_iter()
                .map(|(failed, mode)| pb::TakeoverHeld {
                    for_cluster: u32::from(failed.get()),
                    mode: mode.name().into(),
                })
                .collect(),
            service: c.catalog.view.read(|s| {
                s.service
                    .iter()
                    .map(|(cluster, state)| pb::ServiceEntry {
                        cluster: u32::from(cluster.get()),
                        state: match state {
                            vtgrid_core::takeover::ServiceState::Prep => "prep".into(),
                            vtgrid_core::takeover::ServiceState::Service => "service".into(),
                        },
                    })
                    .collect()
            }),
            lease: c.lease.setting().map(|setting| pb::LeaseState {
                fenced: c.fenced(),
                renewed_ms_ago: c.lease.renewed_ago().map(|d| d.as_millis() as u64),
                self_fence_after_ms: setting.self_fence_after.as_millis() as u64,
            }),
            forced_standalone: c.catalog.view.read(|s| {
                s.forced_standalone.as_ref().map(|f| pb::ForcedStandalone {
                    survivor: u32::from(f.survivor.get()),
                    lost: f.lost.iter().map(|c| u32::from(c.get())).collect(),
                    at_index: f.at_index,
                    volumes_taken: f.volumes_taken,
                })
            }),
        }))
    }
}
