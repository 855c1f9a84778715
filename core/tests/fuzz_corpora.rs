//! Replays every committed fuzz corpus (`fuzz/corpus/<target>/`) through the same entry
//! points the fuzzers drive, so CI re-checks every input a fuzzer ever kept, on stable.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        run(&data);
        n += 1;
    }
    assert!(n > 0, "the {target} corpus is empty");
}

#[test]
fn route() {
    replay("route", nproxy_core::fuzzing::route);
}

#[test]
fn publish() {
    replay("publish", nproxy_core::fuzzing::publish);
}

#[test]
fn document() {
    replay("document", nproxy_core::fuzzing::document);
}

#[test]
fn packument() {
    replay("packument", nproxy_core::fuzzing::packument);
}

#[test]
fn rules() {
    replay("rules", nproxy_core::fuzzing::rules);
}

#[test]
fn audit() {
    replay("audit", nproxy_core::fuzzing::audit);
}
