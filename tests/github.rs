//! trainbot on the github forge, end to end: the real binary against a fake
//! GitHub on 127.0.0.1 (commits, compare, statuses, deployments, Actions)
//! and webhooks signed as GitHub signs them.

#[path = "support/fake_github.rs"]
mod fake_github;
mod support;

#[path = "github/app.rs"]
mod app;
#[path = "github/checks.rs"]
mod checks;
#[path = "github/hang.rs"]
mod hang;
#[path = "github/polling.rs"]
mod polling;
#[path = "github/steps.rs"]
mod steps;
#[path = "github/tags.rs"]
mod tags;
#[path = "github/train.rs"]
mod train;
#[path = "github/webhooks.rs"]
mod webhooks;

use fake_github::FakeGithub;
use support::{Bot, BotConfig, GITHUB_TOKEN_ENV, Sandbox, WEBHOOK_SECRET_ENV, free_port};

pub use support::TIMEOUT;

pub const TOKEN: &str = "ghp_test_token_for_acme";
pub const SECRET: &str = "It's a Secret to Everybody";

/// The GitHub App of the tests: its keys (made for the tests alone), id and
/// installation on acme/web.
pub const APP_KEY: &str = include_str!("fixtures/github-app-test-key.pem");
pub const APP_PUBLIC_KEY: &str = include_str!("fixtures/github-app-test-key.pub.pem");
pub const APP_KEY_ENV: &str = "TRAINBOT_TEST_APP_KEY";
pub const APP_ID: u64 = 4242;
pub const INSTALLATION_ID: u64 = 77;

/// A bot on the github forge, its fake GitHub and its HTTP port.
pub struct Github {
    pub fake: FakeGithub,
    pub sandbox: Sandbox,
    pub bot: Bot,
    pub port: u16,
}

impl Github {
    /// Starts the fake and the bot (token and webhook secret set) and waits
    /// for main's first commit to be allocated.
    pub fn start(config: BotConfig) -> Github {
        Github::start_with_env(
            config,
            &[(GITHUB_TOKEN_ENV, TOKEN), (WEBHOOK_SECRET_ENV, SECRET)],
        )
    }

    /// `start`, signed in as the GitHub App (`auth = "app"`, the
    /// installation looked up), whose tokens live an hour.
    pub fn start_app(config: BotConfig) -> Github {
        let fake = app_fake("web", std::time::Duration::from_secs(3600));
        let config = BotConfig {
            github_keys: format!("{}\n{}", app_keys(""), config.github_keys),
            ..config
        };
        let env = [(APP_KEY_ENV, APP_KEY), (WEBHOOK_SECRET_ENV, SECRET)];
        Github::start_on(fake, config, &env)
    }

    pub fn start_with_env(config: BotConfig, env: &[(&str, &str)]) -> Github {
        Github::start_on(FakeGithub::start("acme", "web", TOKEN), config, env)
    }

    /// `start_with_env` on a fake the test started (and prepared) itself.
    pub fn start_on(fake: FakeGithub, config: BotConfig, env: &[(&str, &str)]) -> Github {
        let sandbox = Sandbox::new();
        let port = free_port();
        let config = BotConfig {
            github: Some(fake.api_url()),
            http_port: port,
            ..config
        };
        let mut bot = Bot::spawn_with_env(&sandbox.write_config(&config), env);
        bot.expect_allocated(&fake.head("main"));
        Github {
            fake,
            sandbox,
            bot,
            port,
        }
    }

    pub fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks/github", self.port)
    }

    /// Posts a webhook signed with the bot's secret.
    pub fn deliver(&self, event: &str, delivery: &str, body: &[u8]) -> (u16, String) {
        let sig = fake_github::signature(SECRET, body);
        let (status, text) =
            fake_github::post_webhook(&self.webhook_url(), event, delivery, body, Some(&sig));
        (status, text.trim_end().to_string())
    }

    /// A `push` of `after` to `git_ref`, as GitHub sends it.
    pub fn push(&self, git_ref: &str, after: &str, delivery: &str) -> (u16, String) {
        push(&self.fake, &self.webhook_url(), git_ref, after, delivery)
    }
}

/// A fake GitHub serving `acme/{repo}` where no personal token works, only
/// the tests' app, whose tokens live `ttl`.
pub fn app_fake(repo: &str, ttl: std::time::Duration) -> FakeGithub {
    let fake = FakeGithub::start("acme", repo, "no-personal-token-here");
    fake.enable_app(APP_ID, INSTALLATION_ID, APP_PUBLIC_KEY, ttl);
    fake
}

/// The `[forge.github]` keys of the tests' app, and `more`.
pub fn app_keys(more: &str) -> String {
    format!("auth = \"app\"\napp_id = {APP_ID}\nprivate_key_env = \"{APP_KEY_ENV}\"\n{more}")
}

/// A signed `push` of `after` to `git_ref`, pushed by alice, posted to `url`.
pub fn push(
    fake: &FakeGithub,
    url: &str,
    git_ref: &str,
    after: &str,
    delivery: &str,
) -> (u16, String) {
    let before = "0".repeat(40);
    let body = fake
        .push_event(git_ref, &before, after, Some("pushed"), "alice")
        .to_string();
    let sig = fake_github::signature(SECRET, body.as_bytes());
    let (status, text) =
        fake_github::post_webhook(url, "push", delivery, body.as_bytes(), Some(&sig));
    (status, text.trim_end().to_string())
}
