//! `rwsgi_lite._core`: the extension module behind the Python package. It
//! runs inside the interpreter that imported it (no libpython of its own)
//! and exposes the server the standalone binary has: the whole command
//! line (`main`) and the in-process `Server`.

mod options;
mod pylog;
mod server;

use pyo3::prelude::*;

use rwsgi_lite::cli::{self, Interpreter};

/// Runs the `rwsgi-lite` command line in this interpreter; returns the
/// exit status. The GIL is released: the command takes it when it runs
/// Python, and its master forks workers.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| cli::run(&argv, Interpreter::Host))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_class::<server::Server>()?;
    Ok(())
}
