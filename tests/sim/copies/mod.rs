//! The copy engine: RUN, Deferred, Sync and No Copy; what happens when a RUN or Sync cluster is
//! cut off, when a source or a target crashes; copy policy overrides; and the copy invariants
//! themselves (DESIGN §4; B36, B37, B39, B40, B42, B43, B45, B46, B50-B52, B62).

mod b36_b46_dr_no_copy;
mod b36_overlay_vector;
mod b37_b39_run_and_deferred;
mod b37_b45_invariants_catch_losses;
mod b37_run_copy_survives_target_restart;
mod b37_source_crash_during_run_copy;
mod b40_b62_deferred_backlog;
mod b42_b43_sync;
mod b50_b52_overrides;
mod b6_no_valid_copy;
mod crash_points_copy;
mod retention_dr_site;
mod superseded_copies_removed;
