//! Start to first answer: the release binary spawned on a small config,
//! timed from spawn until its reply to `!status` is read. Target: under
//! 50 ms. Also reports (and checks) resident memory after the answer:
//! target under 30 MiB.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

const BIN: &str = env!("CARGO_BIN_EXE_trainbot");
const RSS_LIMIT_KIB: u64 = 30 * 1024;

fn git(repo: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.com")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

/// A config and a one-commit repository in `dir`.
fn sandbox(dir: &Path) -> std::path::PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "first"]);
    let config = dir.join("bot.toml");
    std::fs::write(
        &config,
        "[bot]\ndata_dir = \"./data\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [forge.git]\npath = \"repo\"\n[train]\nenvironments = []\n\
         [production]\ndeploy = [{ run = \"true\" }]\n",
    )
    .unwrap();
    config
}

/// Spawns the bot, asks `!status`, returns the time to the answer and the
/// resident memory then (KiB).
fn first_answer(config: &Path) -> (Duration, u64) {
    let _ = std::fs::remove_dir_all(config.parent().unwrap().join("data"));
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn trainbot");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "!status").unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let answered = lines.any(|l| l.is_ok_and(|l| l.contains("no train running")));
    let took = start.elapsed();
    assert!(answered, "no answer to !status");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    drop(stdin);
    child.kill().unwrap();
    child.wait().unwrap();
    (took, rss)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config = sandbox(dir.path());
    let mut max_rss = 0;
    let mut group = c.benchmark_group("startup");
    group.sample_size(10);
    group.bench_function("start to first answer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (took, rss) = first_answer(&config);
                total += took;
                max_rss = max_rss.max(rss);
            }
            total
        })
    });
    group.finish();
    println!("resident memory after the first answer: at most {max_rss} KiB");
    assert!(
        max_rss < RSS_LIMIT_KIB,
        "resident memory {max_rss} KiB is over the {RSS_LIMIT_KIB} KiB target"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
