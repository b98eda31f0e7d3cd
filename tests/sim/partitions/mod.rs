//! Grid partitions and Raft faults: unreachable owners, cut-off inserts, split grids, leader
//! loss, Raft term inflation (B8, B11, B14, B15, B16, B64; DESIGN §3).

mod b11_b16_leader_crash_and_restart;
mod b14_b15_owner_partitioned_away;
mod b16_insert_cut_off;
mod b64_grid_links_down_scratch;
mod raft_isolated_voter_keeps_its_term;
