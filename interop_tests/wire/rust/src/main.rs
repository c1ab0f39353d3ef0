//! `cargo run -- write [DIR]`: writes ping_rust.bin and pong_rust.bin to
//! DIR (default interop_tests/wire/testdata).

use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("write") || args.len() > 2 {
        eprintln!("usage: goipc-wire write [DIR]");
        std::process::exit(2);
    }
    let dir = args.get(1).map(PathBuf::from).unwrap_or_else(goipc_wire::testdata);
    std::fs::create_dir_all(&dir).expect("create output dir");
    for (name, bytes) in [
        ("ping_rust.bin", goipc_wire::build_ping()),
        ("pong_rust.bin", goipc_wire::build_pong()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
