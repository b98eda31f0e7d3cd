//! Issue 12 item 8: the Python example (`examples/python/`) against a real `vtgrid grid up`, as a
//! third-party user runs it: stubs generated from `proto/` with grpcio-tools, the host path
//! (insert, write a file, read it back, GetVolume), events followed and resumed by sequence,
//! the services listed through the stock reflection client (v1alpha), and every reason of
//! docs/errors.md decoded by the generic `grpc_status.rpc_status.from_call`.
//!
//! The packages (`examples/python/requirements.txt`, pinned) go into a venv under the target
//! dir, made once. When PyPI cannot be reached the test says so and passes without running.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::codegen::http;
use tonic::Code;
use vtgrid_proto::reason::{all_reasons, status_with_reason};
use vtgrid_tests::support::{GridOptions, Launch, TestGrid};

/// How long one Python step (pip, the example) may take.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(600);

/// Answers `/vtgrid.test.v1.Errors/<REASON>` with that reason's status, built by the node's own
/// `status_with_reason`, so the Python decoder reads exactly what a node sends on the wire.
#[derive(Clone)]
struct Errors;

impl tonic::server::NamedService for Errors {
    const NAME: &'static str = "vtgrid.test.v1.Errors";
}

impl tower::Service<http::Request<tonic::body::Body>> for Errors {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let name = request.uri().path().rsplit('/').next().unwrap_or_default();
        let status = match vtgrid_proto::pb::Reason::from_str_name(name) {
            Some(reason) => status_with_reason(
                Code::FailedPrecondition,
                reason,
                format!("a {name} as a node sends it"),
            ),
            None => tonic::Status::unimplemented(format!("{name} is not a reason")),
        };
        ready(Ok(status.into_http()))
    }
}

/// The target dir this test binary was built into (`target/debug/deps/..` → `target`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary lives in target/<profile>/deps/")
        .to_path_buf()
}

fn run(cmd: &mut Command, what: &str) -> std::process::Output {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PYTHON_TIMEOUT) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("{what} did not finish within {PYTHON_TIMEOUT:?}")
        }
    }
}

fn pypi_reachable(python: &Path) -> bool {
    let probe = "import urllib.request; urllib.request.urlopen('https://pypi.org/simple/grpcio/', timeout=15)";
    Command::new(python)
        .args(["-c", probe])
        .status()
        .is_ok_and(|s| s.success())
}

/// The venv's python with the pinned packages, or None (with the reason printed) when PyPI
/// cannot be reached to install them.
fn venv(requirements: &Path) -> Option<PathBuf> {
    let dir = target_dir().join("python-venv");
    let python = dir.join("bin/python");
    let wanted = std::fs::read_to_string(requirements).expect("requirements.txt");
    let marker = dir.join("installed-requirements.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Some(python);
    }
    if !python.is_file() {
        let out = run(
            Command::new("python3").args(["-m", "venv"]).arg(&dir),
            "python3 -m venv",
        );
        assert!(
            out.status.success(),
            "python3 -m venv {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(requirements),
        "pip install",
    );
    if !out.status.success() {
        if !pypi_reachable(&python) {
            eprintln!(
                "SKIPPED python_client: PyPI cannot be reached to install {} ({})",
                requirements.display(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return None;
        }
        panic!(
            "pip install -r {} failed with PyPI reachable:\n{}",
            requirements.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(&marker, wanted).expect("write the venv's marker");
    Some(python)
}

/// Sequence: venv with the pinned packages → `grid up` on the embedded-style one-cluster grid
/// file → an in-process server answering each reason → `vtgrid_example.py demo`: reflection
/// v1alpha lists HostService and no GridService → insert P00000-P00009 → write 3 MiB + 123 bytes
/// from a file → read back equal → GetVolume has the unload's digest → a bad VOLSER decodes to
/// INVALID_VOLSER → two SERVICE_STATE events followed from sequence 1, resumed from 2 → every
/// reason in `Reason` decoded by `rpc_status.from_call` → "demo: passed".
#[tokio::test(flavor = "multi_thread")]
async fn the_python_example_runs_against_grid_up_and_decodes_every_reason() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python");
    let Some(python) = venv(&example.join("requirements.txt")) else {
        return;
    };
    let grid = TestGrid::start_with(GridOptions {
        launch: Launch::GridUp,
        ..GridOptions::default()
    })
    .await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let errors_addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(Errors)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let reasons: Vec<&str> = all_reasons().iter().map(|r| r.as_str_name()).collect();
    let endpoint = grid.endpoint().trim_start_matches("http://").to_string();
    let gen = tempfile::tempdir().unwrap();
    let script = example.join("vtgrid_example.py");
    let out = tokio::task::spawn_blocking(move || {
        run(
            Command::new(&python)
                .arg(&script)
                .args(["--endpoint", &endpoint, "--gen"])
                .arg(gen.path())
                .args(["--errors", &errors_addr.to_string()])
                .args(["--reasons", &reasons.join(",")])
                .arg("demo"),
            "vtgrid_example.py demo",
        )
    })
    .await
    .unwrap();
    server.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("demo: passed"),
        "the Python example failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(&format!(
            "rpc_status.from_call decoded all {} reasons",
            all_reasons().len()
        )),
        "{stdout}"
    );
}
