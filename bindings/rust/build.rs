//! Finds libgoipc.so and tells Cargo to link it.
//!
//! Where: $GOIPC_LIBRARY_DIR if set, else the project's build/lib (built by
//! `make lib` at the repository root). The directory is also put in the
//! rpath of this package's tests, examples and benches, so that they run
//! without LD_LIBRARY_PATH, and published to dependents as
//! DEP_GOIPC_LIB_DIR (this package declares `links = "goipc"`).

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=GOIPC_LIBRARY_DIR");
    println!("cargo:rerun-if-changed=build.rs");

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let (dir, from_env) = match env::var_os("GOIPC_LIBRARY_DIR") {
        Some(d) if !d.is_empty() => (PathBuf::from(d), true),
        // The repository root, spelled without "..", for the messages.
        _ => {
            (manifest.join("../..").canonicalize().unwrap_or_else(|_| manifest.join("../..")).join("build/lib"), false)
        }
    };
    let lib = dir.join("libgoipc.so");
    println!("cargo:rerun-if-changed={}", lib.display());
    if !lib.is_file() {
        let hint = if from_env {
            "GOIPC_LIBRARY_DIR is set but holds no libgoipc.so: point it at the directory that does"
        } else {
            "run `make lib` at the repository root, or set GOIPC_LIBRARY_DIR to the directory that holds libgoipc.so"
        };
        eprintln!("error: goipc: libgoipc.so not found at {}", lib.display());
        eprintln!("error: goipc: {hint}");
        panic!("goipc: libgoipc.so not found at {} ({hint})", lib.display());
    }
    let dir = absolute(&dir);
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=dylib=goipc");
    // Applies only to this package's linked targets (tests, examples,
    // benches, binaries), never to dependents: they choose their own
    // rpath (DEP_GOIPC_LIB_DIR) or use LD_LIBRARY_PATH / an installed copy.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    println!("cargo:lib_dir={}", dir.display());
}

/// The canonical path (the rpath must not depend on the working directory).
fn absolute(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|e| panic!("goipc: canonicalize {}: {e}", p.display()))
}
