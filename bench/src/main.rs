//! `bench`: the benchmark suite. Starts the release server against the emulator for each
//! figure, measures, and writes `BENCHMARKS.md`. Run it with `cargo xtask bench`.
//!
//! Nothing here asserts: a missed target is reported in the table, with what limits it.

mod batches;
mod cluster;
mod feed;
mod figures;
mod server;
mod stats;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use figures::{Figure, Scale};

const USAGE: &str = "usage: bench [--backend PATH] [--dist DIR] [--out FILE] [--quick] [--only NAME]";

struct Options {
    backend: PathBuf,
    dist: PathBuf,
    out: PathBuf,
    quick: bool,
    only: Option<String>,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        backend: PathBuf::from("target/release/backend"),
        dist: PathBuf::from("dist"),
        out: PathBuf::from("BENCHMARKS.md"),
        quick: false,
        only: None,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--backend" => options.backend = PathBuf::from(value()?),
            "--dist" => options.dist = PathBuf::from(value()?),
            "--out" => options.out = PathBuf::from(value()?),
            "--only" => options.only = Some(value()?),
            "--quick" => options.quick = true,
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let scale = if options.quick {
        Scale {
            sequential_runs: 100,
            throughput_secs: 5,
            in_flight: 1000,
            fan_out_clients: 200,
            history_runs: 10_000,
            batch_items: 700,
            one_at_a_time: std::time::Duration::from_secs(10),
            large_batch: 2_000,
        }
    } else {
        Scale {
            sequential_runs: 500,
            throughput_secs: 30,
            in_flight: 5000,
            fan_out_clients: 1000,
            history_runs: 100_000,
            batch_items: 2_000,
            one_at_a_time: std::time::Duration::from_secs(60),
            large_batch: 20_000,
        }
    };
    let wanted = |name: &str| options.only.as_deref().is_none_or(|only| name.contains(only));
    let binary = options.backend.as_path();
    let mut figures: Vec<Figure> = Vec::new();
    let mut failures = Vec::new();
    macro_rules! measure {
        ($name:literal, $run:expr) => {
            if wanted($name) {
                eprintln!("bench: {} ...", $name);
                match $run {
                    Ok(figure) => {
                        eprintln!("bench: {}: {}", $name, figure.measured);
                        figures.push(figure);
                    }
                    Err(error) => {
                        eprintln!("bench: {} failed: {error:#}", $name);
                        failures.push(format!("{}: {error:#}", $name));
                    }
                }
            }
        };
    }
    measure!("orchestration", figures::orchestration(binary, scale).await);
    measure!("throughput", figures::throughput(binary, scale).await);
    measure!("in flight", figures::in_flight(binary, scale).await);
    measure!("first token", figures::first_token(binary).await);
    measure!("fan-out", figures::fan_out(binary, scale).await);
    if wanted("cold start") || wanted("idle memory") {
        match figures::cold_start_and_idle_memory(binary).await {
            Ok((cold, idle)) => figures.extend([cold, idle]),
            Err(error) => failures.push(format!("cold start / idle memory: {error:#}")),
        }
    }
    measure!("page weight", figures::page_weight(&options.dist));
    if wanted("history") {
        match figures::history(binary, scale).await {
            Ok(history) => figures.extend(history),
            Err(error) => failures.push(format!("history: {error:#}")),
        }
    }
    measure!("batch at a quota", batches::quota(binary, scale.batch_items, scale.one_at_a_time).await);
    measure!("large batch", batches::large(binary, scale.large_batch).await);
    measure!("orchestration postgres", cluster::orchestration_postgres(binary, scale).await);
    measure!("replicas scaling", cluster::scaling(binary, scale).await);
    if wanted("replicas failover") || wanted("cross-replica") {
        match cluster::failover_and_fan_out(binary, options.quick).await {
            Ok((takeover, cross)) => figures.extend([takeover, cross]),
            Err(error) => failures.push(format!("replicas failover / cross-replica latency: {error:#}")),
        }
    }

    let report = report(&figures, &failures, options.quick);
    if let Err(error) = std::fs::write(&options.out, &report) {
        eprintln!("cannot write {}: {error}", options.out.display());
        return ExitCode::FAILURE;
    }
    println!("{report}");
    if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    let memory = read("/proc/meminfo").lines().find(|l| l.starts_with("MemTotal:")).map_or_else(String::new, |l| {
        let kb: f64 = l.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0.0);
        format!("{:.1} GiB", kb / 1024.0 / 1024.0)
    });
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(|| "unknown CPU".to_owned(), |s| s.trim().to_owned());
    format!("{cores} cores ({cpu}), {memory} memory")
}

fn report(figures: &[Figure], failures: &[String], quick: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Measured by `cargo xtask bench{}` (the `bench` crate) on {}; machine: {}. Release build, server in its own \
         process, built-in Bedrock emulator unless said otherwise. Latencies are nearest-rank percentiles.\n",
        if quick { " -- --quick" } else { "" },
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine()
    );
    let _ = writeln!(out, "| figure | target | measured | met | how |\n| --- | --- | --- | --- | --- |");
    for figure in figures {
        let met = if figure.met { "yes" } else { "**no**" };
        let _ = writeln!(out, "| {} | {} | {} | {met} | {} |", figure.name, figure.target, figure.measured, figure.how);
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "\n## Figures that could not be measured\n");
        for failure in failures {
            let _ = writeln!(out, "- {failure}");
        }
    }
    out
}
