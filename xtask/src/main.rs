//! Developer tasks for the workspace, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! - `setup` installs what a fresh machine lacks (`setup.rs`), skipping what is already there;
//! - `frontend`, `run`, `test` and `bench` build on it (`tasks.rs`).
//!
//! Standard library only, and arguments are parsed by hand: the xtask must build fast on a fresh
//! clone, before anything else is installed.

mod bundle;
mod cluster;
mod setup;
mod tasks;
mod util;

use std::process::ExitCode;

use util::Result;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup [--coverage]          install what this machine lacks for the tests (wasm32 target, wasm-opt, trunk and
                              wasm-bindgen-cli for `trunk serve`, chromium + chromedriver, schemathesis; --coverage adds cargo-llvm-cov);
                              each step is skipped when the right version is already installed
  frontend [--release]        setup, then the page's bundle in dist/ (cargo, the workspace's bindgen and, for
                              release, wasm-opt; no Trunk: that is `trunk serve`'s, the development loop)
  run [-- <serve flags>]      setup, release frontend, then `backend serve --static-dir dist <flags>`
                              (http://127.0.0.1:8080 by default)
  test [--no-coverage] [-- <cargo test args>]
                              setup (with cargo-llvm-cov), release frontend, all tests under llvm-cov
                              (APP_DIST_DIR=dist for browser tests) with the line coverage of common
                              and backend, then the frontend's native unit tests; --no-coverage runs
                              plain `cargo test`
  bench [-- <args>]           run the benchmark suite (release) and write BENCHMARKS.md
  cluster [--replicas N]      a local cluster: PostgreSQL, one Bedrock emulator, N replicas (default 3)
                              behind nginx (deploy/nginx.conf) at http://127.0.0.1:8080
  help                        this text
";

/// A parsed command line.
#[derive(Debug, PartialEq)]
enum Task {
    Setup { coverage: bool },
    Frontend { release: bool },
    Run { serve_args: Vec<String> },
    Test { coverage: bool, cargo_test_args: Vec<String> },
    Bench { args: Vec<String> },
    Cluster { replicas: usize },
    Help,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&args).and_then(execute);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(task: Task) -> Result {
    match task {
        Task::Setup { coverage } => setup::setup(setup::Options::for_tests(coverage)),
        Task::Frontend { release } => tasks::frontend(release),
        Task::Run { serve_args } => tasks::run(&serve_args),
        Task::Test { coverage, cargo_test_args } => tasks::test(&tasks::TestOptions { coverage, cargo_test_args }),
        Task::Bench { args } => tasks::bench(&args),
        Task::Cluster { replicas } => cluster::cluster(replicas),
        Task::Help => {
            print!("{USAGE}");
            Ok(())
        }
    }
}

/// Parses `<command> [flags] [-- <passed through>]`.
fn parse(args: &[String]) -> Result<Task> {
    let Some((command, rest)) = args.split_first() else { return Ok(Task::Help) };
    // Everything after `--` belongs to the program we start.
    let (flags, passthrough) = match rest.iter().position(|a| a == "--") {
        Some(i) => (&rest[..i], rest[i + 1..].to_vec()),
        None => (rest, Vec::new()),
    };
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    let only = |allowed: &[&str]| -> Result {
        match flags.iter().find(|f| !allowed.contains(&f.as_str())) {
            Some(f) => Err(format!("unknown argument `{f}` for `{command}`\n\n{USAGE}").into()),
            None => Ok(()),
        }
    };
    let task = match command.as_str() {
        "setup" => {
            only(&["--coverage"])?;
            Task::Setup { coverage: has("--coverage") }
        }
        "frontend" => {
            only(&["--release"])?;
            Task::Frontend { release: has("--release") }
        }
        // `run` forwards everything: `cargo xtask run --addr X` works as well as `run -- --addr X`.
        "run" => Task::Run { serve_args: flags.iter().cloned().chain(passthrough).collect() },
        "test" => {
            only(&["--coverage", "--no-coverage"])?;
            // Coverage is on by default: the suite runs once, instrumented, and prints the summary.
            Task::Test { coverage: !has("--no-coverage"), cargo_test_args: passthrough }
        }
        "bench" => Task::Bench { args: flags.iter().cloned().chain(passthrough).collect() },
        "cluster" => match flags {
            [] => Task::Cluster { replicas: 3 },
            [flag, n] if flag == "--replicas" => match n.parse() {
                Ok(replicas) if replicas > 0 => Task::Cluster { replicas },
                _ => return Err(format!("--replicas needs a positive number, not `{n}`").into()),
            },
            _ => return Err(format!("usage: cargo xtask cluster [--replicas N]\n\n{USAGE}").into()),
        },
        "help" | "--help" | "-h" => Task::Help,
        other => return Err(format!("unknown command `{other}`\n\n{USAGE}").into()),
    };
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn no_arguments_prints_help() {
        assert_eq!(parse(&[]).ok(), Some(Task::Help));
    }

    #[test]
    fn run_forwards_serve_flags_with_or_without_a_separator() {
        let expected = Task::Run { serve_args: args("--addr 0.0.0.0:9000") };
        assert_eq!(parse(&args("run -- --addr 0.0.0.0:9000")).ok(), Some(expected));
        let expected = Task::Run { serve_args: args("--addr 0.0.0.0:9000") };
        assert_eq!(parse(&args("run --addr 0.0.0.0:9000")).ok(), Some(expected));
    }

    #[test]
    fn test_takes_coverage_and_passes_the_rest_to_cargo_test() {
        let expected = Task::Test { coverage: true, cargo_test_args: args("-- happy_path") };
        assert_eq!(parse(&args("test -- -- happy_path")).ok(), Some(expected));
        let expected = Task::Test { coverage: false, cargo_test_args: vec![] };
        assert_eq!(parse(&args("test --no-coverage")).ok(), Some(expected));
    }

    #[test]
    fn cluster_takes_a_number_of_replicas() {
        assert_eq!(parse(&args("cluster")).ok(), Some(Task::Cluster { replicas: 3 }));
        assert_eq!(parse(&args("cluster --replicas 5")).ok(), Some(Task::Cluster { replicas: 5 }));
        assert!(parse(&args("cluster --replicas 0")).is_err());
        assert!(parse(&args("cluster --replicas")).is_err());
    }

    #[test]
    fn unknown_commands_and_flags_are_errors() {
        assert!(parse(&args("deploy")).is_err());
        assert!(parse(&args("frontend --fast")).is_err());
        assert_eq!(parse(&args("frontend --release")).ok(), Some(Task::Frontend { release: true }));
    }
}
