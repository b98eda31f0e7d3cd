//! `vtgrid admin ...`: operator actions on one cluster.

use vtgrid_proto::pb;

use crate::args::{AdminCommand, Global};
use crate::client::{self, print_json, CliError};

pub async fn run(global: &Global, cmd: AdminCommand) -> Result<(), CliError> {
    // Every command but force-standalone talks to the cluster. A future does nothing until it is
    // awaited, so the connection is made in each online arm and the offline one never dials.
    let connect = client::admin(&global.endpoint);
    match cmd {
        AdminCommand::ForceStandalone { config, id, yes } => {
            return force_standalone(global, &config, id, yes);
        }
        AdminCommand::Rejoin { as_new } => {
            connect.await?.rejoin(pb::RejoinRequest { as_new }).await?;
            if global.json {
                print_json(&serde_json::json!({ "rejoined": true }));
            } else {
                println!("rejoined the grid as a new member; it votes again");
            }
        }
        AdminCommand::Takeover {
            for_cluster,
            mode,
            force,
        } => {
            let id = cluster_id(&for_cluster)?;
            let pb_mode = match mode.as_str() {
                "rot" => pb::TakeoverMode::Rot,
                "wot" => pb::TakeoverMode::Wot,
                _ => pb::TakeoverMode::None,
            };
            connect
                .await?
                .set_takeover_mode(pb::SetTakeoverModeRequest {
                    for_cluster: id,
                    mode: pb_mode as i32,
                    force,
                })
                .await?;
            if global.json {
                print_json(&serde_json::json!({"for": id, "mode": mode}));
            } else {
                println!("takeover mode for C{id}: {mode}");
            }
        }
        AdminCommand::Service { step, cluster } => {
            let id = cluster_id(&cluster)?;
            let pb_step = match step.as_str() {
                "prep" => pb::ServiceStep::Prep,
                "enter" => pb::ServiceStep::Enter,
                _ => pb::ServiceStep::Exit,
            };
            connect
                .await?
                .set_service_state(pb::SetServiceStateRequest {
                    cluster: id,
                    step: pb_step as i32,
                })
                .await?;
            if global.json {
                print_json(&serde_json::json!({"cluster": id, "service": step}));
            } else {
                println!("C{id}: service {step}");
            }
        }
        AdminCommand::Demount { volser } => {
            let ended = connect
                .await?
                .force_demount(pb::ForceDemountRequest {
                    volser: volser.clone(),
                })
                .await?
                .into_inner();
            if global.json {
                print_json(&serde_json::json!({"volser": volser, "mount_id": ended.mount_id}));
            } else {
                println!("{volser} demounted (mount {} ended)", ended.mount_id);
            }
        }
    }
    Ok(())
}

/// `C3` or `3` as a cluster id.
fn cluster_id(text: &str) -> Result<u32, CliError> {
    let digits = text.strip_prefix(['C', 'c']).unwrap_or(text);
    digits
        .parse::<u8>()
        .ok()
        .filter(|n| *n < 16)
        .map(u32::from)
        .ok_or_else(|| {
            CliError::Usage(format!("{text:?} is not a cluster: write C0..C15 or 0..15"))
        })
}

/// `vtgrid admin force-standalone`: offline, on the survivor's own store.
fn force_standalone(
    global: &Global,
    config: &std::path::Path,
    id: u8,
    yes: bool,
) -> Result<(), CliError> {
    if !yes {
        return Err(CliError::Usage(
            "force-standalone gives up every other cluster's catalog and data: run it only when \
             the majority is gone for good, with the lost clusters kept down, and confirm with --yes"
                .into(),
        ));
    }
    let report = vtgrid_node::standalone::force_standalone(config, id)
        .map_err(|e| CliError::Grid(e.to_string()))?;
    let lost: Vec<String> = report.record.lost.iter().map(|c| c.to_string()).collect();
    if global.json {
        print_json(&serde_json::json!({
            "survivor": report.record.survivor.to_string(),
            "lost": lost,
            "volumes_taken": report.record.volumes_taken,
            "copies_forgotten": report.record.copies_forgotten,
            "replayed_up_to": report.replayed_up_to.map(|id| id.index),
            "dropped_entries": report.dropped_entries,
            "first_entry": report.new_membership.index,
        }));
    } else {
        println!(
            "C{id} is now a grid of its own: it owns every volume ({} taken over, {} copies at lost \
             clusters no longer count)",
            report.record.volumes_taken, report.record.copies_forgotten
        );
        println!("lost: {}", lost.join(", "));
        println!(
            "catalog replayed up to entry {}; {} entries never known committed were dropped",
            report.replayed_up_to.map_or(0, |id| id.index),
            report.dropped_entries
        );
        println!("start the node; the lost clusters rejoin only as new members (empty data dir, then `vtgrid admin rejoin --as-new`)");
    }
    Ok(())
}
