//! Small helpers shared by the subcommands: paths, running commands, timing, finding programs.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The error type of the xtask: every failure ends as a message on stderr and exit code 1.
pub type Error = Box<dyn std::error::Error>;
/// Result alias for the xtask.
pub type Result<T = ()> = std::result::Result<T, Error>;

/// How often we look again at an install that another process is running.
const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The workspace root (the parent of this crate's manifest directory).
pub fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Where project-local tools (wasm-opt from npm) are installed.
pub fn tools_dir() -> PathBuf {
    root().join("target").join("tools")
}

/// The directory holding `wasm-opt` and friends from the npm `binaryen` package.
pub fn node_bin_dir() -> PathBuf {
    tools_dir().join("node_modules").join(".bin")
}

/// `$CARGO_HOME/bin`, where `cargo install` puts trunk and wasm-bindgen.
pub fn cargo_bin_dir() -> PathBuf {
    if let Some(home) = env::var_os("CARGO_HOME") {
        return PathBuf::from(home).join("bin");
    }
    let home = env::var_os("HOME").unwrap_or_else(|| OsString::from("/root"));
    PathBuf::from(home).join(".cargo").join("bin")
}

/// The Cargo profile the app's own programs are built with (the server, the bundle's bindgen):
/// release without cross-crate LTO (root Cargo.toml).
pub const APP_PROFILE: &str = "app";

/// Cargo's output directory: `CARGO_TARGET_DIR` when set (relative to the workspace root, as
/// cargo reads it), else `target/`.
pub fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), |dir| root().join(dir))
}

/// A program of the workspace built with [`APP_PROFILE`].
pub fn app_binary(name: &str) -> PathBuf {
    target_dir().join(APP_PROFILE).join(format!("{name}{}", env::consts::EXE_SUFFIX))
}

/// The page's bundle directory, absolute.
pub fn dist_dir() -> PathBuf {
    root().join("dist")
}

/// `PATH` with the project-local tool directories first, so trunk finds the pinned wasm-opt and
/// the freshly installed trunk/wasm-bindgen even when `~/.cargo/bin` is not on the user's PATH.
pub fn tool_path() -> OsString {
    let mut dirs = vec![node_bin_dir(), cargo_bin_dir()];
    if let Some(path) = env::var_os("PATH") {
        dirs.extend(env::split_paths(&path));
    }
    env::join_paths(dirs).unwrap_or_else(|_| env::var_os("PATH").unwrap_or_default())
}

/// Looks `name` up in [`tool_path`].
pub fn which(name: &str) -> Option<PathBuf> {
    env::split_paths(&tool_path()).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The cargo that runs us (`$CARGO` is set by `cargo run`), so children use the same toolchain.
pub fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")));
    cmd.current_dir(root()).env("PATH", tool_path());
    cmd
}

/// A command run from the workspace root with [`tool_path`] as its PATH.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(root()).env("PATH", tool_path());
    cmd
}

/// Renders a command line for logs.
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd` with inherited stdio and fails unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result {
    println!("$ {}", describe(cmd));
    let status = cmd.status().map_err(|e| format!("cannot start `{}`: {e}", describe(cmd)))?;
    check(status, cmd)
}

/// Runs `cmd` with its output going to `target/tools/logs/<name>.log` rather than the terminal,
/// so that installs running side by side do not interleave their output; on failure prints the
/// end of that log.
pub fn run_quiet(name: &str, cmd: &mut Command) -> Result {
    let dir = tools_dir().join("logs");
    fs::create_dir_all(&dir)?;
    let log_path = dir.join(format!("{}.log", name.replace([' ', '/'], "-")));
    let log = fs::File::create(&log_path)?;
    println!("$ {}    (output: {})", describe(cmd), log_path.display());
    let status = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", describe(cmd)))?;
    if !status.success() {
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- last lines of {} ---", log_path.display());
        for line in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("{line}");
        }
    }
    check(status, cmd)
}

/// Turns a non-zero exit status into an error naming the command.
pub fn check(status: ExitStatus, cmd: &Command) -> Result {
    if status.success() { Ok(()) } else { Err(format!("`{}` failed ({status})", describe(cmd)).into()) }
}

/// Runs `program args` quietly and returns its trimmed stdout (or stderr when stdout is empty),
/// or `None` when it cannot be started or fails.
pub fn output_of(program: &Path, args: &[&str]) -> Option<String> {
    let out = command(program).args(args).stdin(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
    Some(String::from_utf8_lossy(&text).trim().to_string())
}

/// Formats a duration the way the summaries print it.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Times `f`.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// Whether we run as root (then apt-get runs directly, otherwise through sudo).
pub fn is_root() -> bool {
    // `/proc/self/status` has `Uid:\t<real>\t<effective>...`; std has no getuid without unsafe.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Command lines of the other processes on this machine (read from `/proc`).
fn other_processes() -> Vec<(u32, Vec<String>)> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            if pid == me {
                return None;
            }
            let raw = fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (!args.is_empty()).then_some((pid, args))
        })
        .collect()
}

/// The basename of a process's program.
fn program_name(args: &[String]) -> &str {
    args.first().map(|a| a.rsplit('/').next().unwrap_or(a)).unwrap_or("")
}

/// The pid of a running `cargo install ... <krate> ...`, if another process is installing it.
pub fn cargo_install_in_progress(krate: &str) -> Option<u32> {
    other_processes().into_iter().find_map(|(pid, args)| {
        let is_install = program_name(&args) == "cargo" && args.iter().any(|a| a == "install");
        (is_install && args.iter().any(|a| a == krate)).then_some(pid)
    })
}

/// The pid of a running apt-get/apt/dpkg, which holds the dpkg lock.
pub fn apt_in_progress() -> Option<u32> {
    other_processes()
        .into_iter()
        .find_map(|(pid, args)| matches!(program_name(&args), "apt-get" | "apt" | "dpkg").then_some(pid))
}

/// The pid of a running `rustup target add` / `rustup component add`.
pub fn rustup_in_progress() -> Option<u32> {
    other_processes().into_iter().find_map(|(pid, args)| {
        let rustup = program_name(&args) == "rustup" || args.iter().any(|a| a.ends_with("/rustup"));
        (rustup && args.iter().any(|a| a == "add")).then_some(pid)
    })
}

/// Waits while `busy()` reports another process doing the same install, so we never start a
/// duplicate (two `cargo install`s of one crate race on `~/.cargo/bin`; two apt-gets on the lock).
pub fn wait_for(what: &str, busy: impl Fn() -> Option<u32>) {
    let mut announced = false;
    while let Some(pid) = busy() {
        if !announced {
            println!("  waiting for {what} already in progress (pid {pid})...");
            announced = true;
        }
        thread::sleep(POLL_INTERVAL);
    }
}
