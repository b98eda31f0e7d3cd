//! `vtgrid status`.

use vtgrid_proto::pb::GetStatusRequest;

use crate::args::Global;
use crate::client::{self, print_json, CliError};

pub async fn run(global: &Global) -> Result<(), CliError> {
    let s = client::status(&global.endpoint)
        .await?
        .get_status(GetStatusRequest {})
        .await?
        .into_inner();
    if global.json {
        print_json(&serde_json::json!({
            "grid": s.grid, "cluster": s.cluster, "name": s.name, "ready": s.ready,
            "raft": { "role": s.raft_role, "leader": s.raft_leader, "term": s.raft_term,
                      "last_applied": s.last_applied, "voters": s.voters },
            "volumes": s.volumes, "volumes_owned": s.volumes_owned, "mounts": s.mounts,
            "cache": { "used_bytes": s.cache_used_bytes, "quota_bytes": s.cache_quota_bytes },
            "version": s.version,
        }));
        return Ok(());
    }
    let leader = s
        .raft_leader
        .map_or("none".to_string(), |l| format!("C{l}"));
    let quota = s
        .cache_quota_bytes
        .map_or("no quota".to_string(), |q| format!("quota {q} B"));
    println!("grid      {}", s.grid);
    println!(
        "cluster   C{} ({}), {}",
        s.cluster,
        s.name,
        if s.ready { "ready" } else { "starting" }
    );
    println!(
        "catalog   {} in term {}, leader {}, applied {}, voters {:?}",
        s.raft_role, s.raft_term, leader, s.last_applied, s.voters
    );
    println!(
        "volumes   {} in the grid, {} owned here, {} mounted here",
        s.volumes, s.volumes_owned, s.mounts
    );
    println!("cache     {} B used, {}", s.cache_used_bytes, quota);
    Ok(())
}
