//! What the bot does to itself at start so a step running as the same user
//! cannot take its secrets (SPEC §13).

use std::sync::atomic::{AtomicU32, Ordering};

/// The umask the bot started with, restored for steps: the bot's own files
/// are private, a step's artifacts are whatever the operator's umask says.
static STEP_UMASK: AtomicU32 = AtomicU32::new(0o022);

/// Makes the process non-dumpable (on Linux, `/proc/<pid>/environ`, `mem`
/// and ptrace are then closed to processes of the same user) and its new
/// files private (`0600`, directories `0700`). Call before any secret is
/// read or any file is created.
pub fn harden_process() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(PR_SET_DUMPABLE) takes plain integers and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if rc != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "Cannot make the bot non-dumpable; steps may read its environment."
            );
        }
    }
    // SAFETY: umask(2) cannot fail and touches no memory.
    let before = unsafe { libc::umask(0o077) };
    STEP_UMASK.store(before, Ordering::Relaxed);
}

/// The umask a step runs with.
pub fn step_umask() -> libc::mode_t {
    STEP_UMASK.load(Ordering::Relaxed)
}

/// Whether this process is dumpable (1) or not (0); for tests and `/healthz`-style checks.
#[cfg(target_os = "linux")]
pub fn dumpable() -> i32 {
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }
}
