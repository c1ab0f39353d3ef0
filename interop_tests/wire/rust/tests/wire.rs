//! Reads every language's wire files with the verifying reader and checks
//! every field; checks the Rust writer against its committed files and the
//! other writers' bytes.

use goipc_wire::{LANGS, build_ping, build_pong, read_ping, read_pong, testdata};

fn file(name: &str) -> Vec<u8> {
    let path = testdata().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `make wire-files`)", path.display()))
}

#[test]
fn ping_read_by_rust() {
    for lang in LANGS {
        let name = format!("ping_{lang}.bin");
        read_ping(&file(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn pong_read_by_rust() {
    for lang in LANGS {
        let name = format!("pong_{lang}.bin");
        read_pong(&file(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn rust_writer_round_trip() {
    read_ping(&build_ping()).unwrap();
    read_pong(&build_pong()).unwrap();
}

#[test]
fn rust_writer_matches_committed_files() {
    assert_eq!(file("ping_rust.bin"), build_ping(), "ping_rust.bin is stale: make wire-files");
    assert_eq!(file("pong_rust.bin"), build_pong(), "pong_rust.bin is stale: make wire-files");
}

/// Rust's builder, with fields added in schema order, writes the same bytes
/// as Go's and Python's builders (and Go's hand-laid writers).
#[test]
fn rust_bytes_equal_other_writers() {
    for lang in ["go", "python"] {
        assert_eq!(file(&format!("ping_{lang}.bin")), build_ping(), "ping_{lang}.bin");
        assert_eq!(file(&format!("pong_{lang}.bin")), build_pong(), "pong_{lang}.bin");
    }
}

/// The verifier rejects a corrupted file: the wire files would catch a
/// broken writer, not only a mismatched value.
#[test]
fn corrupt_file_is_rejected() {
    let mut b = file("pong_go.bin");
    let n = b.len() as u32;
    b[0..4].copy_from_slice(&n.to_le_bytes()); // root offset past the end
    assert!(goipc_wire::fb::root_as_message(&b).is_err());
}
