//! Step logs on run pages and as files. A page shows only the end of a log,
//! read from the end (a log can be as big as `bot.max_step_log`, and pages
//! refresh every few seconds); `GET /runs/{id}/logs/{step}` streams the
//! whole file. Paths are built only from a parsed run id and a step name of
//! plain characters, and must resolve to a file inside that run's directory.

use std::fmt::Write;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;

use super::build_runs::parse_build_id;
use super::html::Esc;
use super::runs::parse_run_id;
use super::{Error, WebState};

/// How much of a log's end a run page shows.
pub const LOG_TAIL_BYTES: u64 = 256 * 1024;

/// The end of a log as text, and how many bytes before it are not shown.
#[derive(Debug, PartialEq, Eq)]
pub struct LogTail {
    pub text: String,
    pub hidden: u64,
}

/// The last `LOG_TAIL_BYTES` of the file, starting at a line when there is
/// more before it. Bytes that are not UTF-8 become U+FFFD: a stray byte must
/// never hide the log.
pub fn read_tail(path: &Path) -> io::Result<LogTail> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut hidden = len.saturating_sub(LOG_TAIL_BYTES);
    file.seek(SeekFrom::Start(hidden))?;
    let mut buf = Vec::new();
    file.take(LOG_TAIL_BYTES).read_to_end(&mut buf)?;
    let mut bytes = &buf[..];
    if hidden > 0
        && let Some(newline) = bytes.iter().position(|&b| b == b'\n')
    {
        bytes = &bytes[newline + 1..];
        hidden += newline as u64 + 1;
    }
    Ok(LogTail {
        text: String::from_utf8_lossy(bytes).into_owned(),
        hidden,
    })
}

/// The log of step `step` of run `run` as HTML: its end, a note of what is
/// not shown and a link to the whole file; `missing` when there is no log.
pub fn render_log(
    out: &mut String,
    base: &str,
    dir: &Path,
    run: &str,
    step: &str,
    follow: bool,
    missing: &str,
) {
    let tail = match read_tail(&dir.join(format!("{step}.log"))) {
        Ok(tail) => tail,
        Err(_) => {
            let _ = write!(out, "<p class=\"sub\">{}</p>", Esc(missing));
            return;
        }
    };
    let href = format!("{}/runs/{}/logs/{}", Esc(base), Esc(run), Esc(step));
    if tail.hidden > 0 {
        let _ = write!(
            out,
            "<p class=\"sub\">… the first {} bytes are not shown · <a href=\"{href}\">whole log</a></p>",
            tail.hidden
        );
    } else {
        let _ = write!(out, "<p class=\"sub\"><a href=\"{href}\">raw log</a></p>");
    }
    let _ = write!(
        out,
        "<pre class=\"log{}\">{}</pre>",
        if follow { " follow" } else { "" },
        Esc(&tail.text)
    );
}

/// `GET /runs/{id}/logs/{step}`: the whole log file of one step of a run
/// that exists, streamed as it is on disk.
pub async fn raw_log(
    State(s): State<WebState>,
    UrlPath((id, step)): UrlPath<(String, String)>,
) -> Result<Response, Error> {
    let not_found = || Error::NotFound(format!("log {id}/{step}"));
    let known = if let Some(build) = parse_build_id(&id) {
        s.store.build(build)?.is_some()
    } else if let Some(train) = parse_run_id(&id) {
        s.store.train(train)?.is_some()
    } else {
        false
    };
    if !known || !is_step_name(&step) {
        return Err(not_found());
    }
    let dir = s.settings.bot.data_dir.join("logs").join(&id);
    let file = open_inside(&dir, &format!("{step}.log")).map_err(|_| not_found())?;
    let body = Body::from_stream(ReaderStream::new(tokio::fs::File::from_std(file)));
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

/// Step log names as the engine writes them (`staging-deploy-1`,
/// `checks-2`): no dots, no slashes, so never `..`.
fn is_step_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Opens `dir/name` if it is a regular file whose real path is inside `dir`
/// (a symlink planted in the log directory could point anywhere).
fn open_inside(dir: &Path, name: &str) -> io::Result<File> {
    let dir = dir.canonicalize()?;
    let path = dir.join(name).canonicalize()?;
    if !path.starts_with(&dir) || !path.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "not a log of this run",
        ));
    }
    File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_of_a_big_log_starts_at_a_line_and_says_what_is_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let text: String = (0..100_000).map(|i| format!("line {i:06}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let tail = read_tail(&path).unwrap();
        assert!(tail.text.len() as u64 <= LOG_TAIL_BYTES);
        assert!(tail.text.len() as u64 > LOG_TAIL_BYTES - 20);
        assert!(tail.text.starts_with("line "), "{}", &tail.text[..20]);
        assert!(tail.text.ends_with("line 099999\n"));
        assert_eq!(tail.hidden as usize + tail.text.len(), text.len());
    }

    #[test]
    fn a_small_log_is_shown_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.log");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let tail = read_tail(&path).unwrap();
        assert_eq!(
            tail,
            LogTail {
                text: "one\ntwo\n".into(),
                hidden: 0
            }
        );
    }

    #[test]
    fn step_names_are_plain() {
        for good in ["staging-deploy-1", "checks-2", "pre_prod-smoke-10"] {
            assert!(is_step_name(good), "{good}");
        }
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "a.log",
            "a b",
            "é",
            &"a".repeat(101),
        ] {
            assert!(!is_step_name(bad), "{bad}");
        }
    }
}
