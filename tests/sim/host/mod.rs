//! Host jobs on one cluster: mounts, appends, sync points, scratch selection, listing; cancelled
//! calls; the publisher's replay rule.

mod b15_replay_with_another_digest;
mod cancelled_jobs;
mod jobs;
