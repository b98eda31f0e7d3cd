//! The final state of a run: each cluster's catalog view (ListVolumes) and quarantine
//! (ListQuarantine), asked over its admin API after the heal; and, once its processes are
//! stopped, the copies in its volume store read back from the files ([`copies`]).

use std::time::Duration;

use tonic::transport::Endpoint;
use vtgrid_proto::pb;
use vtgrid_proto::pb::admin_service_client::AdminServiceClient;

use crate::state::{ClusterState, CopyState, Quarantined, VolumeState};

/// This cluster's own view (LOCAL): the checker judges whether the views agree by themselves.
fn local_view() -> pb::ListVolumesRequest {
    pb::ListVolumesRequest {
        consistency: pb::Consistency::Local.into(),
        ..Default::default()
    }
}

/// Ask data cluster `id` at `endpoint` for its catalog and quarantine.
pub async fn cluster_state(
    id: u8,
    endpoint: &str,
) -> Result<ClusterState, Box<dyn std::error::Error>> {
    let channel = Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .connect()
        .await?;
    let mut admin = AdminServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut catalog: Vec<VolumeState> =
        vtgrid_proto::paging::list_volumes(&mut admin, local_view(), 0)
            .await?
            .into_iter()
            .map(|v| VolumeState {
                volser: v.volser,
                version: v.version,
                digest: (!v.digest.is_empty()).then_some(v.digest),
                owner: v.owner as u8,
                epoch: v.epoch,
                taken_from: None,
            })
            .collect();
    let quarantine = admin
        .list_quarantine(pb::ListQuarantineRequest {})
        .await?
        .into_inner()
        .versions
        .into_iter()
        .map(|q| Quarantined {
            volser: q.volser,
            version: q.version,
            digest: q.digest,
        })
        .collect();
    catalog.sort_by(|a, b| a.volser.cmp(&b.volser));
    Ok(ClusterState {
        id,
        catalog,
        copies: vec![],
        quarantine,
    })
}

/// Every committed version in the volume store under `data_dir` (`<data_dir>/tvc`), read back
/// through the store's verifying reader, with the BLAKE3 of the bytes it returned. A version
/// that does not read back (a bad chunk, a digest its trailer does not match) gets a digest that
/// names the error, so the checker reports it against the catalog's. Only for a stopped cluster:
/// opening the store clears what a writer left half done.
pub fn copies(data_dir: &std::path::Path) -> Result<Vec<CopyState>, vtgrid_tvc::TvcError> {
    use vtgrid_tvc::store::VolumeStore;
    let store = vtgrid_tvc::FileVolumeStore::open(&data_dir.join("tvc"), None)?;
    let mut out = Vec::new();
    for (volser, version) in store.versions()? {
        let digest = match store.open(volser, version) {
            Err(e) => format!("unreadable: {e}"),
            Ok(mut reader) => {
                let mut hasher = blake3::Hasher::new();
                loop {
                    match reader.next_chunk() {
                        Ok(Some(chunk)) => {
                            hasher.update(&chunk);
                        }
                        Ok(None) => break hasher.finalize().to_hex().to_string(),
                        Err(e) => break format!("unreadable: {e}"),
                    }
                }
            }
        };
        out.push(CopyState {
            volser: volser.to_string(),
            version,
            digest,
        });
    }
    Ok(out)
}
