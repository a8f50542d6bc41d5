//! A PostgreSQL for the tests that need one, found or started without any setup by hand:
//! `DATABASE_URL` when set, else the server this machine kind runs on `127.0.0.1:5432` (trust
//! auth), else a throwaway cluster started from the installed PostgreSQL binaries. Each test
//! gets a database of its own ([`fresh_database`]), so tests run in parallel without sharing
//! a row.

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Where the tests' server is, as an URL to its `postgres` database.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.trim().is_empty()
        {
            return url;
        }
        let local = "postgres://postgres@127.0.0.1:5432/postgres".to_owned();
        if std::net::TcpStream::connect_timeout(&"127.0.0.1:5432".parse().unwrap(), Duration::from_secs(1)).is_ok() {
            return local;
        }
        start_throwaway_server()
    })
}

/// A new, empty database on the tests' server, as a connection URL.
pub async fn fresh_database() -> String {
    let server = server_url();
    let mut admin = PgConnection::connect(server).await.unwrap_or_else(|e| panic!("cannot connect to {server}: {e}"));
    let name = format!("pipeline_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("CREATE DATABASE");
    with_database(server, &name)
}

/// Runs `future` to its end on a runtime of its own, on a thread of its own, so code that is
/// not async can wait for it, inside a test's runtime too.
fn block_on<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future))
        .join()
        .unwrap()
}

/// [`fresh_database`] for code that is not async.
pub fn fresh_database_blocking() -> String {
    block_on(fresh_database())
}

/// The prompts table of the database at `url`, oldest run first, as journal records.
pub fn journal_blocking(url: &str) -> Vec<backend::journal::ScannedRecord> {
    let url = url.to_owned();
    block_on(async move {
        let mut db = PgConnection::connect(&url).await.unwrap();
        let rows: Vec<(String, String)> = match sqlx::query_as(
            "SELECT p.run_id, p.prompt FROM prompts p JOIN runs r ON r.id = p.run_id ORDER BY r.seq",
        )
        .fetch_all(&mut db)
        .await
        {
            Ok(rows) => rows,
            // No server migrated this database yet: nothing is journaled.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => panic!("cannot read the prompts table: {e}"),
        };
        rows.into_iter()
            .map(|(id, prompt)| backend::journal::ScannedRecord::Intact {
                run_id: id.parse().unwrap(),
                offset: 0,
                prompt,
            })
            .collect()
    })
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_end..].find('/').map_or(base.len(), |i| authority_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Starts PostgreSQL from the binaries Debian installs, in a temporary directory, as the
/// `postgres` user when running as root (PostgreSQL refuses to run as root). It stops with
/// the machine; each test process that needs it starts its own.
fn start_throwaway_server() -> String {
    let bin =
        installed_bin_dir().expect("no PostgreSQL: set DATABASE_URL, run one on 127.0.0.1:5432, or install postgresql");
    let dir = std::env::temp_dir().join(format!("pipeline-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = crate::free_port();
    let as_root = crate::process::is_root();
    if as_root {
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir));
    }
    let data = dir.join("data");
    let initdb = [
        bin.join("initdb").display().to_string(),
        "-D".into(),
        data.display().to_string(),
        "-U".into(),
        "postgres".into(),
        "--auth=trust".into(),
    ];
    run(&mut as_postgres(&initdb, as_root));
    let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.display());
    let start = [
        bin.join("pg_ctl").display().to_string(),
        "-D".into(),
        data.display().to_string(),
        "-l".into(),
        dir.join("log").display().to_string(),
        "-o".into(),
        options,
        "-w".into(),
        "start".into(),
    ];
    run(&mut as_postgres(&start, as_root));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the throwaway PostgreSQL did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

fn installed_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    versions.sort();
    versions.into_iter().rev().map(|v| v.join("bin")).find(|bin| bin.join("initdb").is_file())
}

fn as_postgres(args: &[String], as_root: bool) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).args(args);
        command
    } else {
        let mut command = Command::new(&args[0]);
        command.args(&args[1..]);
        command
    }
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?} did not start: {e}"));
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_name_replaces_the_one_in_the_url_and_keeps_its_parameters() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(with_database("postgres://u@h/db?sslmode=disable", "t1"), "postgres://u@h/t1?sslmode=disable");
        assert_eq!(with_database("postgres://u@h:5432", "t1"), "postgres://u@h:5432/t1");
    }
}
