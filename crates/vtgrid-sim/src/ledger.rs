//! What the tape host was told, kept for the invariants (B15, B37; DESIGN §8 "no acknowledged
//! version lost").
//!
//! The host records every rewind-unload that returned success with a new version (an
//! acknowledgement), and every write whose outcome it never heard (the unload failed or timed
//! out: the version may or may not exist). The driver reads the ledger after each step; the
//! client writes it. Both run on turmoil's one thread, so a plain mutex is enough.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vtgrid_core::{Digest, Volser};
use vtgrid_proto::pb;

/// One acknowledged rewind-unload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub version: u64,
    /// BLAKE3 of the version, hex, as the unload reported it.
    pub digest: String,
    /// The same digest as bytes (`Digest::EMPTY` if the hex did not parse), for cheap checks.
    pub raw: Digest,
    /// The cluster that answered the unload (the mount cluster, which wrote the version).
    pub written_at: u8,
    /// Where the unload said the version was durable when it returned, when the host recorded
    /// the whole answer ([`Ledger::acknowledge_unload`]); `None` for a bare acknowledgement.
    pub copies: Option<AckedCopies>,
}

/// What a rewind-unload told the host about copies (B37, B39, B42).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedCopies {
    /// Clusters holding the version durably when the unload returned (`copies`): the writer,
    /// the RUN clusters that pulled it, and (with Sync) the sync peer.
    pub holders: Vec<u8>,
    /// Some RUN or Sync copy was not made before the unload returned and was queued instead
    /// (`immediate_copy_deferred`; with Sync also `sync_deferred`).
    pub deferred: bool,
}

#[derive(Default)]
struct Entries {
    acked: BTreeMap<Volser, Vec<Ack>>,
    /// Digests of writes with no answer, per volume.
    in_doubt: BTreeMap<Volser, Vec<String>>,
}

/// The host's record of acknowledged and in-doubt versions. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Ledger(Arc<Mutex<Entries>>);

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rewind-unload of `volser` returned success with `version` and `digest`, at cluster `at`.
    /// Prefer [`Ledger::acknowledge_unload`], which also keeps what the unload said of copies.
    pub fn acknowledge(&self, volser: Volser, version: u64, digest: &str, at: u8) {
        self.push_ack(volser, version, digest, at, None);
    }

    /// A rewind-unload at cluster `at` that returned success and committed a version: the
    /// version, its digest, the clusters that held it durably (`copies`) and whether a RUN copy
    /// was deferred, for the copy invariant (B37, B39).
    pub fn acknowledge_unload(&self, volser: Volser, done: &pb::RewindUnloadResponse, at: u8) {
        let copies = AckedCopies {
            holders: done
                .copies
                .iter()
                .filter_map(|c| u8::try_from(*c).ok())
                .collect(),
            deferred: done.immediate_copy_deferred || done.sync_deferred,
        };
        self.push_ack(volser, done.version, &done.digest, at, Some(copies));
    }

    fn push_ack(
        &self,
        volser: Volser,
        version: u64,
        digest: &str,
        at: u8,
        copies: Option<AckedCopies>,
    ) {
        self.lock().acked.entry(volser).or_default().push(Ack {
            version,
            digest: digest.to_string(),
            raw: parse_digest(digest).unwrap_or(Digest::EMPTY),
            written_at: at,
            copies,
        });
    }

    /// A write of `volser` with this digest got no answer: it may or may not have committed.
    pub fn in_doubt(&self, volser: Volser, digest: &str) {
        self.lock()
            .in_doubt
            .entry(volser)
            .or_default()
            .push(digest.to_string());
    }

    /// Run `f` over every acknowledged version, by volume, oldest first.
    pub fn each_acked<E>(&self, mut f: impl FnMut(Volser, &Ack) -> Result<(), E>) -> Result<(), E> {
        let entries = self.lock();
        for (volser, acks) in &entries.acked {
            for ack in acks {
                f(*volser, ack)?;
            }
        }
        Ok(())
    }

    /// Two acknowledgements of one version number of a volume (not in `skip`) with different
    /// digests that `excused` does not excuse, if any: the first such pair, in acknowledgement
    /// order.
    pub fn first_reused_version(
        &self,
        skip: &std::collections::BTreeSet<Volser>,
        excused: impl Fn(Volser, &Ack, &Ack) -> bool,
    ) -> Option<(Volser, Ack, Ack)> {
        let entries = self.lock();
        for (volser, acks) in entries.acked.iter().filter(|(v, _)| !skip.contains(v)) {
            for (i, a) in acks.iter().enumerate() {
                if let Some(b) = acks[i + 1..].iter().find(|b| {
                    b.version == a.version && b.digest != a.digest && !excused(*volser, a, b)
                }) {
                    return Some((*volser, a.clone(), b.clone()));
                }
            }
        }
        None
    }

    /// The newest acknowledged version of each volume.
    pub fn latest(&self) -> BTreeMap<Volser, Ack> {
        self.latest_kept(|_, _| false)
    }

    /// The latest acknowledged version of each volume among those `set_aside` keeps (a test
    /// sets aside versions a takeover fenced, B134).
    pub fn latest_kept(&self, set_aside: impl Fn(Volser, &Ack) -> bool) -> BTreeMap<Volser, Ack> {
        self.lock()
            .acked
            .iter()
            .filter_map(|(v, acks)| {
                acks.iter()
                    .filter(|a| !set_aside(*v, a))
                    .max_by_key(|a| a.version)
                    .map(|a| (*v, a.clone()))
            })
            .collect()
    }

    /// Every digest acknowledged for `version` of `volser`, in acknowledgement order: one, or
    /// (only across a takeover, see `invariants::one_version_per_number`) the fenced owner's
    /// and the taker's.
    pub fn acked_digests(&self, volser: Volser, version: u64) -> Vec<String> {
        self.lock()
            .acked
            .get(&volser)
            .map_or_else(Vec::new, |acks| {
                acks.iter()
                    .filter(|a| a.version == version)
                    .map(|a| a.digest.clone())
                    .collect()
            })
    }

    /// Is `digest` one the host wrote to `volser` (acknowledged or in doubt)?
    pub fn wrote(&self, volser: Volser, digest: &str) -> bool {
        let entries = self.lock();
        entries
            .acked
            .get(&volser)
            .is_some_and(|a| a.iter().any(|a| a.digest == digest))
            || entries
                .in_doubt
                .get(&volser)
                .is_some_and(|d| d.iter().any(|d| d == digest))
    }

    /// Every volume the host wrote or tried to write.
    pub fn volumes(&self) -> Vec<Volser> {
        let entries = self.lock();
        let mut v: Vec<Volser> = entries
            .acked
            .keys()
            .chain(entries.in_doubt.keys())
            .copied()
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A BLAKE3 digest from its 64 hex digits.
pub fn parse_digest(hex: &str) -> Option<Digest> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(Digest(out))
}
