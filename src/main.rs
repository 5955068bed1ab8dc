//! trainbot's entry point: CLI, logging, start-up checks, exit codes (0 clean stop,
//! 2 bad config or arguments, 1 anything else).

use std::process::ExitCode;

use clap::Parser;

use trainbot::chat::slack::StartError;
use trainbot::cli::{Cli, Cmd};
use trainbot::config::{ForgeKind, Settings};
use trainbot::domain::clock::{Clock, SystemClock};
use trainbot::forge::github::Credentials;

mod start;

use start::{Planned, run};

fn main() -> ExitCode {
    // One TLS provider for every client (Slack's connector needs it set).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        // Every known secret is masked in every log line (SPEC §13).
        .with_writer(trainbot::secrets::masked_stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    trainbot::harden::harden_process();
    let pipelines = match trainbot::config::load_pipelines(&cli.config) {
        Ok(p) => p,
        Err(e) => {
            // A syntax error quotes its line: URLs in it lose their secrets.
            let text = trainbot::secrets::redact_urls_in(&e.to_string());
            eprintln!("trainbot: {text}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Cmd::Run) {
        Cmd::Check => {
            eprintln!("{}: ok", cli.config.display());
            let now = SystemClock.now();
            for pipeline in &pipelines {
                // A single pipeline prints as it always has: scripts read it.
                let indent = if pipeline.pipeline.multi {
                    println!("{}:", pipeline.pipeline.name);
                    "  "
                } else {
                    ""
                };
                for t in trainbot::config::next_departures(pipeline, now, 5) {
                    println!("{indent}{}", t.to_rfc3339());
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::Run => {
            // `[web]` is top-level: every pipeline names the same variable.
            let password = match web_password(&pipelines[0]) {
                Ok(password) => password,
                Err(e) => {
                    eprintln!("trainbot: {}: {e}", cli.config.display());
                    return ExitCode::from(2);
                }
            };
            let mut planned = Vec::new();
            for mut settings in pipelines {
                settings.register_secrets();
                settings.web.password = password.clone();
                match github_credentials(&settings) {
                    Ok(github) => planned.push(Planned { settings, github }),
                    Err(e) => {
                        eprintln!("trainbot: {}: {e}", cli.config.display());
                        return ExitCode::from(2);
                    }
                }
            }
            // Step secrets are read once, here: an unset one is a config error.
            let settings: Vec<Settings> = planned.iter().map(|p| p.settings.clone()).collect();
            if let Err(e) = trainbot::config::load_step_secrets(&settings) {
                eprintln!("trainbot: {}: {e}", cli.config.display());
                return ExitCode::from(2);
            }
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("trainbot: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = rt.block_on(run(planned));
            // The console reads stdin in a blocking thread that never returns
            // while stdin stays open (a terminal): stop without waiting for it.
            rt.shutdown_timeout(std::time::Duration::from_millis(250));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let text = format!("{e:#}");
                    eprintln!("trainbot: {}", trainbot::secrets::mask(&text));
                    // Missing tokens, a refused token, an unknown channel:
                    // the configuration (or its environment) is wrong.
                    match e.downcast_ref::<StartError>() {
                        Some(start) if start.is_config() => ExitCode::from(2),
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
    }
}

/// The GitHub token or app key, read before anything starts: without it
/// the github forge cannot work, and that is a configuration problem (exit 2).
fn github_credentials(s: &Settings) -> Result<Option<Credentials>, String> {
    if s.forge.kind != ForgeKind::Github {
        return Ok(None);
    }
    Credentials::from_env(&s.forge.github).map(Some)
}

/// The dashboard's password, read before anything starts and known as a
/// secret from then on (masked wherever it could appear).
fn web_password(s: &Settings) -> Result<Option<secrecy::SecretString>, String> {
    let Some(var) = &s.web.password_env else {
        return Ok(None);
    };
    match std::env::var(var) {
        // Shorter ones could not be masked (`secrets::register` skips them).
        Ok(password) if password.trim().len() >= trainbot::secrets::MIN_LEN => {
            trainbot::secrets::register(&password);
            Ok(Some(secrecy::SecretString::from(password)))
        }
        Ok(password) if !password.trim().is_empty() => Err(format!(
            "web.password_env: the password in {var} is too short: at least {} characters",
            trainbot::secrets::MIN_LEN
        )),
        _ => Err(format!(
            "web.password_env: the environment variable {var} is not set or empty; \
             it must hold the dashboard's password"
        )),
    }
}
