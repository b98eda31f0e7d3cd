//! Property test of the catalog state machine (issue 9, "the state machine trusts its commands").
//!
//! Every replica applies whatever the Raft log holds, so `CatalogState::apply` must take any
//! command that deserializes, from any state the rules can reach, and:
//! - never panic;
//! - leave the state exactly as it was when it refuses;
//! - keep the catalog's invariants after every command (below, `check_state`: the volume indexes
//!   among them, see `vtgrid_core::volumes`), and change only
//!   the volumes the command names, never moving an epoch or a version back (`check_step`).
//!
//! Commands come from two sources: structurally arbitrary commands built from pools that hit the
//! state's volumes, clusters, categories and classes often enough to be accepted (and extremes:
//! epochs and versions at `u64::MAX`, witnesses, clusters outside the grid), and JSON that happens
//! to deserialize as a `CatalogCommand` (a valid command with one value replaced, or any JSON).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::Value;
use vtgrid_core::catalog::{NewVersion, VolumeChange};
use vtgrid_core::takeover::ServiceState;
use vtgrid_core::{
    CatalogCommand, CatalogState, Category, CategoryDefinition, ClusterId, ConstructName,
    Constructs, CopyModeVector, Digest, Epoch, ManagementClass, SyncFailure, Volser, VolserRange,
};

fn c(n: u8) -> ClusterId {
    ClusterId::new(n).unwrap()
}

// ---------------------------------------------------------------- the starting state

/// The membership sets the starting state may have; all hold C0, which inserts. The empty set is
/// a state with no membership applied (then any data cluster id counts as a member).
const MEMBER_SETS: &[&[u8]] = &[&[], &[0, 1, 2], &[0, 1, 8], &[0, 3, 9, 10]];

/// A grid with two categories, a class, the given members, ten volumes A00000..A00009 of C0, and
/// two volumes at the end of their counters: B00000 at epoch `u64::MAX`, B00001 at version
/// `u64::MAX`.
fn starting_state(members: &[u8]) -> CatalogState {
    let mut s = CatalogState::default();
    s.set_members(members.iter().map(|n| c(*n)));
    for (category, name, fast_ready) in [(1, "SCRATCH", true), (0xF, "PRIVATE", false)] {
        s.apply(&CatalogCommand::DefineCategory(CategoryDefinition {
            category: Category(category),
            name: name.into(),
            fast_ready,
        }))
        .unwrap();
    }
    // One mode per data cluster of the grid (three when no membership is applied).
    let data = members.iter().filter(|n| **n < 8).count();
    let vector = format!("{}D", "R".repeat(if data == 0 { 2 } else { data - 1 }));
    s.apply(&CatalogCommand::DefineManagementClass(ManagementClass {
        name: "MCRUN".parse().unwrap(),
        vectors: BTreeMap::from([(c(0), vector.parse().unwrap())]),
        on_sync_failure: SyncFailure::Fail,
    }))
    .unwrap();
    for range in ["A00000-A00009", "B00000-B00001"] {
        s.apply(&CatalogCommand::InsertVolumes {
            by: c(0),
            range: range.parse().unwrap(),
            category: Category(1),
        })
        .unwrap();
    }
    s.volumes
        .edit(&"B00000".parse().unwrap(), |r| {
            r.token.epoch = Epoch(u64::MAX)
        })
        .unwrap();
    s.volumes
        .edit(&"B00001".parse().unwrap(), |r| r.version = u64::MAX)
        .unwrap();
    check_state(&s);
    s
}

// ---------------------------------------------------------------- strategies

fn cluster() -> impl Strategy<Value = ClusterId> {
    prop_oneof![3 => (0u8..4).prop_map(c), 1 => (0u8..16).prop_map(c)]
}

fn volser() -> impl Strategy<Value = Volser> {
    prop_oneof![
        6 => (0u32..10).prop_map(|n| format!("A{n:05}").parse().unwrap()),
        2 => (0u32..4).prop_map(|n| format!("B{n:05}").parse().unwrap()),
        1 => "[A-Z0-9]{6}".prop_map(|s| s.parse().unwrap()),
    ]
}

fn range() -> impl Strategy<Value = VolserRange> {
    prop_oneof![
        volser().prop_map(VolserRange::single),
        (
            prop::sample::select(vec!["A00", "B00", "C00", "Z9"]),
            0u32..990,
            0u32..30
        )
            .prop_map(|(prefix, first, len)| {
                let width = 6 - prefix.len();
                let last = (first + len).min(10u32.pow(width as u32) - 1);
                format!("{prefix}{first:0width$}-{prefix}{last:0width$}")
                    .parse()
                    .unwrap()
            }),
    ]
}

fn epoch() -> impl Strategy<Value = Epoch> {
    prop_oneof![
        6 => (1u64..4).prop_map(Epoch),
        1 => Just(Epoch(0)),
        1 => Just(Epoch(u64::MAX)),
        1 => any::<u64>().prop_map(Epoch),
    ]
}

fn version_number() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..4,
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => any::<u64>(),
    ]
}

fn digest() -> impl Strategy<Value = Digest> {
    prop_oneof![Just(Digest::EMPTY), (0u8..3).prop_map(|b| Digest([b; 32]))]
}

fn category() -> impl Strategy<Value = Category> {
    prop_oneof![
        4 => prop::sample::select(vec![Category(1), Category(0xF)]),
        1 => (1u16..=u16::MAX).prop_map(Category),
    ]
}

fn construct_name() -> impl Strategy<Value = ConstructName> {
    prop::sample::select(vec!["MCRUN", "MCSYNC", "NOPE", "SC1"]).prop_map(|n| n.parse().unwrap())
}

fn vector() -> impl Strategy<Value = CopyModeVector> {
    prop::sample::select(vec!["RD", "RND", "SSD", "NNR", "RRRRRRRR", "N"])
        .prop_map(|v| v.parse().unwrap())
}

fn class() -> impl Strategy<Value = ManagementClass> {
    (
        construct_name(),
        prop::collection::btree_map(cluster(), vector(), 0..3),
        prop_oneof![Just(SyncFailure::Fail), Just(SyncFailure::Defer)],
    )
        .prop_map(|(name, vectors, on_sync_failure)| ManagementClass {
            name,
            vectors,
            on_sync_failure,
        })
}

fn constructs() -> impl Strategy<Value = Constructs> {
    (
        prop::option::of(construct_name()),
        prop::option::of(construct_name()),
    )
        .prop_map(|(management_class, storage_class)| Constructs {
            management_class,
            storage_class,
            ..Constructs::default()
        })
}

fn new_version() -> impl Strategy<Value = NewVersion> {
    (
        version_number(),
        any::<u64>(),
        digest(),
        cluster(),
        prop::option::of(vector()),
        prop::collection::vec(cluster(), 0..3),
    )
        .prop_map(
            |(version, size, digest, written_at, copy_modes, held_by)| NewVersion {
                version,
                size,
                digest,
                written_at,
                copy_modes,
                held_by,
            },
        )
}

fn change() -> impl Strategy<Value = VolumeChange> {
    (
        prop::option::of(category()),
        prop::option::of(constructs()),
        prop::option::of(new_version()),
    )
        .prop_map(|(category, constructs, version)| VolumeChange {
            category,
            constructs,
            version,
        })
}

fn command() -> BoxedStrategy<CatalogCommand> {
    prop_oneof![
        1 => (cluster(), range(), category()).prop_map(|(by, range, category)| {
            CatalogCommand::InsertVolumes { by, range, category }
        }),
        3 => (volser(), cluster(), cluster(), epoch()).prop_map(|(volser, from, to, epoch)| {
            CatalogCommand::Transfer { volser, from, to, epoch }
        }),
        2 => (volser(), cluster(), epoch())
            .prop_map(|(volser, by, epoch)| CatalogCommand::Reclaim { volser, by, epoch }),
        4 => (volser(), cluster(), epoch(), change()).prop_map(|(volser, by, epoch, change)| {
            CatalogCommand::UpdateVolume { volser, by, epoch, change }
        }),
        1 => (category(), "[A-Z ]{0,8}", any::<bool>()).prop_map(|(category, name, fast_ready)| {
            CatalogCommand::DefineCategory(CategoryDefinition { category, name, fast_ready })
        }),
        1 => class().prop_map(CatalogCommand::DefineManagementClass),
        3 => (volser(), version_number(), cluster(), prop::option::weighted(0.8, digest())).prop_map(
            |(volser, version, cluster, digest)| CatalogCommand::CopyDone {
                volser,
                version,
                cluster,
                digest,
            }
        ),
        1 => Just(CatalogCommand::Barrier),
        1 => cluster().prop_map(|cluster| CatalogCommand::CopiesLost { cluster }),
        2 => (cluster(), cluster(), prop::bool::weighted(0.8)).prop_map(|(failed, to, granted)| {
            CatalogCommand::SetWriteTakeover { failed, to, granted }
        }),
        3 => (volser(), cluster(), epoch())
            .prop_map(|(volser, to, epoch)| CatalogCommand::Takeover { volser, to, epoch }),
        1 => (cluster(), prop::option::of(prop::sample::select(vec![
            ServiceState::Prep,
            ServiceState::Service,
        ])))
            .prop_map(|(cluster, state)| CatalogCommand::SetService { cluster, state }),
        1 => cluster().prop_map(|cluster| CatalogCommand::ClusterRestored { cluster }),
    ]
    // Boxed: the unboxed union of this many arms overflows the test thread's stack in debug.
    .boxed()
}

/// A JSON value to put where a field was: the kinds of wrong a damaged or forged entry holds.
fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop::sample::select(vec![0i64, 1, 5, 6, 7, 8, 15, 16, 200, 255, 256, -1])
            .prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        prop::sample::select(vec![
            "", "A00000", "A00009", "B00000", "a00001", "A0000", "0000", "0001", "FFFF", "SSS",
            "RD", "MCRUN", "defer",
        ])
        .prop_map(Value::from),
        "[A-Z0-9]{0,7}".prop_map(Value::from),
    ]
}

/// Any JSON, small.
fn any_json() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "InsertVolumes",
                    "Transfer",
                    "Reclaim",
                    "UpdateVolume",
                    "CopyDone",
                    "DefineCategory",
                    "DefineManagementClass",
                    "SetWriteTakeover",
                    "Takeover",
                    "SetService",
                    "ClusterRestored",
                    "failed",
                    "granted",
                    "state",
                    "volser",
                    "by",
                    "from",
                    "to",
                    "epoch",
                    "range",
                    "first",
                    "last",
                    "prefix_len",
                    "category",
                    "change",
                    "version",
                    "cluster",
                    "digest",
                    "held_by",
                    "written_at",
                ])
                .prop_map(String::from),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every place in `value` a leaf could be replaced, as paths of keys and indexes.
fn leaf_paths(value: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(path.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                path.push(Value::from(k.as_str()));
                leaf_paths(v, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Value::from(i));
                leaf_paths(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn replace_at(value: &mut Value, path: &[Value], with: Value) {
    let mut at = value;
    for step in path {
        at = match step {
            Value::String(k) => &mut at[k.as_str()],
            Value::Number(i) => &mut at[i.as_u64().unwrap() as usize],
            _ => unreachable!("paths hold keys and indexes"),
        };
    }
    *at = with;
}

/// A valid command's JSON with one value (or the whole command) replaced, or any JSON at all.
fn command_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (command(), any::<prop::sample::Index>(), json_leaf()).prop_map(
            |(command, at, leaf)| {
                let mut json = serde_json::to_value(&command).unwrap();
                let mut paths = Vec::new();
                leaf_paths(&json, &mut Vec::new(), &mut paths);
                let path: &Vec<Value> = at.get(&paths);
                replace_at(&mut json, path, leaf);
                json
            }
        ),
        1 => any_json(),
    ]
}

/// One step of a run: a command built as a value, or whatever a piece of JSON deserializes to.
#[derive(Clone, Debug)]
enum Step {
    Built(CatalogCommand),
    Json(Value),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => command().prop_map(Step::Built),
        1 => command_json().prop_map(Step::Json),
    ]
}

// ---------------------------------------------------------------- the properties

/// What a cluster must be to own a volume or be consistent at it: a data cluster (0..7) and, once
/// the catalog knows its members, one of them. Written here apart from the catalog's own rule.
fn data_member(state: &CatalogState, cluster: ClusterId) -> bool {
    cluster.get() < 8 && (state.members.is_empty() || state.members.contains(&cluster))
}

/// What holds of every state the rules can reach.
fn check_state(state: &CatalogState) {
    assert!(
        state.volumes.indexes_match_records(),
        "the scratch, owed-copy and owner indexes drifted from the records"
    );
    for (volser, record) in &state.volumes {
        assert_eq!(*volser, record.volser, "a record under another VOLSER");
        assert!(
            data_member(state, record.token.owner),
            "{volser} is owned by {}, not a data member of {:?}",
            record.token.owner,
            state.members
        );
        assert!(record.token.epoch >= Epoch(1), "{volser} at epoch 0");
        for (holder, version) in &record.consistent_at {
            assert!(
                data_member(state, *holder),
                "{volser} is consistent at {holder}, not a data member"
            );
            assert!(
                *version <= record.version,
                "{volser}: {holder} consistent at version {version}, above the current {}",
                record.version
            );
        }
        assert!(
            state.categories.contains_key(&record.category),
            "{volser} in the undefined category {}",
            record.category
        );
        if let Some(mc) = &record.constructs.management_class {
            assert!(
                state.management_classes.contains_key(mc),
                "{volser} names the undefined class {mc}"
            );
        }
    }
    for (name, class) in &state.management_classes {
        assert_eq!(*name, class.name);
        assert!(
            class.vectors.keys().all(|c| c.get() < 8),
            "class {name} defined for a witness"
        );
    }
    for (category, def) in &state.categories {
        assert_eq!(*category, def.category);
    }
    for (failed, to) in &state.write_takeovers {
        assert!(failed != to, "a grant of {failed} to itself");
        assert!(
            data_member(state, *failed) && data_member(state, *to),
            "a grant {failed} -> {to} outside the data members"
        );
    }
    for cluster in state.service.keys() {
        assert!(
            data_member(state, *cluster),
            "{cluster} in service, not a data member"
        );
    }
}

/// What holds between the state before a command and the state after it.
fn check_step(
    before: &CatalogState,
    command: &CatalogCommand,
    accepted: bool,
    after: &CatalogState,
) {
    if !accepted {
        assert_eq!(after, before, "a refused {command:?} changed the state");
        return;
    }
    assert_eq!(
        after.members, before.members,
        "a command changed the members"
    );
    if let CatalogCommand::Takeover { volser, to, .. } = command {
        // Only with a grant or service mode standing before it (a majority is not a direction).
        let owner = before.volumes[volser].token.owner;
        assert!(
            before.may_take_over(owner, *to),
            "{command:?} accepted with no grant from {owner}"
        );
    }
    if !matches!(
        command,
        CatalogCommand::SetWriteTakeover { .. } | CatalogCommand::ClusterRestored { .. }
    ) {
        assert_eq!(
            after.write_takeovers, before.write_takeovers,
            "{command:?} changed the takeover grants"
        );
    }
    if let CatalogCommand::CopiesLost { cluster } = command {
        // Names no volume: it may take `cluster` out of any volume's copies, and only that.
        for (volser, old) in &before.volumes {
            let mut expected = old.clone();
            expected.consistent_at.remove(cluster);
            assert_eq!(
                after.volumes.get(volser),
                Some(&expected),
                "{command:?} on {volser}"
            );
        }
        assert_eq!(after.volumes.len(), before.volumes.len());
        return;
    }
    let named: BTreeSet<Volser> = command.volume_keys().into_iter().collect();
    for (volser, old) in &before.volumes {
        let new = after
            .volumes
            .get(volser)
            .unwrap_or_else(|| panic!("{command:?} removed {volser}"));
        if !named.contains(volser) {
            assert_eq!(
                new, old,
                "{command:?} changed {volser}, which it does not name"
            );
            continue;
        }
        assert!(
            new.token.epoch >= old.token.epoch,
            "{volser}: epoch went back"
        );
        assert!(new.version >= old.version, "{volser}: version went back");
        if new.token.owner != old.token.owner {
            assert!(
                new.token.epoch > old.token.epoch,
                "{volser}: owner changed without a new epoch"
            );
        }
        if new.version == old.version {
            assert_eq!(
                new.digest, old.digest,
                "{volser}: same version, other bytes"
            );
            for (holder, v) in &old.consistent_at {
                assert!(
                    new.consistent_at.get(holder) >= Some(v),
                    "{volser}: {holder} lost its copy of the current version"
                );
            }
        }
    }
    for volser in after.volumes.keys() {
        assert!(
            before.volumes.contains_key(volser) || named.contains(volser),
            "{command:?} created {volser}, which it does not name"
        );
    }
}

/// Apply `command` to `state` and check both properties.
fn apply_and_check(state: &mut CatalogState, command: &CatalogCommand) {
    let before = state.clone();
    let accepted = state.apply(command).is_ok();
    check_step(&before, command, accepted, state);
    check_state(state);
}

proptest! {
    #[test]
    fn apply_never_panics_refusals_change_nothing_and_invariants_hold(
        members in prop::sample::select(MEMBER_SETS),
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let mut state = starting_state(members);
        for step in &steps {
            match step {
                Step::Built(command) => apply_and_check(&mut state, command),
                Step::Json(json) => {
                    if let Ok(command) = serde_json::from_value::<CatalogCommand>(json.clone()) {
                        // What deserializes is valid as a value; it round-trips unchanged.
                        let again = serde_json::to_value(&command).unwrap();
                        prop_assert_eq!(
                            serde_json::from_value::<CatalogCommand>(again).unwrap(),
                            command.clone()
                        );
                        apply_and_check(&mut state, &command);
                    }
                }
            }
        }
    }
}

/// The generators reach the rules: enough commands are accepted, and enough refused, that the
/// property says something about both. (A generator that only made refused commands would pass
/// the property trivially.)
#[test]
fn the_generated_commands_are_both_accepted_and_refused() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let mut state = starting_state(&[0, 1, 8]);
    let (mut accepted, mut refused, mut from_json) = (BTreeMap::new(), 0, 0);
    for _ in 0..5000 {
        let step = step().new_tree(&mut runner).unwrap().current();
        let command = match step {
            Step::Built(command) => command,
            Step::Json(json) => match serde_json::from_value::<CatalogCommand>(json) {
                Ok(command) => {
                    from_json += 1;
                    command
                }
                Err(_) => continue,
            },
        };
        let kind = format!("{command:?}")
            .split([' ', '('])
            .next()
            .unwrap()
            .to_string();
        match state.apply(&command) {
            Ok(_) => *accepted.entry(kind).or_insert(0) += 1,
            Err(_) => refused += 1,
        }
    }
    for kind in [
        "InsertVolumes",
        "Transfer",
        "Reclaim",
        "UpdateVolume",
        "CopyDone",
        "DefineCategory",
        "DefineManagementClass",
        "SetWriteTakeover",
        "Takeover",
    ] {
        assert!(
            accepted.get(kind).copied().unwrap_or(0) >= 5,
            "few accepted {kind}: {accepted:?}"
        );
    }
    assert!(refused >= 300, "{refused} refused");
    assert!(from_json >= 50, "{from_json} commands came from JSON");
}
