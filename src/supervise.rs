//! Supervised tasks (SPEC §12 "Panics"): every spawned task reports how it
//! ended. A one-shot task (a step) that panics gives its caller an error to
//! turn into a failed step; a long-lived adapter task (a poller, the
//! console reader, the web server) that panics is started again after a
//! backoff. Either way the panic is logged, and the engine goes on.

use std::future::Future;
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};

/// The first wait before an adapter task is started again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between restarts; a task that ran at least this long
/// before it panicked starts over from [`FIRST_BACKOFF`].
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A supervised task panicked (the panic itself is logged, not carried:
/// its text is for operators, never for chat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("internal error")]
pub struct Panicked;

/// Runs `fut` in its own task and waits for it. A panic inside is logged
/// with `task` and becomes `Err(Panicked)` instead of unwinding the caller.
pub async fn catch<T: Send + 'static>(
    task: &'static str,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, Panicked> {
    tokio::spawn(fut).await.map_err(|error| {
        log_end(task, error);
        Panicked
    })
}

/// Spawns a one-shot task whose panic is logged (through tracing, with the
/// task's name) rather than only printed by the panic hook.
pub fn once(task: &'static str, fut: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(async move {
        let _ = catch(task, fut).await;
    });
}

/// Keeps a long-lived task running: `start` spawns it; if it panics it is
/// started again after a backoff (1 s, doubling up to 60 s). A task that
/// returns has finished its work (its channel closed): it is not restarted.
/// The handle ends when the task has ended for good.
pub fn restarting<F>(task: &'static str, mut start: F) -> JoinHandle<()>
where
    F: FnMut() -> JoinHandle<()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = tokio::time::Instant::now();
            match start().await {
                Ok(()) => return,
                Err(error) if error.is_panic() => {
                    if started.elapsed() >= MAX_BACKOFF {
                        backoff = FIRST_BACKOFF;
                    }
                    log_end(task, error);
                    tracing::warn!(
                        task,
                        backoff_ms = backoff.as_millis() as u64,
                        "Restarting the task after a panic."
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                // Cancelled: the runtime is shutting down.
                Err(_) => return,
            }
        }
    })
}

fn log_end(task: &str, error: JoinError) {
    match error.try_into_panic() {
        Ok(payload) => tracing::error!(task, panic = %panic_text(&*payload), "Task panicked."),
        Err(_) => tracing::debug!(task, "Task cancelled."),
    }
}

/// The panic's message, when it is text (`panic!("…")` or `.expect("…")`).
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "(not text)"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error() {
        let result = catch("test", async { panic!("boom") }).await;
        assert_eq!(result, Err::<(), _>(Panicked));
        assert_eq!(catch("test", async { 7 }).await, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_until_it_returns() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let handle = restarting("test", move || {
            let runs = counter.clone();
            tokio::spawn(async move {
                if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("not yet");
                }
            })
        });
        handle.await.expect("the supervisor itself ends cleanly");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
