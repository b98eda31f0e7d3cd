//! Deterministic volume contents, generated on demand so a test never holds a big buffer.
//!
//! Byte `i` of a [`Payload`] is a function of the seed and `i` alone (splitmix64 of the seed and
//! the 8-byte word index), so any slice can be produced without the bytes before it, and "the
//! bytes received are a prefix of the original" is a comparison against [`Payload::slice`].

use std::io;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

/// `len` bytes of pseudo-random data named by `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload {
    seed: u64,
    len: u64,
}

const MIB: u64 = 1 << 20;

impl Payload {
    pub const fn new(seed: u64, len: u64) -> Payload {
        Payload { seed, len }
    }

    /// `mib` MiB plus `extra` bytes: sizes that end inside a chunk exercise the short last chunk.
    pub const fn mib(seed: u64, mib: u64, extra: u64) -> Payload {
        Payload::new(seed, mib * MIB + extra)
    }

    pub const fn len(&self) -> u64 {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn word(&self, index: u64) -> [u8; 8] {
        // splitmix64: a good 64-bit mix, one word per call, random access by index.
        let mut z = self
            .seed
            .wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).to_le_bytes()
    }

    /// Fill `out` with the bytes starting at `pos` (the caller keeps `pos + out.len() <= len`).
    fn fill(&self, pos: u64, out: &mut [u8]) {
        let mut at = pos;
        let mut filled = 0;
        while filled < out.len() {
            let word = self.word(at / 8);
            let skip = (at % 8) as usize;
            let n = (8 - skip).min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&word[skip..skip + n]);
            filled += n;
            at += n as u64;
        }
    }

    /// Bytes `start..end` (clamped to the payload).
    pub fn slice(&self, start: u64, end: u64) -> Vec<u8> {
        let end = end.min(self.len);
        let start = start.min(end);
        let mut out = vec![0u8; (end - start) as usize];
        self.fill(start, &mut out);
        out
    }

    /// All bytes; for payloads of a few MiB.
    pub fn to_vec(&self) -> Vec<u8> {
        self.slice(0, self.len)
    }

    /// The payload cut into messages of `size` bytes (the last one shorter), produced lazily.
    pub fn chunks(&self, size: usize) -> impl Iterator<Item = Bytes> + Send + 'static {
        let payload = *self;
        let size = size as u64;
        (0..self.len.div_ceil(size))
            .map(move |i| Bytes::from(payload.slice(i * size, (i + 1) * size)))
    }

    /// A reader that yields the payload once.
    pub fn reader(&self) -> PayloadReader {
        PayloadReader {
            payload: *self,
            pos: 0,
        }
    }

    pub fn sha256(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for chunk in self.chunks(MIB as usize) {
            hasher.update(&chunk);
        }
        hasher.finalize().into()
    }

    /// The BLAKE3 digest in hex, as the catalog records a version's digest.
    pub fn blake3_hex(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for chunk in self.chunks(MIB as usize) {
            hasher.update(&chunk);
        }
        hasher.finalize().to_hex().to_string()
    }
}

/// [`io::Read`] over a [`Payload`].
pub struct PayloadReader {
    payload: Payload,
    pos: u64,
}

impl io::Read for PayloadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.payload.len - self.pos).min(buf.len() as u64) as usize;
        self.payload.fill(self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn slices_reader_and_chunks_agree() {
        let p = Payload::new(7, 3 * 1000 + 5);
        let all = p.to_vec();
        assert_eq!(p.slice(13, 1011), all[13..1011]);
        let mut via_reader = Vec::new();
        p.reader().read_to_end(&mut via_reader).unwrap();
        assert_eq!(via_reader, all);
        let via_chunks: Vec<u8> = p.chunks(1000).flat_map(|b| b.to_vec()).collect();
        assert_eq!(via_chunks, all);
        assert_ne!(Payload::new(8, 64).to_vec(), Payload::new(7, 64).to_vec());
    }
}
