//! `vtgrid-chaos check` on saved files: exit 0 on a clean run, 1 with a report naming the lost
//! version's operation, 2 on a history it cannot read.

use std::process::Command;

const CATALOG: &str = r#"{"clusters":[
  {"id":0,"catalog":[{"volser":"A00001","version":1,"digest":"d1","owner":0,"epoch":1}]},
  {"id":1,"catalog":[{"volser":"A00001","version":1,"digest":"d1","owner":0,"epoch":1}]}]}"#;

fn run(history: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let (h, s) = (
        dir.path().join("history.jsonl"),
        dir.path().join("state.json"),
    );
    std::fs::write(&h, history).unwrap();
    std::fs::write(&s, CATALOG).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vtgrid-chaos"))
        .args(["check", "--history"])
        .arg(&h)
        .arg("--state")
        .arg(&s)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn write(id: u64, version: u64, digest: &str) -> String {
    format!(
        r#"{{"type":"op","id":{id},"kind":"write","cluster":0,"volser":"A00001","mode":"run","start_ms":{},"end_ms":{},"result":"ok","version":{version},"digest":"{digest}"}}"#,
        id * 100,
        id * 100 + 50
    )
}

#[test]
fn a_clean_history_passes_and_prints_the_measures() {
    let (code, text) = run(&write(1, 1, "d1"));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("no violation") && text.contains("RPO"),
        "{text}"
    );
}

#[test]
fn a_lost_run_version_fails_naming_its_operation() {
    let history = [write(1, 1, "d1"), write(2, 2, "d2")].join("\n");
    let (code, text) = run(&history);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("A00001 version 2 (RUN) acknowledged by operation 2 is lost"),
        "{text}"
    );
}

#[test]
fn an_unreadable_history_is_an_error() {
    let (code, text) = run("{\"type\":\"op\",");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("history line 1"), "{text}");
}
