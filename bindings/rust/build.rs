//! Tells Cargo how to link goipc's C library, the Go core behind
//! include/goipc.h. The first of these that applies wins:
//!
//! 1. `$GOIPC_LIBRARY_DIR` is set: link `libgoipc.so` from there,
//!    dynamically, and put the directory in the rpath of this package's own
//!    tests, examples and benches. The project's make targets do this (they
//!    build `build/lib` first). A dependent binary needs its own rpath: the
//!    directory is published to its build script as `DEP_GOIPC_LIB_DIR`.
//! 2. goipc is installed (`make install`: pkg-config finds `goipc.pc`, and
//!    its libdir holds `libgoipc.a`): link that archive statically.
//! 3. Otherwise build the static library from the repository this crate
//!    sits in (`make lib-static` at its root, which runs
//!    `go build -buildmode=c-archive`) and link it statically.
//!
//! With 2 and 3 the Go runtime is inside the program, so a program that
//! only says `goipc = { path = ".../bindings/rust" }` builds and runs with
//! `cargo run`: no build script of its own, no LD_LIBRARY_PATH.
//! Dependents can read how it was linked from `DEP_GOIPC_LINK`
//! (`static` or `dylib`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GOIPC_LIBRARY_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-changed=build.rs");

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    // The repository root, spelled without "..", for the messages.
    let repo = manifest.join("../..").canonicalize().unwrap_or_else(|_| manifest.join("../.."));

    if let Some(dir) = env::var_os("GOIPC_LIBRARY_DIR").filter(|d| !d.is_empty()) {
        link_shared(&PathBuf::from(dir));
    } else if let Some(dir) = installed_static_library_dir() {
        link_static(&dir);
    } else {
        link_static(&build_static_library(&repo));
    }
    // glibc before 2.34 keeps the pthread functions the Go runtime calls
    // in a library of their own.
    println!("cargo:rustc-link-lib=dylib=pthread");
}

/// Case 1: the shared library in `dir`.
fn link_shared(dir: &Path) {
    let lib = dir.join("libgoipc.so");
    println!("cargo:rerun-if-changed={}", lib.display());
    if !lib.is_file() {
        fail(
            &format!("libgoipc.so not found at {}", lib.display()),
            "GOIPC_LIBRARY_DIR is set but holds no libgoipc.so: point it at the directory that does \
             (`make lib` builds build/lib), or unset it to link the static library",
        );
    }
    let dir = absolute(dir);
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=dylib=goipc");
    // Applies only to this package's linked targets (tests, examples,
    // benches, binaries), never to dependents: they choose their own rpath
    // (DEP_GOIPC_LIB_DIR) or use LD_LIBRARY_PATH / an installed copy.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    println!("cargo:lib_dir={}", dir.display());
    println!("cargo:link=dylib");
}

/// Case 2 and 3: the archive `dir/libgoipc.a`, inside the program.
fn link_static(dir: &Path) {
    let dir = absolute(dir);
    println!("cargo:rerun-if-changed={}", dir.join("libgoipc.a").display());
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static=goipc");
    println!("cargo:lib_dir={}", dir.display());
    println!("cargo:link=static");
}

/// Case 2: the libdir of an installed goipc that holds libgoipc.a.
fn installed_static_library_dir() -> Option<PathBuf> {
    let out = Command::new("pkg-config").args(["--variable=libdir", "goipc"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.join("libgoipc.a").is_file().then_some(dir)
}

/// Case 3: `make lib-static` in the repository; returns its build/lib.
/// make decides what to rebuild; Cargo reruns this when a Go source changes.
fn build_static_library(repo: &Path) -> PathBuf {
    if !repo.join("Makefile").is_file() || !repo.join("capi").is_dir() {
        fail(
            &format!("no installed goipc and no goipc repository at {}", repo.display()),
            "install the C library (`make install` in the goipc repository), or set GOIPC_LIBRARY_DIR \
             to a directory holding libgoipc.so",
        );
    }
    for source in ["goipc", "capi", "include/goipc.h", "go.mod", "go.sum", "mk/capi.mk"] {
        println!("cargo:rerun-if-changed={}", repo.join(source).display());
    }
    let status = Command::new(env::var("MAKE").unwrap_or_else(|_| "make".into()))
        .arg("-C")
        .arg(repo)
        .args(["--no-print-directory", "lib-static"])
        // make's output on stdout would be read by Cargo as directives.
        .stdout(std::io::stderr())
        .status();
    match status {
        Ok(s) if s.success() => repo.join("build/lib"),
        Ok(s) => fail(
            &format!("`make -C {} lib-static` failed ({s})", repo.display()),
            "it builds the static library with Go (go build -buildmode=c-archive): see its output above",
        ),
        Err(e) => fail(
            &format!("cannot run make to build the static library: {e}"),
            "install make and Go, or install goipc (`make install`) or set GOIPC_LIBRARY_DIR",
        ),
    }
}

fn fail(what: &str, hint: &str) -> ! {
    eprintln!("error: goipc: {what}");
    eprintln!("error: goipc: {hint}");
    panic!("goipc: {what} ({hint})");
}

/// The canonical path (the rpath must not depend on the working directory).
fn absolute(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|e| panic!("goipc: canonicalize {}: {e}", p.display()))
}
