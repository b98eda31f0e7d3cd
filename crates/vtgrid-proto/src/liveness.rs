//! The agents' node states on the wire (`agent.proto`'s `NodeLiveness`), both ways.

use vtgrid_core::aotm::NodeState;

use crate::internal::NodeLiveness;

impl From<NodeState> for NodeLiveness {
    fn from(state: NodeState) -> Self {
        match state {
            NodeState::Alive => NodeLiveness::Alive,
            NodeState::Down => NodeLiveness::Down,
            NodeState::Unknown => NodeLiveness::Unknown,
        }
    }
}

/// A wire state as the rule's: anything but ALIVE and DOWN is unknown (prost maps an unknown
/// enum number to the default, UNKNOWN).
impl From<NodeLiveness> for NodeState {
    fn from(state: NodeLiveness) -> Self {
        match state {
            NodeLiveness::Alive => NodeState::Alive,
            NodeLiveness::Down => NodeState::Down,
            NodeLiveness::Unknown => NodeState::Unknown,
        }
    }
}
