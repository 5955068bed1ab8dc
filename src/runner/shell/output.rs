//! A step's output on its way to the log: the command writes to a pipe and
//! the runner copies it into the capped log, so the cap holds however much
//! the command prints (a file handed to the command could grow without end).

use std::io::{self, PipeWriter};
use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::warn;

use crate::runner::log::StepLog;

/// How long output is still read once the command has ended. Normally the
/// pipe closes at once; a process the step left running may hold it open.
const LINGER: Duration = Duration::from_secs(1);
/// How often a log whose tail is being cut is brought up to date on disk
/// while the command is quiet.
const TICK: Duration = Duration::from_secs(1);

/// A pipe: the reading end for the runner, the writing end for the command.
pub(super) fn pipe() -> io::Result<(pipe::Receiver, PipeWriter)> {
    let (reader, writer) = io::pipe()?;
    let receiver = pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?;
    Ok((receiver, writer))
}

/// Copies output into `log` until the pipe closes, or until `LINGER` after
/// `ended` fires (or is dropped).
pub(super) async fn copy_to_log(
    mut output: pipe::Receiver,
    log: &mut StepLog,
    mut ended: oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut tick = tokio::time::interval(TICK);
    let mut deadline: Option<Instant> = None;
    let mut failing = false;
    loop {
        let linger = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let written = tokio::select! {
            read = output.read(&mut buf) => match read {
                Ok(0) => return,
                Ok(n) => log.write(&buf[..n]),
                Err(error) => {
                    warn!(%error, "Cannot read step output.");
                    return;
                }
            },
            _ = tick.tick() => log.flush_if_due(),
            _ = &mut ended, if deadline.is_none() => {
                deadline = Some(Instant::now() + LINGER);
                Ok(())
            }
            () = linger => {
                // Something the step started still holds the pipe. Keep
                // reading (and dropping) so it never dies of a closed pipe;
                // its output after the step ended is not the step's.
                tokio::spawn(drain(output));
                return;
            }
        };
        // A log that cannot be written (a full disk) does not stop the step:
        // the output is still read, so the command never blocks on the pipe.
        if let Err(error) = written
            && !failing
        {
            failing = true;
            warn!(%error, "Cannot write step log.");
        }
    }
}

async fn drain(mut output: pipe::Receiver) {
    let mut buf = vec![0u8; 8 * 1024];
    while let Ok(n) = output.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}
