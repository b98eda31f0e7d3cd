//! The seed's failover scenarios (spec §2.9, §4.2), each on a simulated grid with the flags the
//! seed lists.

mod b66_all_links_lost_during_remote_mount;
mod b69_remote_cluster_isolated;
