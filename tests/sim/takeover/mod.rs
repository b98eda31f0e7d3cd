//! Ownership takeover (DESIGN §3; B19-B26; the spec's T5, T12, T20, T22): read takeover, write
//! takeover committed through the catalog, service mode, and the failed cluster's return.

mod aotm;
mod b25_peer_back_before_the_monitor_sees_it;
mod lease;
mod t12_majority_is_not_direction;
mod t22_service_prep;
mod t5_t20_manual_takeover_and_rejoin;
