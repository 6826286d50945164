//! The standalone `rwsgi-lite` binary: Python embedded. It starts its own
//! interpreter (`--virtualenv`, `$VIRTUAL_ENV`) and runs the command line
//! shared with the Python package's console script (`cli`).

use std::process::ExitCode;

use rwsgi_lite::cli::{self, Interpreter};

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(bad) => {
                eprintln!("rwsgi-lite: argument {bad:?} is not valid UTF-8; see --help");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::from(cli::run(&args, Interpreter::Embedded))
}
