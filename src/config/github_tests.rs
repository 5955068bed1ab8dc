//! GitHub publishing keys: `[forge.github] checks` and `statuses`, and
//! `[environments.NAME] url` / `[production] url` (the `environment_url` of
//! GitHub deployments).

use std::path::Path;

use super::Settings;

const GITHUB: &str =
    "[forge]\nkind = \"github\"\n[forge.github]\nowner = \"acme\"\nrepo = \"web\"\n";

fn parse(text: &str) -> Result<Settings, String> {
    Settings::parse(text, Path::new("/etc/trainbot/bot.toml")).map_err(|e| e.to_string())
}

#[test]
fn environment_urls_are_read_and_optional() {
    let text = format!(
        "{GITHUB}[train]\nenvironments = [\"staging\", \"preview\"]\n\
         [environments.staging]\nurl = \"https://staging.acme.example\"\n\
         [environments.preview]\n\
         [production]\nurl = \"https://www.acme.example\"\n"
    );
    let s = parse(&text).unwrap();
    let urls: Vec<Option<&str>> = s
        .train
        .environments
        .iter()
        .map(|e| e.url.as_deref())
        .collect();
    assert_eq!(urls, [Some("https://staging.acme.example"), None]);
    assert_eq!(
        s.production.url.as_deref(),
        Some("https://www.acme.example")
    );
    let none = parse(&format!("{GITHUB}[train]\nenvironments = []\n")).unwrap();
    assert_eq!(none.production.url, None);
}

#[test]
fn an_environment_url_must_be_http() {
    let text = format!(
        "{GITHUB}[train]\nenvironments = [\"staging\"]\n\
         [environments.staging]\nurl = \"staging.acme.example\"\n"
    );
    let err = parse(&text).unwrap_err();
    assert!(err.contains("environments.staging.url"), "{err}");
    assert!(err.contains("not an http:// or https:// URL"), "{err}");
    let text = format!("{GITHUB}[train]\nenvironments = []\n[production]\nurl = \"ftp://x\"\n");
    let err = parse(&text).unwrap_err();
    assert!(err.contains("production.url"), "{err}");
}

#[test]
fn environment_urls_need_github() {
    let text = "[train]\nenvironments = []\n[production]\nurl = \"https://www.acme.example\"\n";
    let err = parse(text).unwrap_err();
    assert!(err.contains("production.url"), "{err}");
    assert!(err.contains("need forge.kind = \"github\""), "{err}");
}

#[test]
fn branch_builds_publish_a_status_and_no_check_run_unless_asked() {
    let s = parse(&format!("{GITHUB}[train]\nenvironments = []\n")).unwrap();
    assert!(s.forge.github.statuses);
    assert!(!s.forge.github.checks);
    let text = GITHUB.replace(
        "repo = \"web\"\n",
        "repo = \"web\"\nchecks = true\nstatuses = false\n",
    );
    let s = parse(&format!("{text}[train]\nenvironments = []\n")).unwrap();
    assert!(!s.forge.github.statuses);
    assert!(s.forge.github.checks);
    let text = GITHUB.replace("repo = \"web\"\n", "repo = \"web\"\nchecks = \"yes\"\n");
    let err = parse(&format!("{text}[train]\nenvironments = []\n")).unwrap_err();
    assert!(err.contains("checks"), "{err}");
}
