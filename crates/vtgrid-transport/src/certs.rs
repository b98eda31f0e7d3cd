//! A grid's certificate authority and its members' certificates, as files in one directory
//! (`vtgrid certs init|issue`).
//!
//! ```text
//!   DIR/ca.pem   the grid's CA certificate: every member trusts it (hosts too, for host TLS)
//!   DIR/ca.key   the CA's key: keep it off the grid's machines once the members have theirs
//!   DIR/m<ID>.pem, DIR/m<ID>.key   voter ID (cluster or witness): `m<ID>.<grid>.vtgrid`
//!   DIR/a<ID>.pem, DIR/a<ID>.key   the takeover agent of cluster ID: `a<ID>.<grid>.vtgrid`
//! ```
//!
//! Keys are written with mode 0600. Every file goes to a temporary name, is fsynced, renamed into
//! place, and the directory fsynced, so a crash leaves each file whole or absent.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use thiserror::Error;

use crate::names::{file_stem, member_name, Member};

/// The CA certificate's file name in a grid's TLS directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA key's file name.
pub const CA_KEY: &str = "ca.key";

#[derive(Debug, Error)]
pub enum CertsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} exists: a grid's CA is made once (issue members' certificates with `vtgrid certs issue`; remove the directory to start over)")]
    CaExists { path: PathBuf },
    #[error("making a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertsError + '_ {
    move |source| CertsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The CA's parameters: the same for a grid every time, so `issue` can sign with a CA made by
/// an earlier `init` from its key alone.
fn ca_params(grid_name: &str) -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "vtgrid");
    dn.push(DnType::CommonName, format!("vtgrid grid CA {grid_name}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// Write `bytes` to `path` durably (temporary name, fsync, rename, directory fsync).
fn write_durably(path: &Path, bytes: &[u8], secret: bool) -> Result<(), CertsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Make a new CA for grid `grid_name` in `dir` (created if needed). Refuses to replace one.
pub fn init_ca(dir: &Path, grid_name: &str) -> Result<(), CertsError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let cert_path = dir.join(CA_CERT);
    if cert_path.exists() {
        return Err(CertsError::CaExists { path: cert_path });
    }
    let key = KeyPair::generate()?;
    let cert = ca_params(grid_name)?.self_signed(&key)?;
    write_durably(&dir.join(CA_KEY), key.serialize_pem().as_bytes(), true)?;
    write_durably(&cert_path, cert.pem().as_bytes(), false)?;
    Ok(())
}

/// Issue (or reissue) `member`'s certificate and key in `dir`, signed by the grid's CA there.
/// `also` are more names (a data cluster's host address, for host TLS: an IP address or a DNS
/// name). Returns the certificate's file.
pub fn issue(
    dir: &Path,
    grid_name: &str,
    member: Member,
    also: &[String],
) -> Result<PathBuf, CertsError> {
    let ca_key_path = dir.join(CA_KEY);
    let ca_key_pem = std::fs::read_to_string(&ca_key_path).map_err(io(&ca_key_path))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)?;
    let issuer = Issuer::new(ca_params(grid_name)?, ca_key);

    let name = member_name(grid_name, member);
    let mut names = vec![name.clone()];
    names.extend(also.iter().cloned());
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "vtgrid");
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // One certificate for both ends of a connection: members dial each other.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let stem = file_stem(member);
    write_durably(
        &dir.join(format!("{stem}.key")),
        key.serialize_pem().as_bytes(),
        true,
    )?;
    let cert_path = dir.join(format!("{stem}.pem"));
    write_durably(&cert_path, cert.pem().as_bytes(), false)?;
    Ok(cert_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GridTls, Sender};

    fn addresses(ids: &[u8]) -> Vec<(String, Member)> {
        ids.iter()
            .map(|id| {
                (
                    format!("127.0.0.1:{}", 7400 + u16::from(*id)),
                    Member::Voter(*id),
                )
            })
            .collect()
    }

    #[test]
    fn a_member_certificate_identifies_its_member_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "prod").unwrap();
        for id in [0, 1] {
            issue(dir.path(), "prod", Member::Voter(id), &[]).unwrap();
        }
        let c0 = GridTls::load(dir.path(), "prod", Member::Voter(0), addresses(&[0, 1])).unwrap();
        let m1 = std::fs::read_to_string(dir.path().join("m1.pem")).unwrap();
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(m1.as_bytes()).unwrap();
        assert_eq!(c0.identify_der(&der), Sender::Member(Member::Voter(1)));
    }

    #[test]
    fn another_grids_certificate_names_no_member_here() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "dr-test").unwrap();
        issue(dir.path(), "dr-test", Member::Voter(1), &[]).unwrap();
        issue(dir.path(), "dr-test", Member::Voter(0), &[]).unwrap();
        // Same CA files, but a member of grid "prod" reads them: the names do not match.
        let loaded = GridTls::load(dir.path(), "prod", Member::Voter(0), addresses(&[0, 1]));
        assert!(
            matches!(loaded, Err(crate::TlsError::WrongName { .. })),
            "{loaded:?}"
        );
    }

    #[test]
    fn a_second_init_keeps_the_first_ca() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "prod").unwrap();
        let first = std::fs::read(dir.path().join(CA_CERT)).unwrap();
        assert!(matches!(
            init_ca(dir.path(), "prod"),
            Err(CertsError::CaExists { .. })
        ));
        assert_eq!(std::fs::read(dir.path().join(CA_CERT)).unwrap(), first);
    }

    #[test]
    fn keys_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "prod").unwrap();
        issue(dir.path(), "prod", Member::Agent(2), &["127.0.0.1".into()]).unwrap();
        for key in ["ca.key", "a2.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{key} mode {mode:o}");
        }
    }
}
