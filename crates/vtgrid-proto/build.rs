//! Compile `proto/vtgrid/v1/*.proto` (public) and `proto/vtgrid/internal/v1/*.proto` (grid-internal)
//! with protox (pure Rust, so no `protoc` on the machine).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not when it is compiled: a build cache shared by several
    // checkouts (CI's fresh clones) reuses the compiled script, and a path baked into it would
    // name a checkout that may be gone.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?)
        .join("../../proto")
        .canonicalize()?;
    println!("cargo:rerun-if-changed={}", root.display());
    // The public API (what hosts and tools call, and what reflection describes) apart from the
    // grid-internal protocols (cluster to cluster, agent to agent).
    let public =
        ["common", "host", "admin", "status"].map(|f| root.join(format!("vtgrid/v1/{f}.proto")));
    let internal = ["grid", "agent"].map(|f| root.join(format!("vtgrid/internal/v1/{f}.proto")));
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("vtgrid_descriptor.bin"),
        prost::Message::encode_to_vec(&protox::compile(&public, [&root])?),
    )?;
    let files: Vec<_> = public.iter().chain(&internal).cloned().collect();
    let descriptors = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Chunks of volume data stay `Bytes` from the socket to the volume store: no copies.
        .bytes(".")
        // Maps as BTreeMap: encoded in key order, so the same message is the same bytes (a
        // simulation's trace compares them), and nobody iterates a map in hash order.
        .btree_map(".")
        .compile_fds(descriptors)?;
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    Ok(())
}
