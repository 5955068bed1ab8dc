use super::*;

fn read(path: &Path) -> String {
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn own_lines_start_on_a_new_line_and_the_tail_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/step.log");
    let mut log = StepLog::open(&path, DEFAULT_MAX_STEP_LOG).unwrap();
    log.start_attempt("== header").unwrap();
    let output: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    log.write(output.as_bytes()).unwrap();
    log.write(b"no newline").unwrap();
    let tail = log.attempt_tail();
    log.write_line("== footer").unwrap();

    assert_eq!(tail.len(), TAIL_LINES);
    assert_eq!(tail.first().unwrap(), "line 12");
    assert_eq!(tail.last().unwrap(), "no newline");
    let text = read(&path);
    assert!(text.starts_with("== header\nline 1\n"));
    assert!(text.ends_with("line 30\nno newline\n== footer\n"));
}

#[test]
fn a_log_under_the_cap_is_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("step.log");
    let mut log = StepLog::open(&path, 100).unwrap();
    log.start_attempt("== attempt 1/1").unwrap();
    log.write(b"0123456789\n").unwrap();
    log.write_line("== done").unwrap();
    drop(log);
    assert_eq!(read(&path), "== attempt 1/1\n0123456789\n== done\n");
}

#[test]
fn past_the_cap_the_head_a_marker_and_the_tail_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("step.log");
    let cap = 1024;
    let mut log = StepLog::open(&path, cap).unwrap();
    log.start_attempt("== attempt 1/2").unwrap();
    // Written in small pieces, as a pipe delivers them.
    let output: String = (1..=1000).map(|i| format!("line {i:04}\n")).collect();
    for chunk in output.as_bytes().chunks(37) {
        log.write(chunk).unwrap();
    }
    log.write_line("== attempt 1/2 exited with code 1").unwrap();
    log.start_attempt("== attempt 2/2").unwrap();
    log.write(b"second try\n").unwrap();
    let tail = log.attempt_tail();
    log.write_line("== attempt 2/2 succeeded").unwrap();
    drop(log);

    let stream = format!(
        "== attempt 1/2\n{output}== attempt 1/2 exited with code 1\n\
         == attempt 2/2\nsecond try\n== attempt 2/2 succeeded\n"
    );
    let half = (cap / 2) as usize;
    let cut = stream.len() - 2 * half;
    // The head ends mid-line, so the marker starts a line of its own.
    let expected = format!(
        "{}\n… {cut} bytes cut …\n{}",
        &stream[..half],
        &stream[stream.len() - half..]
    );
    assert_eq!(read(&path), expected);
    assert_eq!(tail, ["second try"]);
}

#[test]
fn memory_is_bounded_by_the_cap_whatever_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("step.log");
    let mut log = StepLog::open(&path, 4096).unwrap();
    log.start_attempt("== attempt 1/1").unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..64 {
        log.write(&chunk).unwrap();
        assert!(log.tail.len() <= 2048);
        assert!(log.recent.len() <= TAIL_BYTES);
    }
    log.write(b"\nthe end\n").unwrap();
    assert_eq!(log.attempt_tail().last().unwrap(), "the end");
    log.flush().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 4096 + 40);
}

#[test]
fn a_log_continued_after_a_restart_stays_capped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("step.log");
    std::fs::write(&path, "a".repeat(300)).unwrap();
    let mut log = StepLog::open(&path, 100).unwrap();
    log.write_line("== attempt 1/1 again").unwrap();
    drop(log);
    let text = read(&path);
    assert!(text.starts_with(&"a".repeat(50)), "{text}");
    assert!(text.contains("\n… 222 bytes cut …\n"), "{text}");
    assert!(text.ends_with("a\n== attempt 1/1 again\n"), "{text}");
}

#[test]
fn long_lines_are_cut() {
    assert_eq!(cut(&"é".repeat(600)).chars().count(), TAIL_LINE_CHARS + 1);
    assert_eq!(cut("short"), "short");
}

#[test]
fn a_known_secret_is_masked_even_when_split_between_reads() {
    crate::secrets::register("log-secret-a1b2c3");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("step.log");
    let mut log = StepLog::open(&path, DEFAULT_MAX_STEP_LOG).unwrap();
    log.start_attempt("== attempt 1/1").unwrap();
    log.write(b"token: log-sec").unwrap();
    log.write(b"ret-a1b2c3 ok\nlast log-secret-").unwrap();
    log.write(b"a1b2c3").unwrap();
    let tail = log.attempt_tail();
    log.write_line("== done").unwrap();
    drop(log);
    assert_eq!(tail, ["token: *** ok", "last ***"]);
    assert_eq!(
        read(&path),
        "== attempt 1/1\ntoken: *** ok\nlast ***\n== done\n"
    );
}
