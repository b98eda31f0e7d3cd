//! `vtgrid agent`: the autonomic takeover agent, one per site beside its node (DESIGN §5;
//! B27-B35). It outlives its node, watches it over a local channel, and answers the other sites'
//! agents over the heartbeat network, never the grid's.
//!
//! ```text
//!   node Ci ── AskPeer(Cx) ──> agent i ── NodeState ──(heartbeat network)──> agent x
//!                                                                           │ watches node Cx
//!                                                                           │ (local channel)
//!   ALIVE | DOWN | UNKNOWN <──────────────── <──────────────────────────────┘
//! ```
//!
//! An agent says DOWN only about a node that cannot write any more: its process is gone, or the
//! agent killed it after it had stopped answering for `fence_after` (fencing before reporting,
//! T21). A node that is silent for less than that is UNKNOWN, and UNKNOWN is never down (the
//! rule is [`vtgrid_core::aotm`]). What the node does with the answer is the node's business
//! (`vtgrid_node::takeover`).
//!
//! How the agent watches its node is a [`NodeWatch`]: a real process's pid file and local socket
//! ([`process::ProcessWatch`]), or a simulated cluster (`vtgrid-sim`).

pub mod process;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Response, Status};
use vtgrid_core::aotm::{agent_verdict, AgentVerdict, NodeSeen, NodeState};
use vtgrid_core::ClusterId;
use vtgrid_node::transport::{Connector, Peers};
use vtgrid_proto::internal::agent_service_client::AgentServiceClient;
use vtgrid_proto::internal::agent_service_server::{AgentService, AgentServiceServer};
use vtgrid_proto::internal::{AskPeerRequest, NodeLiveness, NodeStateRequest, NodeStateResponse};

/// How often the agent looks at its node.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How long a peer agent may take to answer.
pub const PEER_ANSWER: Duration = Duration::from_secs(3);
/// How long a fenced node may take to be gone before the agent says UNKNOWN instead of DOWN.
const FENCE_WAIT: Duration = Duration::from_secs(10);

/// One look at the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The node answered its local channel.
    Answered,
    /// The process runs (as far as the agent can tell) but did not answer.
    NoAnswer,
    /// No node process.
    Gone,
}

/// How an agent looks at its node and stops it.
#[tonic::async_trait]
pub trait NodeWatch: Send + Sync + 'static {
    async fn probe(&self) -> Probe;
    /// Kill the node (it stopped answering): it must not write again.
    async fn fence(&self);
}

/// The agent of one site.
pub struct Agent {
    cluster: ClusterId,
    /// Every other cluster's heartbeat address (its agent's listener).
    peers: BTreeMap<ClusterId, String>,
    watch: Arc<dyn NodeWatch>,
    /// The heartbeat network: one pooled channel to each peer agent.
    transport: Peers,
    fence_after: Option<Duration>,
    /// When the node last answered; when the agent started if it never has.
    last_answer: Mutex<Instant>,
    /// The last probe's result.
    last_probe: Mutex<Probe>,
}

impl Agent {
    pub fn new(
        cluster: ClusterId,
        peers: BTreeMap<ClusterId, String>,
        watch: Arc<dyn NodeWatch>,
        connector: Arc<dyn Connector>,
        fence_after: Option<Duration>,
    ) -> Arc<Agent> {
        Arc::new(Agent {
            cluster,
            peers,
            watch,
            transport: Peers::new(connector),
            fence_after,
            last_answer: Mutex::new(Instant::now()),
            last_probe: Mutex::new(Probe::NoAnswer),
        })
    }

    /// The agent's view of every data cluster's heartbeat address but its own, from the grid
    /// file.
    pub fn peers_from(
        grid: &vtgrid_node::GridConfig,
        me: ClusterId,
    ) -> BTreeMap<ClusterId, String> {
        grid.clusters
            .iter()
            .filter(|c| c.id != me.get())
            .filter_map(|c| Some((ClusterId::new(c.id).ok()?, c.heartbeat.clone())))
            .collect()
    }

    /// Look at the node every [`WATCH_EVERY`], until the task is dropped.
    pub async fn watch_node(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(WATCH_EVERY);
        loop {
            ticker.tick().await;
            self.look().await;
        }
    }

    async fn look(&self) -> Probe {
        let probe = self.watch.probe().await;
        if probe == Probe::Answered {
            *lock(&self.last_answer) = Instant::now();
        }
        *lock(&self.last_probe) = probe;
        probe
    }

    fn seen(&self, probe: Probe) -> NodeSeen {
        match probe {
            Probe::Answered => NodeSeen::Answering,
            Probe::Gone => NodeSeen::Gone,
            Probe::NoAnswer => NodeSeen::Silent {
                for_how_long: lock(&self.last_answer).elapsed(),
            },
        }
    }

    /// What this agent says of its node now; a node silent for `fence_after` is killed first.
    pub async fn node_state(&self) -> NodeState {
        let probe = self.look().await;
        match agent_verdict(self.seen(probe), self.fence_after) {
            AgentVerdict::Say(state) => state,
            AgentVerdict::FenceThenDown => {
                tracing::warn!(cluster = %self.cluster, "the node stopped answering: fencing it before reporting it down");
                self.watch.fence().await;
                let until = Instant::now() + FENCE_WAIT;
                while Instant::now() < until {
                    if self.look().await == Probe::Gone {
                        tracing::warn!(cluster = %self.cluster, "the node is fenced: DOWN");
                        return NodeState::Down;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tracing::error!(cluster = %self.cluster, "the fenced node is still there: UNKNOWN");
                NodeState::Unknown
            }
        }
    }

    /// Ask `peer`'s agent about its node over the heartbeat network; `None`: no answer.
    pub async fn ask_peer(&self, peer: ClusterId) -> Option<NodeState> {
        let addr = self.peers.get(&peer)?;
        let mut client = AgentServiceClient::new(self.transport.channel(addr));
        let call = client.node_state(NodeStateRequest {
            from_cluster: u32::from(self.cluster.get()),
        });
        let answer = match tokio::time::timeout(PEER_ANSWER, call).await {
            Ok(Ok(r)) => {
                self.transport.call_worked(addr);
                r.into_inner()
            }
            Ok(Err(status)) => {
                if vtgrid_proto::reason_of(&status).is_none() {
                    self.transport.call_failed(addr);
                }
                tracing::info!(%peer, error = %status.message(), "the peer's agent refused");
                return None;
            }
            Err(_) => {
                self.transport.call_failed(addr);
                tracing::info!(%peer, "the peer's agent did not answer");
                return None;
            }
        };
        if answer.cluster != u32::from(peer.get()) {
            tracing::warn!(%peer, answered_for = answer.cluster, "the agent at that address speaks for another cluster");
            return None;
        }
        Some(answer.state().into())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `AgentService` over an [`Agent`].
pub struct AgentApi(pub Arc<Agent>);

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn node_state(
        &self,
        request: Request<NodeStateRequest>,
    ) -> Result<Response<NodeStateResponse>, Status> {
        let from = request.into_inner().from_cluster;
        let state = self.0.node_state().await;
        tracing::info!(from, state = state.name(), "asked about this site's node");
        Ok(Response::new(NodeStateResponse {
            cluster: u32::from(self.0.cluster.get()),
            state: NodeLiveness::from(state) as i32,
        }))
    }

    async fn ask_peer(
        &self,
        request: Request<AskPeerRequest>,
    ) -> Result<Response<NodeStateResponse>, Status> {
        let cluster = request.into_inner().cluster;
        let peer = u8::try_from(cluster)
            .ok()
            .and_then(|c| ClusterId::new(c).ok())
            .filter(|c| self.0.peers.contains_key(c))
            .ok_or_else(|| {
                Status::invalid_argument(format!("C{cluster} is not a peer of this agent"))
            })?;
        let state = self.0.ask_peer(peer).await.unwrap_or(NodeState::Unknown);
        Ok(Response::new(NodeStateResponse {
            cluster,
            state: NodeLiveness::from(state) as i32,
        }))
    }
}

/// The agent's tonic service.
pub fn service(agent: Arc<Agent>) -> AgentServiceServer<AgentApi> {
    AgentServiceServer::new(AgentApi(agent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A node that answers, goes silent, or is gone, as the test says; fencing makes it gone.
    struct FakeNode {
        answering: AtomicBool,
        gone: AtomicBool,
        fenced: AtomicBool,
    }

    #[tonic::async_trait]
    impl NodeWatch for FakeNode {
        async fn probe(&self) -> Probe {
            if self.gone.load(Ordering::SeqCst) {
                Probe::Gone
            } else if self.answering.load(Ordering::SeqCst) {
                Probe::Answered
            } else {
                Probe::NoAnswer
            }
        }
        async fn fence(&self) {
            self.fenced.store(true, Ordering::SeqCst);
            self.gone.store(true, Ordering::SeqCst);
        }
    }

    struct NoNetwork;
    impl Connector for NoNetwork {
        fn channel(&self, _addr: &str) -> tonic::transport::Channel {
            tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy()
        }
    }

    fn agent(node: Arc<FakeNode>, fence_after: Option<Duration>) -> Arc<Agent> {
        Agent::new(
            ClusterId::new(0).unwrap(),
            BTreeMap::new(),
            node,
            Arc::new(NoNetwork),
            fence_after,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn t21_a_silent_node_is_unknown_until_fenced_then_down() {
        let node = Arc::new(FakeNode {
            answering: AtomicBool::new(true),
            gone: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
        });
        let a = agent(node.clone(), Some(Duration::from_secs(5)));
        assert_eq!(a.node_state().await, NodeState::Alive);
        node.answering.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(a.node_state().await, NodeState::Unknown, "silent 2 s");
        assert!(!node.fenced.load(Ordering::SeqCst));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            a.node_state().await,
            NodeState::Down,
            "silent 6 s: fenced, then down"
        );
        assert!(node.fenced.load(Ordering::SeqCst), "killed before reported");
    }

    #[tokio::test(start_paused = true)]
    async fn an_agent_without_fencing_never_calls_a_silent_node_down() {
        let node = Arc::new(FakeNode {
            answering: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
        });
        let a = agent(node.clone(), None);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(a.node_state().await, NodeState::Unknown);
        node.gone.store(true, Ordering::SeqCst);
        assert_eq!(
            a.node_state().await,
            NodeState::Down,
            "a process that is gone is down"
        );
    }

    #[tokio::test]
    async fn a_peer_agent_that_does_not_answer_is_no_answer() {
        let node = Arc::new(FakeNode {
            answering: AtomicBool::new(true),
            gone: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
        });
        let mut peers = BTreeMap::new();
        let peer = ClusterId::new(1).unwrap();
        peers.insert(peer, "127.0.0.1:1".to_string());
        let a = Agent::new(
            ClusterId::new(0).unwrap(),
            peers,
            node,
            Arc::new(NoNetwork),
            None,
        );
        assert_eq!(a.ask_peer(peer).await, None);
        assert_eq!(
            a.ask_peer(ClusterId::new(5).unwrap()).await,
            None,
            "not a peer"
        );
    }
}
