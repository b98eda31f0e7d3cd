//! Running the `vtgrid` binary: finding it, and running one command with a deadline.
//!
//! A command's stdin can be fed from a [`Payload`] and its stdout captured as text or only
//! hashed, so 256 MiB pass through without being held. Each pipe has its own thread and the
//! child is waited for with a deadline; on timeout it is killed, which also ends the pipe threads.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::payload::Payload;
use super::wait::poll_blocking;

/// How long one CLI command may run (a 256 MiB write in a debug build included).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(300);

/// The `vtgrid` binary under test: `$VTGRID_BIN`, else `vtgrid` next to the `deps/` directory
/// holding this test binary (`target/debug/vtgrid`).
pub fn vtgrid_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("VTGRID_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "VTGRID_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|debug| debug.join("vtgrid"))
        .expect("the test binary lives in target/<profile>/deps/");
    assert!(
        bin.is_file(),
        "no vtgrid binary at {}: build it first: cargo build -p vtgrid-cli (make test does)",
        bin.display()
    );
    bin
}

/// What to do with the command's stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdout {
    /// Keep it as text.
    Text,
    /// Count and hash it, keep nothing.
    Sha256,
}

/// One command line for the binary.
#[derive(Clone, Debug)]
pub struct CliCall {
    pub args: Vec<String>,
    /// Bytes fed to stdin (then closed); none: stdin is empty.
    pub stdin: Option<Payload>,
    pub stdout: Stdout,
    pub timeout: Duration,
}

impl CliCall {
    pub fn new<S: AsRef<str>>(args: &[S]) -> CliCall {
        CliCall {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            stdin: None,
            stdout: Stdout::Text,
            timeout: CLI_TIMEOUT,
        }
    }

    pub fn stdin(mut self, payload: Payload) -> CliCall {
        self.stdin = Some(payload);
        self
    }

    pub fn hash_stdout(mut self) -> CliCall {
        self.stdout = Stdout::Sha256;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> CliCall {
        self.timeout = timeout;
        self
    }

    /// Run to completion on a blocking thread.
    pub async fn run(self) -> CliRun {
        tokio::task::spawn_blocking(move || self.run_blocking())
            .await
            .expect("the CLI runner thread panicked")
    }

    pub fn run_blocking(self) -> CliRun {
        let mut child = Command::new(vtgrid_bin())
            .args(&self.args)
            .env_remove("VTGRID_ENDPOINT")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning vtgrid {:?}: {e}", self.args));
        let feeder = self.stdin.map(|payload| {
            let stdin = child.stdin.take().expect("stdin is piped");
            std::thread::spawn(move || feed(stdin, payload))
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let mode = self.stdout;
        let stdout_reader = std::thread::spawn(move || drain(stdout, mode));
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_reader = std::thread::spawn(move || drain(stderr, Stdout::Text));

        let Some(status) = wait_with_deadline(&mut child, self.timeout) else {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = join(stderr_reader).text;
            panic!(
                "vtgrid {:?} did not finish within {:?}; stderr:\n{stderr}",
                self.args, self.timeout
            )
        };
        let out = join(stdout_reader);
        let err = join(stderr_reader);
        let fed = feeder.map(join);
        CliRun {
            args: self.args,
            status,
            stdout: out.text,
            stdout_len: out.len,
            stdout_sha256: out.sha256,
            stderr: err.text,
            stdin_sha256: fed.as_ref().map(|f| f.sha256),
            stdin_len: fed.map_or(0, |f| f.len),
        }
    }
}

/// What a command did.
#[derive(Clone, Debug)]
pub struct CliRun {
    pub args: Vec<String>,
    pub status: ExitStatus,
    /// Empty with [`Stdout::Sha256`].
    pub stdout: String,
    pub stdout_len: u64,
    pub stdout_sha256: [u8; 32],
    pub stderr: String,
    /// SHA-256 and length of what was written to stdin (until the command closed it).
    pub stdin_sha256: Option<[u8; 32]>,
    pub stdin_len: u64,
}

impl CliRun {
    /// Panic with the command's output unless it exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &CliRun {
        assert!(
            self.status.success(),
            "vtgrid {:?} failed ({}); stderr:\n{}\nstdout:\n{}",
            self.args,
            self.status,
            self.stderr,
            self.stdout
        );
        self
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "vtgrid {:?} printed no JSON ({e}):\n{}",
                self.args, self.stdout
            )
        })
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Wait for `child` until `timeout`; `None` if it is still running.
pub fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    poll_blocking(timeout, || child.try_wait().expect("try_wait on a child"))
}

struct Drained {
    text: String,
    len: u64,
    sha256: [u8; 32],
}

fn drain(mut from: impl Read, mode: Stdout) -> Drained {
    let mut hasher = Sha256::new();
    let mut text = Vec::new();
    let mut len = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                len += n as u64;
                match mode {
                    Stdout::Text => text.extend_from_slice(&buf[..n]),
                    Stdout::Sha256 => hasher.update(&buf[..n]),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    Drained {
        text: String::from_utf8_lossy(&text).into_owned(),
        len,
        sha256: hasher.finalize().into(),
    }
}

struct Fed {
    len: u64,
    sha256: [u8; 32],
}

/// Write the payload to the child's stdin, hashing what went in; stop early if the child closes
/// its end (it refused the job).
fn feed(mut stdin: impl Write, payload: Payload) -> Fed {
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut reader = payload.reader();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).expect("a payload reader cannot fail");
        if n == 0 || stdin.write_all(&buf[..n]).is_err() {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    drop(stdin);
    Fed {
        len,
        sha256: hasher.finalize().into(),
    }
}

fn join<T>(handle: JoinHandle<T>) -> T {
    handle.join().expect("a pipe thread panicked")
}
