//! Volume serials (VOLSERs) and the ranges an operator inserts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, RangeProblem};

/// A volume serial: exactly six characters from `A-Z` and `0-9`, unique in the grid.
///
/// ```
/// use vtgrid_core::Volser;
/// let v: Volser = "A00001".parse().unwrap();
/// assert_eq!(v.as_str(), "A00001");
/// assert!("a00001".parse::<Volser>().is_err()); // lower case is not a VOLSER
/// assert!("A0001".parse::<Volser>().is_err());  // five characters
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Volser([u8; 6]);

impl Volser {
    pub fn as_str(&self) -> &str {
        // Construction admits only ASCII upper-case letters and digits.
        std::str::from_utf8(&self.0).expect("a Volser holds only ASCII")
    }
}

impl Volser {
    /// Whether `s` can begin a VOLSER: at most six characters from `A-Z` and `0-9` (a
    /// listing's prefix filter).
    pub fn is_prefix(s: &str) -> bool {
        s.len() <= 6 && s.bytes().all(is_volser_byte)
    }
}

fn is_volser_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

impl FromStr for Volser {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 6 || !bytes.iter().copied().all(is_volser_byte) {
            return Err(DomainError::InvalidVolser {
                input: s.to_string(),
            });
        }
        let mut out = [0u8; 6];
        out.copy_from_slice(bytes);
        Ok(Volser(out))
    }
}

impl TryFrom<String> for Volser {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Volser> for String {
    fn from(v: Volser) -> String {
        v.as_str().to_string()
    }
}

impl fmt::Display for Volser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Volser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Volser({})", self.as_str())
    }
}

/// An inclusive range of VOLSERs such as `A00000-A09999`: a shared prefix and a run of trailing
/// digits that counts up. A single VOLSER is a range of one.
///
/// ```
/// use vtgrid_core::VolserRange;
/// let r: VolserRange = "A00098-A00101".parse().unwrap();
/// let all: Vec<String> = r.iter().map(|v| v.to_string()).collect();
/// assert_eq!(all, ["A00098", "A00099", "A00100", "A00101"]);
/// assert!("A00010-B00020".parse::<VolserRange>().is_err());
/// ```
///
/// Every range is made by [`VolserRange::new`], deserialization included: the journal, the Raft log
/// and snapshots hold ranges as `{first, last, prefix_len}`, and a stored `prefix_len` that does
/// not fit its ends is refused there, so a range that would index past a VOLSER never exists.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredRange", into = "StoredRange")]
pub struct VolserRange {
    first: Volser,
    last: Volser,
    /// Number of leading characters both ends share; the rest are digits.
    prefix_len: u8,
}

/// The most volumes one insert may create.
pub const MAX_RANGE_LEN: u64 = 100_000;

impl VolserRange {
    /// The range from `first` to `last`, both included: the one place the range rules live
    /// (a shared prefix, trailing digits that count up, at most [`MAX_RANGE_LEN`] volumes).
    pub fn new(first: Volser, last: Volser) -> Result<Self, DomainError> {
        let bad = |why| DomainError::InvalidVolserRange {
            input: format!("{first}-{last}"),
            why,
        };
        if first == last {
            return Ok(VolserRange::single(first));
        }
        // The prefix is everything before the trailing digits that differ.
        let common = first
            .0
            .iter()
            .zip(last.0.iter())
            .take_while(|(x, y)| x == y)
            .count();
        let mut prefix_len = common;
        while prefix_len > 0 && first.0[prefix_len - 1].is_ascii_digit() {
            prefix_len -= 1;
        }
        let tail_digits = |v: &Volser| v.0[prefix_len..].iter().all(u8::is_ascii_digit);
        if !tail_digits(&first) || !tail_digits(&last) {
            return Err(bad(RangeProblem::Prefix));
        }
        if last < first {
            return Err(bad(RangeProblem::Reversed));
        }
        let range = VolserRange {
            first,
            last,
            prefix_len: prefix_len as u8,
        };
        if range.len() > MAX_RANGE_LEN {
            return Err(bad(RangeProblem::TooLarge));
        }
        Ok(range)
    }

    pub fn single(v: Volser) -> Self {
        VolserRange {
            first: v,
            last: v,
            prefix_len: 6,
        }
    }

    pub fn first(&self) -> Volser {
        self.first
    }

    pub fn last(&self) -> Volser {
        self.last
    }

    pub fn len(&self) -> u64 {
        if self.prefix_len == 6 {
            return 1;
        }
        digits(&self.last, self.prefix_len) - digits(&self.first, self.prefix_len) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, v: &Volser) -> bool {
        let p = self.prefix_len as usize;
        v.0[..p] == self.first.0[..p]
            && v.0[p..].iter().all(u8::is_ascii_digit)
            && *v >= self.first
            && *v <= self.last
    }

    /// Every VOLSER of the range, in order.
    pub fn iter(&self) -> impl Iterator<Item = Volser> + '_ {
        let p = self.prefix_len as usize;
        let start = if p == 6 {
            0
        } else {
            digits(&self.first, self.prefix_len)
        };
        let width = 6 - p;
        (0..self.len()).map(move |i| {
            if p == 6 {
                return self.first;
            }
            let mut out = self.first.0;
            let mut n = start + i;
            for k in (0..width).rev() {
                out[p + k] = b'0' + (n % 10) as u8;
                n /= 10;
            }
            Volser(out)
        })
    }
}

fn digits(v: &Volser, prefix_len: u8) -> u64 {
    v.0[prefix_len as usize..]
        .iter()
        .fold(0, |acc, d| acc * 10 + u64::from(d - b'0'))
}

impl FromStr for VolserRange {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = match s.split_once('-') {
            None => return Ok(VolserRange::single(s.trim().parse()?)),
            Some(pair) => pair,
        };
        let shape = || DomainError::InvalidVolserRange {
            input: s.to_string(),
            why: RangeProblem::Shape,
        };
        let first: Volser = a.trim().parse().map_err(|_| shape())?;
        let last: Volser = b.trim().parse().map_err(|_| shape())?;
        VolserRange::new(first, last).map_err(|e| match e {
            DomainError::InvalidVolserRange { why, .. } => DomainError::InvalidVolserRange {
                input: s.to_string(),
                why,
            },
            other => other,
        })
    }
}

/// A range as stored: both ends and the prefix length. Kept apart from [`VolserRange`] so that
/// reading one back goes through [`VolserRange::new`].
#[derive(Serialize, Deserialize)]
struct StoredRange {
    first: Volser,
    last: Volser,
    prefix_len: u8,
}

impl TryFrom<StoredRange> for VolserRange {
    type Error = DomainError;
    fn try_from(stored: StoredRange) -> Result<Self, Self::Error> {
        let range = VolserRange::new(stored.first, stored.last)?;
        if range.prefix_len != stored.prefix_len {
            return Err(DomainError::InvalidVolserRange {
                input: range.to_string(),
                why: RangeProblem::PrefixLen {
                    stored: stored.prefix_len,
                    expected: range.prefix_len,
                },
            });
        }
        Ok(range)
    }
}

impl From<VolserRange> for StoredRange {
    fn from(r: VolserRange) -> StoredRange {
        StoredRange {
            first: r.first,
            last: r.last,
            prefix_len: r.prefix_len,
        }
    }
}

impl fmt::Display for VolserRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl fmt::Debug for VolserRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VolserRange({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volser_accepts_six_upper_alnum() {
        for ok in ["A00000", "ZZZZZZ", "000000", "AB12CD"] {
            assert!(ok.parse::<Volser>().is_ok(), "{ok}");
        }
        for bad in ["", "A0000", "A000000", "a00000", "A0000-", "A 0000", "ÄÄÄ"] {
            assert!(
                matches!(
                    bad.parse::<Volser>(),
                    Err(DomainError::InvalidVolser { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn volser_serde_validates() {
        let v: Result<Volser, _> = serde_json::from_str("\"bad\"");
        assert!(v.is_err());
        let v: Volser = serde_json::from_str("\"A00001\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"A00001\"");
    }

    #[test]
    fn range_of_ten_thousand() {
        let r: VolserRange = "A00000-A09999".parse().unwrap();
        assert_eq!(r.len(), 10_000);
        assert_eq!(r.iter().last().unwrap().as_str(), "A09999");
        assert!(r.contains(&"A05000".parse().unwrap()));
        assert!(!r.contains(&"A10000".parse().unwrap()));
        assert!(!r.contains(&"B05000".parse().unwrap()));
    }

    #[test]
    fn range_rules() {
        assert!("A00010-A00001".parse::<VolserRange>().is_err());
        assert!("A0001A-A0002A".parse::<VolserRange>().is_err());
        assert!("000000-999999".parse::<VolserRange>().is_err(), "too large");
        let one: VolserRange = "ABCDEF".parse().unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one.to_string(), "ABCDEF");
        let r: VolserRange = "XY0099-XY0101".parse().unwrap();
        assert_eq!(r.to_string(), "XY0099-XY0101");
        assert_eq!(r.len(), 3);
    }
}
