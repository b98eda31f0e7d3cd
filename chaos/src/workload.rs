//! The hosts of a chaos run (issue 11 item 3): rounds of the seed's failover test mix (10
//! specific reads and 5 scratch writes, from the failover white paper) plus random specific
//! writes and appends under RUN, Deferred, Sync and No Copy classes, through every cluster. Each
//! operation is recorded as it ends ([`Recorder`]), with what the host saw: the version and
//! digest of an acknowledged unload or a read, the reason of a refusal, or that it does not know.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use vtgrid_proto::pb::host_service_client::HostServiceClient;
use vtgrid_proto::pb::{self, mount_request, write_request};
use vtgrid_proto::reason_of;

use crate::history::{CopyMode, Event, Fault, Op, OpKind, Outcome};

/// Deadline of one call (a mount, an unload, a whole stream): a call that meets it is
/// `Unknown` if it could have committed a version, else refused.
pub const CALL_DEADLINE: Duration = Duration::from_secs(60);
/// Data bytes per write message: the volume store's chunk size.
const CHUNK: usize = 1 << 20;

/// Writes the history as JSON lines, each flushed as it ends, stamped from one clock.
pub struct Recorder {
    out: Mutex<Box<dyn Write + Send>>,
    start: Instant,
    next_id: AtomicU64,
}

impl Recorder {
    pub fn new(out: impl Write + Send + 'static) -> Recorder {
        Recorder {
            out: Mutex::new(Box::new(out)),
            start: Instant::now(),
            next_id: AtomicU64::new(1),
        }
    }

    /// Milliseconds since the run began.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn record(&self, event: &Event) -> std::io::Result<()> {
        let line = serde_json::to_string(event).map_err(std::io::Error::other)?;
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(out, "{line}")?;
        out.flush()
    }

    pub fn fault(&self, fault: Fault) -> std::io::Result<()> {
        self.record(&Event::Fault(fault))
    }
}

/// A management class the workload writes under, with the copy mode it gives each data cluster
/// (index = cluster id), as the grid file defines it.
#[derive(Clone, Debug)]
pub struct Class {
    pub name: String,
    pub modes: Vec<CopyMode>,
}

/// One planned host operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    Read {
        volser: String,
    },
    ScratchWrite {
        category: String,
        class: String,
        len: usize,
    },
    Write {
        volser: String,
        class: String,
        len: usize,
    },
    Append {
        volser: String,
        class: String,
        len: usize,
    },
}

/// What a round draws from.
#[derive(Clone, Debug)]
pub struct Mix {
    /// Private volumes the round reads, writes and appends to.
    pub volumes: Vec<String>,
    /// The Fast Ready category scratch mounts take from.
    pub scratch_category: String,
    pub classes: Vec<String>,
    /// Random specific writes and appends per round, besides the failover mix.
    pub random_writes: usize,
    pub max_len: usize,
}

/// Round `n` of the run seeded `seed`: the failover mix (10 specific reads, 5 scratch writes)
/// and the random writes, in a seeded order, each through a seeded cluster.
pub fn round(seed: u64, n: u64, mix: &Mix, clusters: u8) -> Vec<(u8, Planned)> {
    let rng = &mut StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n);
    let pick = |rng: &mut StdRng, from: &[String]| from[rng.random_range(0..from.len())].clone();
    let mut ops = Vec::new();
    for _ in 0..10 {
        ops.push(Planned::Read {
            volser: pick(rng, &mix.volumes),
        });
    }
    for _ in 0..5 {
        ops.push(Planned::ScratchWrite {
            category: mix.scratch_category.clone(),
            class: pick(rng, &mix.classes),
            len: rng.random_range(1..=mix.max_len),
        });
    }
    for _ in 0..mix.random_writes {
        let (volser, class, len) = (
            pick(rng, &mix.volumes),
            pick(rng, &mix.classes),
            rng.random_range(1..=mix.max_len),
        );
        ops.push(if rng.random_bool(0.3) {
            Planned::Append { volser, class, len }
        } else {
            Planned::Write { volser, class, len }
        });
    }
    // Shuffle (Fisher-Yates from the seed) and spread over the clusters.
    for i in (1..ops.len()).rev() {
        ops.swap(i, rng.random_range(0..=i));
    }
    ops.into_iter()
        .map(|op| (rng.random_range(0..clusters.max(1)), op))
        .collect()
}

/// The bytes of operation `id` of the run seeded `seed`: reproducible, distinct per operation.
pub fn payload(seed: u64, id: u64, len: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed ^ id.rotate_left(32));
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    data
}

/// How a failed call ends an operation: a refusal with its reason, or (for a call that could
/// have committed a version: the unload) `Unknown` when the answer was lost.
pub fn outcome_of(status: &Status, could_commit: bool) -> Outcome {
    let lost = matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    ) && reason_of(status).is_none();
    if lost && could_commit {
        Outcome::Unknown
    } else {
        Outcome::Failed {
            reason: reason_of(status).map_or_else(
                || format!("{:?}", status.code()),
                |r| r.as_str_name().to_string(),
            ),
        }
    }
}

/// A host's connection to one cluster.
pub async fn connect(
    endpoint: &str,
) -> Result<HostServiceClient<Channel>, tonic::transport::Error> {
    let channel = Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_DEADLINE)
        .connect()
        .await?;
    Ok(HostServiceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// Run `planned` through `cluster` (at `endpoint`) and record it.
pub async fn run(
    recorder: &Recorder,
    seed: u64,
    cluster: u8,
    endpoint: &str,
    planned: &Planned,
    classes: &[Class],
) -> std::io::Result<Op> {
    let id = recorder.next_id();
    let start_ms = recorder.now_ms();
    let (kind, volser, class, len) = match planned {
        Planned::Read { volser } => (OpKind::Read, volser.clone(), None, 0),
        Planned::ScratchWrite { class, len, .. } => {
            (OpKind::ScratchWrite, String::new(), Some(class), *len)
        }
        Planned::Write { volser, class, len } => (OpKind::Write, volser.clone(), Some(class), *len),
        Planned::Append { volser, class, len } => {
            (OpKind::Append, volser.clone(), Some(class), *len)
        }
    };
    let mode = class.and_then(|name| {
        classes
            .iter()
            .find(|c| &c.name == name)
            .and_then(|c| c.modes.get(usize::from(cluster)).copied())
    });
    let data = payload(seed, id, len);
    // A full write's digest is the host's own, known before it starts: a write whose answer is
    // lost (`Unknown`) still names the bytes it may have committed. An append's covers bytes the
    // host did not keep, so it is the node's and only an acknowledged append has one.
    let digest =
        (kind.writes() && kind != OpKind::Append).then(|| blake3::hash(&data).to_hex().to_string());
    let mut op = Op {
        id,
        kind,
        cluster,
        volser,
        mode,
        start_ms,
        end_ms: start_ms,
        outcome: Outcome::Ok,
        version: None,
        digest,
    };
    let done = match connect(endpoint).await {
        Err(_) => Err(Outcome::Failed {
            reason: "UNREACHABLE".into(),
        }),
        Ok(mut host) => job(&mut host, planned, &data, &mut op).await,
    };
    if let Err(outcome) = done {
        op.outcome = outcome;
    }
    op.end_ms = recorder.now_ms();
    recorder.record(&Event::Op(op.clone()))?;
    Ok(op)
}

/// Mount, write or read, rewind-unload. `op` gets the volume, version and digest as the host
/// learns them.
async fn job(
    host: &mut HostServiceClient<Channel>,
    planned: &Planned,
    data: &[u8],
    op: &mut Op,
) -> Result<(), Outcome> {
    let (target, append, class) = match planned {
        Planned::Read { volser } => (mount_request::Target::Volser(volser.clone()), false, None),
        Planned::ScratchWrite {
            category, class, ..
        } => (
            mount_request::Target::ScratchCategory(category.clone()),
            false,
            Some(class.clone()),
        ),
        Planned::Write { volser, class, .. } => (
            mount_request::Target::Volser(volser.clone()),
            false,
            Some(class.clone()),
        ),
        Planned::Append { volser, class, .. } => (
            mount_request::Target::Volser(volser.clone()),
            true,
            Some(class.clone()),
        ),
    };
    let mounted = host
        .mount(pb::MountRequest {
            target: Some(target),
            append,
            constructs: class.map(|management_class| pb::Constructs {
                management_class,
                ..Default::default()
            }),
            private_category: String::new(),
        })
        .await
        .map_err(|s| outcome_of(&s, false))?
        .into_inner();
    op.volser = mounted.volser.clone();
    if op.kind == OpKind::Read {
        let read = read_all(host, &mounted.mount_id).await;
        // The read's answer is what it returned; its unload only ends the job.
        let _ = host
            .rewind_unload(pb::RewindUnloadRequest {
                mount_id: mounted.mount_id.clone(),
            })
            .await;
        let bytes = read.map_err(|s| outcome_of(&s, false))?;
        op.version = Some(mounted.version);
        op.digest = Some(blake3::hash(&bytes).to_hex().to_string());
        return Ok(());
    }
    let messages = std::iter::once(pb::WriteRequest {
        msg: Some(write_request::Msg::Open(pb::WriteOpen {
            mount_id: mounted.mount_id.clone(),
        })),
    })
    .chain(data.chunks(CHUNK).map(|c| pb::WriteRequest {
        msg: Some(write_request::Msg::Chunk(bytes::Bytes::copy_from_slice(c))),
    }))
    .chain(std::iter::once(pb::WriteRequest {
        msg: Some(write_request::Msg::End(pb::WriteEnd {
            total_bytes: data.len() as u64,
        })),
    }));
    let messages: Vec<pb::WriteRequest> = messages.collect();
    let written = host.write(futures::stream::iter(messages)).await;
    let unloaded = host
        .rewind_unload(pb::RewindUnloadRequest {
            mount_id: mounted.mount_id.clone(),
        })
        .await;
    written.map_err(|s| outcome_of(&s, false))?;
    let done = unloaded.map_err(|s| outcome_of(&s, true))?.into_inner();
    if !done.written {
        return Err(Outcome::Failed {
            reason: "NOTHING_WRITTEN".into(),
        });
    }
    op.version = Some(done.version);
    if let Planned::ScratchWrite { category, .. } = planned {
        // The host expires its scratch volume at once (part of this operation, best effort: the
        // write is acknowledged either way), so the scratch pool never runs dry in a long run.
        // Its data stays until a scratch mount takes it again and writes the next version.
        let _ = host
            .change_category(pb::ChangeCategoryRequest {
                volser: mounted.volser.clone(),
                category: category.clone(),
            })
            .await;
    }
    // A full write's digest was set when the operation began (so a node that reports another is
    // caught at the catalog); an append's is the node's.
    if op.kind == OpKind::Append {
        op.digest = Some(done.digest);
    }
    Ok(())
}

async fn read_all(
    host: &mut HostServiceClient<Channel>,
    mount_id: &str,
) -> Result<Vec<u8>, Status> {
    let mut stream = host
        .read(pb::ReadRequest {
            mount_id: mount_id.to_string(),
        })
        .await?
        .into_inner();
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk?.data);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix() -> Mix {
        Mix {
            volumes: (0..20).map(|n| format!("A{n:05}")).collect(),
            scratch_category: "0001".into(),
            classes: vec!["RUN".into(), "DEFER".into()],
            random_writes: 6,
            max_len: 4096,
        }
    }

    #[test]
    fn a_round_holds_the_failover_mix_and_replays_by_seed() {
        let ops = round(3, 0, &mix(), 3);
        let count = |f: fn(&Planned) -> bool| ops.iter().filter(|(_, p)| f(p)).count();
        assert_eq!(count(|p| matches!(p, Planned::Read { .. })), 10);
        assert_eq!(count(|p| matches!(p, Planned::ScratchWrite { .. })), 5);
        assert_eq!(
            count(|p| matches!(p, Planned::Write { .. } | Planned::Append { .. })),
            6
        );
        assert!(ops.iter().all(|(c, _)| *c < 3));
        assert_eq!(ops, round(3, 0, &mix(), 3));
        assert_ne!(ops, round(4, 0, &mix(), 3));
        assert_ne!(ops, round(3, 1, &mix(), 3), "each round draws its own");
    }

    #[test]
    fn payloads_are_reproducible_and_differ_per_operation() {
        assert_eq!(payload(1, 2, 100), payload(1, 2, 100));
        assert_ne!(payload(1, 2, 100), payload(1, 3, 100));
        assert_eq!(payload(1, 2, 0).len(), 0);
    }

    #[test]
    fn a_lost_unload_answer_is_unknown_and_a_refusal_is_not() {
        let lost = Status::unavailable("connection reset");
        assert_eq!(outcome_of(&lost, true), Outcome::Unknown);
        assert_eq!(
            outcome_of(&lost, false),
            Outcome::Failed {
                reason: "Unavailable".into()
            }
        );
        let refused = vtgrid_proto::status_with_reason(
            Code::FailedPrecondition,
            pb::Reason::WriteProtected,
            "read-only takeover",
        );
        assert_eq!(
            outcome_of(&refused, true),
            Outcome::Failed {
                reason: "WRITE_PROTECTED".into()
            }
        );
    }

    #[test]
    fn the_recorder_writes_one_line_per_event_in_order() {
        #[derive(Clone, Default)]
        struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Shared::default();
        let r = Recorder::new(out.clone());
        for _ in 0..3 {
            let id = r.next_id();
            r.fault(Fault {
                id,
                at_ms: r.now_ms(),
                kind: crate::FaultKind::Heal,
                clusters: vec![],
                backlog: vec![],
            })
            .unwrap();
        }
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let h = crate::History::read(text.as_bytes()).unwrap();
        assert_eq!(h.faults.iter().map(|f| f.id).collect::<Vec<_>>(), [1, 2, 3]);
    }

    /// chaos-short on c52c340: a write whose unload answer was lost committed a version no
    /// recorded write named, because its digest was set only once the unload answered.
    #[tokio::test]
    async fn a_full_write_names_its_bytes_whatever_its_outcome_and_an_append_does_not() {
        let unreachable = "http://127.0.0.1:1";
        let r = Recorder::new(std::io::sink());
        let class = "RUN".to_string();
        let write = Planned::Write {
            volser: "A00001".into(),
            class: class.clone(),
            len: 100,
        };
        let op = run(&r, 7, 0, unreachable, &write, &[]).await.unwrap();
        assert!(matches!(op.outcome, Outcome::Failed { .. }));
        let expected = blake3::hash(&payload(7, op.id, 100)).to_hex().to_string();
        assert_eq!(op.digest.as_deref(), Some(expected.as_str()));
        let append = Planned::Append {
            volser: "A00001".into(),
            class,
            len: 100,
        };
        let op = run(&r, 7, 0, unreachable, &append, &[]).await.unwrap();
        assert_eq!(op.digest, None, "an append's digest is the node's");
    }
}
