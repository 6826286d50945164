//! Embeds an rpath to the libpython of the interpreter pyo3 built against.
//!
//! Without it a binary built against pyenv's Python can resolve
//! `libpython3.X.so` to a system copy at run time (then `sys.prefix` is
//! `/usr` and the user's packages vanish). The rpath is added to every
//! linked target (bin, tests, benches) so tests run the same libpython.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "python")]
    python_rpath();
}

#[cfg(feature = "python")]
fn python_rpath() {
    let config = pyo3_build_config::get();
    if let Some(lib_dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
    // sys.executable for the embedded interpreter when no virtualenv is
    // given: with it Python finds its prefix and subprocesses work.
    if let Some(exe) = config.executable() {
        println!("cargo:rustc-env=RWSGI_BUILD_PYTHON={exe}");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
