//! Errors raised when text or numbers do not form a valid domain value.

use thiserror::Error;

/// A value that does not satisfy the domain's syntax rules. Each variant names the rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("invalid VOLSER {input:?}: a VOLSER is exactly 6 characters from A-Z and 0-9")]
    InvalidVolser { input: String },
    #[error("invalid VOLSER range {input:?}: {why}")]
    InvalidVolserRange { input: String, why: RangeProblem },
    #[error("invalid category {input:?}: a category is 1-4 hex digits (0001-FFFF), e.g. 000F")]
    InvalidCategory { input: String },
    #[error("invalid construct name {input:?}: 1-8 characters from A-Z, 0-9, @, #, $, starting with a letter or @#$")]
    InvalidConstructName { input: String },
    #[error("invalid copy mode {input:?}: use R (RUN), D (Deferred), S (Sync) or N (No Copy)")]
    InvalidCopyMode { input: String },
    #[error("invalid on_sync_failure {input:?}: expected \"fail\" or \"defer\"")]
    InvalidSyncFailure { input: String },
    #[error("invalid copy-mode vector {input:?}: {why}")]
    InvalidCopyModeVector { input: String, why: VectorProblem },
    #[error("invalid cluster id {input}: a grid has clusters 0..{max}")]
    InvalidClusterId { input: i64, max: u8 },
}

/// Why a VOLSER range does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RangeProblem {
    #[error("write it FIRST-LAST, e.g. A00000-A09999")]
    Shape,
    #[error("both ends must share the same prefix and differ only in their trailing digits")]
    Prefix,
    #[error("the last VOLSER comes before the first")]
    Reversed,
    #[error("a range may hold at most 100000 volumes")]
    TooLarge,
    /// A stored range whose prefix length does not fit its ends (a damaged or forged entry).
    #[error(
        "prefix_len {stored} does not fit its ends, which share a prefix of {expected} characters"
    )]
    PrefixLen { stored: u8, expected: u8 },
}

/// Why a copy-mode vector does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum VectorProblem {
    #[error("it is empty")]
    Empty,
    #[error("a grid has at most 8 clusters")]
    TooLong,
    #[error("Sync (S) needs exactly two sync clusters")]
    SyncCount,
}
