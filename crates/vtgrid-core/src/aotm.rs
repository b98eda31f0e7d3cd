//! The autonomic takeover rules (DESIGN §5; B27-B35, T6-T10, T21): when a site's agent may say
//! its node is DOWN, and what a surviving cluster does with the answer.
//!
//! ```text
//!   agent of Cx, asked about its node:
//!     the node process is gone (exited, or killed by this agent)       -> DOWN
//!     the node answers its local channel                               -> ALIVE
//!     the node stopped answering, for less than `fence_after`          -> UNKNOWN
//!     ... for `fence_after` or longer                                  -> fence (kill it), then DOWN
//!
//!   node Ci, grid contact with Cx lost at t0, AOTM configured for Cx:
//!     before t0 + grace                    -> wait
//!     then ask Ci's agent, which asks Cx's agent:
//!       DOWN                               -> set the configured mode for Cx (G0009 / G0010)
//!       ALIVE, UNKNOWN or no answer        -> no takeover; ask again after `retry`
//! ```
//!
//! DOWN is said only about a node that cannot write any more: fencing comes before reporting
//! (T21: a stopped process would wake up and write). Unknown is never down (T8, T9): a whole
//! site lost, node and agent together, waits for an operator (B137).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::takeover::TakeoverMode;

/// What an agent says of its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    Alive,
    Down,
    Unknown,
}

impl NodeState {
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Alive => "ALIVE",
            NodeState::Down => "DOWN",
            NodeState::Unknown => "UNKNOWN",
        }
    }
}

/// What an agent sees of its node right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeSeen {
    /// It answered the local channel.
    Answering,
    /// The process runs but has not answered for `for_how_long`.
    Silent { for_how_long: Duration },
    /// No node process (it exited, was killed, never started).
    Gone,
}

/// What an agent does when asked about its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentVerdict {
    Say(NodeState),
    /// Kill the node first; say DOWN once it is gone.
    FenceThenDown,
}

/// The agent's rule. `fence_after`: how long a silent node may stay silent before the agent
/// kills it; `None` when the agent may not fence (then a silent node is never DOWN).
pub fn agent_verdict(seen: NodeSeen, fence_after: Option<Duration>) -> AgentVerdict {
    match seen {
        NodeSeen::Answering => AgentVerdict::Say(NodeState::Alive),
        NodeSeen::Gone => AgentVerdict::Say(NodeState::Down),
        NodeSeen::Silent { for_how_long } => match fence_after {
            Some(limit) if for_how_long >= limit => AgentVerdict::FenceThenDown,
            _ => AgentVerdict::Say(NodeState::Unknown),
        },
    }
}

/// What a surviving cluster configured for one failed cluster (B27; the grid file's
/// `[[takeover]]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AotmSetting {
    pub mode: TakeoverMode,
    pub grace: Duration,
    pub retry: Duration,
}

/// Where a survivor stands with one peer it lost grid contact with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AotmStep {
    /// Nothing to do yet: the grace period runs, or a retry is not due.
    Wait,
    /// Ask the agents now.
    Ask,
}

/// B29, B30, B34: `lost_for` is how long grid contact with the peer has been lost,
/// `asked_ago` how long ago the agents were last asked (none: not yet).
pub fn aotm_step(
    setting: &AotmSetting,
    lost_for: Duration,
    asked_ago: Option<Duration>,
) -> AotmStep {
    if lost_for < setting.grace {
        return AotmStep::Wait;
    }
    match asked_ago {
        Some(ago) if ago < setting.retry => AotmStep::Wait,
        _ => AotmStep::Ask,
    }
}

/// B30: the answer of the peer's agent (none: no answer at all) decides. Only DOWN sets the
/// configured mode.
pub fn aotm_decision(setting: &AotmSetting, answer: Option<NodeState>) -> Option<TakeoverMode> {
    match answer {
        Some(NodeState::Down) if setting.mode != TakeoverMode::None => Some(setting.mode),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn t21_an_agent_says_down_only_about_a_node_that_is_gone_or_that_it_fenced() {
        assert_eq!(
            agent_verdict(NodeSeen::Answering, Some(5 * S)),
            AgentVerdict::Say(NodeState::Alive)
        );
        assert_eq!(
            agent_verdict(NodeSeen::Gone, None),
            AgentVerdict::Say(NodeState::Down)
        );
        let silent = |secs| NodeSeen::Silent {
            for_how_long: secs * S,
        };
        assert_eq!(
            agent_verdict(silent(4), Some(5 * S)),
            AgentVerdict::Say(NodeState::Unknown)
        );
        assert_eq!(
            agent_verdict(silent(5), Some(5 * S)),
            AgentVerdict::FenceThenDown
        );
        assert_eq!(
            agent_verdict(silent(500), None),
            AgentVerdict::Say(NodeState::Unknown),
            "an agent that may not fence never calls a silent node down"
        );
    }

    #[test]
    fn b34_the_agents_are_asked_after_the_grace_period_and_every_retry_period() {
        let s = AotmSetting {
            mode: TakeoverMode::Write,
            grace: 20 * S,
            retry: 5 * S,
        };
        assert_eq!(aotm_step(&s, 19 * S, None), AotmStep::Wait);
        assert_eq!(aotm_step(&s, 20 * S, None), AotmStep::Ask);
        assert_eq!(aotm_step(&s, 30 * S, Some(4 * S)), AotmStep::Wait);
        assert_eq!(aotm_step(&s, 30 * S, Some(5 * S)), AotmStep::Ask);
    }

    #[test]
    fn b30_t8_t9_only_down_sets_the_mode_unknown_is_not_down() {
        let s = AotmSetting {
            mode: TakeoverMode::ReadOnly,
            grace: S,
            retry: S,
        };
        assert_eq!(
            aotm_decision(&s, Some(NodeState::Down)),
            Some(TakeoverMode::ReadOnly)
        );
        for answer in [Some(NodeState::Alive), Some(NodeState::Unknown), None] {
            assert_eq!(aotm_decision(&s, answer), None, "{answer:?}");
        }
        let off = AotmSetting {
            mode: TakeoverMode::None,
            ..s
        };
        assert_eq!(aotm_decision(&off, Some(NodeState::Down)), None);
    }
}
