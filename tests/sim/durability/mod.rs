//! What survives a crash of a cluster (B37, DESIGN §4 and §8), and what nothing may overwrite.

mod b37_crash_mid_write;
mod crash_points_unload;
mod disk_faults;
mod quarantine_identity;
mod t17_sync_point;
