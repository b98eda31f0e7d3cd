//! The catalog's volume records and the indexes kept beside them (issue 14: a catalog of millions
//! of volumes).
//!
//! A host's scratch mount asks "a volume of category K that I own", the copy engine "what do I
//! owe", a status answer "how many volumes, how many mine", the grid flags "does any cluster owe a
//! RUN copy". Walking every record for each of those makes every request cost O(volumes). So
//! [`Volumes`] keeps, next to the records, the answers as indexes and counters, and it is the only
//! way to change a record: [`Volumes::insert`] and [`Volumes::edit`] take a record out of every
//! index before the change and put it back after, so the indexes cannot drift from the records
//! (one rule, one place).
//!
//! ```text
//!   records:  BTreeMap<Volser, VolumeRecord>            the truth, serialized as before
//!   placed:   (category, owner)  -> {volser}            scratch mounts: O(log n) to the first
//!   owed:     cluster            -> {volser}            copy_duty(record, cluster) is Some
//!   owned:    owner              -> count               status, gauges
//!   duties:   (cluster, priority) -> count              grid flags (IMMEDIATE_COPY_DEFERRED, ...)
//! ```
//!
//! The indexes are derived: they are never serialized, a snapshot holds the records alone (the
//! format it always had) and reading one back rebuilds them.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::category::Category;
use crate::cluster::{ClusterId, MAX_CLUSTERS};
use crate::copy::{copy_duty, CopyPriority};
use crate::volser::Volser;
use crate::volume::VolumeRecord;

/// Every volume record of the catalog, with its indexes. Reads go through [`std::ops::Deref`] to
/// the record map (read-only: there is no `DerefMut`); changes through [`Volumes::insert`] and
/// [`Volumes::edit`].
#[derive(Clone, Default)]
pub struct Volumes {
    records: BTreeMap<Volser, VolumeRecord>,
    placed: BTreeMap<(Category, ClusterId), BTreeSet<Volser>>,
    owed: BTreeMap<ClusterId, BTreeSet<Volser>>,
    owned: BTreeMap<ClusterId, u64>,
    duties: BTreeMap<(ClusterId, CopyPriority), u64>,
}

impl Volumes {
    /// Add `record`, replacing one of the same VOLSER.
    pub fn insert(&mut self, record: VolumeRecord) {
        if let Some(old) = self.records.remove(&record.volser) {
            self.unindex(&old);
        }
        self.index(&record);
        self.records.insert(record.volser, record);
    }

    /// Change the record of `volser` with `f`, keeping every index in step. `None` when there is
    /// no such volume.
    pub fn edit<R>(
        &mut self,
        volser: &Volser,
        f: impl FnOnce(&mut VolumeRecord) -> R,
    ) -> Option<R> {
        let mut record = self.records.remove(volser)?;
        self.unindex(&record);
        let out = f(&mut record);
        debug_assert_eq!(record.volser, *volser, "an edit does not rename a volume");
        self.index(&record);
        self.records.insert(*volser, record);
        Some(out)
    }

    /// Change every record with `f` (commands that touch the whole grid: a lost cluster's copies,
    /// a forced standalone). O(n), as such a command is.
    pub fn edit_all(&mut self, mut f: impl FnMut(&mut VolumeRecord)) {
        let volsers: Vec<Volser> = self.records.keys().copied().collect();
        for volser in volsers {
            self.edit(&volser, &mut f);
        }
    }

    /// Volumes of `category` owned by `owner`, in VOLSER order, from just after `after` (the
    /// cursor of a caller that takes them a few at a time).
    pub fn placed(
        &self,
        category: Category,
        owner: ClusterId,
        after: Option<Volser>,
    ) -> impl Iterator<Item = &VolumeRecord> + '_ {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.placed
            .get(&(category, owner))
            .into_iter()
            .flat_map(move |set| set.range((start, Bound::Unbounded)))
            .filter_map(|v| self.records.get(v))
    }

    /// The owners that hold at least one volume of `category`, in id order.
    pub fn owners_of(&self, category: Category) -> impl Iterator<Item = ClusterId> + '_ {
        self.placed
            .range((category, ClusterId::FIRST)..)
            .take_while(move |((c, _), _)| *c == category)
            .map(|((_, owner), _)| *owner)
    }

    /// The volumes whose current version `cluster` still owes a copy of ([`copy_duty`]), in
    /// VOLSER order.
    pub fn owed_by(&self, cluster: ClusterId) -> impl Iterator<Item = &VolumeRecord> + '_ {
        self.owed
            .get(&cluster)
            .into_iter()
            .flatten()
            .filter_map(|v| self.records.get(v))
    }

    /// Does `cluster` owe any copy of `priority`?
    pub fn owes(&self, cluster: ClusterId, priority: CopyPriority) -> bool {
        self.duties
            .get(&(cluster, priority))
            .is_some_and(|n| *n > 0)
    }

    /// How many volumes `owner` owns.
    pub fn owned_by(&self, owner: ClusterId) -> u64 {
        self.owned.get(&owner).copied().unwrap_or(0)
    }

    fn index(&mut self, r: &VolumeRecord) {
        let owner = r.token.owner;
        self.placed
            .entry((r.category, owner))
            .or_default()
            .insert(r.volser);
        *self.owned.entry(owner).or_default() += 1;
        for (cluster, priority) in duties(r) {
            self.owed.entry(cluster).or_default().insert(r.volser);
            *self.duties.entry((cluster, priority)).or_default() += 1;
        }
    }

    fn unindex(&mut self, r: &VolumeRecord) {
        let owner = r.token.owner;
        remove_from(&mut self.placed, (r.category, owner), &r.volser);
        decrement(&mut self.owned, owner);
        for (cluster, priority) in duties(r) {
            remove_from(&mut self.owed, cluster, &r.volser);
            decrement(&mut self.duties, (cluster, priority));
        }
    }

    /// Do the indexes, as the edits left them, equal the ones rebuilt from the records? (The
    /// property test of `apply` and the simulation's invariants ask after every step.)
    pub fn indexes_match_records(&self) -> bool {
        let fresh = Volumes::rebuilt(self.records.clone());
        self.placed == fresh.placed
            && self.owed == fresh.owed
            && self.owned == fresh.owned
            && self.duties == fresh.duties
    }

    /// The indexes rebuilt from the records alone (what reading a snapshot does); a test compares
    /// it with the indexes kept by edits.
    fn rebuilt(records: BTreeMap<Volser, VolumeRecord>) -> Volumes {
        let mut v = Volumes::default();
        for r in records.values() {
            v.index(r);
        }
        v.records = records;
        v
    }
}

/// The copies a record's current version is owed, by cluster: only clusters with an entry in its
/// copy-mode vector can owe one.
fn duties(r: &VolumeRecord) -> impl Iterator<Item = (ClusterId, CopyPriority)> + '_ {
    let len = r.copy_modes.as_ref().map_or(0, |m| m.modes().len());
    (0..len.min(usize::from(MAX_CLUSTERS)))
        .filter_map(|i| ClusterId::new(i as u8).ok())
        .filter_map(|c| copy_duty(r, c).map(|p| (c, p)))
}

fn remove_from<K: Ord>(map: &mut BTreeMap<K, BTreeSet<Volser>>, key: K, volser: &Volser) {
    if let Some(set) = map.get_mut(&key) {
        set.remove(volser);
        if set.is_empty() {
            map.remove(&key);
        }
    }
}

fn decrement<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

impl std::ops::Deref for Volumes {
    type Target = BTreeMap<Volser, VolumeRecord>;

    fn deref(&self) -> &Self::Target {
        &self.records
    }
}

impl<'a> IntoIterator for &'a Volumes {
    type Item = (&'a Volser, &'a VolumeRecord);
    type IntoIter = std::collections::btree_map::Iter<'a, Volser, VolumeRecord>;

    fn into_iter(self) -> Self::IntoIter {
        self.records.iter()
    }
}

impl PartialEq for Volumes {
    fn eq(&self, other: &Self) -> bool {
        self.records == other.records
    }
}

impl Eq for Volumes {}

impl std::fmt::Debug for Volumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.records.fmt(f)
    }
}

impl Serialize for Volumes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.records.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Volumes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<Volser, VolumeRecord>::deserialize(d).map(Volumes::rebuilt)
    }
}

impl FromIterator<VolumeRecord> for Volumes {
    fn from_iter<I: IntoIterator<Item = VolumeRecord>>(iter: I) -> Self {
        Volumes::rebuilt(iter.into_iter().map(|r| (r.volser, r)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Epoch, OwnershipToken};
    use crate::volume::Digest;

    fn c(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    fn record(volser: &str, owner: u8, category: u16) -> VolumeRecord {
        VolumeRecord {
            volser: volser.parse().unwrap(),
            token: OwnershipToken {
                owner: c(owner),
                epoch: Epoch::FIRST,
            },
            category: Category(category),
            constructs: Default::default(),
            version: 0,
            size: 0,
            digest: Digest::EMPTY,
            consistent_at: BTreeMap::from([(c(owner), 0)]),
            copy_modes: None,
            taken_from: None,
        }
    }

    fn written(r: &mut VolumeRecord, modes: &str) {
        r.version += 1;
        r.copy_modes = Some(modes.parse().unwrap());
        r.consistent_at = BTreeMap::from([(r.token.owner, r.version)]);
    }

    fn assert_in_step(v: &Volumes) {
        assert!(v.indexes_match_records(), "indexes drifted: {v:?}");
    }

    #[test]
    fn a_scratch_lookup_finds_the_category_and_owner_from_a_cursor() {
        let mut v = Volumes::default();
        for (n, owner, cat) in [(1, 0, 1), (2, 1, 1), (3, 0, 1), (4, 0, 2), (5, 0, 1)] {
            v.insert(record(&format!("A0000{n}"), owner, cat));
        }
        let cat = Category(1);
        let names = |after: Option<&str>| {
            v.placed(cat, c(0), after.map(|a| a.parse().unwrap()))
                .map(|r| r.volser.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(None), ["A00001", "A00003", "A00005"]);
        assert_eq!(names(Some("A00003")), ["A00005"]);
        assert_eq!(v.owners_of(cat).collect::<Vec<_>>(), [c(0), c(1)]);
        assert_eq!(
            (v.owned_by(c(0)), v.owned_by(c(1)), v.owned_by(c(2))),
            (4, 1, 0)
        );
        assert_in_step(&v);
    }

    #[test]
    fn edits_move_a_volume_between_indexes_and_counters() {
        let mut v = Volumes::default();
        v.insert(record("A00001", 0, 1));
        let vol: Volser = "A00001".parse().unwrap();
        v.edit(&vol, |r| written(r, "RRD")).unwrap();
        assert_eq!(v.owed_by(c(1)).count(), 1);
        assert_eq!(v.owed_by(c(2)).count(), 1);
        assert!(v.owes(c(1), CopyPriority::ImmediateDeferred));
        assert!(v.owes(c(2), CopyPriority::Deferred));
        assert!(
            !v.owes(c(0), CopyPriority::ImmediateDeferred),
            "the writer holds it"
        );
        v.edit(&vol, |r| {
            r.consistent_at.insert(c(1), r.version);
            r.token.owner = c(2);
            r.category = Category(2);
        });
        assert_eq!(v.owed_by(c(1)).count(), 0);
        assert!(!v.owes(c(1), CopyPriority::ImmediateDeferred));
        assert_eq!((v.owned_by(c(0)), v.owned_by(c(2))), (0, 1));
        assert_eq!(v.placed(Category(1), c(0), None).count(), 0);
        assert_eq!(v.placed(Category(2), c(2), None).count(), 1);
        assert_in_step(&v);
        assert!(v.edit(&"B00001".parse().unwrap(), |_| ()).is_none());
    }

    #[test]
    fn a_snapshot_holds_the_records_alone_and_reads_back_with_its_indexes() {
        let mut v = Volumes::default();
        v.insert(record("A00001", 0, 1));
        v.edit(&"A00001".parse().unwrap(), |r| written(r, "RR"))
            .unwrap();
        v.insert(record("A00002", 1, 1));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json, serde_json::to_value(&v.records).unwrap());
        let back: Volumes = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
        assert_in_step(&back);
        assert_eq!(back.owed_by(c(1)).count(), 1);
    }
}
