//! What the chaos crate's process tests share: the `vtgrid` binary they run, and whether this
//! run can use network namespaces.

use std::path::PathBuf;
use std::process::Command;

/// The `vtgrid` binary beside this test's (`cargo build -p vtgrid-cli`), or `VTGRID_BIN`.
pub fn vtgrid_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VTGRID_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("vtgrid");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p vtgrid-cli` first (or set VTGRID_BIN)",
        bin.display()
    );
    bin
}

/// Root with `ip` (iproute2): the runner then uses network namespaces. (Each test file is its
/// own crate and not every one asks.)
#[allow(dead_code)]
pub fn is_root_with_ip() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    }) && Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}
