//! Grid invariants the driver checks between `sim.step()`s (DESIGN §8; spec §4.1 O1, O2), one
//! function per invariant, each naming the behaviour it defends.
//!
//! They read the running clusters directly (`Arc<Cluster>` from the driver's slots), never over
//! the network, so checking changes nothing in the simulation. A crashed cluster is not checked:
//! its state is on its disks and is checked again once it runs.
//!
//! - [`b10_single_writable_owner`]: after every step.
//! - [`b15_b37_acknowledged_versions_survive`]: after every step.
//! - [`b15_catalogs_converge`]: once the grid is healed and quiet.
//!
//! [`Invariants`] bundles them with the host's [`Ledger`] and the volumes a test exempts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use vtgrid_core::{CatalogState, ClusterId, Volser};
use vtgrid_node::Cluster;

use crate::grid::SimGrid;
use crate::ledger::{Ack, Ledger};

/// **B10 single owner.** At any instant, at most one running cluster may write a volume
/// (spec O1): answers `may_write` and is not handing the volume over.
///
/// Handing over: the owner Cj surrendering V to Ci holds V against mounts until it has applied
/// the `Transfer` it proposed (DESIGN §3), and Ci may apply that entry first. In that window
/// both answer `may_write`, but Cj, whose token is the older epoch, cannot mount V. So a pair of
/// `may_write` answers is allowed when the cluster with the older epoch has V in its mount table
/// (the hold). [`b10_may_write_is_exclusive`] is the strict form, without that allowance.
///
/// Volumes in `exempt` are skipped: a test that forces a second token on purpose says which and
/// why.
pub fn b10_single_writable_owner(
    running: &[Arc<Cluster>],
    exempt: &BTreeSet<Volser>,
) -> Result<(), String> {
    single_writer(running, exempt, true)
}

/// **B10, strictly on `may_write`.** At most one running cluster answers `may_write` for each
/// volume, at every step, as `Cluster::may_write`'s own doc promises.
pub fn b10_may_write_is_exclusive(
    running: &[Arc<Cluster>],
    exempt: &BTreeSet<Volser>,
) -> Result<(), String> {
    single_writer(running, exempt, false)
}

fn single_writer(
    running: &[Arc<Cluster>],
    exempt: &BTreeSet<Volser>,
    allow_handover: bool,
) -> Result<(), String> {
    // The token is the catalog's (the journal overlay never changes it), so one pass over each
    // cluster's view finds who claims what; `may_write`, the product's own answer, then settles
    // the volumes claimed more than once (cheap enough to run after every step).
    let mut claims: Vec<(Volser, usize)> = Vec::with_capacity(64);
    for (i, c) in running.iter().enumerate() {
        c.catalog.view.read(|s| {
            claims.extend(
                s.volumes
                    .values()
                    .filter(|r| r.token.owner == c.id)
                    .map(|r| (r.volser, i)),
            )
        });
    }
    claims.sort_unstable();
    let mut writers: BTreeMap<Volser, Vec<&Arc<Cluster>>> = BTreeMap::new();
    for pair in claims.windows(2) {
        let (volser, _) = pair[0];
        if pair[1].0 != volser || exempt.contains(&volser) || writers.contains_key(&volser) {
            continue;
        }
        let confirmed: Vec<&Arc<Cluster>> = claims
            .iter()
            .filter(|(v, _)| *v == volser)
            .map(|(_, i)| &running[*i])
            .filter(|c| c.may_write(&volser))
            .collect();
        writers.insert(volser, confirmed);
    }
    for (volser, mut claimants) in writers {
        if claimants.len() < 2 {
            continue;
        }
        let epoch = |c: &Cluster| c.effective(&volser).map_or(0, |r| r.token.epoch.0);
        claimants.sort_by_key(|c| std::cmp::Reverse(epoch(c)));
        let newest = claimants[0];
        for older in &claimants[1..] {
            if !(allow_handover && handing_over(older, running, &volser)) {
                return Err(format!(
                    "B10 violated: {volser} is writable at {} ({}) and at {} ({}; mounted or \
                     held there: {})",
                    newest.id,
                    token_seen(newest, &volser),
                    older.id,
                    token_seen(older, &volser),
                    older.mounts.is_mounted(&volser),
                ));
            }
        }
    }
    Ok(())
}

/// `c` answers `may_write` for `volser` but is handing it over: some running cluster sees a newer
/// epoch for it, and `c` holds it against mounts (see [`b10_single_writable_owner`]).
fn handing_over(c: &Cluster, running: &[Arc<Cluster>], volser: &Volser) -> bool {
    let epoch = |c: &Cluster| c.effective(volser).map_or(0, |r| r.token.epoch.0);
    let mine = epoch(c);
    c.mounts.is_mounted(volser) && running.iter().any(|other| epoch(other) > mine)
}

fn token_seen(c: &Cluster, volser: &Volser) -> String {
    match c.effective(volser) {
        Ok(r) => format!(
            "token owner {} epoch {}, version {}, view at {:?}",
            r.token.owner,
            r.token.epoch,
            r.version,
            c.catalog.view.last_applied().map(|l| l.index)
        ),
        Err(e) => e.to_string(),
    }
}

/// **B15 + B37: no acknowledged version is lost.** For every rewind-unload the host saw succeed
/// (volume V, version k, digest d, written at W), while W runs:
/// - W still accounts for it: W's effective record of V (catalog plus its own journal) is at a
///   version above k, or at k with digest d and W's TVC holding (V, k); or else (V, k, d) is in
///   W's quarantine (the catalog refused it for a stale epoch, DESIGN §3);
///
/// and, for V not in `exempt`, on the owner's side:
/// - every other running cluster that may write V (and is not handing it over, see
///   [`b10_single_writable_owner`]) sees V at version k or later (it obtained the token after W
///   published k), unless (V, k) is in W's quarantine.
///
/// A crashed W is skipped (its journal and TVC are on its disks; they are checked once it runs).
/// And no two acknowledgements of one version number of V name different bytes.
pub fn b15_b37_acknowledged_versions_survive(
    running: &[Arc<Cluster>],
    ledger: &Ledger,
    exempt: &BTreeSet<Volser>,
) -> Result<(), String> {
    let by_id: BTreeMap<ClusterId, &Arc<Cluster>> = running.iter().map(|c| (c.id, c)).collect();
    let mut tvc_cache: BTreeMap<ClusterId, Vec<(Volser, u64)>> = BTreeMap::new();
    one_version_per_number(ledger, exempt)?;
    ledger.each_acked(|volser, ack| {
        let writer = ClusterId::new(ack.written_at).map_err(|e| e.to_string())?;
        let w = by_id.get(&writer);
        if let Some(w) = w {
            writer_accounts_for(w, volser, ack, &mut tvc_cache)?;
        }
        if exempt.contains(&volser) {
            return Ok(());
        }
        for x in running.iter().filter(|x| x.id != writer) {
            match view_of(x, &volser) {
                Some((owner, version)) if owner == x.id && version < ack.version => {}
                _ => continue,
            }
            if !x.may_write(&volser) || handing_over(x, running, &volser) {
                continue;
            }
            let seen = x.effective(&volser).map_err(|e| e.to_string())?;
            if seen.version >= ack.version {
                continue;
            }
            if w.is_some_and(|w| quarantined(w, volser, ack)) {
                continue;
            }
            return Err(format!(
                "B37/B15 violated: {volser} v{} ({}) was acknowledged at C{}, but {} may write \
                 {volser} and sees version {} (epoch {})",
                ack.version, ack.digest, ack.written_at, x.id, seen.version, seen.token.epoch
            ));
        }
        Ok(())
    })
}

/// Two acknowledgements of the same version number of a volume name the same bytes: a version
/// number, once acknowledged, is never reused for other data (which a later version would hide
/// from the per-ack checks).
fn one_version_per_number(ledger: &Ledger, exempt: &BTreeSet<Volser>) -> Result<(), String> {
    match ledger.first_reused_version(exempt) {
        None => Ok(()),
        Some((volser, first, second)) => Err(format!(
            "B10/B37 violated: {volser} v{} was acknowledged twice with different data ({} at \
             C{} and {} at C{})",
            first.version, first.digest, first.written_at, second.digest, second.written_at
        )),
    }
}

/// The owner and version of `volser` in `c`'s catalog view, without copying the record.
fn view_of(c: &Cluster, volser: &Volser) -> Option<(ClusterId, u64)> {
    c.catalog
        .view
        .read(|s| s.volumes.get(volser).map(|r| (r.token.owner, r.version)))
}

fn writer_accounts_for(
    w: &Cluster,
    volser: Volser,
    ack: &Ack,
    tvc_cache: &mut BTreeMap<ClusterId, Vec<(Volser, u64)>>,
) -> Result<(), String> {
    // W's effective record of V, as (version, same digest as acknowledged). With no journal
    // entry pending for V it is the view's record, read in place (this runs after every step).
    let seen = if w.journal.has_pending(&volser) {
        w.effective(&volser)
            .ok()
            .map(|r| (r.version, r.digest == ack.raw))
    } else {
        w.catalog.view.read(|s| {
            s.volumes
                .get(&volser)
                .map(|r| (r.version, r.digest == ack.raw))
        })
    };
    let Some((version, same_digest)) = seen else {
        return Err(format!(
            "B37 violated: C{} no longer knows {volser}",
            ack.written_at
        ));
    };
    if version > ack.version {
        return Ok(());
    }
    let held = tvc_cache
        .entry(w.id)
        .or_insert_with(|| w.tvc.store().versions().unwrap_or_default());
    if version == ack.version && same_digest && held.contains(&(volser, ack.version)) {
        return Ok(());
    }
    if quarantined(w, volser, ack) {
        return Ok(());
    }
    let record = w.effective(&volser).map_err(|e| e.to_string())?;
    Err(format!(
        "B37 violated: {volser} v{} ({}) was acknowledged at {}, which now sees version {} ({}), \
         journal pending {}, holds {:?} in its TVC, and has not quarantined it",
        ack.version,
        ack.digest,
        w.id,
        record.version,
        record.digest.to_hex(),
        w.journal.pending_count(),
        held.iter()
            .filter(|(v, _)| *v == volser)
            .collect::<Vec<_>>(),
    ))
}

/// Is (V, k, d) in `w`'s quarantine?
fn quarantined(w: &Cluster, volser: Volser, ack: &Ack) -> bool {
    w.journal.store().quarantined().is_ok_and(|q| {
        q.iter()
            .any(|r| r.volser == volser && r.version == ack.version && r.digest == ack.raw)
    })
}

/// **B15 catch-up (DESIGN §3; spec §4.2 T2/T12 "heal").** Once every link is repaired and the
/// grid is quiet, every running cluster's owner journal is empty and all running clusters and
/// witnesses hold the same `CatalogState`.
pub fn b15_catalogs_converge(running: &[Arc<Cluster>]) -> Result<(), String> {
    for c in running {
        let pending = c.journal.pending_count();
        if pending > 0 {
            return Err(format!(
                "B15 catch-up: {} still has {pending} journal entries",
                c.id
            ));
        }
    }
    let Some((first, rest)) = running.split_first() else {
        return Ok(());
    };
    let reference = first.catalog.view.read(CatalogState::clone);
    for c in rest {
        let state = c.catalog.view.read(CatalogState::clone);
        if state != reference {
            return Err(format!(
                "B15 catch-up: the catalogs of {} and {} differ: {}",
                first.id,
                c.id,
                difference(&reference, &state)
            ));
        }
    }
    Ok(())
}

/// The first difference between two catalogs, for a failure message.
pub fn difference(a: &CatalogState, b: &CatalogState) -> String {
    let volsers: BTreeSet<&Volser> = a.volumes.keys().chain(b.volumes.keys()).collect();
    for v in volsers {
        let (x, y) = (a.volumes.get(v), b.volumes.get(v));
        if x != y {
            return format!("{v}: {x:?} vs {y:?}");
        }
    }
    if a.categories != b.categories {
        return format!("categories {:?} vs {:?}", a.categories, b.categories);
    }
    format!(
        "management classes {:?} vs {:?}",
        a.management_classes, b.management_classes
    )
}

/// The invariants of one simulation: the host's ledger and the volumes exempt from the
/// ownership checks (see [`b10_single_writable_owner`]).
#[derive(Clone, Default)]
pub struct Invariants {
    pub ledger: Ledger,
    pub exempt: BTreeSet<Volser>,
}

impl Invariants {
    pub fn new(ledger: Ledger) -> Invariants {
        Invariants {
            ledger,
            exempt: BTreeSet::new(),
        }
    }

    /// Skip `volser` in B10 and in the owner side of B37 (say why in the test).
    pub fn exempt(mut self, volser: Volser) -> Invariants {
        self.exempt.insert(volser);
        self
    }

    /// What must hold after every step.
    pub fn after_step(&self, grid: &SimGrid) -> Result<(), String> {
        let running = grid.running();
        b10_single_writable_owner(&running, &self.exempt)?;
        b15_b37_acknowledged_versions_survive(&running, &self.ledger, &self.exempt)
    }

    /// What must hold at the end, once the test has healed the grid and waited for quiet.
    pub fn at_end(&self, grid: &SimGrid) -> Result<(), String> {
        self.after_step(grid)?;
        b15_catalogs_converge(&grid.running())
    }
}

impl Invariants {
    /// Drive `grid` to its end: [`Invariants::after_step`] after every step, then
    /// [`Invariants::at_end`]. A failure names the seed and the step.
    pub fn run(&self, grid: &mut SimGrid) -> Result<(), String> {
        grid.run(|g| self.after_step(g))?;
        self.at_end(grid).map_err(|e| grid.failure(&e))
    }
}
