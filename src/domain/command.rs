//! Chat text -> `Command`. A bad command is a `CommandError` whose `Display`
//! is the one-line reply, usage included.

use std::fmt;

use super::ids::{BranchName, ShaPrefix, TrainId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help(Option<String>),
    Status(Option<BranchName>),
    Bb(BranchName),
    Nodes,
    Release(String),
    Depart,
    Good(Option<TrainId>),
    Bad(Option<String>),
    Force(Option<TrainOrSha>),
    Rollback(Option<ShaPrefix>),
    Freeze(Option<String>),
    Unfreeze,
    Cancel(Option<TrainOrBranch>),
    History(Option<usize>),
    /// `!deploy <ref> to <env>`.
    Deploy {
        git_ref: String,
        env: String,
    },
    /// `!lock <env> [for <duration>] <reason>`.
    Lock {
        env: String,
        for_: Option<std::time::Duration>,
        reason: String,
    },
    Unlock(String),
    Locks,
    Why(Option<TrainOrSha>),
    Next,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainOrSha {
    Train(TrainId),
    Sha(ShaPrefix),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainOrBranch {
    Train(TrainId),
    /// A branch, or a waiting tag deploy of that name: tag and branch names
    /// look alike, so which one it is only the engine can tell.
    Branch(BranchName),
}

/// Every command name, in the order `!help` lists them.
pub const NAMES: &[&str] = &[
    "help", "status", "bb", "nodes", "release", "depart", "good", "bad", "force", "rollback",
    "freeze", "unfreeze", "cancel", "history", "deploy", "lock", "unlock", "locks", "why", "next",
];

pub const MAX_HISTORY: usize = 50;

/// Longer chat text is refused before it is read (SPEC §13).
pub const MAX_COMMAND_CHARS: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub message: String,
    /// The command's usage line, when the command itself was known.
    pub usage: Option<String>,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.usage {
            Some(u) => write!(f, "{}. Usage: {u}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// Parses one chat message. `None`: not addressed to the bot (no prefix).
pub fn parse(text: &str, prefix: &str) -> Option<Result<Command, CommandError>> {
    let rest = text.trim().strip_prefix(prefix)?;
    let length = text.chars().count();
    if length > MAX_COMMAND_CHARS {
        return Some(Err(CommandError {
            message: format!("command too long: {length} characters, at most {MAX_COMMAND_CHARS}"),
            usage: None,
        }));
    }
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (rest, ""),
    };
    if name.is_empty() {
        return None; // a lone "!" is punctuation, not a command
    }
    let name = name.to_ascii_lowercase();
    Some(parse_named(&name, args, prefix))
}

fn parse_named(name: &str, args: &str, prefix: &str) -> Result<Command, CommandError> {
    let err = |message: String| CommandError {
        message,
        usage: usage(name, prefix),
    };
    let words: Vec<&str> = args.split_whitespace().collect();
    let at_most_one = |words: &[&str]| -> Result<Option<String>, CommandError> {
        match words {
            [] => Ok(None),
            [w] => Ok(Some((*w).to_string())),
            _ => Err(err(format!("{prefix}{name} takes at most one argument"))),
        }
    };
    let none = |words: &[&str]| -> Result<(), CommandError> {
        if words.is_empty() {
            Ok(())
        } else {
            Err(err(format!("{prefix}{name} takes no arguments")))
        }
    };
    let text = |args: &str| (!args.is_empty()).then(|| args.chars().take(300).collect::<String>());
    match name {
        "help" => {
            Ok(Command::Help(at_most_one(&words)?.map(|w| {
                w.trim_start_matches(prefix).to_ascii_lowercase()
            })))
        }
        "status" => match at_most_one(&words)? {
            None => Ok(Command::Status(None)),
            Some(b) => b
                .parse()
                .map(|b| Command::Status(Some(b)))
                .map_err(|e| err(e.to_string())),
        },
        "depart" => none(&words).map(|_| Command::Depart),
        "nodes" => none(&words).map(|_| Command::Nodes),
        "bb" => match at_most_one(&words)? {
            None => Err(err(format!("{prefix}bb needs a branch"))),
            Some(b) => b.parse().map(Command::Bb).map_err(|e| err(e.to_string())),
        },
        "release" => match at_most_one(&words)? {
            None => Err(err(format!("{prefix}release needs a node name"))),
            Some(n)
                if n.len() <= 64
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                Ok(Command::Release(n))
            }
            Some(n) => Err(err(format!("'{}' is not a node name", short(&n)))),
        },
        "unfreeze" => none(&words).map(|_| Command::Unfreeze),
        "good" => match at_most_one(&words)? {
            None => Ok(Command::Good(None)),
            Some(t) => t
                .parse()
                .map(|t| Command::Good(Some(t)))
                .map_err(|e| err(e.to_string())),
        },
        "bad" => Ok(Command::Bad(text(args))),
        "freeze" => Ok(Command::Freeze(text(args))),
        "force" => match at_most_one(&words)? {
            None => Ok(Command::Force(None)),
            Some(a) => train_or_sha(&a)
                .map(|t| Command::Force(Some(t)))
                .map_err(err),
        },
        "rollback" => match at_most_one(&words)? {
            None => Ok(Command::Rollback(None)),
            Some(s) => s
                .parse()
                .map(|s| Command::Rollback(Some(s)))
                .map_err(|e| err(e.to_string())),
        },
        "cancel" => match at_most_one(&words)? {
            None => Ok(Command::Cancel(None)),
            Some(a) if looks_like_train(&a) => a
                .parse()
                .map(|t| Command::Cancel(Some(TrainOrBranch::Train(t))))
                .map_err(|e| err(e.to_string())),
            Some(a) => a
                .parse()
                .map(|b| Command::Cancel(Some(TrainOrBranch::Branch(b))))
                .map_err(|e| err(e.to_string())),
        },
        "history" => match at_most_one(&words)? {
            None => Ok(Command::History(None)),
            Some(n) => match n.parse::<usize>() {
                Ok(n) if (1..=MAX_HISTORY).contains(&n) => Ok(Command::History(Some(n))),
                _ => Err(err(format!(
                    "'{}' is not a number from 1 to {MAX_HISTORY}",
                    short(&n)
                ))),
            },
        },
        "deploy" => match words.as_slice() {
            [r, to, env] if to.eq_ignore_ascii_case("to") => {
                let git_ref = git_ref(r).map_err(err)?;
                Ok(Command::Deploy {
                    git_ref,
                    env: env_name(env).map_err(err)?,
                })
            }
            _ => Err(err(format!(
                "{prefix}deploy needs a ref and an environment"
            ))),
        },
        "lock" => {
            let Some((env, rest)) = words.split_first() else {
                return Err(err(format!(
                    "{prefix}lock needs an environment and a reason"
                )));
            };
            let env = env_name(env).map_err(err)?;
            let (for_, rest) = match rest {
                [f, d, rest @ ..] if f.eq_ignore_ascii_case("for") => {
                    let d = super::duration::parse_duration(d)
                        .filter(|d| d.as_secs() <= MAX_LOCK_DAYS * 86_400)
                        .ok_or_else(|| {
                            err(format!(
                                "'{}' is not a duration like 30m, 2h or 1d (at most {MAX_LOCK_DAYS}d)",
                                short(d)
                            ))
                        })?;
                    (Some(d), rest)
                }
                _ => (None, rest),
            };
            if rest.is_empty() {
                return Err(err(format!("{prefix}lock needs a reason")));
            }
            let reason: String = rest.join(" ").chars().take(300).collect();
            Ok(Command::Lock { env, for_, reason })
        }
        "unlock" => match at_most_one(&words)? {
            None => Err(err(format!("{prefix}unlock needs an environment"))),
            Some(e) => env_name(&e).map(Command::Unlock).map_err(err),
        },
        "locks" => none(&words).map(|_| Command::Locks),
        "next" => none(&words).map(|_| Command::Next),
        "why" => match at_most_one(&words)? {
            None => Ok(Command::Why(None)),
            Some(a) => train_or_sha(&a).map(|t| Command::Why(Some(t))).map_err(err),
        },
        _ => Err(CommandError {
            message: format!("unknown command {prefix}{}; try {prefix}help", short(name)),
            usage: None,
        }),
    }
}

/// How long a `!lock … for` may last.
pub const MAX_LOCK_DAYS: u64 = 30;

/// An environment name as typed: `staging`, `production`.
fn env_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("'{}' is not an environment name", short(s)))
    }
}

/// A branch, tag or SHA to `!deploy`: a valid git ref name either way.
fn git_ref(s: &str) -> Result<String, String> {
    s.parse::<BranchName>()
        .map(|b| b.as_str().to_string())
        .map_err(|e| e.to_string())
}

fn looks_like_train(s: &str) -> bool {
    s.starts_with('#') || (s.len() < 7 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

fn train_or_sha(s: &str) -> Result<TrainOrSha, String> {
    if looks_like_train(s) {
        return s
            .parse()
            .map(TrainOrSha::Train)
            .map_err(|e: super::ids::IdError| e.to_string());
    }
    s.parse().map(TrainOrSha::Sha).map_err(|_| {
        format!(
            "'{}' is neither a train (#N) nor a SHA (7 to 40 hex characters)",
            short(s)
        )
    })
}

/// User text echoed in errors is cut short so a reply stays one line.
fn short(s: &str) -> String {
    let cut: String = s.chars().filter(|c| !c.is_control()).take(40).collect();
    if cut.chars().count() < s.chars().count() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// The usage line for a command name, or `None` if there is no such command.
pub fn usage(name: &str, prefix: &str) -> Option<String> {
    let (args, what) = match name {
        "help" => ("[command]", "commands and usage"),
        "status" => (
            "[branch]",
            "the current train, waiting SHAs, next departure, production SHA; or a branch's last build",
        ),
        "bb" => (
            "<branch>",
            "build a branch: checks, a branch node, deploy, smoke, commit status",
        ),
        "nodes" => ("", "branch nodes: branch, SHA, age, busy or idle, URL"),
        "release" => ("<node>", "free a branch node (its requester, or ops)"),
        "depart" => ("", "start a train now (ops)"),
        "good" => (
            "[train]",
            "approve the train awaiting approval (its authors)",
        ),
        "bad" => (
            "[sha] [reason]",
            "veto the running train before production (authors, ops); with on_veto = \"eject\" the commits before the named one (else before yours) leave at once",
        ),
        "force" => (
            "[train|sha]",
            "deploy to production now, without approvals (ops)",
        ),
        "rollback" => (
            "[sha]",
            "redeploy the previous production SHA, or the given one (ops)",
        ),
        "freeze" => ("[reason]", "stop departures (ops)"),
        "unfreeze" => ("", "resume departures (ops)"),
        "cancel" => (
            "[train|branch|tag]",
            "stop a running train (ops), a branch build (ops, or its requester), or drop a waiting tag deploy (ops)",
        ),
        "history" => ("[n]", "the last n production deploys"),
        "deploy" => (
            "<ref> to <env>",
            "deploy a branch, tag or SHA to one environment with its steps (ops)",
        ),
        "lock" => (
            "<env> [for <duration>] <reason>",
            "hold an environment: nothing deploys to it until !unlock (production: ops)",
        ),
        "unlock" => ("<env>", "release a lock (its owner, or ops)"),
        "locks" => ("", "environment locks: owner, reason, since, until"),
        "why" => (
            "[sha|train]",
            "where a SHA or train is and why; alone: why the next departure will or will not go",
        ),
        "next" => (
            "",
            "what the next train would carry, whom it would ask, and whether the gate lets it go",
        ),
        _ => return None,
    };
    let sep = if args.is_empty() { "" } else { " " };
    Some(format!("{prefix}{name}{sep}{args} — {what}"))
}

impl Command {
    /// The command's name, for help, audit and refusals.
    pub fn name(&self) -> &'static str {
        // Exhaustive on purpose: a new command cannot ship without a name
        // (and so without usage and help).
        match self {
            Command::Help(_) => "help",
            Command::Status(_) => "status",
            Command::Bb(_) => "bb",
            Command::Nodes => "nodes",
            Command::Release(_) => "release",
            Command::Depart => "depart",
            Command::Good(_) => "good",
            Command::Bad(_) => "bad",
            Command::Force(_) => "force",
            Command::Rollback(_) => "rollback",
            Command::Freeze(_) => "freeze",
            Command::Unfreeze => "unfreeze",
            Command::Cancel(_) => "cancel",
            Command::History(_) => "history",
            Command::Deploy { .. } => "deploy",
            Command::Lock { .. } => "lock",
            Command::Unlock(_) => "unlock",
            Command::Locks => "locks",
            Command::Why(_) => "why",
            Command::Next => "next",
        }
    }

    /// Commands only ops may give (others decide per train, e.g. `!bad`).
    pub fn ops_only(&self) -> bool {
        matches!(
            self,
            Command::Depart
                | Command::Force(_)
                | Command::Rollback(_)
                | Command::Freeze(_)
                | Command::Unfreeze
                | Command::Cancel(Some(TrainOrBranch::Train(_)) | None)
                | Command::Deploy { .. }
        )
    }

    /// Read-only commands are not written to the audit log.
    pub fn is_query(&self) -> bool {
        matches!(
            self,
            Command::Help(_)
                | Command::Status(_)
                | Command::History(_)
                | Command::Locks
                | Command::Why(_)
                | Command::Next
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, CommandError> {
        parse(s, "!").expect("addressed to the bot")
    }

    #[test]
    fn a_command_past_2000_characters_is_refused_unread() {
        let at_limit = format!("!bad {}", "x".repeat(MAX_COMMAND_CHARS - 5));
        assert!(p(&at_limit).is_ok());
        let over = format!("!bad {}", "x".repeat(MAX_COMMAND_CHARS - 4));
        let err = p(&over).unwrap_err().to_string();
        assert_eq!(err, "command too long: 2001 characters, at most 2000");
        assert!(
            parse(&"y".repeat(5000), "!").is_none(),
            "chatter is still ignored"
        );
    }

    #[test]
    fn text_without_the_prefix_is_not_a_command() {
        assert!(parse("hello there", "!").is_none());
        assert!(parse("!", "!").is_none());
    }

    #[test]
    fn every_named_command_parses_and_has_usage() {
        for name in NAMES {
            let arg = match *name {
                "bb" => " feature/x",
                "release" => " branch-1",
                "deploy" => " main to staging",
                "lock" => " staging for 2h db migration",
                "unlock" => " staging",
                _ => "",
            };
            let cmd = p(&format!("!{name}{arg}")).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(cmd.name(), *name);
            assert!(usage(name, "!").unwrap().starts_with(&format!("!{name}")));
        }
    }

    #[test]
    fn arguments_are_typed() {
        assert_eq!(p("!good #3").unwrap(), Command::Good(Some(TrainId(3))));
        assert_eq!(
            p("!force 12").unwrap(),
            Command::Force(Some(TrainOrSha::Train(TrainId(12))))
        );
        assert_eq!(
            p("!force abcdef1").unwrap(),
            Command::Force(Some(TrainOrSha::Sha("abcdef1".parse().unwrap())))
        );
        assert_eq!(
            p("!bad breaks login page").unwrap(),
            Command::Bad(Some("breaks login page".into()))
        );
        assert_eq!(p("!history 3").unwrap(), Command::History(Some(3)));
        assert_eq!(
            p("!cancel feature/x").unwrap(),
            Command::Cancel(Some(TrainOrBranch::Branch("feature/x".parse().unwrap())))
        );
        assert_eq!(
            p("!cancel v1.2.3").unwrap(),
            Command::Cancel(Some(TrainOrBranch::Branch("v1.2.3".parse().unwrap())))
        );
        assert_eq!(p("!STATUS").unwrap(), Command::Status(None));
    }

    #[test]
    fn bad_arguments_get_one_line_with_usage() {
        let e = p("!history lots").unwrap_err().to_string();
        assert_eq!(
            e,
            "'lots' is not a number from 1 to 50. Usage: !history [n] — the last n production deploys"
        );
        assert!(
            p("!depart now")
                .unwrap_err()
                .to_string()
                .contains("takes no arguments")
        );
        assert!(
            p("!force xyz")
                .unwrap_err()
                .to_string()
                .contains("neither a train")
        );
        assert!(
            p("!status $(id)")
                .unwrap_err()
                .to_string()
                .contains("not a valid branch name")
        );
        assert!(!p("!status a\nb").unwrap_err().to_string().contains('\n'));
    }

    #[test]
    fn branch_builds_refuse_hostile_names() {
        assert_eq!(
            p("!bb feature/x").unwrap(),
            Command::Bb("feature/x".parse().unwrap())
        );
        for bad in [
            "!bb ;touch",
            "!bb $(id)",
            "!bb --upload-pack=x",
            "!bb ../x",
            "!bb",
        ] {
            assert!(p(bad).is_err(), "{bad} accepted");
        }
        assert!(p("!release ../etc").is_err());
        assert!(
            p("!bb a b")
                .unwrap_err()
                .to_string()
                .contains("at most one")
        );
    }

    #[test]
    fn unknown_commands_point_at_help() {
        assert_eq!(
            p("!shipit").unwrap_err().to_string(),
            "unknown command !shipit; try !help"
        );
    }

    #[test]
    fn other_prefixes_work() {
        assert_eq!(
            parse("tb status", "tb ").unwrap().unwrap(),
            Command::Status(None)
        );
        assert!(parse("!status", "tb ").is_none());
    }

    #[test]
    fn ops_only_commands() {
        assert!(p("!force").unwrap().ops_only());
        assert!(p("!depart").unwrap().ops_only());
        assert!(!p("!good").unwrap().ops_only());
        assert!(!p("!bad").unwrap().ops_only());
        assert!(!p("!cancel feature/x").unwrap().ops_only());
    }

    #[test]
    fn gate_commands_parse() {
        assert_eq!(
            p("!deploy feature/x to Staging").unwrap(),
            Command::Deploy {
                git_ref: "feature/x".into(),
                env: "staging".into()
            }
        );
        assert_eq!(
            p("!lock production for 90m release of 4.2").unwrap(),
            Command::Lock {
                env: "production".into(),
                for_: Some(std::time::Duration::from_secs(5400)),
                reason: "release of 4.2".into()
            }
        );
        assert_eq!(
            p("!lock staging db migration").unwrap(),
            Command::Lock {
                env: "staging".into(),
                for_: None,
                reason: "db migration".into()
            }
        );
        assert_eq!(p("!why").unwrap(), Command::Why(None));
        assert_eq!(
            p("!why #4").unwrap(),
            Command::Why(Some(TrainOrSha::Train(TrainId(4))))
        );
        assert!(
            p("!deploy main")
                .unwrap_err()
                .to_string()
                .contains("Usage: !deploy <ref> to <env>")
        );
        assert!(p("!deploy ..bad to staging").is_err());
        assert!(
            p("!lock staging")
                .unwrap_err()
                .to_string()
                .contains("needs a reason")
        );
        assert!(
            p("!lock staging for 40d x")
                .unwrap_err()
                .to_string()
                .contains("not a duration")
        );
        assert!(p("!lock st@ging x").is_err());
        assert!(p("!locks now").is_err());
        assert!(p("!deploy main to staging").unwrap().ops_only());
    }
}
