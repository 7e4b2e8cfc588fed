//! Generates the vigil.v1 types. `protox` parses the schema in Rust, so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=vigil/v1/vigil.proto");
    let descriptors = protox::compile(["vigil/v1/vigil.proto"], ["."])?;
    if std::env::var_os("CARGO_FEATURE_GRPC").is_some() {
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_fds(descriptors)?;
    } else {
        prost_build::Config::new().compile_fds(descriptors)?;
    }
    Ok(())
}
