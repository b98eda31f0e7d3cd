//! `vtgrid certs init|issue` and `vtgrid token new` (docs/security.md).

use std::path::{Path, PathBuf};

use vtgrid_node::access::{new_secret, sha256_hex, Role};
use vtgrid_node::config::GridConfig;
use vtgrid_transport::certs;
use vtgrid_transport::names::Member;

use crate::args::{CertsCommand, TokenCommand};
use crate::client::CliError;

/// The certificates' directory: --dir, else the grid file's `[tls] dir`.
fn tls_dir(grid: &GridConfig, dir: Option<PathBuf>) -> Result<PathBuf, CliError> {
    dir.or_else(|| grid.tls.as_ref().map(|t| t.dir.clone()))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{} has no [tls] dir: add one, or pass --dir",
                grid.source.display()
            ))
        })
}

fn certs_error(e: certs::CertsError) -> CliError {
    CliError::Grid(e.to_string())
}

/// Issue voter `id`'s certificate, and its agent's when it is a data cluster; the host address
/// goes into a data cluster's certificate too, for host TLS.
fn issue_for(grid: &GridConfig, dir: &Path, id: u8) -> Result<Vec<PathBuf>, CliError> {
    let name = &grid.grid.name;
    let mut out = Vec::new();
    let host = grid.cluster(id).map(|c| host_part(&c.host));
    out.push(certs::issue(dir, name, Member::Voter(id), host.as_slice()).map_err(certs_error)?);
    if grid.cluster(id).is_some() || grid.witness(id).is_some() {
        out.push(certs::issue(dir, name, Member::Agent(id), &[]).map_err(certs_error)?);
    }
    Ok(out)
}

/// `HOST` of `HOST:PORT` (brackets of an IPv6 address removed).
fn host_part(addr: &str) -> String {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// A new CA for `grid` in `dir` and every member's certificates; how many were issued.
pub fn make_all(grid: &GridConfig, dir: &Path) -> Result<usize, CliError> {
    certs::init_ca(dir, &grid.grid.name).map_err(certs_error)?;
    let mut ids: Vec<u8> = grid.clusters.iter().map(|c| c.id).collect();
    ids.extend(grid.witnesses.iter().map(|w| w.id));
    let mut n = 0;
    for id in ids {
        n += issue_for(grid, dir, id)?.len();
    }
    Ok(n)
}

/// `grid up` of a file with `[tls]` whose directory has no CA yet: on loopback (a local grid,
/// one command) make them; anywhere else refuse, since a real grid's certificates are made on
/// purpose, on the operator's machine, and copied to each site (docs/security.md).
pub fn ensure_local_certs(grid: &GridConfig) -> Result<(), CliError> {
    use vtgrid_node::config::is_loopback;
    let Some(tls) = &grid.tls else { return Ok(()) };
    if tls.dir.join(certs::CA_CERT).exists() {
        return Ok(());
    }
    let local = grid.clusters.iter().all(|c| is_loopback(&c.host))
        && grid.member_addresses().iter().all(|(a, _)| is_loopback(a));
    if !local {
        return Err(CliError::Grid(format!(
            "{} has no {}: make the grid's certificates with `vtgrid certs init --config {}`",
            tls.dir.display(),
            certs::CA_CERT,
            grid.source.display()
        )));
    }
    let n = make_all(grid, &tls.dir)?;
    println!(
        "grid up: made a CA and {n} member certificates in {} (a local grid on loopback)",
        tls.dir.display()
    );
    Ok(())
}

pub fn certs(cmd: CertsCommand) -> Result<(), CliError> {
    match cmd {
        CertsCommand::Init { config, dir } => {
            let grid = GridConfig::load(&config)?;
            let dir = tls_dir(&grid, dir)?;
            let n = make_all(&grid, &dir)?;
            println!(
                "grid {:?}: a CA and {n} member certificates in {} (keep ca.key off the grid's machines)",
                grid.grid.name,
                dir.display()
            );
            Ok(())
        }
        CertsCommand::Issue { config, id, dir } => {
            let grid = GridConfig::load(&config)?;
            if grid.role_of(id).is_none() {
                return Err(CliError::Usage(format!(
                    "{} has no voter {id}",
                    config.display()
                )));
            }
            let dir = tls_dir(&grid, dir)?;
            for path in issue_for(&grid, &dir, id)? {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

pub fn token(cmd: TokenCommand) -> Result<(), CliError> {
    match cmd {
        TokenCommand::New { name, role } => {
            if Role::parse(&role).is_none() {
                return Err(CliError::Usage(
                    "--role is host, operator or service".into(),
                ));
            }
            let secret = new_secret();
            println!("# The secret, for the token's holder only (--token or VTGRID_TOKEN):");
            println!("#   {secret}");
            println!("# For the grid file:");
            println!("[[token]]");
            println!("name = {name:?}");
            println!("role = {role:?}");
            println!("sha256 = \"{}\"", sha256_hex(&secret));
            Ok(())
        }
    }
}
