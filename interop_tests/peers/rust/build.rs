//! Puts the directory of libgoipc.so (found by the goipc crate's build
//! script, published as DEP_GOIPC_LIB_DIR) in this binary's rpath, so the
//! peer runs without LD_LIBRARY_PATH.
fn main() {
    if let Ok(dir) = std::env::var("DEP_GOIPC_LIB_DIR") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
    }
}
