//! The framing of one stored version, shared by the file and in-memory stores (DESIGN §4: chunks
//! carry CRC32C, the version a whole BLAKE3 digest).
//!
//! ```text
//!  offset (bytes)       len  field
//!  ───────────────────  ───  ──────────────────────────────────────────────────────────────
//!  header
//!  0                      8  magic  b"VTGVOL1\0"
//!  8                      6  VOLSER, ASCII
//!  14                     8  version, u64 LE
//!  chunk i, i = 0 .. chunk_count(size), starting at 22 + i * (8 + CHUNK_SIZE)
//!  +0                     4  len, u32 LE: CHUNK_SIZE, except the last chunk which holds the rest
//!  +4                     4  CRC32C (Castagnoli) of the data, u32 LE
//!  +8                   len  data
//!  trailer, the last 48 bytes
//!  +0                     4  u32::MAX: the trailer marker, where a chunk's len would be
//!  +4                     8  size: total data bytes, u64 LE
//!  +12                   32  BLAKE3 of all data bytes
//!  +44                    4  CRC32C of the 40 bytes size ‖ digest, u32 LE
//! ```
//!
//! Because the writer cuts chunks itself, every chunk but the last is exactly [`CHUNK_SIZE`] and a
//! version's layout is a function of its size alone ([`stored_len`], [`data_offset`]). A reader
//! uses that: it reads the header and trailer first, rejects a file whose length disagrees with
//! the trailer's size ([`TvcError::Truncated`]), then expects each chunk's exact length.
//!
//! A sync point writes the chunk being filled as a short chunk; later writes extend that chunk
//! and rewrite it in place, so syncs never change the layout.
//!
//! A sync point also records a marker beside the partial version, so the prefix outlives the
//! writer (a synced prefix, B42/T17). Cutting the partial file back to the marker's size, with
//! the last chunk's header rewritten for that size and a trailer appended, gives exactly the
//! stored form of a version of those bytes:
//!
//! ```text
//!  sync marker   len  field
//!  0               8  magic  b"VTGSYNC1"
//!  8               8  size: data bytes up to the sync point, u64 LE
//!  16             32  BLAKE3 of those bytes
//!  48              4  note length n, u32 LE
//!  52              n  note (the node's, opaque here)
//!  52 + n          4  CRC32C of everything before, u32 LE
//! ```
//!
//! The CRC covers each chunk so a reader can reject a bad chunk before handing out its bytes; the
//! BLAKE3 digest covers the order and completeness of the chunks, and is what the catalog records.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use bytes::Bytes;
use vtgrid_core::{Digest, VersionNumber, Volser};

use crate::error::{IoOp, TvcError};
use crate::store::VersionMeta;

/// Data bytes per chunk (1 MiB): the unit of CRC checking, reading and copying.
pub const CHUNK_SIZE: usize = 1 << 20;
/// First 8 bytes of every stored version.
pub const MAGIC: [u8; 8] = *b"VTGVOL1\0";
/// Magic, VOLSER and version.
pub const HEADER_LEN: u64 = 8 + 6 + 8;
/// A chunk's `len` and CRC32C.
pub const CHUNK_HEADER_LEN: u64 = 8;
/// The `len` value that marks the trailer.
pub const TRAILER_MARKER: u32 = u32::MAX;
/// Marker, size, digest and CRC32C.
pub const TRAILER_LEN: u64 = 4 + 8 + 32 + 4;

/// Number of data chunks in a version of `size` bytes.
pub const fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE as u64)
}

/// Stored length of a version of `size` data bytes: header, chunks and trailer. This is what the
/// file takes on disk and what space accounting charges.
pub const fn stored_len(size: u64) -> u64 {
    HEADER_LEN + chunk_count(size) * CHUNK_HEADER_LEN + size + TRAILER_LEN
}

/// Where data byte `pos` of a version sits in its stored form (tests use it to flip bytes).
pub fn data_offset(pos: u64) -> u64 {
    let chunk = CHUNK_SIZE as u64;
    HEADER_LEN + (pos / chunk) * (CHUNK_HEADER_LEN + chunk) + CHUNK_HEADER_LEN + pos % chunk
}

pub(crate) fn encode_header(volser: Volser, version: VersionNumber) -> [u8; HEADER_LEN as usize] {
    let mut out = [0u8; HEADER_LEN as usize];
    out[..8].copy_from_slice(&MAGIC);
    out[8..14].copy_from_slice(volser.as_str().as_bytes());
    out[14..].copy_from_slice(&version.to_le_bytes());
    out
}

pub(crate) fn encode_trailer(size: u64, digest: &Digest) -> [u8; TRAILER_LEN as usize] {
    let mut out = [0u8; TRAILER_LEN as usize];
    out[..4].copy_from_slice(&TRAILER_MARKER.to_le_bytes());
    out[4..12].copy_from_slice(&size.to_le_bytes());
    out[12..44].copy_from_slice(&digest.0);
    let crc = crc32c::crc32c(&out[4..44]);
    out[44..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// First 8 bytes of a sync marker.
pub const SYNC_MAGIC: [u8; 8] = *b"VTGSYNC1";

/// What a sync point recorded: the prefix's size and digest, and the caller's note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyncMarker {
    pub size: u64,
    pub digest: Digest,
    pub note: Vec<u8>,
}

impl SyncMarker {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let note_len = u32::try_from(self.note.len()).expect("a sync note is small");
        let mut out = Vec::with_capacity(56 + self.note.len());
        out.extend_from_slice(&SYNC_MAGIC);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.digest.0);
        out.extend_from_slice(&note_len.to_le_bytes());
        out.extend_from_slice(&self.note);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// The marker in `bytes`, or `None` when they are not a whole, intact marker.
    pub(crate) fn decode(bytes: &[u8]) -> Option<SyncMarker> {
        if bytes.len() < 56 || bytes[..8] != SYNC_MAGIC {
            return None;
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != le_u32(crc) {
            return None;
        }
        let note_len = le_u32(&body[48..52]) as usize;
        if body.len() != 52 + note_len {
            return None;
        }
        Some(SyncMarker {
            size: le_u64(&body[8..16]),
            digest: Digest(body[16..48].try_into().expect("32 bytes")),
            note: body[52..].to_vec(),
        })
    }
}

/// Cut the stored bytes of a partial version back to `marker.size` data bytes and close them as
/// a version: the last chunk's header is rewritten for its length, a trailer appended. Every
/// chunk but the last is checked against its CRC and the whole prefix against the marker's
/// digest; `None` when the bytes are not the prefix the marker recorded (then they must not
/// become a version). Works on anything readable and writable at an offset: a file, or a
/// partial version in memory.
pub(crate) fn close_prefix<F: Read + Write + Seek>(
    f: &mut F,
    volser: Volser,
    version: VersionNumber,
    marker: &SyncMarker,
) -> io::Result<Option<u64>> {
    let mut header = [0u8; HEADER_LEN as usize];
    f.seek(SeekFrom::Start(0))?;
    if read_full(f, &mut header)? < header.len() || header != encode_header(volser, version) {
        return Ok(None);
    }
    let count = chunk_count(marker.size);
    let mut hasher = blake3::Hasher::new();
    let mut data = vec![0u8; CHUNK_SIZE];
    let mut last_head = None;
    for i in 0..count {
        let offset = HEADER_LEN + i * (CHUNK_HEADER_LEN + CHUNK_SIZE as u64);
        let len = (marker.size - i * CHUNK_SIZE as u64).min(CHUNK_SIZE as u64) as usize;
        let mut head = [0u8; CHUNK_HEADER_LEN as usize];
        f.seek(SeekFrom::Start(offset))?;
        if read_full(f, &mut head)? < head.len() || read_full(f, &mut data[..len])? < len {
            return Ok(None);
        }
        let crc = crc32c::crc32c(&data[..len]);
        if i + 1 < count && (le_u32(&head[..4]) as usize != len || le_u32(&head[4..]) != crc) {
            return Ok(None);
        }
        hasher.update(&data[..len]);
        last_head = Some((offset, len as u32, crc));
    }
    if Digest(*hasher.finalize().as_bytes()) != marker.digest {
        return Ok(None);
    }
    if let Some((offset, len, crc)) = last_head {
        let mut head = [0u8; CHUNK_HEADER_LEN as usize];
        head[..4].copy_from_slice(&len.to_le_bytes());
        head[4..].copy_from_slice(&crc.to_le_bytes());
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(&head)?;
    }
    let end = stored_len(marker.size) - TRAILER_LEN;
    f.seek(SeekFrom::Start(end))?;
    f.write_all(&encode_trailer(marker.size, &marker.digest))?;
    Ok(Some(stored_len(marker.size)))
}

/// Read into `buf` until it is full or the source ends; the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("callers pass exactly 4 bytes"))
}

fn le_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("callers pass exactly 8 bytes"))
}

/// The version a writer or reader works on, and where it lives, to build errors that say what
/// and where.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub volser: Volser,
    pub version: VersionNumber,
    /// The file (or, for the in-memory store, a descriptive `mem:` path) named in I/O errors.
    pub path: PathBuf,
}

impl Target {
    /// Classify an I/O error: ENOSPC is [`TvcError::StorageFull`] (the caller acts on it like a
    /// quota), a short read is [`TvcError::Truncated`], anything else is [`TvcError::Io`].
    pub(crate) fn io_error(&self, op: IoOp, needed: u64, source: io::Error) -> TvcError {
        match source.kind() {
            io::ErrorKind::StorageFull => TvcError::StorageFull {
                volser: self.volser,
                needed,
                available: 0,
            },
            io::ErrorKind::UnexpectedEof if op == IoOp::Read => self.truncated(),
            _ => TvcError::Io {
                op,
                path: self.path.clone(),
                source,
            },
        }
    }

    pub(crate) fn truncated(&self) -> TvcError {
        TvcError::Truncated {
            volser: self.volser,
            version: self.version,
        }
    }

    pub(crate) fn broken(&self) -> TvcError {
        TvcError::Broken {
            volser: self.volser,
            version: self.version,
        }
    }

    fn chunk_corrupt(&self, chunk: u64) -> TvcError {
        TvcError::ChunkCorrupt {
            volser: self.volser,
            version: self.version,
            chunk,
        }
    }

    fn digest_mismatch(&self) -> TvcError {
        TvcError::DigestMismatch {
            volser: self.volser,
            version: self.version,
        }
    }
}

/// Frames data into a seekable sink: header at creation, chunks as they fill, trailer at
/// [`FrameWriter::finish`]. It does no fsync and no space accounting; the stores do.
pub(crate) struct FrameWriter<W> {
    sink: W,
    target: Target,
    /// The chunk being filled: [`CHUNK_HEADER_LEN`] bytes of room for len and CRC (filled in when
    /// the chunk is written out), then up to [`CHUNK_SIZE`] data bytes.
    frame: Vec<u8>,
    /// Where the chunk being filled starts in the sink. A sync writes the partial chunk there;
    /// the full chunk later overwrites it at the same place.
    chunk_offset: u64,
    /// Data bytes taken so far.
    written: u64,
    hasher: blake3::Hasher,
}

impl<W: Write + Seek> FrameWriter<W> {
    /// Write the header into `sink` (which must be empty).
    pub(crate) fn new(mut sink: W, target: Target) -> Result<Self, TvcError> {
        let header = encode_header(target.volser, target.version);
        sink.write_all(&header)
            .map_err(|e| target.io_error(IoOp::Write, HEADER_LEN, e))?;
        let mut frame = Vec::with_capacity(CHUNK_HEADER_LEN as usize + CHUNK_SIZE);
        frame.resize(CHUNK_HEADER_LEN as usize, 0);
        Ok(FrameWriter {
            sink,
            target,
            frame,
            chunk_offset: HEADER_LEN,
            written: 0,
            hasher: blake3::Hasher::new(),
        })
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    pub(crate) fn sink_mut(&mut self) -> &mut W {
        &mut self.sink
    }

    /// Give back the sink, as it is (no trailer): for a writer that ends without committing.
    pub(crate) fn into_sink(self) -> W {
        self.sink
    }

    /// BLAKE3 of the data taken so far (the hasher goes on).
    pub(crate) fn prefix_digest(&self) -> Digest {
        Digest(*self.hasher.clone().finalize().as_bytes())
    }

    /// Append data, writing out each chunk as it reaches [`CHUNK_SIZE`]. On error the writer's
    /// state is unknown; callers treat it as broken.
    pub(crate) fn write(&mut self, mut data: &[u8]) -> Result<(), TvcError> {
        while !data.is_empty() {
            let room = CHUNK_HEADER_LEN as usize + CHUNK_SIZE - self.frame.len();
            let (now, later) = data.split_at(room.min(data.len()));
            self.frame.extend_from_slice(now);
            self.hasher.update(now);
            self.written += now.len() as u64;
            data = later;
            if self.frame.len() == CHUNK_HEADER_LEN as usize + CHUNK_SIZE {
                self.write_frame()?;
                self.chunk_offset += self.frame.len() as u64;
                self.frame.truncate(CHUNK_HEADER_LEN as usize);
            }
        }
        Ok(())
    }

    /// Write the chunk being filled (if any) at its place, so the sink holds every byte taken.
    /// The chunk stays open: later writes extend it and write it again.
    pub(crate) fn write_partial(&mut self) -> Result<(), TvcError> {
        if self.frame.len() > CHUNK_HEADER_LEN as usize {
            self.write_frame()?;
        }
        Ok(())
    }

    /// Write the last chunk and the trailer; give back the sink and what was written.
    pub(crate) fn finish(mut self) -> Result<(W, u64, Digest), TvcError> {
        if self.frame.len() > CHUNK_HEADER_LEN as usize {
            self.write_frame()?;
            self.chunk_offset += self.frame.len() as u64;
        }
        let digest = Digest(*self.hasher.finalize().as_bytes());
        let trailer = encode_trailer(self.written, &digest);
        let target = &self.target;
        self.sink
            .seek(SeekFrom::Start(self.chunk_offset))
            .and_then(|_| self.sink.write_all(&trailer))
            .map_err(|e| target.io_error(IoOp::Write, TRAILER_LEN, e))?;
        Ok((self.sink, self.written, digest))
    }

    fn write_frame(&mut self) -> Result<(), TvcError> {
        let head = CHUNK_HEADER_LEN as usize;
        let len =
            u32::try_from(self.frame.len() - head).expect("a chunk holds at most CHUNK_SIZE bytes");
        let crc = crc32c::crc32c(&self.frame[head..]);
        self.frame[..4].copy_from_slice(&len.to_le_bytes());
        self.frame[4..head].copy_from_slice(&crc.to_le_bytes());
        let target = &self.target;
        self.sink
            .seek(SeekFrom::Start(self.chunk_offset))
            .and_then(|_| self.sink.write_all(&self.frame))
            .map_err(|e| target.io_error(IoOp::Write, self.frame.len() as u64, e))
    }
}

/// Reads a stored version back chunk by chunk, verifying as it goes. Holds one chunk in memory
/// at a time, never the whole version.
pub(crate) struct FrameReader<R> {
    source: R,
    target: Target,
    /// Size and digest from the trailer, checked against the data at the end.
    meta: VersionMeta,
    /// Data bytes returned so far.
    pos: u64,
    /// Index of the next chunk.
    chunk: u64,
    hasher: blake3::Hasher,
    state: ReadState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Reading,
    /// Digest checked, `None` returned.
    Done,
    /// An error was returned; the position in `source` is unknown.
    Broken,
}

impl<R: Read + Seek> FrameReader<R> {
    /// Check the header names `target`'s version, read the trailer, and check the stored length
    /// matches the trailer's size. Leaves `source` at the first chunk.
    pub(crate) fn open(mut source: R, target: Target) -> Result<Self, TvcError> {
        let read_err = |e| target.io_error(IoOp::Read, 0, e);
        let len = source.seek(SeekFrom::End(0)).map_err(read_err)?;
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(target.truncated());
        }
        let mut header = [0u8; HEADER_LEN as usize];
        source
            .seek(SeekFrom::Start(0))
            .and_then(|_| source.read_exact(&mut header))
            .map_err(read_err)?;
        if header != encode_header(target.volser, target.version) {
            return Err(TvcError::HeaderMismatch {
                volser: target.volser,
                version: target.version,
            });
        }
        let mut trailer = [0u8; TRAILER_LEN as usize];
        source
            .seek(SeekFrom::Start(len - TRAILER_LEN))
            .and_then(|_| source.read_exact(&mut trailer))
            .map_err(read_err)?;
        if le_u32(&trailer[..4]) != TRAILER_MARKER {
            return Err(target.truncated());
        }
        if le_u32(&trailer[44..]) != crc32c::crc32c(&trailer[4..44]) {
            return Err(target.digest_mismatch());
        }
        let size = le_u64(&trailer[4..12]);
        let digest = Digest(
            trailer[12..44]
                .try_into()
                .expect("the digest field is 32 bytes"),
        );
        if stored_len(size) != len {
            return Err(target.truncated());
        }
        source.seek(SeekFrom::Start(HEADER_LEN)).map_err(read_err)?;
        let meta = VersionMeta {
            volser: target.volser,
            version: target.version,
            size,
            digest,
        };
        Ok(FrameReader {
            source,
            target,
            meta,
            pos: 0,
            chunk: 0,
            hasher: blake3::Hasher::new(),
            state: ReadState::Reading,
        })
    }

    pub(crate) fn meta(&self) -> &VersionMeta {
        &self.meta
    }

    /// The next verified chunk, or `None` once the digest has been checked. After an error the
    /// reader is spent and returns [`TvcError::Broken`].
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Bytes>, TvcError> {
        match self.state {
            ReadState::Done => return Ok(None),
            ReadState::Broken => return Err(self.target.broken()),
            ReadState::Reading => {}
        }
        let out = self.read_chunk();
        self.state = match &out {
            Ok(Some(_)) => ReadState::Reading,
            Ok(None) => ReadState::Done,
            Err(_) => ReadState::Broken,
        };
        out
    }

    fn read_chunk(&mut self) -> Result<Option<Bytes>, TvcError> {
        if self.pos == self.meta.size {
            let digest = Digest(*self.hasher.finalize().as_bytes());
            if digest != self.meta.digest {
                return Err(self.target.digest_mismatch());
            }
            return Ok(None);
        }
        let target = &self.target;
        let read_err = |e| target.io_error(IoOp::Read, 0, e);
        let mut head = [0u8; CHUNK_HEADER_LEN as usize];
        self.source.read_exact(&mut head).map_err(read_err)?;
        let len = le_u32(&head[..4]);
        let expected = (self.meta.size - self.pos).min(CHUNK_SIZE as u64);
        if u64::from(len) != expected {
            return Err(target.chunk_corrupt(self.chunk));
        }
        let mut data = vec![0u8; len as usize];
        self.source.read_exact(&mut data).map_err(read_err)?;
        if crc32c::crc32c(&data) != le_u32(&head[4..]) {
            return Err(target.chunk_corrupt(self.chunk));
        }
        self.hasher.update(&data);
        self.pos += expected;
        self.chunk += 1;
        Ok(Some(Bytes::from(data)))
    }
}

/// A [`crate::VersionReader`] over any framed source: a file, or bytes in memory.
pub(crate) struct FramedVersionReader<R>(pub FrameReader<R>);

impl<R: Read + Seek + Send> crate::store::VersionReader for FramedVersionReader<R> {
    fn meta(&self) -> &VersionMeta {
        self.0.meta()
    }

    fn next_chunk(&mut self) -> Result<Option<Bytes>, TvcError> {
        self.0.next_chunk()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn target() -> Target {
        Target {
            volser: "A00001".parse().unwrap(),
            version: 7,
            path: PathBuf::from("mem:test"),
        }
    }

    #[test]
    fn empty_digest_is_blake3_of_nothing() {
        assert_eq!(Digest::EMPTY.0, *blake3::hash(b"").as_bytes());
    }

    #[test]
    fn stored_len_and_data_offset_follow_the_table() {
        let cs = CHUNK_SIZE as u64;
        assert_eq!(stored_len(0), 22 + 48);
        assert_eq!(stored_len(1), 22 + 8 + 1 + 48);
        assert_eq!(stored_len(cs), 22 + 8 + cs + 48);
        assert_eq!(stored_len(cs + 1), 22 + 16 + cs + 1 + 48);
        assert_eq!(data_offset(0), 30);
        assert_eq!(data_offset(cs), 22 + 8 + cs + 8);
    }

    #[test]
    fn framed_bytes_have_the_documented_layout() {
        let data: Vec<u8> = (0..CHUNK_SIZE + 5).map(|i| (i % 251) as u8).collect();
        let mut w = FrameWriter::new(Cursor::new(Vec::new()), target()).unwrap();
        w.write(&data).unwrap();
        let (sink, size, digest) = w.finish().unwrap();
        let bytes = sink.into_inner();
        assert_eq!(bytes.len() as u64, stored_len(size));
        assert_eq!(&bytes[..8], b"VTGVOL1\0");
        assert_eq!(&bytes[8..14], b"A00001");
        assert_eq!(le_u64(&bytes[14..22]), 7);
        assert_eq!(le_u32(&bytes[22..26]) as usize, CHUNK_SIZE);
        assert_eq!(le_u32(&bytes[26..30]), crc32c::crc32c(&data[..CHUNK_SIZE]));
        let t = bytes.len() - TRAILER_LEN as usize;
        assert_eq!(le_u32(&bytes[t..t + 4]), u32::MAX);
        assert_eq!(le_u64(&bytes[t + 4..t + 12]), data.len() as u64);
        assert_eq!(&bytes[t + 12..t + 44], blake3::hash(&data).as_bytes());
        assert_eq!(digest.0, *blake3::hash(&data).as_bytes());
    }

    #[test]
    fn partial_chunk_written_at_sync_is_rewritten_in_place() {
        let data: Vec<u8> = (0..2 * CHUNK_SIZE + 3).map(|i| (i % 13) as u8).collect();
        let mut w = FrameWriter::new(Cursor::new(Vec::new()), target()).unwrap();
        for piece in data.chunks(CHUNK_SIZE / 3) {
            w.write(piece).unwrap();
            w.write_partial().unwrap();
        }
        let (sink, _, _) = w.finish().unwrap();
        let mut plain = FrameWriter::new(Cursor::new(Vec::new()), target()).unwrap();
        plain.write(&data).unwrap();
        let (plain_sink, _, _) = plain.finish().unwrap();
        assert_eq!(sink.into_inner(), plain_sink.into_inner());
    }

    #[test]
    fn header_of_another_version_is_mismatch() {
        let w = FrameWriter::new(Cursor::new(Vec::new()), target()).unwrap();
        let (sink, _, _) = w.finish().unwrap();
        let other = Target {
            version: 8,
            ..target()
        };
        let err = FrameReader::open(Cursor::new(sink.into_inner()), other)
            .err()
            .unwrap();
        assert!(
            matches!(err, TvcError::HeaderMismatch { version: 8, .. }),
            "{err:?}"
        );
        assert!(err.is_corruption());
    }
}
