//! Compiles `istio/v1/auth/ca.proto` with protox (pure Rust: no `protoc`
//! to install) and generates the tonic client and server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["istio/v1/auth/ca.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["."])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
