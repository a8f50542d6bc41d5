//! Disk trouble: an unusable data directory at start is a clear error; a full disk mid-run is
//! a quick `503` rather than a hang, and the server serves again, uncorrupted, once space returns.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backend::causes::chain;
use backend::journal::ScannedRecord;
use backend::startup::Application;
use common::{EventKind, RunState};
use tests::{TestDirs, error_of, spawn_app_in, test_args, unique_prompt};

use crate::support::integrity_check;

#[tokio::test]
async fn a_data_dir_or_journal_under_a_regular_file_is_a_clear_startup_error() {
    let dirs = TestDirs::new();
    let blocker = dirs.static_dir.with_file_name("a-regular-file");
    std::fs::write(&blocker, "not a directory").unwrap();

    let mut args = test_args(&dirs);
    args.app.data_dir = blocker.join("data");
    // What the operator reads: the error with its causes, as `backend serve` prints it.
    let error = chain(&Application::build(args).await.expect_err("an unusable data dir is refused"));
    assert!(error.contains("a-regular-file"), "the error names the directory: {error}");

    let mut args = test_args(&dirs);
    args.app.prompts_file = blocker.join("prompts.txt");
    let error = chain(&Application::build(args).await.expect_err("an unusable journal is refused"));
    assert!(error.contains("a-regular-file"), "the error names the journal: {error}");
    eprintln!("FIGURE disk at start: data dir under a file → error; journal under a file → `{error}`");
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts it or fails the test: a disk test that skips itself proves nothing, and CI runs
    /// as root here, where mounting a tmpfs works.
    fn mount(at: &Path) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(at)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            output.status.success(),
            "cannot mount a 4 MiB tmpfs at {} (the disk tests need root): {}",
            at.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        SmallDisk(at.to_path_buf())
    }

    /// A test's server directories with the data directory and the journal on this disk.
    fn dirs(&self, root: &TestDirs) -> TestDirs {
        let mut dirs = root.clone();
        dirs.data_dir = self.0.join("data");
        dirs.prompts_file = self.0.join("prompts.txt");
        dirs
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros into `path` until the disk is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while file.write_all(&small[..]).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test]
async fn a_full_disk_mid_run_answers_503_quickly_and_recovers_without_corruption() {
    let root = TestDirs::new();
    let mount_point = root.static_dir.with_file_name("small-disk");
    let disk = SmallDisk::mount(&mount_point);
    let app = spawn_app_in(disk.dirs(&root), |_| {}).await;
    let before = app.submit(&unique_prompt("before the disk fills")).await;
    app.wait_for_state(before.id, RunState::Completed).await;

    let filler = mount_point.join("filler");
    fill(&filler);
    // A small record may still fit in a page the journal already owns, so a submission may be
    // accepted; what must never happen is a hang, a 500 or an accepted run that is then lost.
    let mut answers = Vec::new();
    let mut accepted = vec![before.id];
    for n in 0..3 {
        let started = Instant::now();
        let prompt = unique_prompt(&format!("disk full {n} {}", "x".repeat(8192)));
        let response = app.post_run(&serde_json::json!({ "prompt": prompt })).await;
        let elapsed = started.elapsed();
        if response.status() == 202 {
            let run: common::RunDetail = response.json().await.unwrap();
            accepted.push(run.id);
            answers.push(format!("202 in {elapsed:?}"));
        } else {
            let (status, message) = error_of(response).await;
            assert_eq!(status, 503, "{message}");
            answers.push(format!("503 in {elapsed:?}"));
        }
        assert!(elapsed < Duration::from_secs(5), "the answer took {elapsed:?}");
    }
    assert!(answers[0].starts_with("503"), "an 8 KiB prompt cannot fit on a full disk: {answers:?}");
    // Reads keep working (or fail fast): no hang.
    let started = Instant::now();
    let listing = app.list_runs("limit=10").await.status();
    let list_elapsed = started.elapsed();
    assert!(listing == 200 || listing == 503, "{listing}");
    assert!(list_elapsed < Duration::from_secs(5));
    app.health().await;

    std::fs::remove_file(&filler).unwrap();
    let after = app.submit(&unique_prompt("after space returns")).await;
    app.wait_for_state(after.id, RunState::Completed).await;
    accepted.push(after.id);
    let runs = app.runs().await;
    assert_eq!(runs.len(), accepted.len(), "only the accepted runs are stored: {runs:#?}");

    let dirs = app.stop().await;
    assert_eq!(integrity_check(&dirs.data_dir).await, "ok");
    let records = dirs.journal();
    let intact = records.iter().filter(|r| matches!(r, ScannedRecord::Intact { .. })).count();
    let torn = records.len() - intact;
    assert!(
        records.iter().any(|r| matches!(r, ScannedRecord::Intact { run_id, .. } if *run_id == after.id)),
        "{records:#?}"
    );
    let app = spawn_app_in(dirs, |_| {}).await;
    assert_eq!(app.run(after.id).await.state, RunState::Completed);
    for id in &accepted {
        assert!(app.run(*id).await.state.is_terminal(), "run {id} survives the restart, finished");
    }
    assert_eq!(app.runs().await.len(), accepted.len());
    eprintln!(
        "FIGURE disk full mid-run (4 MiB tmpfs): submissions answered {answers:?}; list answered {listing} in \
         {list_elapsed:?}; after freeing space a run completed; integrity ok; journal {intact} intact, {torn} torn \
         (partial writes of refused prompts, skipped by the reader)"
    );
}

#[tokio::test]
async fn a_disk_that_fills_while_runs_stream_loses_no_event_a_client_saw_and_leaves_no_gap() {
    let root = TestDirs::new();
    let disk = SmallDisk::mount(&root.static_dir.with_file_name("small-disk"));
    let app = spawn_app_in(disk.dirs(&root), |args| args.app.emulator_tokens_per_sec = 50).await;
    let runs = 6;
    let follower = tokio::spawn(crate::websocket::follow_all(crate::websocket::connect(app.port).await, runs));
    // Give the follower time to subscribe; the runs' first events reach it live.
    app.health().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ids = Vec::new();
    for n in 0..runs {
        ids.push(app.submit(&unique_prompt(&format!("streaming while the disk fills {n}"))).await.id);
    }
    let filler = disk.0.join("filler");
    fill(&filler);
    // The runs go on streaming into memory while their events cannot be stored; clients get
    // nothing new until they are. Then space returns and everything queued is written in order.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let health_while_full = app.client.get(format!("{}/api/health", app.address)).send().await.unwrap().status();
    std::fs::remove_file(&filler).unwrap();
    let seen = follower.await.unwrap();

    for id in &ids {
        let events = &seen[id];
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "run {id}: the client got a gap or a repeat");
        let detail = app.run(*id).await;
        let last = events.last().unwrap();
        assert_eq!(detail.last_seq, last.seq, "run {id}: stored and seen ends differ");
        assert_eq!(
            Some(detail.state),
            match &last.kind {
                EventKind::RunState { state, .. } => Some(*state),
                _ => None,
            },
            "run {id}: the stored state is not the one the client saw"
        );
    }
    let dirs = app.stop().await;
    assert_eq!(integrity_check(&dirs.data_dir).await, "ok");
    let app = spawn_app_in(dirs, |_| {}).await;
    for id in &ids {
        let stored = app.run(*id).await;
        let seen_state = seen[id].iter().rev().find_map(|e| match &e.kind {
            EventKind::RunState { state, .. } => Some(*state),
            _ => None,
        });
        assert_eq!(Some(stored.state), seen_state, "run {id} after a restart");
        assert_eq!(stored.last_seq, seen[id].len() as u64, "run {id} after a restart");
    }
    eprintln!(
        "FIGURE disk fills mid-stream (4 MiB tmpfs): {runs} runs streaming at 50 tokens/s; /api/health while \
         full answered {health_while_full}; after space returned every run's events reached the client 1..=last \
         with no gap and matched the store, before and after a restart"
    );
}
