//! `vtgrid admin ...`: operator actions on one cluster.

use vtgrid_proto::pb;

use crate::args::{AdminCommand, Global};
use crate::client::{self, print_json, CliError};

pub async fn run(global: &Global, cmd: AdminCommand) -> Result<(), CliError> {
    let mut admin = client::admin(&global.endpoint).await?;
    match cmd {
        AdminCommand::Rejoin { as_new } => {
            admin.rejoin(pb::RejoinRequest { as_new }).await?;
            if global.json {
                print_json(&serde_json::json!({ "rejoined": true }));
            } else {
                println!("rejoined the grid as a new member; it votes again");
            }
        }
        AdminCommand::Demount { volser } => {
            let ended = admin
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
