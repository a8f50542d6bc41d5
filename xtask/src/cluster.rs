//! `cargo xtask cluster [--replicas N]`: a local cluster for a person to try, as it would run in
//! production: one PostgreSQL, one Bedrock (the emulator), N replicas of `backend serve`, and
//! nginx in front of them (its configuration is `deploy/nginx.conf`).
//!
//! PostgreSQL is `DATABASE_URL`'s server, else the one on `127.0.0.1:5432`, else a throwaway
//! one started from the installed binaries (installed from Debian's packages when missing).
//! Ctrl-C stops everything it started.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::setup::{self, Options, apt_install};
use crate::tasks::{build_app, build_frontend};
use crate::util::{self, Result};

/// The address people open.
const LISTEN: &str = "127.0.0.1:8080";
/// The database the cluster uses on an existing server.
const DATABASE: &str = "pipeline_cluster";

/// The processes started, stopped (killed) when this is dropped, last first.
#[derive(Default)]
struct Started(Vec<(String, Child)>);

impl Started {
    fn spawn(&mut self, name: &str, cmd: &mut Command) -> Result {
        println!("cluster: starting {name}: {}", util::describe(cmd));
        let child = cmd.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
        self.0.push((name.to_owned(), child));
        Ok(())
    }

    /// Fails if a process started so far has exited.
    fn check(&mut self) -> Result {
        for (name, child) in &mut self.0 {
            if let Some(status) = child.try_wait()? {
                return Err(format!("{name} exited ({status})").into());
            }
        }
        Ok(())
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        for (_, child) in self.0.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn cluster(replicas: usize) -> Result {
    let root = util::root();
    let work = root.join("target").join("cluster");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    setup::setup(Options::default())?;
    build_frontend(true)?;
    build_app()?;
    let backend = util::app_binary("backend");
    let nginx = nginx()?;

    let mut started = Started::default();
    let database = postgres(&work, &mut started)?;
    let emulator_port = free_port()?;
    started.spawn(
        "the Bedrock emulator",
        Command::new(&backend)
            .args(["emulator", "--addr", &format!("127.0.0.1:{emulator_port}")])
            .env("RUST_LOG", "warn"),
    )?;
    let mut servers = String::new();
    for n in 0..replicas {
        let port = free_port()?;
        started.spawn(
            &format!("replica {n}"),
            Command::new(&backend)
                .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--replica-id", &format!("replica-{n}")])
                .args(["--database-url", &database, "--bedrock", "aws"])
                .args(["--bedrock-endpoint", &format!("http://127.0.0.1:{emulator_port}")])
                .arg("--static-dir")
                .arg(util::dist_dir())
                // The emulator checks nothing, but the SDK signs every call with something.
                .env("AWS_ACCESS_KEY_ID", "AKIDLOCALCLUSTER")
                .env("AWS_SECRET_ACCESS_KEY", "local-cluster")
                .env("AWS_REGION", "us-east-1")
                .env("RUST_LOG", "warn"),
        )?;
        servers.push_str(&format!("        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;\n"));
        wait_listening(port, &mut started)?;
    }
    let template = fs::read_to_string(root.join("deploy").join("nginx.conf"))?;
    let config = template
        .replace("{prefix}", &work.display().to_string())
        .replace("{servers}\n", &servers)
        .replace("{listen}", LISTEN);
    let config_path = work.join("nginx.conf");
    fs::write(&config_path, config)?;
    started.spawn(
        "nginx",
        Command::new(&nginx).arg("-c").arg(&config_path).args(["-p", &work.display().to_string(), "-g", "daemon off;"]),
    )?;
    let port = LISTEN.rsplit(':').next().and_then(|p| p.parse().ok()).ok_or("bad listen address")?;
    wait_listening(port, &mut started)?;
    println!("\ncluster: {replicas} replicas behind nginx at http://{LISTEN} (PostgreSQL: {database})");
    println!("cluster: every replica's health, lease and peers: http://{LISTEN}/api/health; Ctrl-C stops it all\n");
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Err(error) = started.check() {
            return Err(format!("{error}; stopping the cluster").into());
        }
    }
}

/// nginx from Debian's packages, installed when missing.
fn nginx() -> Result<PathBuf> {
    let path = PathBuf::from(setup::NGINX);
    if !path.is_file() {
        apt_install("nginx", &["nginx-light"])?;
    }
    if path.is_file() { Ok(path) } else { Err("nginx is not installed at /usr/sbin/nginx".into()) }
}

/// A database URL: on `DATABASE_URL`'s server or `127.0.0.1:5432` (database `pipeline_cluster`,
/// created if missing), else on a throwaway server started here.
fn postgres(work: &Path, started: &mut Started) -> Result<String> {
    let server = std::env::var("DATABASE_URL").ok().filter(|url| !url.trim().is_empty()).or_else(|| {
        TcpStream::connect_timeout(&"127.0.0.1:5432".parse().ok()?, Duration::from_secs(1))
            .ok()
            .map(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    });
    if let Some(server) = server {
        let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base).to_owned();
        // Fails harmlessly when it exists already: the cluster then continues where it was.
        let _ = util::command("psql").arg(&server).args(["-q", "-c", &format!("CREATE DATABASE {DATABASE}")]).output();
        return Ok(format!("{base}/{DATABASE}"));
    }
    let bin = postgres_bin().or_else(|_| {
        apt_install("postgresql", &["postgresql"])?;
        postgres_bin()
    })?;
    let data = work.join("pgdata");
    let port = free_port()?;
    let as_postgres = |program: &Path| -> Command {
        if util::is_root() {
            let mut cmd = util::command("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            util::command(program)
        }
    };
    if util::is_root() {
        util::run(util::command("chown").args(["-R", "postgres:postgres"]).arg(work))?;
    }
    util::run_quiet(
        "initdb",
        as_postgres(&bin.join("initdb")).arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust"]),
    )?;
    started.spawn(
        "PostgreSQL",
        as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k", &work.display().to_string(), "-c", "listen_addresses=127.0.0.1"])
            .stdout(Stdio::null()),
    )?;
    wait_listening(port, started)?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

fn postgres_bin() -> Result<PathBuf> {
    let mut versions: Vec<PathBuf> =
        fs::read_dir("/usr/lib/postgresql")?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join("bin"))
        .find(|bin| bin.join("initdb").is_file())
        .ok_or_else(|| "no PostgreSQL binaries".into())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something listens on `port`, failing if a process started so far exits.
fn wait_listening(port: u16, started: &mut Started) -> Result {
    let since = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        started.check()?;
        if since.elapsed() > Duration::from_secs(60) {
            return Err(format!("nothing listens on port {port} after 60 s").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
