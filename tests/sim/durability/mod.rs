//! What survives a crash of a cluster (B37, DESIGN §4 and §8).

mod b37_crash_mid_write;
