//! A step's log file: attempt headers and footers around the command's own
//! output, and the tail of that output for failure reports.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// How many lines of output a failure report carries.
pub(crate) const TAIL_LINES: usize = 20;
/// How much of the end of an attempt's output is read to find the tail, so a
/// step that printed gigabytes costs no more than one that printed little.
const TAIL_BYTES: u64 = 64 * 1024;
/// Long lines are cut for chat.
const TAIL_LINE_CHARS: usize = 500;

/// The log of one step, opened for appending (the command writes to it too).
pub(crate) struct StepLog {
    file: File,
}

impl StepLog {
    pub fn open(path: &Path) -> io::Result<StepLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        Ok(StepLog { file })
    }

    /// The file handle to give the command as stdout and stderr.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Writes a line of our own, on a line of its own even if the command's
    /// output did not end with a newline. Returns the offset after it.
    pub fn write_line(&mut self, line: &str) -> io::Result<u64> {
        let len = self.len()?;
        let mut text = String::new();
        if len > 0 && self.byte_at(len - 1)? != b'\n' {
            text.push('\n');
        }
        text.push_str(line);
        text.push('\n');
        self.file.write_all(text.as_bytes())?;
        self.len()
    }

    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// The last lines written between `start` and `end`.
    pub fn tail(&mut self, start: u64, end: u64) -> io::Result<Vec<String>> {
        let from = start.max(end.saturating_sub(TAIL_BYTES));
        let mut bytes = Vec::new();
        self.file.seek(SeekFrom::Start(from))?;
        (&mut self.file)
            .take(end.saturating_sub(from))
            .read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        if from > start && !lines.is_empty() {
            // We started reading in the middle of a line.
            lines.remove(0);
        }
        let skip = lines.len().saturating_sub(TAIL_LINES);
        Ok(lines[skip..].iter().map(|line| cut(line)).collect())
    }

    fn byte_at(&mut self, offset: u64) -> io::Result<u8> {
        let mut byte = [0u8];
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(&mut byte)?;
        Ok(byte[0])
    }
}

fn cut(line: &str) -> String {
    match line.char_indices().nth(TAIL_LINE_CHARS) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_lines_start_on_a_new_line_and_the_tail_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/step.log");
        let mut log = StepLog::open(&path).unwrap();
        let start = log.write_line("== header").unwrap();
        let output: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        log.file().write_all(output.as_bytes()).unwrap();
        log.file().write_all(b"no newline").unwrap();
        let end = log.len().unwrap();
        log.write_line("== footer").unwrap();

        let tail = log.tail(start, end).unwrap();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.first().unwrap(), "line 12");
        assert_eq!(tail.last().unwrap(), "no newline");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("== header\nline 1\n"));
        assert!(text.ends_with("line 30\nno newline\n== footer\n"));
    }

    #[test]
    fn long_lines_are_cut() {
        assert_eq!(cut(&"é".repeat(600)).chars().count(), TAIL_LINE_CHARS + 1);
        assert_eq!(cut("short"), "short");
    }
}
