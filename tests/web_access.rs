//! Web access end to end (SPEC §13): the real binary refuses to show its
//! dashboard beyond loopback without a password, asks for the password when
//! one is set, and serves the webhook alone on `bot.webhook_listen`.

#[path = "support/fake_github.rs"]
mod fake_github;
mod support;

use fake_github::{FakeGithub, http, post_webhook, signature};
use support::{
    Bot, BotConfig, GITHUB_TOKEN_ENV, Sandbox, WEBHOOK_SECRET_ENV, free_port, run_to_end,
};

pub use support::TIMEOUT;

const TOKEN: &str = "ghp_web_access_token";
const SECRET: &str = "web-access-webhook-secret";
const PASSWORD_ENV: &str = "TRAINBOT_TEST_WEB_PASSWORD";
const PASSWORD: &str = "open sesame 42";

/// `config` rendered, with `bot_lines` added to `[bot]` and `web` appended.
fn write(sandbox: &Sandbox, config: &BotConfig, bot_lines: &str, web: &str) -> std::path::PathBuf {
    let text = config
        .render()
        .replacen("[bot]\n", &format!("[bot]\n{bot_lines}"), 1);
    let text = format!("{text}\n{web}\n");
    let path = sandbox.path().join("bot.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_dashboard_beyond_loopback_without_a_password_exits_2() {
    let sandbox = Sandbox::new();
    let text = BotConfig::default().render().replace(
        "http_listen = \"127.0.0.1:0\"",
        "http_listen = \"0.0.0.0:0\"",
    );
    assert!(text.contains("0.0.0.0:0"), "{text}");
    let path = sandbox.path().join("bot.toml");
    std::fs::write(&path, &text).unwrap();
    let config = path.to_str().unwrap();
    for args in [vec!["--config", config, "check"], vec!["--config", config]] {
        let (status, _, stderr) = run_to_end(&args, sandbox.path());
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("line 3: bot.http_listen"), "{stderr}");
        assert!(stderr.contains("web.password_env"), "{stderr}");
        assert!(stderr.contains("web.public"), "{stderr}");
    }
    // Said public, it starts (and `check` agrees).
    std::fs::write(&path, format!("{text}\n[web]\npublic = true\n")).unwrap();
    let (status, _, stderr) = run_to_end(&["--config", config, "check"], sandbox.path());
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn a_password_variable_that_is_not_set_exits_2() {
    let sandbox = Sandbox::new();
    let web = "[web]\npassword_env = \"TRAINBOT_TEST_UNSET_WEB_PASSWORD\"";
    let path = write(&sandbox, &BotConfig::default(), "", web);
    let config = path.to_str().unwrap();
    let (status, _, stderr) = run_to_end(&["--config", config], sandbox.path());
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("web.password_env"), "{stderr}");
    assert!(
        stderr.contains("TRAINBOT_TEST_UNSET_WEB_PASSWORD"),
        "{stderr}"
    );
    // Too short to be masked in logs and chat: refused as well.
    let out = std::process::Command::new(support::BIN)
        .args(["--config", config])
        .env("TRAINBOT_TEST_UNSET_WEB_PASSWORD", "abc")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("web.password_env") && stderr.contains("too short"),
        "{stderr}"
    );
}

#[test]
fn the_dashboard_asks_for_the_password_and_the_webhook_listener_serves_the_webhook_alone() {
    let fake = FakeGithub::start("acme", "web", TOKEN);
    let sandbox = Sandbox::new();
    let (port, hooks) = (free_port(), free_port());
    let config = BotConfig {
        github: Some(fake.api_url()),
        http_port: port,
        ..BotConfig::default()
    };
    let path = write(
        &sandbox,
        &config,
        &format!("webhook_listen = \"127.0.0.1:{hooks}\"\n"),
        &format!("[web]\npassword_env = \"{PASSWORD_ENV}\""),
    );
    let mut bot = Bot::spawn_with_env(
        &path,
        &[
            (GITHUB_TOKEN_ENV, TOKEN),
            (WEBHOOK_SECRET_ENV, SECRET),
            (PASSWORD_ENV, PASSWORD),
        ],
    );
    bot.expect_allocated(&fake.head("main"));

    // The dashboard's listener: the password, or 401.
    let site = format!("http://127.0.0.1:{port}");
    for page in ["/", "/api/status", "/metrics", "/audit"] {
        let reply = http("GET", &format!("{site}{page}"), &[], b"");
        assert_eq!(reply.status, 401, "{page}: {}", reply.body);
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Basic realm=\"trainbot\", charset=\"UTF-8\""),
            "{page}"
        );
        let bearer = format!("Bearer {PASSWORD}");
        let reply = http(
            "GET",
            &format!("{site}{page}"),
            &[("Authorization", &bearer)],
            b"",
        );
        assert_eq!(reply.status, 200, "{page}: {}", reply.body);
    }
    assert_eq!(
        http("GET", &format!("{site}/healthz"), &[], b"").status,
        200
    );

    // The webhook's listener: the webhook, and nothing else.
    let hook_site = format!("http://127.0.0.1:{hooks}");
    let body =
        br#"{"zen":"Design for failure.","hook_id":1,"repository":{"full_name":"acme/web"}}"#;
    let url = format!("{hook_site}/webhooks/github");
    let (status, text) = post_webhook(&url, "ping", "d-1", body, Some(&signature(SECRET, body)));
    assert_eq!((status, text.trim()), (200, "pong"));
    let (status, text) = post_webhook(&url, "ping", "d-2", body, None);
    assert_eq!(status, 401, "unsigned: {text}");
    let bearer = format!("Bearer {PASSWORD}");
    for page in ["/", "/api/status", "/metrics", "/healthz", "/audit"] {
        let reply = http(
            "GET",
            &format!("{hook_site}{page}"),
            &[("Authorization", &bearer)],
            b"",
        );
        assert_eq!(reply.status, 404, "{page}: {}", reply.body);
    }
    // A push through it reaches the engine like one on the main listener.
    let sha = fake.commit(
        "main",
        "Bob",
        "bob@example.com",
        Some("bob"),
        "Arrives by webhook",
    );
    let push = fake
        .push_event(
            "refs/heads/main",
            &"0".repeat(40),
            &sha,
            Some("pushed"),
            "alice",
        )
        .to_string();
    let (status, text) = post_webhook(
        &url,
        "push",
        "d-3",
        push.as_bytes(),
        Some(&signature(SECRET, push.as_bytes())),
    );
    assert_eq!((status, text.trim()), (202, "accepted"));
    bot.expect_allocated(&sha);
    assert!(
        !bot.log().contains(PASSWORD),
        "the password is in the log:\n{}",
        bot.log()
    );
    bot.stop();
}
