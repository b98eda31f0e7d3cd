//! `scripts/setup.sh`'s libclang detection, run against fake directory trees.
//!
//! The image CI uses ships `libclang-cpp.so.14` (the C++ API) and not libclang itself; an earlier
//! check took the one for the other and never installed `libclang-dev`, so a fresh machine's first
//! `make test` failed in RocksDB's bindgen. The script takes its search roots from
//! `VTGRID_LIBCLANG_ROOTS` for this test.

use std::path::Path;
use std::process::Command;

fn check_libclang(roots: &[&Path]) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup.sh");
    let roots: Vec<String> = roots.iter().map(|p| p.display().to_string()).collect();
    let out = Command::new("bash")
        .arg(&script)
        .arg("--check-libclang")
        .env("VTGRID_LIBCLANG_ROOTS", roots.join(":"))
        .output()
        .expect("run scripts/setup.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success(), stdout)
}

fn tree_with(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        std::fs::write(dir.path().join(f), b"").unwrap();
    }
    dir
}

#[test]
fn libclang_cpp_alone_is_missing() {
    let tree = tree_with(&["libclang-cpp.so.14", "libclang-cpp.so", "libLLVM-14.so.1"]);
    let (present, line) = check_libclang(&[tree.path()]);
    assert!(!present, "libclang-cpp alone taken for libclang: {line}");
    assert!(line.contains("libclang missing"), "{line}");
}

#[test]
fn versioned_libclang_is_present() {
    let tree = tree_with(&["libclang-cpp.so.14", "libclang.so.1"]);
    let (present, line) = check_libclang(&[tree.path()]);
    assert!(present, "{line}");
    assert!(
        line.contains("libclang present") && line.ends_with("libclang.so.1)"),
        "{line}"
    );
}

#[test]
fn every_name_bindgen_loads_is_present_in_any_root() {
    for name in [
        "libclang.so",
        "libclang-14.so",
        "libclang-14.so.1",
        "libclang.so.14.0.6",
    ] {
        let empty = tree_with(&[]);
        let tree = tree_with(&[name]);
        let (present, line) = check_libclang(&[empty.path(), tree.path()]);
        assert!(present, "{name}: {line}");
    }
}
