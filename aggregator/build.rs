//! Compiles `proto/canopy_query.proto` and `proto/canopy_budgets.proto`
//! with protox (pure Rust, no protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/canopy_query.proto");
    println!("cargo:rerun-if-changed=proto/canopy_budgets.proto");
    let descriptors = protox::compile(["proto/canopy_query.proto", "proto/canopy_budgets.proto"], ["proto"])?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(descriptors)?;
    Ok(())
}
