//! Process plumbing for shell steps: the start-gate wrapper, the explicit
//! environment, and signalling whole process groups.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::config::{EnvValue, step_secret};
use crate::runner::{StepError, StepRequest};

/// Variables a step inherits from the bot (SPEC §13). Everything else (tokens
/// above all) stays behind; what a step needs to know comes from
/// `StepRequest::env` and the step's own `env`.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG"];

/// Runs as the group leader and holds the user's command back until the bot
/// has recorded the group: one line on stdin means "go", EOF without it means
/// "give up" (exit 97). The command itself gets /dev/null as stdin, and `exec`
/// keeps the recorded pid the group leader.
const START_GATE: &str = r#"read -r _ || exit 97; exec sh -c "$1" trainbot-step </dev/null"#;

/// A spawned step: the group leader is held at the start gate.
pub(super) struct GatedChild {
    pub child: Child,
    /// The process group id, equal to the leader's pid.
    pub pgid: i32,
}

/// Spawns `cmd` behind the start gate in its own process group, with stdout
/// and stderr both going to `output`.
pub(super) fn spawn_gated(
    cmd: &str,
    cwd: &Path,
    env: &[(String, String)],
    output: std::io::PipeWriter,
) -> io::Result<GatedChild> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(START_GATE)
        .arg("trainbot-wrap")
        .arg(cmd)
        .current_dir(cwd)
        .env_clear()
        .envs(step_env(env, |name| std::env::var_os(name)))
        .stdin(Stdio::piped())
        .stdout(Stdio::from(output.try_clone()?))
        .stderr(Stdio::from(output))
        .process_group(0);
    let umask = crate::harden::step_umask();
    // SAFETY: umask(2) and prctl(2) are plain system calls, async-signal-safe,
    // and touch no memory.
    unsafe {
        command.pre_exec(move || {
            libc::umask(umask);
            drop_peeking_capabilities();
            Ok(())
        });
    }
    let child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("child exited before its pid was read"))?;
    let pgid =
        i32::try_from(pid).map_err(|_| io::Error::other(format!("pid {pid} out of range")))?;
    Ok(GatedChild { child, pgid })
}

/// The request's variables (`TRAINBOT_*`) and then the step's own `env`,
/// with each `secret_env` value as read at start. A secret that was not read
/// (the bot did not check it at start) stops the step.
pub(super) fn request_env(req: &StepRequest) -> Result<Vec<(String, String)>, StepError> {
    let mut env = req.env.clone();
    for (name, value) in &req.step.env {
        let value = match value {
            EnvValue::Plain(text) => text.clone(),
            EnvValue::Secret { var, key } => step_secret(var).ok_or_else(|| {
                StepError::Spawn(format!("{key}: the secret in {var} was not read at start"))
            })?,
        };
        env.push((name.clone(), value));
    }
    Ok(env)
}

/// `CAP_SYS_PTRACE`, `CAP_SYS_ADMIN`, `CAP_PERFMON` and
/// `CAP_CHECKPOINT_RESTORE` in `linux/capability.h`: the capabilities that
/// open another process's `/proc/<pid>/environ` or `mem` past its being
/// non-dumpable (which of them a kernel honours varies).
#[cfg(target_os = "linux")]
const PEEKING_CAPABILITIES: [libc::c_ulong; 4] = [19, 21, 38, 40];

/// A bot running as root (in a container, say) would let its root steps read
/// `/proc/<bot>/environ` and `mem` despite being non-dumpable: root with
/// `CAP_SYS_PTRACE` may. The step's process drops those capabilities from its
/// bounding set before `exec`, so neither it nor its children hold them.
/// Without `CAP_SETPCAP` (not root) this fails, and there is nothing to drop.
fn drop_peeking_capabilities() {
    #[cfg(target_os = "linux")]
    for cap in PEEKING_CAPABILITIES {
        // SAFETY: prctl(PR_CAPBSET_DROP) takes plain integers.
        unsafe {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
    }
}

/// The whole environment of a step: the inherited whitelist, then the
/// request's variables (which win).
fn step_env(
    env: &[(String, String)],
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Vec<(OsString, OsString)> {
    let inherited = INHERITED_ENV
        .iter()
        .filter_map(|name| lookup(name).map(|value| (OsString::from(name), value)));
    let requested = env
        .iter()
        .map(|(k, v)| (OsStr::new(k).to_owned(), OsStr::new(v).to_owned()));
    inherited.chain(requested).collect()
}

/// Sends `signal` to every process in the group. A group that is already gone
/// is not an error.
pub(super) fn signal_group(pgid: i32, signal: i32) -> io::Result<()> {
    // pgid 0 would signal our own group and -1 every process we may signal.
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process group {pgid}"),
        ));
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Kills a step's process group outright (SIGKILL). Used on the restart path
/// for groups a previous bot recorded; a group that is gone is fine.
pub fn kill_process_group(pgid: i32) -> io::Result<()> {
    signal_group(pgid, libc::SIGKILL)
}

/// This boot's id. A recorded pgid is only meaningful within the boot that
/// recorded it: after a reboot the number may belong to anything.
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// SIGTERM to the group, SIGKILL after `grace` if the leader is still there,
/// and reaps the leader. Members that outlived a leader which obeyed SIGTERM
/// get SIGKILL right away: the step is over, nothing may run on in its name.
pub(super) async fn terminate_group(
    child: &mut Child,
    pgid: i32,
    grace: Duration,
) -> io::Result<ExitStatus> {
    if let Err(error) = signal_group(pgid, libc::SIGTERM) {
        tracing::warn!(pgid, %error, "Cannot send SIGTERM to step process group.");
    }
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status?,
        Err(_elapsed) => {
            tracing::warn!(
                pgid,
                grace_ms = grace.as_millis() as u64,
                "Step ignored SIGTERM; sending SIGKILL."
            );
            kill_process_group(pgid)?;
            return child.wait().await;
        }
    };
    kill_process_group(pgid)?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_env_keeps_only_the_whitelist_and_adds_the_request() {
        let lookup = |name: &str| match name {
            "PATH" => Some(OsString::from("/bin")),
            "HOME" => Some(OsString::from("/home/bot")),
            _ => None,
        };
        let env = step_env(&[("TRAINBOT_SHA".into(), "abc".into())], lookup);
        let names: Vec<_> = env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(names, ["PATH", "HOME", "TRAINBOT_SHA"]);
    }

    #[test]
    fn only_path_home_and_lang_are_inherited() {
        let lookup = |name: &str| Some(OsString::from(format!("v-{name}")));
        let env = step_env(&[], lookup);
        let names: Vec<_> = env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(names, ["PATH", "HOME", "LANG"]);
    }

    #[test]
    fn request_env_adds_the_steps_own_and_needs_its_secrets_read() {
        use crate::config::{Step, StepKind};
        let mut req = StepRequest {
            key: "k".into(),
            step: Step {
                kind: StepKind::Run("true".into()),
                timeout: Duration::from_secs(1),
                retries: 0,
                env: vec![("REGION".into(), EnvValue::Plain("eu".into()))],
            },
            env: vec![("TRAINBOT_SHA".into(), "abc".into())],
            cwd: ".".into(),
            workdir: None,
            log_path: "x.log".into(),
        };
        let env = request_env(&req).unwrap();
        assert_eq!(
            env,
            [
                ("TRAINBOT_SHA".to_string(), "abc".to_string()),
                ("REGION".to_string(), "eu".to_string())
            ]
        );
        req.step.env.push((
            "TOKEN".into(),
            EnvValue::Secret {
                var: "NEVER_READ_AT_START".into(),
                key: "production.deploy[0].env.TOKEN".into(),
            },
        ));
        let Err(StepError::Spawn(error)) = request_env(&req) else {
            panic!("a secret not read at start must stop the step");
        };
        assert!(error.contains("production.deploy[0].env.TOKEN"), "{error}");
    }

    #[test]
    fn dangerous_group_ids_are_refused() {
        for pgid in [-5, 0, 1] {
            assert_eq!(
                kill_process_group(pgid).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    fn boot_id_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(boot_id().is_some_and(|id| id.len() >= 32));
        }
    }
}
