//! gRPC clients and host jobs as a tape host runs them: mount → write stream → rewind-unload,
//! mount → read stream → rewind-unload.
//!
//! The helpers that return `Result<_, Status>` leave the error to the test (it asserts the
//! reason); the ones that return plain values are steps that must succeed and panic with the
//! status otherwise.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;
use vtgrid_proto::pb::admin_service_client::AdminServiceClient;
use vtgrid_proto::pb::host_service_client::HostServiceClient;
use vtgrid_proto::pb::status_service_client::StatusServiceClient;
use vtgrid_proto::pb::{self, mount_request, write_request, Reason};
use vtgrid_proto::reason_of;

use super::payload::Payload;

pub type HostClient = HostServiceClient<Channel>;
pub type AdminClient = AdminServiceClient<Channel>;
pub type StatusClient = StatusServiceClient<Channel>;

/// Largest gRPC message either side may send (a read chunk is 1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Data bytes per write message: the volume store's chunk size.
pub const WRITE_CHUNK: usize = 1 << 20;
/// Deadline of one unary call, and of one whole read or write stream.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(120);

/// A channel to `endpoint` (`http://127.0.0.1:PORT`).
pub async fn channel(endpoint: &str) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(endpoint.to_string())
        .expect("a test endpoint is a valid URI")
        .connect_timeout(Duration::from_secs(5))
        .timeout(RPC_TIMEOUT)
        .tcp_nodelay(true)
        .connect()
        .await
}

async fn connected(endpoint: &str) -> Channel {
    channel(endpoint)
        .await
        .unwrap_or_else(|e| panic!("connecting to {endpoint}: {e}"))
}

pub async fn host_client(endpoint: &str) -> HostClient {
    HostServiceClient::new(connected(endpoint).await)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub async fn admin_client(endpoint: &str) -> AdminClient {
    AdminServiceClient::new(connected(endpoint).await)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub async fn status_client(endpoint: &str) -> StatusClient {
    StatusServiceClient::new(connected(endpoint).await)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A specific mount of `volser`.
pub fn specific(volser: &str) -> pb::MountRequest {
    pb::MountRequest {
        target: Some(mount_request::Target::Volser(volser.to_string())),
        append: false,
        constructs: None,
        private_category: String::new(),
    }
}

/// A scratch mount from Fast Ready `category`, the volume to get management class `class`.
pub fn scratch(category: &str, class: &str) -> pb::MountRequest {
    pb::MountRequest {
        target: Some(mount_request::Target::ScratchCategory(category.to_string())),
        append: false,
        constructs: Some(pb::Constructs {
            management_class: class.to_string(),
            ..Default::default()
        }),
        private_category: String::new(),
    }
}

/// Assert that `result` failed with reason `want`, and return the status.
#[track_caller]
pub fn assert_reason<T: Debug>(result: Result<T, Status>, want: Reason, step: &str) -> Status {
    match result {
        Ok(value) => panic!("{step}: expected {want:?}, but it succeeded: {value:?}"),
        Err(status) => {
            assert_eq!(
                reason_of(&status),
                Some(want),
                "{step}: expected reason {want:?}, got {status:?}"
            );
            // In the standard error model too: what a generic client's decoder reads.
            use tonic_types::StatusExt;
            let info = status.get_details_error_info().unwrap_or_else(|| {
                panic!("{step}: no google.rpc.ErrorInfo in the status details: {status:?}")
            });
            assert_eq!(
                (info.reason.as_str(), info.domain.as_str()),
                (want.as_str_name(), vtgrid_proto::reason::DOMAIN),
                "{step}"
            );
            status
        }
    }
}

/// Unwrap a step that must succeed, naming it on failure.
#[track_caller]
pub fn ok<T>(result: Result<T, Status>, step: &str) -> T {
    result.unwrap_or_else(|status| {
        panic!(
            "{step}: failed with reason {:?}: {status:?}",
            reason_of(&status)
        )
    })
}

pub async fn mount(
    host: &mut HostClient,
    req: pb::MountRequest,
) -> Result<pb::MountResponse, Status> {
    host.mount(req).await.map(|r| r.into_inner())
}

pub async fn rewind_unload(
    host: &mut HostClient,
    mount_id: &str,
) -> Result<pb::RewindUnloadResponse, Status> {
    host.rewind_unload(pb::RewindUnloadRequest {
        mount_id: mount_id.to_string(),
    })
    .await
    .map(|r| r.into_inner())
}

/// How a write stream ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// `WriteEnd` with the true byte count: a complete stream.
    Complete,
    /// The client closes the stream without `WriteEnd`.
    Omitted,
    /// `WriteEnd` claiming this many bytes.
    Claims(u64),
}

/// The `WriteOpen` that starts a write stream.
pub fn open_message(mount_id: &str) -> pb::WriteRequest {
    pb::WriteRequest {
        msg: Some(write_request::Msg::Open(pb::WriteOpen {
            mount_id: mount_id.to_string(),
        })),
    }
}

/// One chunk of a write stream.
pub fn chunk_message(data: bytes::Bytes) -> pb::WriteRequest {
    pb::WriteRequest {
        msg: Some(write_request::Msg::Chunk(data)),
    }
}

/// The `WriteEnd` that closes a write stream, claiming `total_bytes`.
pub fn end_message(total_bytes: u64) -> pb::WriteRequest {
    pb::WriteRequest {
        msg: Some(write_request::Msg::End(pb::WriteEnd { total_bytes })),
    }
}

/// One write stream of `payload` for the job `mount_id`, in 1 MiB messages generated as the
/// stream is sent.
pub async fn write_stream(
    host: &mut HostClient,
    mount_id: &str,
    payload: Payload,
    end: StreamEnd,
) -> Result<pb::WriteResponse, Status> {
    let total_bytes = match end {
        StreamEnd::Complete => Some(payload.len()),
        StreamEnd::Omitted => None,
        StreamEnd::Claims(n) => Some(n),
    };
    let end = total_bytes.map(end_message);
    let messages = std::iter::once(open_message(mount_id))
        .chain(payload.chunks(WRITE_CHUNK).map(chunk_message))
        .chain(end);
    host.write(futures::stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

/// A write job from mount to rewind-unload; any failing step's status is returned.
pub async fn write_job(
    host: &mut HostClient,
    req: pb::MountRequest,
    payload: Payload,
) -> Result<pb::RewindUnloadResponse, Status> {
    let m = mount(host, req).await?;
    let written = write_stream(host, &m.mount_id, payload, StreamEnd::Complete).await?;
    assert_eq!(
        written.bytes,
        payload.len(),
        "the node counted the bytes of {}",
        m.volser
    );
    rewind_unload(host, &m.mount_id).await
}

/// Write `payload` as the next version of `volser`; the job must succeed.
pub async fn write_volume(
    host: &mut HostClient,
    volser: &str,
    payload: Payload,
) -> pb::RewindUnloadResponse {
    let done = ok(
        write_job(host, specific(volser), payload).await,
        &format!("write {} bytes to {volser}", payload.len()),
    );
    assert_eq!(done.volser, volser);
    assert!(done.written, "unload of {volser} says nothing was written");
    assert_eq!(
        done.size,
        payload.len(),
        "size of the new version of {volser}"
    );
    done
}

/// What a read stream delivered before it ended.
#[derive(Debug)]
pub struct ReadOutcome {
    pub data: Vec<u8>,
    /// The status the stream failed with; none: it ended cleanly.
    pub error: Option<Status>,
}

/// Read the mounted volume to the end of the stream, keeping what arrived before any error.
pub async fn read_stream(host: &mut HostClient, mount_id: &str) -> ReadOutcome {
    let req = pb::ReadRequest {
        mount_id: mount_id.to_string(),
    };
    let mut data = Vec::new();
    let result = tokio::time::timeout(RPC_TIMEOUT, async {
        let mut stream = host.read(req).await?.into_inner();
        while let Some(chunk) = stream.next().await {
            data.extend_from_slice(&chunk?.data);
        }
        Ok::<(), Status>(())
    })
    .await
    .unwrap_or_else(|_| panic!("reading mount {mount_id} took longer than {RPC_TIMEOUT:?}"));
    ReadOutcome {
        data,
        error: result.err(),
    }
}

/// Mount `volser`, read all of it, rewind-unload; every step must succeed.
pub async fn read_volume(host: &mut HostClient, volser: &str) -> Vec<u8> {
    let m = ok(
        mount(host, specific(volser)).await,
        &format!("mount {volser} to read it"),
    );
    let read = read_stream(host, &m.mount_id).await;
    if let Some(status) = read.error {
        panic!(
            "reading {volser} failed after {} bytes with reason {:?}: {status:?}",
            read.data.len(),
            reason_of(&status)
        );
    }
    ok(
        rewind_unload(host, &m.mount_id).await,
        &format!("unload {volser} after reading"),
    );
    read.data
}

/// A write stream held open by the test: chunks go in one by one and nothing ends it until
/// [`OpenWriteStream::finish`] or the node goes away.
pub struct OpenWriteStream {
    tx: Option<mpsc::Sender<pb::WriteRequest>>,
    response: JoinHandle<Result<pb::WriteResponse, Status>>,
}

impl OpenWriteStream {
    /// Open a write stream for `mount_id` (sends `WriteOpen`).
    pub async fn open(host: &HostClient, mount_id: &str) -> OpenWriteStream {
        let (tx, rx) = mpsc::channel(4);
        tx.send(open_message(mount_id))
            .await
            .expect("the stream's receiver is alive");
        let mut host = host.clone();
        let response = tokio::spawn(async move {
            host.write(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .map(|r| r.into_inner())
        });
        OpenWriteStream {
            tx: Some(tx),
            response,
        }
    }

    /// Queue one chunk; false when the stream has already ended.
    pub async fn send(&self, data: bytes::Bytes) -> bool {
        match &self.tx {
            Some(tx) => tx.send(chunk_message(data)).await.is_ok(),
            None => false,
        }
    }

    /// Stop sending (without `WriteEnd`) and return how the call ended, within a deadline.
    pub async fn finish(mut self) -> Result<pb::WriteResponse, Status> {
        self.tx = None;
        tokio::time::timeout(RPC_TIMEOUT, &mut self.response)
            .await
            .unwrap_or_else(|_| panic!("an open write stream did not end within {RPC_TIMEOUT:?}"))
            .expect("the write call task panicked")
    }
}
