//! The tape host's side of a simulation: gRPC clients on the simulated network, and the host
//! jobs tests run (write, read, category change, insert), which record what was acknowledged in
//! a [`Ledger`].
//!
//! turmoil drops segments silently on a partition and nothing retransmits, so every call made
//! through these helpers has a deadline (openraft tests-turmoil README, "Determinism").

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tonic::transport::Channel;
use vtgrid_core::Volser;
use vtgrid_node::transport::Connector;
use vtgrid_node::Cluster;
use vtgrid_proto::pb::admin_service_client::AdminServiceClient;
use vtgrid_proto::pb::host_service_client::HostServiceClient;
use vtgrid_proto::pb::status_service_client::StatusServiceClient;
use vtgrid_proto::pb::{self, mount_request, write_request, GetStatusRequest, Reason};
use vtgrid_proto::reason_of;

use crate::cluster::{host_name, HOST_PORT};
use crate::grid::GridControl;
use crate::invariants;
use crate::ledger::Ledger;
use crate::net::SimConnector;

/// The deadline of one simulated RPC.
pub const RPC_DEADLINE: Duration = Duration::from_secs(10);

/// A fresh channel to cluster `id`'s host endpoint. After a fault, make a new one: an HTTP/2
/// connection can stay wedged after the network heals.
pub fn channel(id: u8) -> Channel {
    SimConnector::default().channel(&format!("{}:{HOST_PORT}", host_name(id)))
}

pub fn host(id: u8) -> HostServiceClient<Channel> {
    HostServiceClient::new(channel(id))
}

pub fn admin(id: u8) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(channel(id))
}

/// Run `call` with [`RPC_DEADLINE`]; a timeout is a `DEADLINE_EXCEEDED` status.
pub async fn deadline<T>(
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(RPC_DEADLINE, call).await {
        Ok(r) => r,
        Err(_) => Err(tonic::Status::deadline_exceeded("simulated RPC deadline")),
    }
}

/// Poll cluster `id` until it reports ready, within `within` of simulated time.
pub async fn wait_ready(id: u8, within: Duration) -> Result<(), String> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let mut status = StatusServiceClient::new(channel(id));
        if let Ok(s) = deadline(status.get_status(GetStatusRequest {})).await {
            if s.get_ref().ready {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > until {
            return Err(format!("cluster C{id} not ready within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll `condition` every 50 ms of simulated time until it holds, or fail after `within` with
/// `what` (STYLE: wait for a condition, not for time).
pub async fn wait_for(
    what: &str,
    within: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<(), String> {
    let until = tokio::time::Instant::now() + within;
    loop {
        if condition() {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            return Err(format!("{what}: not within {within:?} of simulated time"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the driver has crashed voter `id` at crash point `point` (armed with
/// `GridControl::arm`), within `within`.
pub async fn wait_point_crash(
    control: &GridControl,
    id: u8,
    point: vtgrid_node::faults::FaultPoint,
    within: Duration,
) -> Result<(), String> {
    wait_for(&format!("C{id} crashed at {point:?}"), within, || {
        control
            .point_crashes()
            .iter()
            .any(|c| c.voter == id && c.point == point)
    })
    .await
}

/// The log index voter `id`'s catalog has applied (0 before anything, or while it is down).
pub fn applied_index(control: &GridControl, id: u8) -> u64 {
    control
        .cluster(id)
        .and_then(|c| c.probe().view().last_applied())
        .map_or(0, |log_id| log_id.index)
}

/// Wait until voter `id` applies an entry past `index` (say, a message delivered late or twice:
/// appended and applied, as a change or a refusal), within `within`.
pub async fn wait_applied_past(
    control: &GridControl,
    id: u8,
    index: u64,
    within: Duration,
) -> Result<(), String> {
    wait_for(
        &format!("C{id} applies an entry past {index}"),
        within,
        || applied_index(control, id) > index,
    )
    .await
}

/// Wait until every voter runs, all journals are empty and every catalog is the same (the end
/// state of B15 catch-up), within `within`. The caller heals the network first.
pub async fn wait_quiescent(control: &GridControl, within: Duration) -> Result<(), String> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let last;
        let running: Vec<_> = control
            .voters()
            .into_iter()
            .filter_map(|id| control.cluster(id))
            .collect();
        if running.len() == control.voters().len() {
            match raft_log_applied_everywhere(&running)
                .and_then(|()| invariants::b15_catalogs_converge(&running))
            {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        } else {
            last = "not every voter runs".into();
        }
        if tokio::time::Instant::now() > until {
            return Err(format!(
                "the grid did not quiesce within {within:?} of simulated time: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every voter has applied the whole of the leader's log: no commit is on its way to some
/// cluster's catalog while another already shows it (identical catalogs at one instant are not
/// enough, as a host may apply an entry later in the same step).
fn raft_log_applied_everywhere(running: &[Arc<Cluster>]) -> Result<(), String> {
    let metrics: Vec<_> = running
        .iter()
        .map(|c| (c.id, c.probe().raft_metrics()))
        .collect();
    let Some(leader) = metrics
        .iter()
        .find(|(_, m)| m.current_leader == Some(m.id) && m.state.is_leader())
    else {
        return Err("no leader".into());
    };
    let end = leader.1.last_log_index;
    for (c, (id, _)) in running.iter().zip(&metrics) {
        // The catalog's own applied index: the metrics trail the view by a moment.
        let applied = c.probe().last_applied();
        if applied != end {
            return Err(format!(
                "{id} applied the log up to {applied:?}, the leader's ends at {end:?}"
            ));
        }
    }
    Ok(())
}

/// A specific mount of `volser`, writing from the start.
pub fn specific(volser: &str) -> pb::MountRequest {
    pb::MountRequest {
        target: Some(mount_request::Target::Volser(volser.into())),
        append: false,
        constructs: None,
        private_category: String::new(),
    }
}

/// A scratch mount from Fast Ready category `category` (B8).
pub fn scratch(category: &str) -> pb::MountRequest {
    pb::MountRequest {
        target: Some(mount_request::Target::ScratchCategory(category.into())),
        append: false,
        constructs: None,
        private_category: String::new(),
    }
}

type Host = HostServiceClient<Channel>;

/// `request` with management class `class` (B36: its vector as defined on the mount cluster
/// applies to the version the job writes).
pub fn with_class(mut request: pb::MountRequest, class: &str) -> pb::MountRequest {
    request.constructs = Some(pb::Constructs {
        management_class: class.into(),
        ..Default::default()
    });
    request
}

/// The largest chunk message [`write`] sends (well under gRPC's 4 MiB message limit).
pub const WRITE_CHUNK: usize = 1 << 20;

/// Write `data` on a mounted volume in one stream: open, chunks of at most [`WRITE_CHUNK`], end.
pub async fn write(
    host: &mut Host,
    mount_id: &str,
    data: &[u8],
) -> Result<pb::WriteResponse, tonic::Status> {
    let mut msgs = vec![pb::WriteRequest {
        msg: Some(write_request::Msg::Open(pb::WriteOpen {
            mount_id: mount_id.into(),
        })),
    }];
    msgs.extend(data.chunks(WRITE_CHUNK).map(|c| pb::WriteRequest {
        msg: Some(write_request::Msg::Chunk(Bytes::copy_from_slice(c))),
    }));
    msgs.push(pb::WriteRequest {
        msg: Some(write_request::Msg::End(pb::WriteEnd {
            total_bytes: data.len() as u64,
        })),
    });
    Ok(deadline(host.write(futures::stream::iter(msgs)))
        .await?
        .into_inner())
}

/// Read a mounted volume to its end (every chunk under the deadline).
pub async fn read_all(host: &mut Host, mount_id: &str) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = deadline(host.read(pb::ReadRequest {
        mount_id: mount_id.into(),
    }))
    .await?
    .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = deadline(async { Ok(stream.next().await) }).await? {
        out.extend_from_slice(&chunk?.data);
    }
    Ok(out)
}

pub async fn unload(
    host: &mut Host,
    mount_id: &str,
) -> Result<pb::RewindUnloadResponse, tonic::Status> {
    Ok(deadline(host.rewind_unload(pb::RewindUnloadRequest {
        mount_id: mount_id.into(),
    }))
    .await?
    .into_inner())
}

/// The BLAKE3 digest of `data`, hex, as the grid reports digests.
pub fn digest_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// One write job at cluster `at`: mount `request`, write `data` from the start, rewind-unload.
/// A successful unload that committed a version goes into `ledger` as acknowledged; an unload
/// whose outcome the host never learned puts the digest in doubt. A failed mount or write
/// commits nothing (the job abends), so it is only returned.
pub async fn write_job(
    at: u8,
    request: pb::MountRequest,
    data: &[u8],
    ledger: &Ledger,
) -> Result<pb::RewindUnloadResponse, tonic::Status> {
    let mut host = self::host(at);
    let m = deadline(host.mount(request)).await?.into_inner();
    let volser: Volser = m
        .volser
        .parse()
        .map_err(|_| tonic::Status::internal(format!("mount returned VOLSER {:?}", m.volser)))?;
    if let Err(e) = write(&mut host, &m.mount_id, data).await {
        // Free the mount if the job is still registered (the write may have timed out here only:
        // then the unload commits what arrived, and the host counts that version as its own).
        match unload(&mut host, &m.mount_id).await {
            Ok(done) if done.written => ledger.acknowledge_unload(volser, &done, at),
            Ok(_) => {}
            // Unanswered: it may have committed the write (a stream that reached its end; one
            // cut short is never committed).
            Err(_) => ledger.in_doubt(volser, &digest_hex(data)),
        }
        return Err(e);
    }
    match unload(&mut host, &m.mount_id).await {
        Ok(done) => {
            if done.written {
                ledger.acknowledge_unload(volser, &done, at);
            }
            Ok(done)
        }
        Err(e) => {
            ledger.in_doubt(volser, &digest_hex(data));
            Err(e)
        }
    }
}

/// Mount `volser` at cluster `at`, read it whole, unload; returns the mount and the bytes.
pub async fn read_job(at: u8, volser: &str) -> Result<(pb::MountResponse, Vec<u8>), tonic::Status> {
    let mut host = self::host(at);
    let m = deadline(host.mount(specific(volser))).await?.into_inner();
    let read = read_all(&mut host, &m.mount_id).await;
    let unloaded = unload(&mut host, &m.mount_id).await;
    let bytes = read?;
    unloaded?;
    Ok((m, bytes))
}

/// Change `volser`'s category through cluster `at` (B13).
pub async fn change_category(
    at: u8,
    volser: &str,
    category: &str,
) -> Result<pb::Volume, tonic::Status> {
    let reply = deadline(host(at).change_category(pb::ChangeCategoryRequest {
        volser: volser.into(),
        category: category.into(),
    }))
    .await?
    .into_inner();
    reply
        .volume
        .ok_or_else(|| tonic::Status::internal("ChangeCategory answered no volume"))
}

/// Insert `range` into `category` through cluster `at`'s admin API (B16).
pub async fn insert(
    at: u8,
    range: &str,
    category: &str,
) -> Result<pb::InsertVolumesResponse, tonic::Status> {
    Ok(deadline(admin(at).insert_volumes(pb::InsertVolumesRequest {
        range: range.into(),
        category: category.into(),
    }))
    .await?
    .into_inner())
}

/// The volume as cluster `at` sees it.
pub async fn volume(at: u8, volser: &str) -> Result<pb::Volume, tonic::Status> {
    Ok(deadline(admin(at).get_volume(pb::GetVolumeRequest {
        volser: volser.into(),
        consistency: pb::Consistency::Local.into(),
    }))
    .await?
    .into_inner())
}

/// `Ok(())` when `result` failed with `reason`; otherwise a message naming `what`.
pub fn expect_reason<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, tonic::Status>,
    reason: Reason,
) -> Result<(), String> {
    match result {
        Err(s) if reason_of(&s) == Some(reason) => Ok(()),
        Err(s) => Err(format!(
            "{what}: expected {}, got {:?} ({:?}: {})",
            reason.as_str_name(),
            reason_of(&s),
            s.code(),
            s.message()
        )),
        Ok(v) => Err(format!(
            "{what}: expected {}, but it succeeded: {v:?}",
            reason.as_str_name()
        )),
    }
}

/// Wait until every voter of the grid (data clusters and witnesses) runs and reports ready,
/// looked up through the handles (a witness serves no host API).
pub async fn wait_grid_ready(control: &GridControl, within: Duration) -> Result<(), String> {
    wait_for("every voter ready", within, || {
        control
            .voters()
            .into_iter()
            .all(|id| control.cluster(id).is_some_and(|c| c.is_ready()))
    })
    .await
}

/// A step of a scenario that must hold: `Err(what)` when it does not.
pub fn ensure(holds: bool, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if holds {
        Ok(())
    } else {
        Err(what.to_string().into())
    }
}

pub fn status(id: u8) -> StatusServiceClient<Channel> {
    StatusServiceClient::new(channel(id))
}

/// Cluster `at`'s `GetGridState`: its links, Raft role and the grid flags (B59).
pub async fn grid_state(at: u8) -> Result<pb::GridState, tonic::Status> {
    Ok(
        deadline(status(at).get_grid_state(pb::GetGridStateRequest {}))
            .await?
            .into_inner(),
    )
}

/// Poll cluster `at`'s grid state until `ok` holds, within `within`; returns that state, or
/// fails with `what` and the last state seen.
pub async fn wait_grid_state(
    at: u8,
    what: &str,
    within: Duration,
    ok: impl Fn(&pb::GridState) -> bool,
) -> Result<pb::GridState, String> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let last = match grid_state(at).await {
            Ok(s) if ok(&s) => return Ok(s),
            Ok(s) => format!("{s:?}"),
            Err(e) => format!("GetGridState failed: {e}"),
        };
        if tokio::time::Instant::now() > until {
            return Err(format!(
                "C{at}: {what}: not within {within:?}; last: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Poll cluster `at`'s catalog (`GetVolume`) until `volser`'s current version is consistent at
/// every cluster in `want` (others may hold it too), within `within`; returns the volume.
pub async fn wait_consistent(
    at: u8,
    volser: &str,
    want: &[u32],
    within: Duration,
) -> Result<pb::Volume, String> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let v = volume(at, volser)
            .await
            .map_err(|e| format!("GetVolume {volser} at c{at}: {e}"))?;
        if want
            .iter()
            .all(|c| v.consistent_at.get(c) == Some(&v.version))
        {
            return Ok(v);
        }
        if tokio::time::Instant::now() > until {
            return Err(format!(
                "{volser} at c{at}: consistent at {:?}, wanted {want:?}",
                v.consistent_at
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Does the state carry `flag`?
pub fn has_flag(state: &pb::GridState, flag: &str) -> bool {
    state.flags.iter().any(|f| f == flag)
}

/// Cluster `at`'s copy queue as `ListCopyQueue` shows it, with every queued copy.
pub async fn copy_queue(at: u8) -> Result<pb::ListCopyQueueResponse, tonic::Status> {
    Ok(
        deadline(status(at).list_copy_queue(pb::ListCopyQueueRequest { per_volume: true }))
            .await?
            .into_inner(),
    )
}

/// How many copies of `priority` ("deferred", "immediate-deferred", ...) a queue holds.
pub fn queued(queue: &pb::ListCopyQueueResponse, priority: &str) -> u64 {
    queue
        .summary
        .iter()
        .filter(|s| s.priority == priority)
        .map(|s| s.count)
        .sum()
}

/// The copies still owed in a grid, as the running data clusters see them: each cluster's queued
/// copies, every (volume, cluster) whose current version a catalog says is owed (B62; a copy
/// made stays owed until its `CopyDone` is published), and any owner-journal change not yet
/// published (a new version the catalogs do not show yet, whose copies are not owed yet).
pub fn copies_owed(control: &GridControl) -> Vec<String> {
    let mut owed = Vec::new();
    let data = control.data_clusters();
    for id in &data {
        let Some(c) = control.cluster(*id) else {
            owed.push(format!("C{id} is not running"));
            continue;
        };
        let pending = c.probe().journal().pending_count();
        if pending > 0 {
            owed.push(format!("C{id} has {pending} journal entries to publish"));
        }
        match c.probe().copy_queue().next(usize::MAX) {
            Ok(q) => owed.extend(
                q.iter()
                    .map(|q| format!("C{id} queue: {} v{} {:?}", q.volser, q.version, q.priority)),
            ),
            Err(e) => owed.push(format!("C{id} queue unreadable: {e}")),
        }
        c.probe().view().read(|s| {
            for r in s.volumes.values() {
                for target in &data {
                    let Ok(t) = vtgrid_core::ClusterId::new(*target) else {
                        continue;
                    };
                    if let Some(p) = vtgrid_core::copy::copy_duty(r, t) {
                        owed.push(format!(
                            "C{id}'s catalog: {} v{} owed at C{target} ({p:?})",
                            r.volser, r.version
                        ));
                    }
                }
            }
        });
    }
    owed
}

/// Wait, once the caller has healed the network and restarted what is down, until the grid has
/// settled completely: every voter ready, catalogs identical, every owed copy made, and nothing
/// left mounted, held, in doubt, duplexed or reserved ([`invariants::nothing_left_behind`]), then
/// the catalogs identical again (the last copies' records applied everywhere).
pub async fn wait_settled(control: &GridControl) -> Result<(), String> {
    wait_grid_ready(control, Duration::from_secs(120)).await?;
    wait_quiescent(control, Duration::from_secs(120)).await?;
    wait_copies_settled(control, Duration::from_secs(120)).await?;
    let mut last = String::new();
    let settled = wait_for("nothing left behind", Duration::from_secs(600), || {
        let running: Vec<_> = control
            .voters()
            .into_iter()
            .filter_map(|id| control.cluster(id))
            .collect();
        match invariants::nothing_left_behind(&running) {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        }
    })
    .await;
    settled.map_err(|e| format!("{e}: {last}"))?;
    wait_quiescent(control, Duration::from_secs(60)).await
}

/// Wait until no copy is owed anywhere (see [`copies_owed`]): every queue drained, and every
/// volume consistent on every cluster its vector requires (B62). The caller heals first.
pub async fn wait_copies_settled(control: &GridControl, within: Duration) -> Result<(), String> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let owed = copies_owed(control);
        if owed.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            return Err(format!(
                "B62: copies still owed after {within:?} of simulated time: {}",
                owed.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The catalog leader every running voter agrees on, if they agree.
pub fn agreed_leader(control: &GridControl) -> Option<u8> {
    let mut leaders = control
        .voters()
        .into_iter()
        .filter(|id| !control.is_down(*id))
        .map(|id| control.cluster(id).and_then(|c| c.probe().leader()));
    let first = leaders.next()??;
    leaders.all(|l| l == Some(first)).then_some(first.get())
}

/// Make voter `id` the catalog's Raft leader, for a test whose cut needs a particular leader
/// (e.g. one that both sides of a cut still reach). The grid must be whole and `id` running.
///
/// If another voter L leads: cut L from every voter but `id`, commit-or-not one harmless entry
/// through L (redefining a management class as it is), which only L and `id` then hold, then cut
/// L from `id` too. Only `id` has the longest log, so Raft can elect no one else (the others
/// refuse to vote for a shorter log); then every link is repaired and L follows. Deterministic,
/// unlike triggering an election, which the leader lease of L's followers would refuse.
pub async fn make_leader(control: &GridControl, id: u8, within: Duration) -> Result<(), String> {
    let until = tokio::time::Instant::now() + within;
    let settle = |what: &'static str| {
        let control = control.clone();
        async move {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            wait_for(what, left, || agreed_leader(&control).is_some()).await
        }
    };
    settle("a catalog leader every voter agrees on").await?;
    for _ in 0..3 {
        let Some(leader) = agreed_leader(control) else {
            settle("a catalog leader every voter agrees on").await?;
            continue;
        };
        if leader == id {
            return Ok(());
        }
        let others: Vec<u8> = control
            .voters()
            .into_iter()
            .filter(|v| *v != leader && *v != id)
            .collect();
        for o in &others {
            control.partition(leader, *o);
        }
        let class = control
            .cluster(leader)
            .and_then(|c| {
                c.probe()
                    .view()
                    .read(|s| s.management_classes.values().next().cloned())
            })
            .ok_or("the leader runs and knows a management class")?;
        let before = control
            .cluster(id)
            .and_then(|c| c.probe().raft_metrics().last_log_index);
        let redefine = pb::ManagementClass {
            name: class.name.to_string(),
            copy_modes: class
                .vectors
                .iter()
                .map(|(c, v)| (u32::from(c.get()), v.to_string()))
                .collect(),
            on_sync_failure: class.on_sync_failure.as_str().to_string(),
        };
        // Committed or not (with many voters L and `id` are no majority), the entry reaches `id`.
        let _ = deadline(
            admin(leader).define_management_class(pb::DefineManagementClassRequest {
                management_class: Some(redefine),
            }),
        )
        .await;
        wait_for(
            "the extra entry reaches the chosen leader",
            Duration::from_secs(10),
            || {
                control
                    .cluster(id)
                    .and_then(|c| c.probe().raft_metrics().last_log_index)
                    > before
            },
        )
        .await?;
        control.partition(leader, id);
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let elected = wait_for("the chosen voter elected", left, || {
            others.iter().chain([&id]).all(|v| {
                control
                    .cluster(*v)
                    .and_then(|c| c.probe().leader())
                    .is_some_and(|l| l.get() == id)
            })
        })
        .await;
        control.heal();
        elected?;
        settle("the old leader follows").await?;
    }
    match agreed_leader(control) {
        Some(l) if l == id => Ok(()),
        other => Err(format!(
            "C{id} did not become the catalog leader: {other:?}"
        )),
    }
}

/// Set, at cluster `at`, the takeover mode it holds for `failed` (`vtgrid admin takeover`).
pub async fn set_takeover(
    at: u8,
    failed: u8,
    mode: pb::TakeoverMode,
    force: bool,
) -> Result<(), tonic::Status> {
    deadline(admin(at).set_takeover_mode(pb::SetTakeoverModeRequest {
        for_cluster: u32::from(failed),
        mode: mode as i32,
        force,
    }))
    .await?;
    Ok(())
}

/// Move `cluster` into service prep, service mode or out of service, through `at`.
pub async fn set_service(at: u8, cluster: u8, step: pb::ServiceStep) -> Result<(), tonic::Status> {
    deadline(admin(at).set_service_state(pb::SetServiceStateRequest {
        cluster: u32::from(cluster),
        step: step as i32,
    }))
    .await?;
    Ok(())
}

/// Cluster `at`'s status.
pub async fn cluster_status(at: u8) -> Result<pb::ClusterStatus, tonic::Status> {
    Ok(deadline(status(at).get_status(pb::GetStatusRequest {}))
        .await?
        .into_inner())
}

/// Wait until cluster `at`'s catalog view holds no write-takeover grant (a returning cluster
/// ended them, B22).
pub async fn wait_grants_cleared(control: &GridControl, at: u8) -> Result<(), String> {
    wait_for(
        "the write-takeover grants are cleared",
        Duration::from_secs(30),
        || {
            control
                .cluster(at)
                .is_some_and(|c| c.probe().view().read(|s| s.write_takeovers.is_empty()))
        },
    )
    .await
}

/// Wait until cluster `at` has quarantined `volser` `version` (a fenced version, B134).
pub async fn wait_quarantined(
    control: &GridControl,
    at: u8,
    volser: &str,
    version: u64,
) -> Result<(), String> {
    wait_for(
        &format!("C{at} quarantines {volser} v{version}"),
        Duration::from_secs(60),
        || {
            control.cluster(at).is_some_and(|c| {
                c.probe().journal_store().quarantined().is_ok_and(|q| {
                    q.iter()
                        .any(|r| r.volser.as_str() == volser && r.version == version)
                })
            })
        },
    )
    .await
}
