//! Host jobs on one cluster: mounts, appends, sync points, scratch selection, listing.

mod jobs;
