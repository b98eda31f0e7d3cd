//! The trace of one simulation run: every byte written on a simulated connection, every host
//! result a test notes, every commit a voter applies, each with the simulated time. Two runs of
//! one seed must produce the same trace (DESIGN §8); [`Trace::first_difference`] says where two
//! traces part when they do not.
//!
//! Recording is per thread (turmoil runs a whole simulation on one thread) and off unless a test
//! calls [`record`]; the connections ([`crate::net`]), the driver ([`crate::grid::SimGrid::run`])
//! and tests ([`note`]) add to it.

use std::cell::RefCell;

thread_local! {
    static TRACE: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Start recording a new trace on this thread.
pub fn record() {
    TRACE.with(|t| *t.borrow_mut() = Some(Vec::new()));
}

/// Stop recording and return what was recorded (empty if nothing was).
pub fn take() -> Trace {
    Trace(TRACE.with(|t| t.borrow_mut().take()).unwrap_or_default())
}

pub fn recording() -> bool {
    TRACE.with(|t| t.borrow().is_some())
}

/// Add one line, stamped with the simulated time, if recording.
pub fn note(line: impl FnOnce() -> String) {
    TRACE.with(|t| {
        if let Some(lines) = t.borrow_mut().as_mut() {
            let at = turmoil::sim_elapsed().unwrap_or_default();
            lines.push(format!("{:>10.4}s {}", at.as_secs_f64(), line()));
        }
    });
}

/// Bytes written on a connection: their length and a short digest (the bytes themselves would
/// make traces of gigabytes).
/// `route` is "from -> to".
///
/// `VTGRID_SIM_TRACE_BYTES=1` records the bytes themselves (escaped), to see what differs.
pub fn bytes(route: &str, data: &[u8]) {
    note(|| {
        let (h, len) = wire_digest(data);
        let mut line = format!("net {route} {len} bytes {}", &h.to_hex()[..16]);
        if std::env::var_os("VTGRID_SIM_TRACE_BYTES").is_some() {
            line += &format!(" {}", wire_text(data));
        }
        line
    });
}

/// BLAKE3 and length of what a connection wrote, with HTTP/2 header blocks left out: hyper stamps
/// every response with a `date` header from the wall clock, which no simulation controls and
/// nothing decides on, and HPACK then encodes later header blocks by reference or not depending on
/// whether the second changed. Everything else (gRPC messages in DATA frames, settings, window
/// updates, resets, pings) counts by its bytes. Bytes that are not a run of whole frames (the
/// connection preface) count as they are.
fn wire_digest(data: &[u8]) -> (blake3::Hash, usize) {
    let mut h = blake3::Hasher::new();
    let mut counted = 0;
    let mut rest = data;
    while rest.len() >= 9 {
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        let Some(frame) = rest.get(..9 + len) else {
            return (blake3::hash(data), data.len());
        };
        if is_header_block(frame[3]) {
            h.update(&[frame[3], frame[4]]);
        } else {
            h.update(frame);
            counted += frame.len();
        }
        rest = &rest[9 + len..];
    }
    if rest.is_empty() {
        (h.finalize(), counted)
    } else {
        (blake3::hash(data), data.len())
    }
}

/// HEADERS and CONTINUATION frames carry header blocks.
fn is_header_block(frame_type: u8) -> bool {
    matches!(frame_type, 0x1 | 0x9)
}

/// The bytes for a person, header blocks left out as in [`wire_digest`].
fn wire_text(data: &[u8]) -> String {
    let mut out = String::new();
    let mut rest = data;
    while rest.len() >= 9 {
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        let Some(frame) = rest.get(..9 + len) else {
            return data.escape_ascii().to_string();
        };
        if is_header_block(frame[3]) {
            out += "[headers] ";
        } else {
            out += &format!("[type {} len {len}] ", frame[3]);
            out += &frame[9..].escape_ascii().to_string();
            out.push(' ');
        }
        rest = &rest[9 + len..];
    }
    if !rest.is_empty() {
        return data.escape_ascii().to_string();
    }
    out
}

/// A recorded trace.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trace(pub Vec<String>);

impl Trace {
    /// One BLAKE3 hash over every line, in order.
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        for line in &self.0 {
            h.update(line.as_bytes());
            h.update(b"\n");
        }
        h.finalize().to_hex().to_string()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Where this trace and `other` first differ: the line number and both lines (with the few
    /// lines before, for context), or `None` when they are equal.
    pub fn first_difference(&self, other: &Trace) -> Option<String> {
        let n = self.0.len().max(other.0.len());
        let at = (0..n).find(|&i| self.0.get(i) != other.0.get(i))?;
        let context: Vec<&str> = self.0[at.saturating_sub(5)..at]
            .iter()
            .map(String::as_str)
            .collect();
        let after = |t: &Trace| -> String {
            t.0.iter()
                .skip(at)
                .take(6)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("\n          ")
        };
        Some(format!(
            "line {at} of {} / {}:\n  before: {}\n  first:  {}\n  second: {}",
            self.0.len(),
            other.0.len(),
            context.join("\n          "),
            after(self),
            after(other),
        ))
    }
}
