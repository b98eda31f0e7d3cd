//! The names in a grid's certificates.
//!
//! A member's certificate carries one DNS name, `m<ID>.<grid label>.vtgrid` for a voter (cluster
//! or witness) and `a<ID>.<grid label>.vtgrid` for a takeover agent. A client checks the name of
//! the server it dialled (rustls does, against the grid's CA), and a server reads the name of the
//! client that dialled it ([`crate::GridTls::identify`]): a certificate of another grid (another
//! label) or of another member (another id) proves nothing here, even when one CA signed both.

/// What a member of a grid is, as its certificate names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Member {
    /// A Raft voter: a data cluster (0..7) or a witness (8..15).
    Voter(u8),
    /// The takeover agent of data cluster `id`.
    Agent(u8),
}

/// The DNS label a grid's name becomes: lower case, every character that is not a letter or a
/// digit turned into `-`, at most 63 characters, never empty.
pub fn grid_label(grid_name: &str) -> String {
    let mut label: String = grid_name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    label = label.trim_matches('-').to_string();
    label.truncate(63);
    let label = label.trim_end_matches('-').to_string();
    if label.is_empty() {
        "grid".to_string()
    } else {
        label
    }
}

/// The one DNS name in `member`'s certificate for grid `grid_name`.
pub fn member_name(grid_name: &str, member: Member) -> String {
    let label = grid_label(grid_name);
    match member {
        Member::Voter(id) => format!("m{id}.{label}.vtgrid"),
        Member::Agent(id) => format!("a{id}.{label}.vtgrid"),
    }
}

/// The file stem of `member`'s certificate and key in a grid's TLS directory (`m0`, `a1`).
pub fn file_stem(member: Member) -> String {
    match member {
        Member::Voter(id) => format!("m{id}"),
        Member::Agent(id) => format!("a{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_name_becomes_one_dns_label() {
        assert_eq!(grid_label("three-site HA/DR"), "three-site-ha-dr");
        assert_eq!(grid_label("  "), "grid");
        assert_eq!(grid_label("--x--"), "x");
        assert_eq!(grid_label(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn members_of_two_grids_have_different_names() {
        let a = member_name("prod", Member::Voter(1));
        let b = member_name("dr-test", Member::Voter(1));
        assert_eq!(a, "m1.prod.vtgrid");
        assert_ne!(a, b);
        assert_ne!(a, member_name("prod", Member::Agent(1)));
    }
}
