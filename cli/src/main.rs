//! `nproxyctl`: the admins' tool. Its commands arrive with the control plane; for now it
//! only knows its own version, so that the binary and its packaging exist from day one.
use clap::Parser;

#[derive(Parser)]
#[command(name = "nproxyctl", version, about = "Administer an nproxy registry")]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("nproxyctl: no commands yet; the control plane is not built. See README.md.");
    std::process::exit(2);
}
