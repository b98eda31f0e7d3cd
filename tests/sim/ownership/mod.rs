//! Ownership across clusters: the handshake, unreachable owners, local autonomy and its
//! quarantine (DESIGN §3).

mod a_late_transfer_after_reclaim;
mod b10_surrender_outcome_unknown;
mod b11_transfer_and_b14_b15_partition;
mod b11_transfer_between_every_pair;
mod b11_transfers_share_pooled_connections;
mod b13_category_change_owner_unreachable;
mod b14_stale_owner_view_refusal;
mod b15_stale_epoch_quarantine;
mod c_doubt_checked_at_mount_registration;
mod crash_points_surrender;
mod duplicated_commands;
mod stranded_transfer_requester_without_leader;
