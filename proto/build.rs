use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc: nothing to install on the build machine.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("nproxy_descriptor.bin"))
        // Messages carrying an upstream credential: their `Debug` is written by hand
        // (`src/redacted.rs`) and never prints it.
        .skip_debug([
            ".nproxy.v1.AddUpstreamRouteRequest",
            ".nproxy.v1.UpdateUpstreamRouteRequest",
            ".nproxy.v1.UpstreamCredential",
        ])
        .compile_protos(&["proto/nproxy/v1/nproxy.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
