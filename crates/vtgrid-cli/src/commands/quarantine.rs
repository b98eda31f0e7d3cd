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

fn event_json(e: &pb::Event) -> serde_json::Value {
    serde_json::json!({
        "code": e.code,
        "volser": e.volser,
        "message": e.message,
        "at_ms": e.at_ms,
        "time": e.time.map(|t| t.to_string()),
        "cluster": e.cluster,
        "sequence": e.sequence,
        "boot": e.boot.map(|t| t.to_string()),
    })
}

fn print_event(global: &Global, e: &pb::Event) {
    if global.json {
        // One JSON object per line, so a follower can be piped into other tools.
        println!("{}", event_json(e));
    } else {
        let time = e.time.map(|t| t.to_string()).unwrap_or_default();
        println!(
            "{:>6}  {time:<30} C{}  {:<24} {}",
            e.sequence, e.cluster, e.code, e.message
        );
    }
}

/// `vtgrid events [--follow]`.
pub async fn events(global: &Global, follow: bool, from: u64) -> Result<(), CliError> {
    let mut status = client::status(&global.endpoint).await?;
    if !follow {
        let events = status
            .list_events(pb::ListEventsRequest {
                from_sequence: from,
            })
            .await?
            .into_inner()
            .events;
        if global.json {
            print_json(&serde_json::Value::Array(
                events.iter().map(event_json).collect(),
            ));
        } else {
            for e in &events {
                print_event(global, e);
            }
        }
        return Ok(());
    }
    let mut stream = status
        .watch_events(pb::WatchEventsRequest {
            new_only: false,
            from_sequence: from,
        })
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        print_event(global, &event);
    }
    Ok(())
}
