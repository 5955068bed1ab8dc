//! trainbot signed in as a GitHub App (issue 15): a JWT signed with the
//! app's key buys installation tokens; they are renewed before they expire,
//! and one GitHub refuses is replaced at once. Checked against the fake's
//! RS256 verification with the app's public key.

use std::time::Duration;

use crate::fake_github::sign_jwt;
use crate::support::{BotConfig, Sandbox, WEBHOOK_SECRET_ENV, short};
use crate::{
    APP_ID, APP_KEY as KEY, APP_KEY_ENV as KEY_ENV, Github, INSTALLATION_ID, SECRET, app_fake,
    app_keys,
};

const OTHER_KEY: &str = include_str!("../fixtures/github-app-other-key.pem");
/// The bot renews a token with less than 5 minutes left: one minted to
/// live this long is renewed a second after it is minted.
const SHORT_TTL: Duration = Duration::from_secs(5 * 60 + 1);

fn config(keys: &str) -> BotConfig {
    BotConfig {
        blocking_production: true,
        github_keys: app_keys(keys),
        ..BotConfig::default()
    }
}

/// Takes a train to production's blocking deploy step.
fn to_production(gh: &mut Github) -> String {
    let bob = gh.fake.commit(
        "main",
        "Bob",
        "bob@example.com",
        Some("bob"),
        "Make it blue",
    );
    gh.bot.expect_allocated(&bob);
    gh.bot.ask("!depart", "🚂 train #1 departs");
    gh.bot.expect("🙋 train #1");
    gh.bot.send("@alice !good");
    gh.bot.send("@bob !good");
    gh.sandbox.wait_for_file("production.pid");
    bob
}

/// The token that signed the `success` status of the production deployment
/// (the last status posted to it).
fn token_of_production_success(gh: &Github) -> String {
    let production = gh
        .fake
        .deployments()
        .into_iter()
        .find(|d| d.environment == "production")
        .expect("a production deployment");
    gh.fake.wait_for("production's success status", |st| {
        st.deployment_statuses
            .iter()
            .find(|s| s.deployment_id == production.id && s.state == "success")
            .cloned()
    });
    let route = format!("/deployments/{}/statuses", production.id);
    gh.fake.app(|app| {
        app.uses
            .iter()
            .rev()
            .find(|u| u.method == "POST" && u.path.contains(&route))
            .map(|u| u.token.clone())
            .expect("the statuses were signed with an installation token")
    })
}

#[test]
fn a_train_under_app_auth_renews_its_token_before_it_expires() {
    let fake = app_fake("web", SHORT_TTL);
    let env = [(KEY_ENV, KEY), (WEBHOOK_SECRET_ENV, SECRET)];
    let mut gh = Github::start_on(fake, config(""), &env);
    let bob = to_production(&mut gh);
    let first = gh.fake.app(|app| app.tokens[0].token.clone());
    // While production deploys, the token gets close to its end and the
    // bot (polling main) renews it.
    gh.fake.wait_for_tokens(3);
    gh.sandbox.touch("release");
    gh.bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&bob)
    ));

    let used = token_of_production_success(&gh);
    assert_ne!(used, first, "the deploy ended with a renewed token");
    assert!(
        gh.fake
            .app(|app| app.tokens.iter().any(|m| m.token == used))
    );
    gh.fake.app(|app| {
        assert!(app.refusals.is_empty(), "{:?}", app.refusals);
        // Every token was used only while it lived: the fake refuses any
        // other, and refused nothing.
        assert!(app.uses.len() > app.tokens.len(), "{}", app.uses.len());
    });
    // The installation was looked up once, with a JWT.
    assert_eq!(gh.fake.calls_to("/repos/acme/web/installation").len(), 1);
    // No token reached the chat or the log.
    let log = gh.bot.log();
    for m in gh.fake.app(|app| app.tokens.clone()) {
        assert!(!log.contains(&m.token), "{} in the log", m.token);
    }
    gh.bot.stop();
}

#[test]
fn a_token_github_refuses_is_replaced_and_the_deploy_goes_on() {
    let fake = app_fake("web", Duration::from_secs(3600));
    let env = [(KEY_ENV, KEY), (WEBHOOK_SECRET_ENV, SECRET)];
    let config = config(&format!("installation_id = {INSTALLATION_ID}"));
    let mut gh = Github::start_on(fake, config, &env);
    let bob = to_production(&mut gh);
    assert_eq!(gh.fake.app(|app| app.tokens.len()), 1);
    // GitHub now sees the token as expired (a clock that drifted).
    gh.fake.expire_tokens();
    gh.sandbox.touch("release");
    gh.bot.expect(&format!(
        "✅ train #1 deployed {} to production",
        short(&bob)
    ));

    // Calls refused together may each buy a new token (octocrab's retry
    // of a 401); the deploy ended with one of them.
    let used = token_of_production_success(&gh);
    let tokens = gh.fake.app(|app| app.tokens.clone());
    assert!(tokens.len() >= 2, "{tokens:?}");
    assert!(tokens[1..].iter().any(|t| t.token == used), "{used}");
    gh.fake.app(|app| {
        assert!(
            app.refusals
                .iter()
                .any(|r| r.message == "Bad credentials (token expired)"),
            "{:?}",
            app.refusals
        );
    });
    // The installation was named: never looked up.
    assert!(gh.fake.calls_to("/repos/acme/web/installation").is_empty());
    assert!(gh.bot.said("GitHub refused").is_empty());
    gh.bot.stop();
}

#[test]
fn a_key_that_is_not_the_apps_is_said_in_chat() {
    let fake = app_fake("web", Duration::from_secs(3600));
    let sandbox = Sandbox::new();
    let config = BotConfig {
        github: Some(fake.api_url()),
        ..config("")
    };
    let env = [(KEY_ENV, OTHER_KEY), (WEBHOOK_SECRET_ENV, SECRET)];
    let mut bot = crate::support::Bot::spawn_with_env(&sandbox.write_config(&config), &env);
    bot.expect(&format!(
        "⚠️ GitHub refused GitHub App {APP_ID}'s key: is {KEY_ENV} the private key of app {APP_ID}?"
    ));
    bot.ask("!status", "production: nothing deployed yet");
    fake.app(|app| {
        assert_eq!(app.jwts, 0);
        assert_eq!(
            app.refusals[0].message,
            "A JSON web token could not be decoded"
        );
    });
    bot.stop();
}

#[test]
fn an_app_not_installed_on_the_repository_is_said_in_chat() {
    // The fake serves acme/other: the app has no installation on acme/web.
    let fake = app_fake("other", Duration::from_secs(3600));
    let sandbox = Sandbox::new();
    let config = BotConfig {
        github: Some(fake.api_url()),
        ..config("")
    };
    let env = [(KEY_ENV, KEY), (WEBHOOK_SECRET_ENV, SECRET)];
    let mut bot = crate::support::Bot::spawn_with_env(&sandbox.write_config(&config), &env);
    bot.expect(&format!(
        "⚠️ GitHub App {APP_ID} is not installed on acme/web: install it from the app's page, \
         or set forge.github.installation_id"
    ));
    bot.stop();
}

#[test]
fn a_missing_or_unreadable_key_exits_2_naming_the_key() {
    let fake = app_fake("web", Duration::from_secs(3600));
    let sandbox = Sandbox::new();
    let config = BotConfig {
        github: Some(fake.api_url()),
        ..config("")
    };
    let path = sandbox.write_config(&config);
    let args = ["--config", path.to_str().unwrap()];
    let (status, _out, err) = crate::support::run_to_end(&args, sandbox.path());
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("forge.github.private_key_env: the environment variable TRAINBOT_TEST_APP_KEY is not set"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(fake.calls().is_empty());
}

#[test]
fn the_fake_refuses_expired_and_forged_jwts_as_github_does() {
    let fake = app_fake("web", Duration::from_secs(3600));
    let url = format!(
        "{}/app/installations/{INSTALLATION_ID}/access_tokens",
        fake.api_url()
    );
    let post = |jwt: &str| {
        let auth = format!("Bearer {jwt}");
        crate::fake_github::http("POST", &url, &[("Authorization", &auth)], b"{}")
    };
    let expired = post(&sign_jwt(KEY, APP_ID, -700, -60));
    assert_eq!(expired.status, 401);
    assert!(
        expired.body.contains("'Expiration time' claim ('exp')"),
        "{}",
        expired.body
    );
    let too_long = post(&sign_jwt(KEY, APP_ID, -60, 3600));
    assert_eq!(too_long.status, 401);
    let forged = post(&sign_jwt(OTHER_KEY, APP_ID, -60, 540));
    assert_eq!(forged.status, 401);
    assert!(
        forged.body.contains("could not be decoded"),
        "{}",
        forged.body
    );
    let good = post(&sign_jwt(KEY, APP_ID, -60, 540));
    assert_eq!(good.status, 201, "{}", good.body);
    let token = good.json()["token"].as_str().unwrap().to_string();
    assert!(good.json()["expires_at"].as_str().unwrap().ends_with('Z'));
    // The token reads the repository until it expires.
    let repo = format!("{}/repos/acme/web/branches/main", fake.api_url());
    assert_eq!(
        crate::fake_github::http_get(&repo, Some(&token)).status,
        200
    );
    fake.expire_tokens();
    assert_eq!(
        crate::fake_github::http_get(&repo, Some(&token)).status,
        401
    );
}
