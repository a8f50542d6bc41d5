//! `bindgen INPUT.wasm OUT_DIR`: the JavaScript glue and the processed Wasm of the frontend, as
//! `wasm-bindgen --target web --no-typescript` writes them, named after the input file.
//!
//! The CLI's own build pulls in a test runner, an HTTP server and TLS; this library call is a
//! fraction of that, which is what lets a fresh machine serve the page within minutes.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [input, out_dir] = args.as_slice() else {
        eprintln!("usage: bindgen INPUT.wasm OUT_DIR");
        return ExitCode::from(2);
    };
    let generated = wasm_bindgen_cli_support::Bindgen::new()
        .input_path(input)
        .web(true)
        .and_then(|bindgen| bindgen.typescript(false).generate(out_dir));
    match generated {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bindgen: {}: {e:#}", input.display());
            ExitCode::FAILURE
        }
    }
}
