//! A step's log file, capped: attempt headers and footers around the
//! command's own output, the start and the end of it kept when it grows past
//! `bot.max_step_log`, and the tail of each attempt for failure reports.
//!
//! Layout on disk: the first half of the cap as it came (the head), then —
//! once something had to go — a line `… N bytes cut …`, then the most recent
//! bytes (the tail, at most the other half). The head is written once; the
//! tail lives in a ring buffer and is written back over the end of the file,
//! so memory and disk stay bounded however much a step prints.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::secrets;

/// `bot.max_step_log` unless configured otherwise.
pub const DEFAULT_MAX_STEP_LOG: u64 = 10 * 1024 * 1024;
/// How many lines of output a failure report carries.
pub(crate) const TAIL_LINES: usize = 20;
/// How much of the end of an attempt's output is kept to find the tail, so a
/// step that printed gigabytes costs no more than one that printed little.
const TAIL_BYTES: usize = 64 * 1024;
/// Long lines are cut for chat.
const TAIL_LINE_CHARS: usize = 500;
/// Once bytes are being cut, the tail on disk is rewritten at most this often
/// while output streams in (a whole tail per write would cost O(cap) each).
const REWRITE_EVERY: Duration = Duration::from_secs(1);

/// The log of one step (all its attempts), capped at `cap` bytes plus the
/// marker line.
pub(crate) struct StepLog {
    file: File,
    /// Bytes of the head on disk; never more than `head_cap`.
    head: u64,
    head_cap: u64,
    /// Bytes after the head, most recent last; at most `tail_cap`.
    tail: VecDeque<u8>,
    tail_cap: usize,
    /// How many of `tail`'s bytes are already on disk after the head, while
    /// nothing has been cut (appending is then enough).
    tail_on_disk: usize,
    /// Bytes dropped between head and tail.
    cut: u64,
    /// The tail on disk is older than `tail` (only once bytes are cut).
    stale: bool,
    rewritten: Instant,
    last_byte: Option<u8>,
    /// The end of the current attempt's output, for `attempt_tail`.
    recent: VecDeque<u8>,
    recent_cut: bool,
    /// The end of the output where a secret may be starting: not yet masked
    /// nor written, shorter than the longest secret.
    pending: Vec<u8>,
}

impl StepLog {
    /// Opens (or continues) the log at `path`, capped at `cap` bytes.
    pub fn open(path: &Path, cap: u64) -> io::Result<StepLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        let cap = cap.max(2);
        let head_cap = cap / 2;
        let tail_cap = usize::try_from(cap - head_cap).unwrap_or(usize::MAX);
        let len = file.metadata()?.len();
        let mut last_byte = None;
        if len > 0 {
            let mut last = [0u8];
            file.read_exact_at(&mut last, len - 1)?;
            last_byte = Some(last[0]);
        }
        // A log from an earlier run of this step (after a restart): what is
        // past the head becomes the start of the tail, bounded by it.
        let mut tail = Vec::new();
        let mut cut = 0;
        if len > head_cap {
            let from = head_cap.max(len - tail_cap as u64);
            cut = from - head_cap;
            file.seek(SeekFrom::Start(from))?;
            (&mut file).take(len - from).read_to_end(&mut tail)?;
        }
        let mut log = StepLog {
            file,
            head: len.min(head_cap),
            head_cap,
            tail_on_disk: tail.len(),
            tail: VecDeque::from(tail),
            tail_cap,
            cut,
            stale: cut > 0,
            rewritten: Instant::now(),
            last_byte,
            recent: VecDeque::new(),
            recent_cut: false,
            pending: Vec::new(),
        };
        log.flush()?;
        Ok(log)
    }

    /// Appends output, keeping the head and the most recent bytes. Every
    /// known secret is masked (SPEC §13), also one split between two writes:
    /// the last few bytes wait for the next write (or our next own line).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(&last) = bytes.last() else {
            return Ok(());
        };
        self.last_byte = Some(last);
        // Only the end that may be the start of a secret waits (it is
        // shorter than the longest secret): the rest goes out masked now.
        self.pending.extend_from_slice(bytes);
        let cut = secrets::safe_prefix(&self.pending);
        if cut == 0 {
            return Ok(());
        }
        let now: Vec<u8> = self.pending.drain(..cut).collect();
        let masked = secrets::mask_bytes(&now);
        self.write_masked(&masked)
    }

    /// Writes out what was held back, masked.
    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let masked = secrets::mask_bytes(&pending);
        self.write_masked(&masked)
    }

    fn write_masked(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        self.remember(bytes);
        if self.head < self.head_cap {
            let room = usize::try_from(self.head_cap - self.head).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.file.write_all_at(now, self.head)?;
            self.head += now.len() as u64;
            bytes = rest;
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(self.tail_cap);
        if over > 0 {
            self.tail.drain(..over);
            self.cut += over as u64;
            self.tail_on_disk = self.tail_on_disk.saturating_sub(over);
            self.stale = true;
        }
        if self.stale {
            if self.rewritten.elapsed() >= REWRITE_EVERY {
                self.sync()?;
            }
        } else {
            // Nothing cut yet: the file is head + tail as it came, append.
            let new: Vec<u8> = self.tail.range(self.tail_on_disk..).copied().collect();
            self.file
                .write_all_at(&new, self.head + self.tail_on_disk as u64)?;
            self.tail_on_disk = self.tail.len();
        }
        Ok(())
    }

    /// Writes a line of our own, on a line of its own even if the command's
    /// output did not end with a newline, and brings the file up to date.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let mut text = String::new();
        if self.last_byte.is_some_and(|b| b != b'\n') {
            text.push('\n');
        }
        text.push_str(line);
        text.push('\n');
        self.write(text.as_bytes())?;
        self.flush()
    }

    /// Writes an attempt's header; the attempt's tail starts after it.
    pub fn start_attempt(&mut self, header: &str) -> io::Result<()> {
        self.write_line(header)?;
        self.recent.clear();
        self.recent_cut = false;
        Ok(())
    }

    /// Brings the file up to date (head, marker, tail) if it is behind.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        if self.stale { self.sync() } else { Ok(()) }
    }

    /// Rewrites the end of the file as marker + tail, if a rewrite is due;
    /// for output that comes in bursts with pauses between them.
    pub fn flush_if_due(&mut self) -> io::Result<()> {
        if self.stale && self.rewritten.elapsed() >= REWRITE_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// The last lines of the current attempt's output (from the real end of
    /// it, whatever the cap kept on disk).
    pub fn attempt_tail(&self) -> Vec<String> {
        let (a, b) = self.recent.as_slices();
        let pending = secrets::mask_bytes(&self.pending);
        let bytes = [a, b, &pending].concat();
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        if self.recent_cut && !lines.is_empty() {
            // The kept bytes start in the middle of a line.
            lines.remove(0);
        }
        let skip = lines.len().saturating_sub(TAIL_LINES);
        lines[skip..].iter().map(|line| cut(line)).collect()
    }

    fn remember(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
        self.recent.extend(bytes);
        let over = self.recent.len().saturating_sub(TAIL_BYTES);
        if over > 0 {
            self.recent.drain(..over);
            self.recent_cut = true;
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut end = self.head;
        if self.cut > 0 {
            let marker = cut_marker(self.cut, self.head_last_byte()?);
            self.file.write_all_at(marker.as_bytes(), end)?;
            end += marker.len() as u64;
        }
        let (a, b) = self.tail.as_slices();
        for part in [a, b] {
            self.file.write_all_at(part, end)?;
            end += part.len() as u64;
        }
        self.file.set_len(end)?;
        self.tail_on_disk = self.tail.len();
        self.stale = false;
        self.rewritten = Instant::now();
        Ok(())
    }

    fn head_last_byte(&self) -> io::Result<Option<u8>> {
        if self.head == 0 {
            return Ok(None);
        }
        let mut byte = [0u8];
        self.file.read_exact_at(&mut byte, self.head - 1)?;
        Ok(Some(byte[0]))
    }
}

impl Drop for StepLog {
    fn drop(&mut self) {
        // Best effort: the footer's `write_line` has normally done this.
        let _ = self.flush();
    }
}

/// The line that stands for the bytes the cap dropped, on a line of its own.
fn cut_marker(cut: u64, head_last_byte: Option<u8>) -> String {
    let newline = if head_last_byte.is_some_and(|b| b != b'\n') {
        "\n"
    } else {
        ""
    };
    format!("{newline}… {cut} bytes cut …\n")
}

fn cut(line: &str) -> String {
    match line.char_indices().nth(TAIL_LINE_CHARS) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests;
