//! The copy engine: RUN and Deferred copies, and what happens when a RUN cluster is cut off
//! (DESIGN §4; B37, B39, B40).

mod b36_b46_dr_no_copy;
mod b37_b39_run_and_deferred;
mod b42_b43_sync;
mod b50_b52_overrides;
mod b6_no_valid_copy;
