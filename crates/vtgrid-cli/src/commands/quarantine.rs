//! `vtgrid quarantine ...` and `vtgrid events`: what local autonomy could not reconcile (DESIGN §3).

use std::io::Write;

use vtgrid_proto::pb;

use crate::args::{Global, QuarantineCommand};
use crate::client::{self, print_json, CliError};

pub async fn run(global: &Global, cmd: QuarantineCommand) -> Result<(), CliError> {
    let mut admin = client::admin(&global.endpoint).await?;
    match cmd {
        QuarantineCommand::List => {
            let list = admin
                .list_quarantine(pb::ListQuarantineRequest {})
                .await?
                .into_inner()
                .versions;
            if global.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|q| {
                        serde_json::json!({"volser": q.volser, "version": q.version, "size": q.size,
                            "digest": q.digest, "epoch": q.epoch, "reason": q.reason})
                    })
                    .collect();
                print_json(&serde_json::Value::Array(v));
            } else if list.is_empty() {
                println!("nothing quarantined");
            } else {
                for q in list {
                    println!(
                        "{} version {} ({} bytes, epoch {}): {}",
                        q.volser, q.version, q.size, q.epoch, q.reason
                    );
                }
            }
        }
        QuarantineCommand::Read { volser, version } => {
            let mut stream = admin
                .read_quarantined(pb::ReadQuarantinedRequest { volser, version })
                .await?
                .into_inner();
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = stream.message().await? {
                out.write_all(&chunk.data).map_err(|source| CliError::Io {
                    what: "writing stdout",
                    source,
                })?;
            }
            out.flush().map_err(|source| CliError::Io {
                what: "writing stdout",
                source,
            })?;
        }
        QuarantineCommand::Discard { volser, version } => {
            admin
                .discard_quarantined(pb::DiscardQuarantinedRequest {
                    volser: volser.clone(),
                    version,
                })
                .await?;
            println!("discarded {volser} version {version}");
        }
    }
    Ok(())
}

pub async fn events(global: &Global) -> Result<(), CliError> {
    let events = client::status(&global.endpoint)
        .await?
        .list_events(pb::ListEventsRequest {})
        .await?
        .into_inner()
        .events;
    if global.json {
        let v: Vec<_> = events
            .iter()
            .map(|e| serde_json::json!({"code": e.code, "volser": e.volser, "message": e.message, "at_ms": e.at_ms}))
            .collect();
        print_json(&serde_json::Value::Array(v));
    } else {
        for e in events {
            println!("{:>10} ms  {:<20} {}", e.at_ms, e.code, e.message);
        }
    }
    Ok(())
}
