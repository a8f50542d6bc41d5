//! `cargo xtask setup`: installs what a fresh machine lacks, skipping every step already satisfied.
//!
//! Each step checks the installed *version* (not only presence), waits if another process is
//! already installing the same thing (so a background install is never duplicated), installs,
//! then checks again. Versions are pinned for offline Trunk builds: see `TOOLCHAIN.md` in the
//! shared notes and `Trunk.toml`.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;

use crate::util::{self, Result};

/// The Wasm target the frontend compiles to.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Trunk 0.22 needs a newer rustc than this machine's 1.95.
pub const TRUNK_VERSION: &str = "0.21.14";
/// Used when Cargo.lock has no `wasm-bindgen` yet; must match `[tools] wasm_bindgen` in Trunk.toml.
pub const WASM_BINDGEN_FALLBACK: &str = "0.2.130";
/// npm package providing a wasm-opt recent enough for current wasm-bindgen output (Debian's is too old).
pub const BINARYEN_PACKAGE: &str = "binaryen@132.0.0";
/// The wasm-opt major version that package provides; Trunk.toml pins `wasm_opt = "version_132"`.
pub const WASM_OPT_VERSION: &str = "132";
/// Debian's packaged browser and its WebDriver, used by the end-to-end browser tests.
const CHROMIUM: &str = "/usr/bin/chromium";
/// The API fuzzer of the contract test (`tests/tests/api/contract.rs`), from PyPI, in its own
/// virtual environment under `target/tools/schemathesis`.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// What `setup` should install beyond what building and running the app needs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options {
    /// Trunk and wasm-bindgen-cli, which only `trunk serve` (the development loop) and its test
    /// use: the app's bundle is built without them (`bundle.rs`).
    pub devloop: bool,
    /// Chromium and ChromeDriver, which only the browser tests use.
    pub browser: bool,
    /// `llvm-tools-preview` and `cargo-llvm-cov`, which only the coverage run uses.
    pub coverage: bool,
    /// schemathesis, which only the contract test uses.
    pub schemathesis: bool,
}

impl Options {
    /// What `cargo xtask test` needs: everything.
    pub fn for_tests(coverage: bool) -> Self {
        Self { devloop: true, browser: true, coverage, schemathesis: true }
    }
}

/// Result of a check: `Ok(what was found)` when satisfied, `Err(why not)` otherwise.
type Check = std::result::Result<String, String>;

/// One thing to install: how to check it, how to tell another process is installing it, and how
/// to install it.
struct Step {
    name: String,
    check: Box<dyn Fn() -> Check + Send>,
    busy: Box<dyn Fn() -> Option<u32> + Send>,
    install: Box<dyn FnOnce() -> Result + Send>,
}

impl Step {
    fn new(
        name: impl Into<String>,
        check: impl Fn() -> Check + Send + 'static,
        busy: impl Fn() -> Option<u32> + Send + 'static,
        install: impl FnOnce() -> Result + Send + 'static,
    ) -> Self {
        Self { name: name.into(), check: Box::new(check), busy: Box::new(busy), install: Box::new(install) }
    }
}

/// Installs what is missing, in independent lanes that run side by side.
///
/// A fresh machine spends most of its setup in `cargo install`, whose link steps and serial
/// dependency chains leave one of the two cores idle; running the tool builds, apt and npm at the
/// same time fills it. Steps within a lane run in order (rustup's and apt's locks, and wasm-opt
/// being useless before the wasm target, make order matter there).
pub fn setup(opts: Options) -> Result {
    let (result, took) = util::timed(|| -> Result {
        let mut lanes: Vec<Vec<Step>> = vec![vec![
            Step::new("wasm32 target", check_wasm_target, util::rustup_in_progress, || {
                util::run_quiet("wasm32 target", util::command("rustup").args(["target", "add", WASM_TARGET]))
            }),
            Step::new(format!("wasm-opt {WASM_OPT_VERSION} (npm)"), check_wasm_opt, || None, install_wasm_opt),
        ]];
        if opts.devloop {
            let wasm_bindgen = wasm_bindgen_version();
            lanes.push(vec![Step::new(
                format!("trunk {TRUNK_VERSION}"),
                || check_version("trunk", &["--version"], TRUNK_VERSION),
                || util::cargo_install_in_progress("trunk"),
                // Without its default features trunk has no TLS stack and no update check: both only
                // reach the internet, which Trunk must not do here (`offline = true`), and ring's C
                // code and the HTTP client's TLS were a large share of its build.
                || cargo_install("trunk", &["--locked", "--no-default-features", "trunk", "--version", TRUNK_VERSION]),
            )]);
            lanes.push(vec![Step::new(
                format!("wasm-bindgen-cli {wasm_bindgen}"),
                {
                    let version = wasm_bindgen.clone();
                    move || check_version("wasm-bindgen", &["--version"], &version)
                },
                || util::cargo_install_in_progress("wasm-bindgen-cli"),
                // Not `--locked`: the crate's own lockfile pins a webpki-roots this registry lacks.
                move || cargo_install("wasm-bindgen-cli", &["wasm-bindgen-cli", "--version", &wasm_bindgen]),
            )]);
        }
        if opts.browser {
            lanes.push(vec![
                Step::new("chromium + chromedriver", check_chromium, util::apt_in_progress, install_chromium),
                // The load balancer of the cluster's browser test (and of `cargo xtask cluster`).
                Step::new("nginx", check_nginx, util::apt_in_progress, || apt_install("nginx", &["nginx-light"])),
            ]);
        }
        if opts.schemathesis {
            lanes.push(vec![Step::new(
                format!("schemathesis {SCHEMATHESIS_VERSION} (PyPI)"),
                check_schemathesis,
                || None,
                install_schemathesis,
            )]);
        }
        if opts.coverage {
            lanes[0].push(Step::new("llvm-tools-preview", check_llvm_tools, util::rustup_in_progress, || {
                util::run_quiet(
                    "llvm-tools-preview",
                    util::command("rustup").args(["component", "add", "llvm-tools-preview"]),
                )
            }));
            lanes.push(vec![Step::new(
                "cargo-llvm-cov",
                check_llvm_cov,
                || util::cargo_install_in_progress("cargo-llvm-cov"),
                || cargo_install("cargo-llvm-cov", &["--locked", "cargo-llvm-cov"]),
            )]);
        }
        run_lanes(lanes)
    });
    println!("setup: {} in {}", if result.is_ok() { "done" } else { "FAILED" }, util::secs(took));
    result
}

/// Runs each lane on its own thread; fails with every failing step's error.
fn run_lanes(lanes: Vec<Vec<Step>>) -> Result {
    let errors: Vec<String> = thread::scope(|scope| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                scope.spawn(move || -> std::result::Result<(), String> {
                    for step in lane {
                        run_step(step).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(result) => result.err(),
                Err(_) => Some("a setup step panicked".to_string()),
            })
            .collect()
    });
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ").into()) }
}

/// Checks, waits for a concurrent install, installs, and checks again; prints when it starts
/// installing and one line when done.
fn run_step(step: Step) -> Result {
    let Step { name, check, busy, install } = step;
    let (outcome, took) = util::timed(|| -> Result<String> {
        if let Ok(found) = check() {
            return Ok(format!("skipped ({found})"));
        }
        if busy().is_some() {
            util::wait_for(&name, &busy);
            if let Ok(found) = check() {
                return Ok(format!("installed by another process ({found})"));
            }
        }
        if let Err(why) = check() {
            println!("setup: {name}: {why}; installing...");
        }
        install()?;
        check()
            .map(|found| format!("installed ({found})"))
            .map_err(|why| format!("{name}: still not right after install: {why}").into())
    });
    match outcome {
        Ok(what) => {
            println!("setup: {name:<28} {what:<60} {}", util::secs(took));
            Ok(())
        }
        Err(e) => {
            println!("setup: {name:<28} FAILED after {}", util::secs(took));
            Err(e)
        }
    }
}

/// `cargo install` with a build profile made for installing tools fast rather than for their
/// last percent of speed: light optimisation, no LTO, many codegen units, no debug info (the
/// tools spend their time in I/O and in wasm-opt, which comes from npm). Trunk's own profile links
/// with fat LTO on one codegen unit, which alone took minutes of a single core here. Each tool
/// builds in its own directory under `target/tools`, so an interrupted install resumes where it
/// stopped instead of starting over.
fn cargo_install(name: &str, args: &[&str]) -> Result {
    let mut cmd = util::cargo();
    cmd.arg("install")
        .args(args)
        .env("CARGO_TARGET_DIR", util::tools_dir().join("build").join(name))
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env("CARGO_INCREMENTAL", "0");
    util::run_quiet(name, &mut cmd)
}

/// The `wasm-bindgen` crate version locked in Cargo.lock (wasm-bindgen-cli must match it exactly).
pub fn wasm_bindgen_version() -> String {
    fs::read_to_string(util::root().join("Cargo.lock"))
        .ok()
        .and_then(|lock| locked_version(&lock, "wasm-bindgen"))
        .unwrap_or_else(|| WASM_BINDGEN_FALLBACK.to_string())
}

/// Finds `version` of package `name` in a Cargo.lock text (first match).
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(version.to_string());
        }
    }
    None
}

fn check_wasm_target() -> Check {
    let rustup = util::which("rustup").ok_or("rustup not found")?;
    let installed = util::output_of(&rustup, &["target", "list", "--installed"]).ok_or("rustup failed")?;
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        Ok("installed".into())
    } else {
        Err(format!("{WASM_TARGET} not installed"))
    }
}

/// Checks that `program args` prints a line whose last word is `version` (e.g. `trunk 0.21.14`).
fn check_version(program: &str, args: &[&str], version: &str) -> Check {
    let path = util::which(program).ok_or_else(|| format!("{program} not found"))?;
    let out = util::output_of(&path, args).ok_or_else(|| format!("`{program} {}` failed", args.join(" ")))?;
    match last_word(&out) {
        Some(found) if found == version => Ok(format!("{program} {found}")),
        found => Err(format!("found {program} {}, need {version}", found.unwrap_or("?"))),
    }
}

fn last_word(text: &str) -> Option<&str> {
    text.lines().next()?.split_whitespace().last()
}

fn check_wasm_opt() -> Check {
    let path = util::node_bin_dir().join("wasm-opt");
    if !path.is_file() {
        return Err(format!("{} not found", path.display()));
    }
    let out = util::output_of(&path, &["--version"]).ok_or("`wasm-opt --version` failed")?;
    // Prints `wasm-opt version 132 (version_132)`; Trunk compares the `version_<N>` form.
    match out.split_whitespace().nth(2) {
        Some(v) if v == WASM_OPT_VERSION => Ok(format!("wasm-opt version {v}")),
        v => Err(format!("found wasm-opt version {}, need {WASM_OPT_VERSION}", v.unwrap_or("?"))),
    }
}

fn install_wasm_opt() -> Result {
    let dir = util::tools_dir();
    fs::create_dir_all(&dir)?;
    util::run_quiet(
        "wasm-opt",
        util::command("npm")
            .args(["install", "--no-audit", "--no-fund", "--save-exact", "--prefix"])
            .arg(&dir)
            .arg(BINARYEN_PACKAGE),
    )
}

fn check_chromium() -> Check {
    let browser = browser_version(Path::new(CHROMIUM), "Chromium")?;
    let driver = browser_version(Path::new(CHROMEDRIVER), "ChromeDriver")?;
    // chromedriver refuses to drive a browser of another major version.
    let major = |v: &str| v.split('.').next().unwrap_or("").to_string();
    if major(&browser) == major(&driver) {
        Ok(format!("chromium {browser}, chromedriver {driver}"))
    } else {
        Err(format!("chromium {browser} and chromedriver {driver} differ"))
    }
}

/// `Chromium 156.0.8078.79 built on Debian ...` → `156.0.8078.79`.
fn browser_version(path: &Path, label: &str) -> Check {
    if !path.is_file() {
        return Err(format!("{} not found", path.display()));
    }
    let out = util::output_of(path, &["--version"]).ok_or_else(|| format!("`{} --version` failed", path.display()))?;
    out.split_whitespace()
        .skip_while(|w| *w != label)
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| format!("unexpected `{} --version` output: {out}", path.display()))
}

/// Debian's nginx.
pub const NGINX: &str = "/usr/sbin/nginx";

fn check_nginx() -> Check {
    if !Path::new(NGINX).is_file() {
        return Err(format!("{NGINX} not found"));
    }
    // `nginx -v` prints `nginx version: nginx/1.22.1` on stderr.
    let out = Command::new(NGINX).arg("-v").output().map_err(|e| format!("{NGINX} -v: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stderr).trim().to_owned())
}

fn install_chromium() -> Result {
    apt_install("chromium", &["chromium", "chromium-driver"])
}

/// Installs Debian packages (through sudo unless root), after any other apt run finishes.
pub fn apt_install(name: &str, packages: &[&str]) -> Result {
    util::wait_for("apt-get", util::apt_in_progress);
    let apt = |args: &[&str]| -> Command {
        let mut cmd = if util::is_root() {
            util::command("apt-get")
        } else {
            let mut sudo = util::command("sudo");
            sudo.arg("apt-get");
            sudo
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        cmd
    };
    util::run_quiet("apt-get update", &mut apt(&["update"]))?;
    let install: Vec<&str> = ["install", "-y", "--no-install-recommends"].iter().chain(packages).copied().collect();
    util::run_quiet(name, &mut apt(&install))
}

fn schemathesis_dir() -> std::path::PathBuf {
    util::tools_dir().join("schemathesis")
}

fn check_schemathesis() -> Check {
    let bin = schemathesis_dir().join("bin").join("schemathesis");
    if !bin.is_file() {
        return Err(format!("{} not found", bin.display()));
    }
    // `schemathesis, version 4.32.5`
    let out = util::output_of(&bin, &["--version"]).ok_or("`schemathesis --version` failed")?;
    match last_word(&out) {
        Some(SCHEMATHESIS_VERSION) => Ok(format!("schemathesis {SCHEMATHESIS_VERSION}")),
        found => Err(format!("found schemathesis {}, need {SCHEMATHESIS_VERSION}", found.unwrap_or("?"))),
    }
}

/// A virtual environment of the machine's `python3` with schemathesis pinned, so nothing is
/// installed into the system's Python.
fn install_schemathesis() -> Result {
    let dir = schemathesis_dir();
    util::run_quiet("python3 venv", util::command("python3").args(["-m", "venv", "--clear"]).arg(&dir))?;
    let pin = format!("schemathesis=={SCHEMATHESIS_VERSION}");
    util::run_quiet(
        "schemathesis",
        util::command(dir.join("bin").join("pip")).args(["install", "--quiet", "--disable-pip-version-check", &pin]),
    )
}

fn check_llvm_tools() -> Check {
    let rustup = util::which("rustup").ok_or("rustup not found")?;
    let installed = util::output_of(&rustup, &["component", "list", "--installed"]).ok_or("rustup failed")?;
    installed
        .lines()
        .find(|l| l.starts_with("llvm-tools"))
        .map(str::to_string)
        .ok_or_else(|| "llvm-tools-preview not installed".to_string())
}

fn check_llvm_cov() -> Check {
    util::which("cargo-llvm-cov").ok_or("cargo-llvm-cov not found")?;
    let out = util::cargo().args(["llvm-cov", "--version"]).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err("`cargo llvm-cov --version` failed".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
[[package]]
name = "wasm-bindgen-backend"
version = "0.2.129"

[[package]]
name = "wasm-bindgen"
version = "0.2.130"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#;

    #[test]
    fn locked_version_finds_the_exact_package_name() {
        assert_eq!(locked_version(LOCK, "wasm-bindgen").as_deref(), Some("0.2.130"));
        assert_eq!(locked_version(LOCK, "wasm-bindgen-backend").as_deref(), Some("0.2.129"));
        assert_eq!(locked_version(LOCK, "trunk"), None);
    }

    #[test]
    fn the_bundle_s_bindgen_is_the_wasm_bindgen_the_frontend_is_compiled_against() {
        let lock = fs::read_to_string(util::root().join("Cargo.lock")).expect("Cargo.lock");
        let frontend = locked_version(&lock, "wasm-bindgen").expect("the frontend uses wasm-bindgen");
        assert_eq!(
            locked_version(&lock, "wasm-bindgen-cli-support"),
            Some(frontend),
            "xtask/bindgen/Cargo.toml must pin wasm-bindgen-cli-support to the locked wasm-bindgen"
        );
    }

    #[test]
    fn last_word_reads_the_version_of_a_version_line() {
        assert_eq!(last_word("trunk 0.21.14\n"), Some("0.21.14"));
        assert_eq!(last_word("wasm-bindgen 0.2.130"), Some("0.2.130"));
        assert_eq!(last_word(""), None);
    }
}
