//! The subcommands beyond `setup`: building the frontend, running the app, the tests and the benchmarks.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::bundle;
use crate::setup::{self, Options};
use crate::util::{self, APP_PROFILE, Result};

/// Sources left out of the coverage figure: the test, bench and tool crates measure `common`
/// and `backend`, they are not what is measured; test-only files (`tests.rs`, the in-memory
/// store) are tests, not code under test.
const COVERAGE_IGNORED: &str = "/(tests|bench|xtask|frontend)/|/tests\\.rs$|/store/memory\\.rs$";
/// The gate's figure also leaves out the built-in emulator, a test fixture of its own; its
/// figure is printed separately.
const COVERAGE_GATED_IGNORED: &str = "/(tests|bench|xtask|frontend)/|/tests\\.rs$|/store/memory\\.rs$|/emulator/";
/// `cargo xtask test` fails below this line coverage of `common` and `backend` (emulator aside).
const MIN_LINE_COVERAGE: &str = "90";

/// `cargo xtask frontend [--release]`: setup, then the bundle in `dist/`.
pub fn frontend(release: bool) -> Result {
    setup::setup(Options::default())?;
    build_frontend(release)
}

/// Builds the frontend bundle into `dist/` (see `bundle.rs`), then precompresses release bundles.
pub fn build_frontend(release: bool) -> Result {
    let (result, took) = util::timed(|| -> Result {
        util::run(util::cargo().arg("fetch"))?;
        util::run_quiet("bindgen", &mut bundle::bindgen_build())?;
        bundle::compile(release)?;
        bundle::assemble(release)
    });
    result?;
    finish_frontend(release, took)
}

/// Reports a bundle just assembled, precompressing release bundles first.
fn finish_frontend(release: bool, took: Duration) -> Result {
    println!("frontend: built {} bundle in {}", if release { "release" } else { "debug" }, util::secs(took));
    if release {
        precompress(&util::dist_dir())?;
    }
    print_dist_sizes(&util::dist_dir());
    Ok(())
}

/// Writes `NAME.gz` beside each text and Wasm file of `dist/`; the server sends those to
/// browsers that accept gzip, so nothing is compressed per request.
fn precompress(dist: &Path) -> Result {
    for entry in fs::read_dir(dist)? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if ["html", "js", "wasm", "css"].contains(&ext) {
            util::run(util::command("gzip").args(["-9", "--keep", "--force"]).arg(&path))?;
        }
    }
    Ok(())
}

/// Lists the files of `dist/` with their sizes (uncompressed).
fn print_dist_sizes(dist: &Path) {
    let Ok(entries) = fs::read_dir(dist) else { return };
    let mut files: Vec<(String, u64)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| (e.file_name().to_string_lossy().into_owned(), meta.len()))
        })
        .collect();
    files.sort();
    let total: u64 = files.iter().map(|(_, len)| len).sum();
    for (name, len) in &files {
        println!("  dist/{name:<50} {:>9} bytes", len);
    }
    println!("  total (uncompressed){:>43} bytes", total);
}

/// `cargo xtask run [-- <serve flags>]`: setup, release frontend, then the release backend serving it.
///
/// The server and the Wasm compile at the same time, each in its own cargo invocation (they lock
/// different output directories), so the two cores stay busy from the first second.
pub fn run(serve_args: &[String]) -> Result {
    util::run(util::cargo().arg("fetch"))?;
    let backend = std::thread::spawn(|| {
        let (result, took) = util::timed(build_app);
        println!(
            "run: backend build ({APP_PROFILE} profile) {} in {}",
            if result.is_ok() { "done" } else { "FAILED" },
            util::secs(took)
        );
        result.map_err(|e| e.to_string())
    });
    let wasm_took = setup::setup(Options::default()).and_then(|()| {
        let (result, took) = util::timed(|| bundle::compile(true));
        result.map(|()| took)
    });
    let backend = backend.join().map_err(|_| "the backend build thread panicked")?;
    let wasm_took = wasm_took?;
    backend?;
    let (assembled, assemble_took) = util::timed(|| bundle::assemble(true));
    assembled?;
    finish_frontend(true, wasm_took + assemble_took)?;
    // The binary itself, not `cargo run -p backend`: cargo would resolve features for the server
    // alone, unlike the build above that shared them with bindgen, and compile it all again.
    let mut cmd = util::command(util::app_binary("backend"));
    cmd.args(["serve", "--static-dir"]).arg(util::dist_dir()).args(serve_args);
    println!("$ {}", util::describe(&cmd));
    exec(cmd)
}

/// Builds the server and the bundle's bindgen with [`APP_PROFILE`], in one cargo invocation, so
/// `run` and `cluster` share one set of resolved features and so one build.
pub fn build_app() -> Result {
    let mut cmd = bundle::bindgen_build();
    util::run_quiet("backend", cmd.args(["-p", "backend"]))
}

/// Replaces this process with `cmd` (Unix), so Ctrl-C and SIGTERM reach the server directly and
/// its exit status is ours.
#[cfg(unix)]
fn exec(mut cmd: std::process::Command) -> Result {
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    Err(format!("cannot start `{}`: {err}", util::describe(&cmd)).into())
}

#[cfg(not(unix))]
fn exec(mut cmd: std::process::Command) -> Result {
    let status = cmd.status()?;
    util::check(status, &cmd)
}

/// `cargo xtask test` flags.
#[derive(Debug, Default)]
pub struct TestOptions {
    /// Also run the backend and common tests under `cargo llvm-cov` and print the summary.
    pub coverage: bool,
    /// Extra arguments for the workspace `cargo test` (e.g. `-- happy_path`).
    pub cargo_test_args: Vec<String>,
}

/// One line of the test summary.
struct Outcome {
    name: String,
    ok: bool,
    took: Duration,
}

/// `cargo xtask test`: setup, release frontend (the browser tests serve `dist/`), the workspace
/// tests, the frontend's native unit tests; runs every step even after a failure, then summarises.
pub fn test(opts: &TestOptions) -> Result {
    let mut outcomes = Vec::new();
    let mut record = |name: &str, f: &mut dyn FnMut() -> Result| {
        let (result, took) = util::timed(f);
        if let Err(e) = &result {
            eprintln!("error: {name}: {e}");
        }
        outcomes.push(Outcome { name: name.to_string(), ok: result.is_ok(), took });
        result.is_ok()
    };

    let setup_ok = record("setup", &mut || setup::setup(Options::for_tests(opts.coverage)));
    if setup_ok {
        record("frontend (release bundle)", &mut || build_frontend(true));
        // Plain `cargo test` runs the workspace's default members (common, backend, tests, bench,
        // xtask) on the host; `--workspace` would also compile the Wasm frontend natively, which is
        // tested separately below. With coverage, the same tests run once, instrumented, and the
        // line coverage of `common` and `backend` is printed.
        let name = if opts.coverage { "cargo llvm-cov test (default members)" } else { "cargo test (default members)" };
        let tests_ok = record(name, &mut || {
            let mut cmd = util::cargo();
            if opts.coverage {
                cmd.args(["llvm-cov", "--no-report", "--no-fail-fast"]);
            } else {
                cmd.args(["test", "--no-fail-fast"]);
            }
            util::run(cmd.args(&opts.cargo_test_args).env("APP_DIST_DIR", util::dist_dir()))
        });
        // The API suite once more with every server storing in PostgreSQL (a database per
        // test, on the PostgreSQL `tests::postgres` finds or starts), as a cluster replica does.
        let postgres_ok = opts.cargo_test_args.is_empty()
            && record("API suite on PostgreSQL (TEST_STORE=postgres)", &mut || {
                let mut cmd = util::cargo();
                if opts.coverage {
                    cmd.args(["llvm-cov", "--no-report"]);
                } else {
                    cmd.arg("test");
                }
                util::run(cmd.args(["-p", "tests", "--test", "api"]).env("TEST_STORE", "postgres"))
            });
        if opts.coverage && tests_ok && postgres_ok {
            record(&format!("line coverage >= {MIN_LINE_COVERAGE} %"), &mut coverage_gate);
        }
        record("cargo test -p frontend (native)", &mut || util::run(util::cargo().args(["test", "-p", "frontend"])));
    }

    println!("\ntest summary:");
    for o in &outcomes {
        println!("  {:<36} {:<7} {:>8}", o.name, if o.ok { "ok" } else { "FAILED" }, util::secs(o.took));
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    let total: Duration = outcomes.iter().map(|o| o.took).sum();
    println!("  {:<36} {:<7} {:>8}", "total", if failed == 0 { "ok" } else { "FAILED" }, util::secs(total));
    if failed == 0 { Ok(()) } else { Err(format!("{failed} of {} steps failed", outcomes.len()).into()) }
}

/// Prints the coverage of `common` and `backend` per file, the emulator's own figure, and fails
/// when the rest is below [`MIN_LINE_COVERAGE`].
fn coverage_gate() -> Result {
    let report = util::cargo()
        .args(["llvm-cov", "report", "--summary-only", "--ignore-filename-regex", COVERAGE_IGNORED])
        .output()?;
    let table = String::from_utf8_lossy(&report.stdout);
    let (lines, missed) = table
        .lines()
        .filter(|row| row.contains("/emulator/"))
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            Some((fields.get(7)?.parse::<u64>().ok()?, fields.get(8)?.parse::<u64>().ok()?))
        })
        .fold((0, 0), |(l, m), (rl, rm)| (l + rl, m + rm));
    if lines > 0 {
        let percent = 100.0 * (lines - missed) as f64 / lines as f64;
        println!("coverage: built-in emulator {percent:.2} % of {lines} lines (not gated)");
    }
    util::run(util::cargo().args([
        "llvm-cov",
        "report",
        "--summary-only",
        "--ignore-filename-regex",
        COVERAGE_GATED_IGNORED,
        "--fail-under-lines",
        MIN_LINE_COVERAGE,
    ]))
}

/// `cargo xtask bench [-- <args>]`: runs the backend's `bench` binary once it exists.
pub fn bench(args: &[String]) -> Result {
    setup::setup(Options::default())?;
    build_frontend(true)?;
    util::run(util::cargo().args(["build", "--release", "-p", "backend", "-p", "bench"]))?;
    let root = util::root();
    let release = util::target_dir().join("release");
    let mut cmd = util::command(release.join("bench"));
    cmd.arg("--backend")
        .arg(release.join("backend"))
        .arg("--dist")
        .arg(util::dist_dir())
        .arg("--out")
        .arg(root.join("BENCHMARKS.md"))
        .args(args);
    util::run(&mut cmd)
}
