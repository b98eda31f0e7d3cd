//! Volume categories: scratch (Fast Ready) or private, with grid-wide definitions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// A category, written as four hex digits (`000F`). A volume's category is one grid-wide
/// attribute; whether a category is Fast Ready comes from its [`CategoryDefinition`].
///
/// ```
/// use vtgrid_core::Category;
/// let c: Category = "000F".parse().unwrap();
/// assert_eq!(c, Category(0x000F));
/// assert_eq!(c.to_string(), "000F");
/// assert!("0".parse::<Category>().is_err(), "category 0 is reserved");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Category(pub u16);

impl Category {
    /// Where inserted volumes land unless the insert names another category.
    pub const DEFAULT_INSERT: Category = Category(0x0001);
    /// The private category a scratch-mounted volume moves to when its job commits.
    pub const DEFAULT_PRIVATE: Category = Category(0x000F);
}

impl FromStr for Category {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        match u16::from_str_radix(t, 16) {
            Ok(n) if n != 0 && !t.is_empty() && t.len() <= 4 => Ok(Category(n)),
            _ => Err(DomainError::InvalidCategory {
                input: s.to_string(),
            }),
        }
    }
}

impl TryFrom<String> for Category {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Category> for String {
    fn from(c: Category) -> String {
        c.to_string()
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

impl fmt::Debug for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Category({:04X})", self.0)
    }
}

/// A category as the grid defines it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CategoryDefinition {
    pub category: Category,
    /// Free text for operators (`"SCRATCH"`, `"PRIVATE"`).
    pub name: String,
    /// A Fast Ready (scratch) category: any mount of its volumes returns a blank volume (B84), and
    /// scratch mounts pick volumes from it (B8).
    pub fast_ready: bool,
}
