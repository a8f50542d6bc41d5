//! The page through a real load balancer (nginx with `deploy/nginx.conf`) in front of two
//! replicas on PostgreSQL: the replica executing a run dies, and the page carries on.

use std::path::Path;
use std::time::{Duration, Instant};

use backend::emulator::reply_for;
use common::RunState;
use tests::process::Captured;

use crate::cluster_support::{Pace, TestCluster};
use crate::harness::{Browser, dist_dir, rendered_words, words};

/// Debian's nginx (`cargo xtask setup` installs it).
const NGINX: &str = "/usr/sbin/nginx";

/// nginx in front of the cluster's replicas, configured from `deploy/nginx.conf`; its URL.
async fn load_balancer(cluster: &TestCluster, prefix: &Path) -> (Captured, String) {
    assert!(Path::new(NGINX).is_file(), "no nginx at {NGINX}: run `cargo xtask setup`");
    let port = tests::free_port();
    let servers: String = cluster
        .replicas
        .iter()
        .map(|r| format!("        server 127.0.0.1:{} max_fails=1 fail_timeout=2s;\n", r.port))
        .collect();
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx.conf")).unwrap();
    let config = template
        .replace("{prefix}", &prefix.display().to_string())
        .replace("{servers}\n", &servers)
        .replace("{listen}", &format!("127.0.0.1:{port}"));
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, config).unwrap();
    let mut command = tokio::process::Command::new(NGINX);
    command.arg("-c").arg(&path).arg("-p").arg(prefix).args(["-g", "daemon off;"]);
    let nginx = Captured::spawn("nginx", &mut command);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "nginx did not listen:\n{}", nginx.output());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (nginx, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn through_a_load_balancer_the_page_follows_a_run_whose_replica_dies_to_its_end_elsewhere() {
    let dist = dist_dir().display().to_string();
    let mut cluster = TestCluster::start(2, Pace::TokensPerSec(10), &[("--static-dir", &dist)]).await;
    let prefix = tempfile::tempdir().unwrap();
    let (_nginx, base) = load_balancer(&cluster, prefix.path()).await;
    let browser = Browser::open_at(&base).await;
    browser.goto("/").await;
    browser.find("#prompt").await;

    let prompt = "Outlive the replica that runs me";
    let id = browser.submit_prompt(prompt).await;
    browser.wait_for_run("the answer streaming", |v| v.is_streaming_text()).await;
    let owner = cluster.owner(id).await;
    cluster.replicas[owner].kill9().await;

    let after_kill = browser.run_view().await;
    assert!(!after_kill.response.trim().is_empty(), "the page keeps the text it had: {after_kill:#?}");
    let done = browser.wait_for_run_state(RunState::Completed).await;

    assert_eq!(words(&done.response), rendered_words(&reply_for(prompt)), "the answer, finished by the other replica");
    assert_ne!(cluster.owner(id).await, owner);
    browser.close().await;
}
