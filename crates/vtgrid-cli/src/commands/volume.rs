//! `vtgrid volume ...`: insert, write (stdin), read (stdout), list, show, scratch, category.

use std::io::{IsTerminal, Read, Write};

use bytes::Bytes;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use vtgrid_proto::pb::{
    self, host_service_client::HostServiceClient, mount_request, write_request,
};

use crate::args::{Global, VolumeCommand};
use crate::client::{self, print_json, CliError};

/// Bytes per write message: the volume store's chunk size, so one message is one chunk.
const CHUNK: usize = 1024 * 1024;

pub async fn run(global: &Global, cmd: VolumeCommand) -> Result<(), CliError> {
    match cmd {
        VolumeCommand::Insert { range, category } => {
            let mut admin = client::admin(&global.endpoint).await?;
            let req = pb::InsertVolumesRequest {
                range: range.clone(),
                category: category.unwrap_or_default(),
            };
            let r = admin.insert_volumes(req).await?.into_inner();
            if global.json {
                print_json(
                    &serde_json::json!({"range": range, "count": r.count, "owner": r.owner}),
                );
            } else {
                println!(
                    "inserted {} volume(s) {range}, owned by C{}",
                    r.count, r.owner
                );
            }
            Ok(())
        }
        VolumeCommand::Write {
            volser,
            scratch,
            category,
            mc,
            sc,
            dc,
            append,
        } => {
            let target = match (volser, scratch) {
                (Some(v), false) => mount_request::Target::Volser(v),
                (None, true) => mount_request::Target::ScratchCategory(
                    category.unwrap_or_else(|| "0001".into()),
                ),
                _ => return Err(CliError::Usage("name a VOLSER or pass --scratch".into())),
            };
            let constructs = pb::Constructs {
                management_class: mc.unwrap_or_default(),
                storage_class: sc.unwrap_or_default(),
                data_class: dc.unwrap_or_default(),
                storage_group: String::new(),
            };
            let mount = pb::MountRequest {
                target: Some(target),
                append,
                constructs: Some(constructs),
                private_category: String::new(),
            };
            write(global, mount).await
        }
        VolumeCommand::Read { volser } => read(global, volser).await,
        VolumeCommand::List {
            category,
            owner,
            prefix,
            limit,
        } => list(global, category, owner, prefix, limit).await,
        VolumeCommand::Show { volser } => {
            let v = client::admin(&global.endpoint)
                .await?
                .get_volume(pb::GetVolumeRequest {
                    volser,
                    consistency: global.consistency(),
                })
                .await?
                .into_inner();
            if global.json {
                print_json(&volume_json(&v));
            } else {
                print_volume(&v);
            }
            Ok(())
        }
        VolumeCommand::Scratch { volser, category } => {
            change_category(global, volser, category.unwrap_or_else(|| "0001".into())).await
        }
        VolumeCommand::Category { volser, category } => {
            change_category(global, volser, category).await
        }
    }
}

fn progress(label: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec}) {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(label.to_string());
    bar
}

/// Mount, stream stdin, rewind-unload; print the VOLSER.
async fn write(global: &Global, mount: pb::MountRequest) -> Result<(), CliError> {
    let mut host = client::host(&global.endpoint).await?;
    let m = host.mount(mount).await?.into_inner();
    let bar = progress(&format!("writing {}", m.volser));

    // stdin is read on a blocking thread and fed to the gRPC stream through a small channel, so at
    // most a few chunks are in memory whatever the volume's size.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::WriteRequest>(4);
    let open = pb::WriteRequest {
        msg: Some(write_request::Msg::Open(pb::WriteOpen {
            mount_id: m.mount_id.clone(),
        })),
    };
    let bar2 = bar.clone();
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        if tx.blocking_send(open).is_err() {
            return Ok(0);
        }
        let mut stdin = std::io::stdin().lock();
        let mut total = 0u64;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match stdin.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // Dropping `tx` without an end message makes the node abort the job.
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                break;
            }
            buf.truncate(filled);
            total += filled as u64;
            bar2.inc(filled as u64);
            let chunk = pb::WriteRequest {
                msg: Some(write_request::Msg::Chunk(Bytes::from(buf))),
            };
            if tx.blocking_send(chunk).is_err() {
                return Ok(total);
            }
            if filled < CHUNK {
                break;
            }
        }
        let end = pb::WriteRequest {
            msg: Some(write_request::Msg::End(pb::WriteEnd { total_bytes: total })),
        };
        let _ = tx.blocking_send(end);
        Ok(total)
    });
    let written = host
        .write(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    // A refused write ends the command now; the stdin thread may be blocked on a read and is left
    // to die with the process.
    let written = written?.into_inner();
    let total = reader
        .await
        .map_err(|e| CliError::Grid(format!("stdin reader: {e}")))?
        .map_err(|source| CliError::Io {
            what: "reading stdin",
            source,
        })?;
    if written.bytes != total {
        return Err(CliError::Grid(format!(
            "the cluster took {} of {total} bytes",
            written.bytes
        )));
    }
    let done = host
        .rewind_unload(pb::RewindUnloadRequest {
            mount_id: m.mount_id,
        })
        .await?
        .into_inner();
    bar.finish_and_clear();
    if global.json {
        print_json(&serde_json::json!({
            "volser": done.volser, "version": done.version, "size": done.size,
            "digest": done.digest, "category": done.category, "written": done.written,
            "copies": done.copies,
            "immediate_copy_deferred": done.immediate_copy_deferred,
            "sync_deferred": done.sync_deferred,
        }));
    } else {
        println!("{}", done.volser);
        // stderr, for the person at the terminal: stdout stays just the VOLSER for scripts.
        eprintln!("{}", unload_outcome(&done));
    }
    Ok(())
}

/// What a host must know of its rewind-unload: the version, where it is held, and whether a RUN
/// or Sync copy was deferred (B39, B43), e.g. `A00000 version 2: held by C0, C1; RUN copy
/// deferred (IMMEDIATE_COPY_DEFERRED)`.
fn unload_outcome(done: &pb::RewindUnloadResponse) -> String {
    let holders: Vec<String> = done.copies.iter().map(|c| format!("C{c}")).collect();
    let mut line = if done.written {
        format!(
            "{} version {}: held by {}",
            done.volser,
            done.version,
            holders.join(", ")
        )
    } else {
        format!("{} unchanged at version {}", done.volser, done.version)
    };
    if done.immediate_copy_deferred {
        line.push_str("; RUN copy deferred (IMMEDIATE_COPY_DEFERRED)");
    }
    if done.sync_deferred {
        line.push_str("; Sync copy deferred (SYNC_DEFERRED)");
    }
    line
}

/// Mount, stream the volume to stdout, rewind-unload.
async fn read(global: &Global, volser: String) -> Result<(), CliError> {
    let mut host = client::host(&global.endpoint).await?;
    let mount = pb::MountRequest {
        target: Some(mount_request::Target::Volser(volser)),
        append: false,
        constructs: None,
        private_category: String::new(),
    };
    let m = host.mount(mount).await?.into_inner();
    let result = copy_to_stdout(&mut host, &m).await;
    // Demount whatever happened, so the volume is free for the next job.
    let unload = host
        .rewind_unload(pb::RewindUnloadRequest {
            mount_id: m.mount_id.clone(),
        })
        .await;
    result?;
    unload?;
    Ok(())
}

async fn copy_to_stdout(
    host: &mut HostServiceClient<crate::client::Conn>,
    m: &pb::MountResponse,
) -> Result<(), CliError> {
    let bar = progress(&format!("reading {}", m.volser));
    bar.set_length(m.size);
    let mut stream = host
        .read(pb::ReadRequest {
            mount_id: m.mount_id.clone(),
        })
        .await?
        .into_inner();
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        out.write_all(&chunk.data).map_err(|source| CliError::Io {
            what: "writing stdout",
            source,
        })?;
        bar.inc(chunk.data.len() as u64);
    }
    out.flush().map_err(|source| CliError::Io {
        what: "writing stdout",
        source,
    })?;
    bar.finish_and_clear();
    Ok(())
}

async fn list(
    global: &Global,
    category: Option<String>,
    owner: Option<u32>,
    prefix: Option<String>,
    limit: usize,
) -> Result<(), CliError> {
    let mut admin = client::admin(&global.endpoint).await?;
    let filter = pb::ListVolumesRequest {
        category: category.unwrap_or_default(),
        owner,
        volser_prefix: prefix.unwrap_or_default(),
        consistency: global.consistency(),
        ..Default::default()
    };
    // One more than the limit (0: no limit), to tell whether there are more.
    let ask = if limit == 0 {
        0
    } else {
        limit.saturating_add(1)
    };
    let mut all = vtgrid_proto::paging::list_volumes(&mut admin, filter, ask).await?;
    let more = limit != 0 && all.len() > limit;
    if more {
        all.truncate(limit);
    }
    if global.json {
        print_json(&serde_json::Value::Array(
            all.iter().map(volume_json).collect(),
        ));
    } else {
        println!("VOLSER  CAT   OWNER  VERSION          SIZE  MC        STATE");
        for v in &all {
            let mc = v
                .constructs
                .as_ref()
                .map(|c| c.management_class.as_str())
                .unwrap_or("");
            let state = if v.mounted { "mounted" } else { "" };
            println!(
                "{:<6}  {:<4}  C{:<4}  {:>7}  {:>12}  {:<8}  {}",
                v.volser, v.category, v.owner, v.version, v.size, mc, state
            );
        }
        if more {
            println!("(more; raise --limit or pass --limit 0)");
        }
    }
    Ok(())
}

async fn change_category(
    global: &Global,
    volser: String,
    category: String,
) -> Result<(), CliError> {
    let mut host = client::host(&global.endpoint).await?;
    let r = host
        .change_category(pb::ChangeCategoryRequest { volser, category })
        .await?
        .into_inner();
    let v = r.volume.unwrap_or_default();
    if global.json {
        print_json(&volume_json(&v));
    } else {
        println!("{} is now in category {}", v.volser, v.category);
    }
    Ok(())
}

fn volume_json(v: &pb::Volume) -> serde_json::Value {
    let c = v.constructs.clone().unwrap_or_default();
    serde_json::json!({
        "volser": v.volser, "owner": v.owner, "epoch": v.epoch, "category": v.category,
        "constructs": { "management_class": c.management_class, "storage_class": c.storage_class,
                        "data_class": c.data_class, "storage_group": c.storage_group },
        "version": v.version, "size": v.size, "digest": v.digest,
        "consistent_at": v.consistent_at, "mounted": v.mounted,
    })
}

fn print_volume(v: &pb::Volume) {
    let c = v.constructs.clone().unwrap_or_default();
    let mut at: Vec<_> = v
        .consistent_at
        .iter()
        .map(|(c, ver)| format!("C{c}@{ver}"))
        .collect();
    at.sort();
    println!("volser      {}", v.volser);
    println!("owner       C{} (epoch {})", v.owner, v.epoch);
    println!("category    {}", v.category);
    println!("version     {} ({} bytes)", v.version, v.size);
    println!("digest      {}", v.digest);
    println!("consistent  {}", at.join(" "));
    println!(
        "constructs  mc={} sc={} dc={}",
        c.management_class, c.storage_class, c.data_class
    );
    println!("mounted     {}", v.mounted);
}

#[cfg(test)]
mod unload_outcome_tests {
    use super::*;

    #[test]
    fn a_deferred_run_copy_is_said() {
        let done = pb::RewindUnloadResponse {
            volser: "A00000".into(),
            version: 2,
            written: true,
            copies: vec![0, 2],
            immediate_copy_deferred: true,
            ..Default::default()
        };
        assert_eq!(
            unload_outcome(&done),
            "A00000 version 2: held by C0, C2; RUN copy deferred (IMMEDIATE_COPY_DEFERRED)"
        );
    }

    #[test]
    fn a_deferred_sync_copy_is_said() {
        let done = pb::RewindUnloadResponse {
            volser: "A00001".into(),
            version: 1,
            written: true,
            copies: vec![0],
            sync_deferred: true,
            ..Default::default()
        };
        assert!(unload_outcome(&done).ends_with("; Sync copy deferred (SYNC_DEFERRED)"));
    }
}
