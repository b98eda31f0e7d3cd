//! Storage construct names: management, storage and data class, storage group.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// A construct name: 1-8 characters, `A-Z 0-9 @ # $`, not starting with a digit (the z/OS
/// construct rules the seed's constructs follow).
///
/// ```
/// use vtgrid_core::ConstructName;
/// assert!("MCRUN".parse::<ConstructName>().is_ok());
/// assert!("TOOLONGNAME".parse::<ConstructName>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConstructName(String);

impl ConstructName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ConstructName {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let national = |c: char| matches!(c, '@' | '#' | '$');
        let ok = !s.is_empty()
            && s.len() <= 8
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || national(c))
            && !s.starts_with(|c: char| c.is_ascii_digit());
        if ok {
            Ok(ConstructName(s.to_string()))
        } else {
            Err(DomainError::InvalidConstructName {
                input: s.to_string(),
            })
        }
    }
}

impl TryFrom<String> for ConstructName {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ConstructName> for String {
    fn from(c: ConstructName) -> String {
        c.0
    }
}

impl fmt::Display for ConstructName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConstructName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The constructs a volume carries; the host names them at mount (the ACS routines' analogue).
/// Only the management class must be defined in the catalog; the others are names kept for the
/// host and for policies of later releases.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Constructs {
    pub management_class: Option<ConstructName>,
    pub storage_class: Option<ConstructName>,
    pub data_class: Option<ConstructName>,
    pub storage_group: Option<ConstructName>,
}
