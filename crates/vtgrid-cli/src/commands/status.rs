//! `vtgrid status`.

use vtgrid_proto::pb::GetStatusRequest;

use crate::args::Global;
use crate::client::{self, print_json, CliError};

pub async fn run(global: &Global) -> Result<(), CliError> {
    let mut status = client::status(&global.endpoint).await?;
    let s = status.get_status(GetStatusRequest {}).await?.into_inner();
    let g = status
        .get_grid_state(vtgrid_proto::pb::GetGridStateRequest {})
        .await?
        .into_inner();
    if global.json {
        print_json(&serde_json::json!({
            "grid": s.grid, "cluster": s.cluster, "name": s.name, "ready": s.ready,
            "membership": s.membership,
            "raft": { "role": s.raft_role, "leader": s.raft_leader, "term": s.raft_term,
                      "last_applied": s.last_applied, "voters": s.voters },
            "volumes": s.volumes, "volumes_owned": s.volumes_owned, "mounts": s.mounts,
            "cache": { "used_bytes": s.cache_used_bytes, "quota_bytes": s.cache_quota_bytes },
            "version": s.version,
            "links": g.links.iter().map(|l| serde_json::json!({
                "peer": l.peer, "name": l.name, "role": l.role, "reachable": l.reachable,
                "last_answer_ms_ago": l.last_answer_ms_ago,
                "paths": l.paths.iter().map(|p| serde_json::json!({
                    "address": p.address, "reachable": p.reachable,
                    "last_answer_ms_ago": p.last_answer_ms_ago,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "flags": g.flags,
            "takeovers": s.takeovers.iter().map(|t| serde_json::json!({
                "for": t.for_cluster, "mode": t.mode,
            })).collect::<Vec<_>>(),
            "service": s.service.iter().map(|e| serde_json::json!({
                "cluster": e.cluster, "state": e.state,
            })).collect::<Vec<_>>(),
            "lease": s.lease.as_ref().map(|l| serde_json::json!({
                "fenced": l.fenced, "renewed_ms_ago": l.renewed_ms_ago,
                "self_fence_after_ms": l.self_fence_after_ms,
            })),
            "forced_standalone": s.forced_standalone.as_ref().map(|f| serde_json::json!({
                "survivor": f.survivor, "lost": f.lost, "at_index": f.at_index,
                "volumes_taken": f.volumes_taken,
            })),
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
    if s.membership != "MEMBER" && !s.membership.is_empty() {
        println!("membership {}", s.membership);
    }
    if let Some(f) = &s.forced_standalone {
        let lost: Vec<String> = f.lost.iter().map(|c| format!("C{c}")).collect();
        println!(
            "standalone C{} was forced standalone at entry {} ({} volumes taken over); lost: {}",
            f.survivor,
            f.at_index,
            f.volumes_taken,
            lost.join(", ")
        );
    }
    println!(
        "catalog   {} in term {}, leader {}, applied {}, voters {:?}",
        s.raft_role, s.raft_term, leader, s.last_applied, s.voters
    );
    println!(
        "volumes   {} in the grid, {} owned here, {} mounted here",
        s.volumes, s.volumes_owned, s.mounts
    );
    println!("cache     {} B used, {}", s.cache_used_bytes, quota);
    for l in &g.links {
        let state = if l.reachable { "up" } else { "DOWN" };
        // One grid address per physical link; show them when there is more than one (B7).
        let paths = if l.paths.len() > 1 {
            let each: Vec<String> = l
                .paths
                .iter()
                .map(|p| format!("{} {}", p.address, if p.reachable { "up" } else { "DOWN" }))
                .collect();
            format!(" [{}]", each.join(", "))
        } else {
            String::new()
        };
        println!(
            "link      C{} ({}, {}): {}{}",
            l.peer, l.name, l.role, state, paths
        );
    }
    let flags = if g.flags.is_empty() {
        "none".to_string()
    } else {
        g.flags.join(", ")
    };
    println!("states    {flags}");
    for t in &s.takeovers {
        println!("takeover  {} for C{}", t.mode.to_uppercase(), t.for_cluster);
    }
    for e in &s.service {
        println!("service   C{} in {}", e.cluster, e.state);
    }
    if let Some(l) = &s.lease {
        let ago = l.renewed_ms_ago.map_or("never renewed".to_string(), |ms| {
            format!("renewed {:.1} s ago", ms as f64 / 1000.0)
        });
        let after = l.self_fence_after_ms as f64 / 1000.0;
        if l.fenced {
            println!("lease     FENCED ({ago}; lease {after:.0} s): writes of its volumes refused");
        } else {
            println!("lease     held ({ago}; fences after {after:.0} s)");
        }
    }
    Ok(())
}

/// `vtgrid copies`: the copy queue of the cluster at --endpoint.
pub async fn copies(global: &Global, volumes: bool) -> Result<(), CliError> {
    let q = client::status(&global.endpoint)
        .await?
        .list_copy_queue(vtgrid_proto::pb::ListCopyQueueRequest {
            per_volume: volumes,
        })
        .await?
        .into_inner();
    if global.json {
        let summary: Vec<_> = q
            .summary
            .iter()
            .map(|s| serde_json::json!({"priority": s.priority, "count": s.count, "bytes": s.bytes, "oldest_age_ms": s.oldest_age_ms}))
            .collect();
        let copies: Vec<_> = q
            .copies
            .iter()
            .map(|c| serde_json::json!({"volser": c.volser, "version": c.version, "size": c.size, "priority": c.priority, "age_ms": c.age_ms}))
            .collect();
        print_json(&serde_json::json!({"summary": summary, "copies": copies}));
        return Ok(());
    }
    if q.summary.is_empty() {
        println!("no copies owed");
    }
    for s in &q.summary {
        println!(
            "{:<20} {:>6} copies {:>14} bytes  oldest {:.1} s",
            s.priority,
            s.count,
            s.bytes,
            s.oldest_age_ms as f64 / 1e3
        );
    }
    for c in &q.copies {
        println!(
            "  {} v{} {:>12} bytes  {:<20} waiting {:.1} s",
            c.volser,
            c.version,
            c.size,
            c.priority,
            c.age_ms as f64 / 1e3
        );
    }
    Ok(())
}
