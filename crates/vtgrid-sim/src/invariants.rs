//! Grid invariants the driver checks between `sim.step()`s (DESIGN §8; spec §4.1 O1, O2), one
//! function per invariant, each naming the behaviour it defends.
//!
//! They read the running clusters directly (`Arc<Cluster>` from the driver's slots), never over
//! the network, so checking changes nothing in the simulation. A crashed cluster is not checked:
//! its state is on its disks and is checked again once it runs.
//!
//! - [`b10_single_writable_owner`]: after every step.
//! - [`b15_b37_acknowledged_versions_survive`]: after every step.
//! - [`b37_b39_acknowledged_copies_held`]: after every step.
//! - [`b15_catalogs_converge`]: once the grid is healed and quiet.
//! - [`b45_every_copy_verified`]: once the grid is healed and quiet.
//! - [`quarantine_only_of_fenced_versions`]: once the grid is healed and quiet.
//!
//! [`Invariants`] bundles them with the host's [`Ledger`] and the volumes a test exempts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use vtgrid_core::{CatalogState, ClusterId, CopyMode, Digest, Volser};
use vtgrid_node::Cluster;

use crate::grid::SimGrid;
use crate::ledger::{Ack, AckedCopies, Ledger};

/// **B10 single owner.** At any instant, at most one running cluster could write a volume
/// (spec O1), judged by the product's own gate (`vtgrid_core::gate`) from each cluster's own
/// state: a cluster counts when its gate would let a new job mount the volume (settled owner,
/// nothing held), or when a host job has the volume mounted there, whatever that job's token (a
/// job whose token moved under it is itself the violation). A surrender hold is not a host mount:
/// the old owner holding the volume while its Transfer commits is not a writer.
///
/// Volumes in `exempt` are skipped: a test that forces a second token on purpose says which and
/// why.
pub fn b10_single_writable_owner(
    running: &[Arc<Cluster>],
    exempt: &BTreeSet<Volser>,
) -> Result<(), String> {
    // Candidates: what each cluster's view says it owns, and what it has mounted.
    let mut candidates: Vec<(Volser, usize)> = Vec::with_capacity(64);
    for (i, c) in running.iter().enumerate() {
        c.probe().view().read(|s| {
            candidates.extend(
                s.volumes
                    .values()
                    .filter(|r| r.token.owner == c.id)
                    .map(|r| (r.volser, i)),
            )
        });
        candidates.extend(
            c.probe()
                .mounts()
                .mounted_volsers()
                .into_iter()
                .map(|v| (v, i)),
        );
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut writers: BTreeMap<Volser, Vec<usize>> = BTreeMap::new();
    for (volser, i) in candidates {
        if exempt.contains(&volser) {
            continue;
        }
        let counts = running[i]
            .standing(&volser)
            .is_ok_and(|st| st.could_write() || st.has_job());
        if counts {
            writers.entry(volser).or_default().push(i);
        }
    }
    for (volser, at) in writers {
        if at.len() > 1 {
            let who: Vec<String> = at
                .iter()
                .map(|i| {
                    let c = &running[*i];
                    format!(
                        "{} ({}; {:?})",
                        c.id,
                        token_seen(c, &volser),
                        c.standing(&volser)
                    )
                })
                .collect();
            return Err(format!(
                "B10 violated: {volser} could be written at {}",
                who.join(" and at ")
            ));
        }
    }
    Ok(())
}

/// The same check as [`b10_single_writable_owner`] (kept for the tests that name it: the
/// allowance it once lacked is gone, B10 is strict everywhere).
pub fn b10_may_write_is_exclusive(
    running: &[Arc<Cluster>],
    exempt: &BTreeSet<Volser>,
) -> Result<(), String> {
    b10_single_writable_owner(running, exempt)
}

fn token_seen(c: &Cluster, volser: &Volser) -> String {
    match c.effective(volser) {
        Ok(r) => format!(
            "token owner {} epoch {}, version {}, view at {:?}",
            r.token.owner,
            r.token.epoch,
            r.version,
            c.probe().last_applied()
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
/// - every other running cluster that could write V (the gate, see
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
    one_version_per_number(running, ledger, exempt)?;
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
            // Taken over from the writer (WOT or service mode): what it had not published by
            // then is fenced, lost to the grid (B134) and quarantined at the writer once it is
            // back (its side is checked by `writer_accounts_for`).
            if taken_from(x, &volser) == Some(writer) {
                continue;
            }
            if !x.may_write(&volser) {
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
/// from the per-ack checks). Unless a takeover took the volume from one of the two writers
/// (B134; random takeover seed 459): the taker goes on from the last version the catalog has,
/// and what the fenced owner acknowledged from its journal meanwhile is quarantined there once
/// it is back (`writer_accounts_for` holds it to that).
fn one_version_per_number(
    running: &[Arc<Cluster>],
    ledger: &Ledger,
    exempt: &BTreeSet<Volser>,
) -> Result<(), String> {
    let excused = |volser: Volser, a: &Ack, b: &Ack| {
        running.iter().any(|c| {
            taken_from(c, &volser)
                .is_some_and(|t| t.get() == a.written_at || t.get() == b.written_at)
        })
    };
    match ledger.first_reused_version(exempt, excused) {
        None => Ok(()),
        Some((volser, first, second)) => Err(format!(
            "B10/B37 violated: {volser} v{} was acknowledged twice with different data ({} at \
             C{} and {} at C{})",
            first.version, first.digest, first.written_at, second.digest, second.written_at
        )),
    }
}

/// The cluster `volser` was last taken over from, in `c`'s catalog view.
fn taken_from(c: &Cluster, volser: &Volser) -> Option<ClusterId> {
    c.probe().view().read(|s| {
        s.volumes
            .get(volser)
            .and_then(|r| r.taken_from)
            .map(|t| t.owner)
    })
}

/// The owner and version of `volser` in `c`'s catalog view, without copying the record.
fn view_of(c: &Cluster, volser: &Volser) -> Option<(ClusterId, u64)> {
    c.probe()
        .view()
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
    let seen = if w.probe().journal().has_pending(&volser) {
        w.effective(&volser)
            .ok()
            .map(|r| (r.version, r.digest == ack.raw))
    } else {
        w.probe().view().read(|s| {
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
        .or_insert_with(|| w.probe().store().versions().unwrap_or_default());
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
        w.probe().journal().pending_count(),
        held.iter()
            .filter(|(v, _)| *v == volser)
            .collect::<Vec<_>>(),
    ))
}

/// **B37 + B39 (and B42 for Sync): no acknowledged RUN version is missing from a reachable RUN
/// cluster.** For every rewind-unload the host saw succeed with the clusters that held the
/// version (`copies`) and whether a RUN copy was deferred (see [`Ledger::acknowledge_unload`]):
///
/// - the writer is among `copies`;
/// - unless the unload said a copy was deferred, every data cluster whose mode is R or S in the
///   version's copy-mode vector (the writer's vector, as the catalog records it with the
///   version, B36) is among `copies`: the host was told they all hold it;
/// - every cluster named in `copies` that runs holds (V, k) in its TVC for as long as its own
///   record of V (catalog plus its journal) is not past k: at k, or older while the writer's
///   entry is still on its way. Past k the version is superseded and may go. A version the
///   writer has quarantined (its catalog entry was refused, DESIGN §3) no longer exists and is
///   exempt.
///
/// The vector check is made once per acknowledgement, as soon as a running cluster's catalog
/// view has V at k with the acknowledged digest (the catalog records the vector with the
/// version); `settled` remembers which. A version the catalog never takes is not checked.
/// Bare acknowledgements ([`Ledger::acknowledge`]) carry no copies and are not checked here.
pub fn b37_b39_acknowledged_copies_held(
    running: &[Arc<Cluster>],
    ledger: &Ledger,
    settled: &mut BTreeSet<(Volser, u64, u8)>,
) -> Result<(), String> {
    let by_id: BTreeMap<ClusterId, &Arc<Cluster>> = running.iter().map(|c| (c.id, c)).collect();
    let mut held: BTreeMap<ClusterId, BTreeSet<(Volser, u64)>> = BTreeMap::new();
    ledger.each_acked(|volser, ack| {
        let Some(copies) = &ack.copies else {
            return Ok(());
        };
        if !copies.holders.contains(&ack.written_at) {
            return Err(format!(
                "B37 violated: the unload of {volser} v{} at C{} did not name the writer among \
                 the clusters holding it: {:?}",
                ack.version, ack.written_at, copies.holders
            ));
        }
        let key = (volser, ack.version, ack.written_at);
        if !settled.contains(&key) && required_copies_named(running, volser, ack, copies)? {
            settled.insert(key);
        }
        let writer = ClusterId::new(ack.written_at).map_err(|e| e.to_string())?;
        for holder in &copies.holders {
            let Some(h) = ClusterId::new(*holder).ok().and_then(|id| by_id.get(&id)) else {
                continue; // down: its TVC is on its disks, checked once it runs
            };
            let (version, digest) = record_at(h, &volser);
            if version > ack.version || (version == ack.version && digest != ack.raw) {
                continue; // superseded (a different version k is some other ack's business)
            }
            let tvc = held.entry(h.id).or_insert_with(|| {
                h.probe()
                    .store()
                    .versions()
                    .unwrap_or_default()
                    .into_iter()
                    .collect()
            });
            if tvc.contains(&(volser, ack.version)) {
                continue;
            }
            if by_id
                .get(&writer)
                .is_some_and(|w| quarantined(w, volser, ack))
            {
                continue;
            }
            return Err(format!(
                "B37 violated: {volser} v{} ({}) was acknowledged at C{} as held by {} (copies \
                 {:?}), which runs and sees {volser} at version {version}, but its TVC no longer \
                 holds v{} (it holds {:?})",
                ack.version,
                ack.digest,
                ack.written_at,
                h.id,
                copies.holders,
                ack.version,
                tvc.iter().filter(|(v, _)| *v == volser).collect::<Vec<_>>(),
            ));
        }
        Ok(())
    })
}

/// The vector half of [`b37_b39_acknowledged_copies_held`]: `Ok(true)` once checked, `Ok(false)`
/// while no running cluster's record names the version's vector yet.
fn required_copies_named(
    running: &[Arc<Cluster>],
    volser: Volser,
    ack: &Ack,
    copies: &AckedCopies,
) -> Result<bool, String> {
    // From a catalog view, never from a journal overlay: the overlay pairs an unpublished
    // version with the previous version's vector (pinned by `copies::b36_overlay_vector`).
    let vector = running.iter().find_map(|c| {
        c.probe().view().read(|s| {
            s.volumes
                .get(&volser)
                .filter(|r| r.version == ack.version && r.digest == ack.raw)
                .map(|r| r.copy_modes.clone())
        })
    });
    let Some(vector) = vector else {
        return Ok(false);
    };
    let (Some(vector), false) = (vector, copies.deferred) else {
        return Ok(true); // no class (no copies owed), or the host was told a copy was deferred
    };
    let Some(any) = running.first() else {
        return Ok(false);
    };
    for cluster in &any.probe().grid().clusters {
        let Ok(id) = ClusterId::new(cluster.id) else {
            continue;
        };
        let mode = vector.mode_for(id);
        if matches!(mode, CopyMode::Run | CopyMode::Sync) && !copies.holders.contains(&cluster.id) {
            return Err(format!(
                "B37 violated: the unload of {volser} v{} ({}) at C{} returned without a deferred \
                 copy, but {id} (mode {} in {vector:?}) is not among the clusters holding it: {:?}",
                ack.version,
                ack.digest,
                ack.written_at,
                mode.letter(),
                copies.holders
            ));
        }
    }
    Ok(true)
}

/// `c`'s own record of `volser` (catalog plus its journal) as (version, digest); (0, empty) when
/// it has none. Read in place when nothing is pending for `volser` (this runs after every step).
fn record_at(c: &Cluster, volser: &Volser) -> (u64, Digest) {
    if c.probe().journal().has_pending(volser) {
        c.effective(volser)
            .map_or((0, Digest::EMPTY), |r| (r.version, r.digest))
    } else {
        c.probe().view().read(|s| {
            s.volumes
                .get(volser)
                .map_or((0, Digest::EMPTY), |r| (r.version, r.digest))
        })
    }
}

/// **B45 + B62: every copy verified.** Once the grid is healed and quiet: every version a running
/// cluster's catalog says is consistent at data cluster X (the volume's current version, in
/// `consistent_at`) is in X's TVC, when X runs, and reads back whole through X's volume store,
/// which checks every chunk's CRC32C and the trailer's size and BLAKE3, with the catalog's size
/// and digest (hashed again here, so a store that checked nothing would not pass either).
pub fn b45_every_copy_verified(running: &[Arc<Cluster>]) -> Result<(), String> {
    let by_id: BTreeMap<ClusterId, &Arc<Cluster>> = running.iter().map(|c| (c.id, c)).collect();
    // (V, k, X) -> (size, digest) and the cluster whose catalog said so.
    let mut claims: BTreeMap<(Volser, u64, ClusterId), (u64, Digest, ClusterId)> = BTreeMap::new();
    for c in running {
        c.probe().view().read(|s| {
            for r in s.volumes.values().filter(|r| r.version > 0) {
                for x in r.consistent_clusters() {
                    claims
                        .entry((r.volser, r.version, x))
                        .or_insert((r.size, r.digest, c.id));
                }
            }
        });
    }
    for ((volser, version, x), (size, digest, said_by)) in claims {
        let Some(holder) = by_id.get(&x) else {
            continue; // down: checked in a run where it is up
        };
        let what = format!(
            "B45 violated: {said_by}'s catalog says {volser} v{version} ({}) is consistent at {x}",
            &digest.to_hex()[..16]
        );
        let mut reader = holder
            .probe()
            .store()
            .open(volser, version)
            .map_err(|e| format!("{what}, but {x} cannot open it: {e}"))?;
        let mut hasher = blake3::Hasher::new();
        let mut bytes = 0u64;
        loop {
            match reader.next_chunk() {
                Ok(Some(chunk)) => {
                    hasher.update(&chunk);
                    bytes += chunk.len() as u64;
                }
                Ok(None) => break,
                Err(e) => return Err(format!("{what}, but reading it there fails: {e}")),
            }
        }
        let meta = reader.meta();
        let read = Digest(*hasher.finalize().as_bytes());
        if meta.digest != digest || meta.size != size || read != digest || bytes != size {
            return Err(format!(
                "{what} with size {size}, but {x} holds {} bytes with digest {} (trailer: {} \
                 bytes, {})",
                bytes,
                &read.to_hex()[..16],
                meta.size,
                &meta.digest.to_hex()[..16]
            ));
        }
    }
    Ok(())
}

/// Is (V, k, d) in `w`'s quarantine?
/// Has `w` quarantined the acknowledged version `ack` of `volser` (a takeover fenced it)?
pub fn quarantined(w: &Cluster, volser: Volser, ack: &Ack) -> bool {
    w.probe().journal_store().quarantined().is_ok_and(|q| {
        q.iter()
            .any(|r| r.volser == volser && r.version == ack.version && r.digest == ack.raw)
    })
}

/// **B15 catch-up (DESIGN §3; spec §4.2 T2/T12 "heal").** Once every link is repaired and the
/// grid is quiet, every running cluster's owner journal is empty and all running clusters and
/// witnesses hold the same `CatalogState`.
pub fn b15_catalogs_converge(running: &[Arc<Cluster>]) -> Result<(), String> {
    for c in running {
        let pending = c.probe().journal().pending_count();
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
    let reference = first.probe().view().read(CatalogState::clone);
    for c in rest {
        let state = c.probe().view().read(CatalogState::clone);
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

/// **Catalog at scale (issue 14).** Every running cluster's volume indexes (scratch candidates
/// by category and owner, owed copies, counters) equal the ones rebuilt from its records: the
/// commands, snapshots and restarts of the run kept them in step.
pub fn catalog_indexes_in_step(running: &[Arc<Cluster>]) -> Result<(), String> {
    for c in running {
        if !c.probe().view().read(|s| s.volumes.indexes_match_records()) {
            return Err(format!(
                "{}'s volume indexes drifted from its catalog records",
                c.id
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
    if a.write_takeovers != b.write_takeovers {
        return format!(
            "write takeovers {:?} vs {:?}",
            a.write_takeovers, b.write_takeovers
        );
    }
    if a.service != b.service {
        return format!("service states {:?} vs {:?}", a.service, b.service);
    }
    if a.members != b.members {
        return format!("members {:?} vs {:?}", a.members, b.members);
    }
    format!(
        "management classes {:?} vs {:?}",
        a.management_classes, b.management_classes
    )
}

/// **Nothing stays in use forever.** Once the grid is healed and quiet, no running cluster has a
/// volume mounted, held for a surrender, in doubt, duplexed into it, or space reserved by a writer
/// (issue 9: a cancelled call, a lost answer or a crash may delay their end, never prevent it).
pub fn nothing_left_behind(running: &[Arc<Cluster>]) -> Result<(), String> {
    for c in running {
        let mounted = c.probe().mounts().mounted_volsers();
        let held = c.probe().mounts().held_volsers();
        let doubts = c.probe().journal().doubts();
        let duplexes = c.sync_sessions_open();
        let reserved = c.probe().store().usage().in_flight_bytes;
        if !(mounted.is_empty() && held.is_empty() && doubts.is_empty() && duplexes.is_empty())
            || reserved > 0
        {
            return Err(format!(
                "{} still has mounted {mounted:?}, held {held:?}, in doubt {doubts:?}, duplexes \
                 {duplexes:?}, {reserved} bytes reserved",
                c.id
            ));
        }
    }
    Ok(())
}

/// **No acknowledged version is quarantined** while the system has no takeover (issue 9): a
/// cluster's owner journal is refused only when its token was fenced, and without takeover a
/// token is only ever handed over by its holder. Empty quarantines everywhere.
pub fn no_quarantine(running: &[Arc<Cluster>]) -> Result<(), String> {
    for c in running {
        let q = quarantine_of(c)?;
        if !q.is_empty() {
            let listed: Vec<String> = q
                .iter()
                .map(|q| format!("{} v{} ({})", q.volser, q.version, q.rejection))
                .collect();
            return Err(format!("{} quarantined {listed:?}", c.id));
        }
    }
    Ok(())
}

fn quarantine_of(c: &Cluster) -> Result<Vec<vtgrid_catalog::QuarantineRecord>, String> {
    c.probe()
        .journal_store()
        .quarantined()
        .map_err(|e| e.to_string())
}

/// **B134, strict.** A cluster may hold a version in quarantine only when a takeover fenced it:
/// the catalog records the volume as taken from that very cluster at the epoch the version was
/// written under or later (the version was never published before the takeover). With no
/// takeover in the system this is [`no_quarantine`]. Checked once the grid is healed and quiet
/// (every catalog the same).
pub fn quarantine_only_of_fenced_versions(running: &[Arc<Cluster>]) -> Result<(), String> {
    for c in running {
        for r in quarantine_of(c)? {
            let taken = c
                .probe()
                .view()
                .read(|s| s.volumes.get(&r.volser).and_then(|v| v.taken_from));
            let fenced = taken.is_some_and(|t| t.owner == c.id && r.epoch <= t.epoch);
            if !fenced {
                return Err(format!(
                    "B134 violated: {} quarantined {} v{} (epoch {}, {}) with no takeover that \
                     fenced it (taken from {taken:?})",
                    c.id, r.volser, r.version, r.epoch, r.rejection
                ));
            }
        }
    }
    Ok(())
}

/// The invariants of one simulation: the host's ledger and the volumes exempt from the
/// ownership checks (see [`b10_single_writable_owner`]).
#[derive(Clone, Default)]
pub struct Invariants {
    pub ledger: Ledger,
    pub exempt: BTreeSet<Volser>,
    /// Acknowledgements whose copy-mode vector [`b37_b39_acknowledged_copies_held`] has checked.
    settled: Arc<Mutex<BTreeSet<(Volser, u64, u8)>>>,
}

impl Invariants {
    pub fn new(ledger: Ledger) -> Invariants {
        Invariants {
            ledger,
            exempt: BTreeSet::new(),
            settled: Arc::default(),
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
        b15_b37_acknowledged_versions_survive(&running, &self.ledger, &self.exempt)?;
        let mut settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        b37_b39_acknowledged_copies_held(&running, &self.ledger, &mut settled)
    }

    /// What must hold at the end, once the test has healed the grid and waited for quiet.
    pub fn at_end(&self, grid: &SimGrid) -> Result<(), String> {
        self.after_step(grid)?;
        let running = grid.running();
        b15_catalogs_converge(&running)?;
        catalog_indexes_in_step(&running)?;
        b45_every_copy_verified(&running)
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
