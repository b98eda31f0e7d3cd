//! The writer's side of a Sync-mode duplex (B42), and the one-duplex-per-volume rule on the sync
//! cluster's side. The job logic around them is in [`crate::sync`]; this module knows streams
//! and timeouts only, no cluster.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use vtgrid_core::{ClusterId, Digest, Volser};
use vtgrid_proto::internal::grid_service_client::GridServiceClient;
use vtgrid_proto::internal::{
    sync_write_ack, sync_write_message, SyncCommit, SyncOpen, SyncWriteAck, SyncWriteMessage,
};

/// How long a sync cluster may take to open a duplex, take one chunk, or answer a sync point
/// (plus time for the bytes not yet acknowledged, at a modest rate).
pub(crate) const SYNC_ANSWER: Duration = Duration::from_secs(10);
/// Chunks in flight to a sync cluster before the host's writes wait for it.
const SYNC_WINDOW: usize = 8;

fn answer_within(unsynced: u64) -> Duration {
    SYNC_ANSWER + Duration::from_secs(unsynced / (20 * 1024 * 1024))
}

/// The duplex of one job to one sync cluster, on the mount cluster.
pub struct SyncDuplex {
    pub peer: ClusterId,
    tx: mpsc::Sender<SyncWriteMessage>,
    acks: tonic::Streaming<SyncWriteAck>,
    /// Bytes sent since the last acknowledged sync point.
    unsynced: u64,
}

/// What went wrong with a sync cluster, for the log and the host's message.
#[derive(Debug)]
pub struct SyncTrouble {
    pub peer: ClusterId,
    pub cause: String,
}

impl SyncDuplex {
    /// Open a duplex on `channel` to the sync cluster `peer` with `open`; `base_bytes` is what
    /// the sync cluster may have to fetch first (the base of an append), allowed for in the wait.
    pub async fn open(
        channel: Channel,
        peer: ClusterId,
        open: SyncOpen,
        base_bytes: u64,
    ) -> Result<SyncDuplex, SyncTrouble> {
        let trouble = |cause: String| SyncTrouble { peer, cause };
        let mut client = GridServiceClient::new(channel)
            .max_decoding_message_size(crate::transport::MAX_MESSAGE_BYTES);
        let (tx, rx) = mpsc::channel(SYNC_WINDOW);
        tx.try_send(SyncWriteMessage {
            item: Some(sync_write_message::Item::Open(open)),
        })
        .map_err(|_| trouble("could not queue the open".into()))?;
        let call = client.sync_write(ReceiverStream::new(rx));
        let acks = match tokio::time::timeout(SYNC_ANSWER, call).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => return Err(trouble(format!("refused: {}", status.message()))),
            Err(_) => return Err(trouble("did not answer in time".into())),
        };
        let mut duplex = SyncDuplex {
            peer,
            tx,
            acks,
            unsynced: base_bytes,
        };
        match duplex.ack().await? {
            sync_write_ack::Item::Opened(_) => {
                duplex.unsynced = 0;
                Ok(duplex)
            }
            other => Err(trouble(format!("answered {other:?} to the open"))),
        }
    }

    async fn send(&mut self, item: sync_write_message::Item) -> Result<(), SyncTrouble> {
        let msg = SyncWriteMessage { item: Some(item) };
        match tokio::time::timeout(SYNC_ANSWER, self.tx.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.trouble("the duplex stream closed")),
            Err(_) => Err(self.trouble("stopped taking data")),
        }
    }

    async fn ack(&mut self) -> Result<sync_write_ack::Item, SyncTrouble> {
        match tokio::time::timeout(answer_within(self.unsynced), self.acks.next()).await {
            Ok(Some(Ok(SyncWriteAck { item: Some(item) }))) => Ok(item),
            Ok(Some(Ok(SyncWriteAck { item: None }))) => Err(self.trouble("sent an empty answer")),
            Ok(Some(Err(status))) => Err(self.trouble(format!("refused: {}", status.message()))),
            Ok(None) => Err(self.trouble("closed the duplex")),
            Err(_) => Err(self.trouble("did not answer in time")),
        }
    }

    fn trouble(&self, cause: impl Into<String>) -> SyncTrouble {
        SyncTrouble {
            peer: self.peer,
            cause: cause.into(),
        }
    }

    pub async fn chunk(&mut self, data: Bytes) -> Result<(), SyncTrouble> {
        self.unsynced += data.len() as u64;
        self.send(sync_write_message::Item::Chunk(data)).await
    }

    /// Every byte sent so far is durable at the sync cluster.
    pub async fn sync_point(&mut self, bytes: u64) -> Result<(), SyncTrouble> {
        self.send(sync_write_message::Item::SyncPoint(bytes))
            .await?;
        match self.ack().await? {
            sync_write_ack::Item::Synced(n) if n == bytes => {
                self.unsynced = 0;
                Ok(())
            }
            other => Err(self.trouble(format!("answered {other:?} to sync point {bytes}"))),
        }
    }

    /// The sync cluster commits the version, with the writer's size and digest.
    pub async fn commit(&mut self, size: u64, digest: Digest) -> Result<(), SyncTrouble> {
        self.send(sync_write_message::Item::Commit(SyncCommit {
            size,
            digest: digest.to_hex(),
        }))
        .await?;
        match self.ack().await? {
            sync_write_ack::Item::Committed(d) if d == digest.to_hex() => Ok(()),
            other => Err(self.trouble(format!("answered {other:?} to the commit"))),
        }
    }
}

/// The volumes a writer is duplexing into this cluster now: one duplex per volume at a time.
#[derive(Default)]
pub struct DuplexSessions(Mutex<BTreeSet<Volser>>);

impl DuplexSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Volser>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Begin the duplex of `volser`; `None` while another one is open.
    pub(crate) fn begin(&self, volser: Volser) -> Option<InboundSession<'_>> {
        // The lock is released before a session exists, and none is made for a refused begin:
        // a session built eagerly (`then_some`) and dropped while the lock was held deadlocked
        // in its `Drop` and, had it not, would have ended the open duplex's session (found by
        // the light random sweep: a second duplex of a volume while one was open).
        let begun = self.lock().insert(volser);
        begun.then(|| InboundSession {
            sessions: self,
            volser,
        })
    }

    /// The volumes being duplexed into this cluster, sorted.
    pub fn open(&self) -> Vec<Volser> {
        self.lock().iter().copied().collect()
    }
}

/// One open inbound duplex; its volume is free for the next one on drop.
pub(crate) struct InboundSession<'a> {
    sessions: &'a DuplexSessions,
    volser: Volser,
}

impl Drop for InboundSession<'_> {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.volser);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second begin of an open volume is refused without ending the first (and without
    /// deadlocking: run on its own thread with a deadline, so a hang fails the test).
    #[test]
    fn a_second_duplex_of_an_open_volume_is_refused_and_the_first_stays_open() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let sessions = DuplexSessions::default();
            let v: Volser = "D00001".parse().unwrap();
            let first = sessions.begin(v).expect("the first duplex begins");
            let second = sessions.begin(v);
            let refused = second.is_none();
            let still_open = sessions.open() == vec![v];
            drop(first);
            let freed = sessions.open().is_empty() && sessions.begin(v).is_some();
            let _ = done.send((refused, still_open, freed));
        });
        let (refused, still_open, freed) = finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("begin returns (no deadlock)");
        assert!(refused, "a second duplex of an open volume is refused");
        assert!(still_open, "the refusal leaves the first duplex open");
        assert!(freed, "the volume is free once the first ends");
    }
}
