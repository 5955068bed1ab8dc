//! The command line: `trainbot [--config bot.toml] [run|check]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "trainbot",
    version,
    about = "A ChatOps deploy bot: branch builds, hourly deploy trains, approvals by commit authors."
)]
pub struct Cli {
    /// The config file.
    #[arg(long, short = 'c', global = true, default_value = "bot.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Cmd {
    /// Run the bot (the default).
    Run,
    /// Validate the config and print the next 5 departures.
    Check,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_may_stand_before_or_after_the_subcommand() {
        let a = Cli::try_parse_from(["trainbot", "--config", "x.toml", "check"]).unwrap();
        let b = Cli::try_parse_from(["trainbot", "check", "--config", "x.toml"]).unwrap();
        assert_eq!((a.config.clone(), a.command), (b.config, b.command));
        assert_eq!(a.command, Some(Cmd::Check));
        let c = Cli::try_parse_from(["trainbot"]).unwrap();
        assert_eq!((c.config, c.command), (PathBuf::from("bot.toml"), None));
    }
}
