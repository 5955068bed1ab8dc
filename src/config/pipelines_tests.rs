//! `[pipelines.NAME]`: defaults, key-by-key overrides, names and errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::settings::{ConfigError, Settings, StepKind, load_pipelines};

const PATH: &str = "/etc/trainbot/bot.toml";

fn parse(text: &str) -> Result<Vec<Settings>, String> {
    Settings::parse_pipelines(text, Path::new(PATH)).map_err(|err| err.to_string())
}

fn expect_ok(text: &str) -> Vec<Settings> {
    parse(text).unwrap_or_else(|err| panic!("{err}"))
}

/// The error for `text`: one line, with `line N: key: `.
fn expect_error(text: &str, key: &str, line: usize) -> String {
    let Err(err) = parse(text) else {
        panic!("expected an error for:\n{text}");
    };
    assert!(!err.contains('\n'), "not one line: {err}");
    assert!(
        err.contains(&format!("line {line}: {key}: ")),
        "want line {line}, key {key}: {err}"
    );
    err
}

fn by_name<'a>(all: &'a [Settings], name: &str) -> &'a Settings {
    all.iter()
        .find(|s| s.pipeline.name == name)
        .unwrap_or_else(|| panic!("no pipeline {name}"))
}

fn run_commands(steps: &[super::settings::Step]) -> Vec<&str> {
    steps
        .iter()
        .map(|s| match &s.kind {
            StepKind::Run(cmd) => cmd.as_str(),
            other => panic!("not a run step: {other:?}"),
        })
        .collect()
}

/// Two pipelines over shared defaults; line numbers matter to the tests.
const TWO: &str = r##"[bot]
public_url = "https://bot.example.com/"
[chat.slack]
channel = "#deploys"
[train]
schedule = "0 0 * * * *"
approval_timeout = "45m"
environments = ["staging"]
[environments.staging]
deploy = [{ run = "top-deploy" }]
acceptance = [{ run = "top-accept" }]
[roles]
ops = ["olga"]
production = ["pat"]
[pipelines.web]
[pipelines.web.chat]
channel = "#web"
[pipelines.web.train]
schedule = "0 30 9 * * Mon-Fri"
[pipelines.web.environments.staging]
deploy = [{ run = "web-deploy" }]
[pipelines.web.roles]
ops = ["wendy"]
[pipelines.api]
train.environments = ["qa"]
environments.qa.deploy = [{ run = "api-qa" }]
production.deploy = []
branch_builds.pool = "shared_1"
[production]
deploy = [{ run = "top-prod" }]
"##;

#[test]
fn pipelines_come_in_name_order_and_are_multi() {
    let all = expect_ok(TWO);
    let names: Vec<&str> = all.iter().map(|s| s.pipeline.name.as_str()).collect();
    assert_eq!(names, ["api", "web"]);
    assert!(all.iter().all(|s| s.pipeline.multi));
    let first = Settings::parse(TWO, Path::new(PATH)).unwrap();
    assert_eq!(first.pipeline.name, "api");
}

#[test]
fn train_keys_are_overridden_one_by_one() {
    let all = expect_ok(TWO);
    let web = by_name(&all, "web");
    assert_eq!(web.train.schedule_text, "0 30 9 * * Mon-Fri");
    assert_eq!(web.train.approval_timeout, Duration::from_secs(45 * 60));
    let api = by_name(&all, "api");
    assert_eq!(api.train.schedule_text, "0 0 * * * *");
    assert_eq!(api.train.approval_timeout, Duration::from_secs(45 * 60));
}

#[test]
fn environment_tables_merge_key_by_key() {
    let all = expect_ok(TWO);
    let web = &by_name(&all, "web").train.environments;
    assert_eq!(web.len(), 1);
    assert_eq!(run_commands(&web[0].deploy), ["web-deploy"]);
    assert_eq!(run_commands(&web[0].acceptance), ["top-accept"]);
    // api lists only its own qa: the top-level staging is not taken.
    let api = &by_name(&all, "api").train.environments;
    let names: Vec<&str> = api.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["qa"]);
    assert_eq!(run_commands(&api[0].deploy), ["api-qa"]);
}

#[test]
fn an_empty_step_list_in_a_pipeline_overrides_the_default() {
    let all = expect_ok(TWO);
    assert!(by_name(&all, "api").production.deploy.is_empty());
    assert_eq!(
        run_commands(&by_name(&all, "web").production.deploy),
        ["top-prod"]
    );
}

#[test]
fn channels_are_per_pipeline_or_shared() {
    let all = expect_ok(TWO);
    assert_eq!(by_name(&all, "web").chat.slack.channel, "#web");
    assert_eq!(by_name(&all, "api").chat.slack.channel, "#deploys");
}

#[test]
fn roles_are_overridden_key_by_key() {
    let all = expect_ok(TWO);
    let web = by_name(&all, "web");
    assert_eq!(web.ops, ["wendy"]);
    assert_eq!(web.production_role, Some(vec!["pat".to_string()]));
    assert_eq!(by_name(&all, "api").ops, ["olga"]);
}

#[test]
fn each_pipeline_links_to_its_own_pages() {
    let all = expect_ok(TWO);
    for s in &all {
        assert_eq!(s.bot.root_url, "https://bot.example.com");
        assert_eq!(
            s.bot.public_url,
            format!("https://bot.example.com/p/{}", s.pipeline.name)
        );
        assert_eq!(s.bot.data_dir, PathBuf::from("/etc/trainbot/trainbot-data"));
    }
}

#[test]
fn pools_are_read_and_checked() {
    let all = expect_ok(TWO);
    assert_eq!(
        by_name(&all, "api").branch_builds.pool.as_deref(),
        Some("shared_1")
    );
    assert_eq!(by_name(&all, "web").branch_builds.pool, None);
    let single = "[train]\nenvironments = []\n[branch_builds]\npool = \"Big Pool\"\n";
    let err = expect_error(single, "branch_builds.pool", 4);
    assert!(err.contains("not a pool name"), "{err}");
    expect_error(
        &TWO.replace("\"shared_1\"", "\"\""),
        "pipelines.api.branch_builds.pool",
        28,
    );
}

#[test]
fn a_single_config_is_one_pipeline_named_after_its_repository() {
    let text = "[train]\nenvironments = []\n";
    let github = format!(
        "{text}[forge]\nkind = \"github\"\n[forge.github]\nowner = \"acme\"\nrepo = \"shop\"\n"
    );
    let all = expect_ok(&github);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].pipeline.name, "shop");
    assert!(!all[0].pipeline.multi);
    assert_eq!(all[0].bot.public_url, all[0].bot.root_url);

    let git = format!("{text}[forge.git]\npath = \"../repo\"\n");
    let s = Settings::parse(&git, Path::new("/nonexistent/conf/bot.toml")).unwrap();
    assert_eq!(s.pipeline.name, "repo");
    // An existing path is resolved, so ".." names the directory it means.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let git = format!("{text}[forge.git]\npath = \"..\"\n");
    let s = Settings::parse(&git, &manifest.join("src/config/bot.toml")).unwrap();
    assert_eq!(s.pipeline.name, "src");
}

#[test]
fn load_pipelines_reads_the_file() {
    let path = std::env::temp_dir().join(format!("trainbot-pipelines-{}.toml", std::process::id()));
    std::fs::write(&path, TWO).unwrap();
    let loaded = load_pipelines(&path);
    std::fs::remove_file(&path).unwrap();
    let names: Vec<String> = loaded
        .unwrap()
        .into_iter()
        .map(|s| s.pipeline.name)
        .collect();
    assert_eq!(names, ["api", "web"]);
    let missing = load_pipelines(Path::new("/nonexistent/bot.toml"));
    assert!(matches!(missing, Err(ConfigError::Read { .. })));
}

#[test]
fn a_bad_value_in_a_pipeline_names_the_pipeline_key() {
    let text = TWO.replace(
        "schedule = \"0 30 9 * * Mon-Fri\"",
        "approval_timeout = \"soon\"",
    );
    let err = expect_error(&text, "pipelines.web.train.approval_timeout", 19);
    assert!(err.contains("is not a duration"), "{err}");
    let text = TWO.replace("channel = \"#web\"", "channel = \"\"");
    expect_error(&text, "pipelines.web.chat.channel", 17);
}

#[test]
fn an_inherited_bad_value_names_the_top_level_key() {
    let text = TWO.replace("approval_timeout = \"45m\"", "approval_timeout = \"soon\"");
    let err = expect_error(&text, "train.approval_timeout", 7);
    assert!(!err.contains("pipelines."), "{err}");
}

#[test]
fn unknown_keys_in_a_pipeline_name_their_key_and_line() {
    for (extra, key) in [
        (
            "[pipelines.web.bot]\ndata_dir = \"x\"\n",
            "pipelines.web.bot",
        ),
        (
            "[pipelines.web.chat]\nadapter = \"slack\"\n",
            "pipelines.web.chat.adapter",
        ),
        (
            "[pipelines.web.people]\n\"a@b.c\" = \"U1\"\n",
            "pipelines.web.people",
        ),
        ("[pipelines.web.web]\npublic = true\n", "pipelines.web.web"),
        (
            "[pipelines.web.train]\nschedul = \"x\"\n",
            "pipelines.web.train.schedul",
        ),
    ] {
        let text = format!("[train]\nenvironments = []\n{extra}");
        let line = if key == "pipelines.web.chat.adapter" || key.ends_with("schedul") {
            4
        } else {
            3
        };
        let err = expect_error(&text, key, line);
        assert!(err.contains("unknown field"), "{err}");
    }
}

#[test]
fn a_bad_pipeline_name_is_an_error() {
    for name in ["Web", "-web", "\"web.app\"", "\"w b\"", "\"\""] {
        let text = format!("[train]\nenvironments = []\n[pipelines.{name}]\n");
        let shown = name.trim_matches('"');
        let err = expect_error(&text, &format!("pipelines.{shown}"), 3);
        assert!(err.contains("not a pipeline name"), "{err}");
    }
    expect_ok("[train]\nenvironments = []\n[pipelines.web-2_x]\n[pipelines.9]\n");
}

#[test]
fn an_empty_pipelines_table_is_an_error() {
    let err = expect_error("[train]\nenvironments = []\n[pipelines]\n", "pipelines", 3);
    assert!(err.contains("is empty"), "{err}");
}

#[test]
fn a_listed_environment_without_a_table_names_the_pipeline() {
    let text = TWO.replace(
        "train.environments = [\"qa\"]",
        "train.environments = [\"qa\", \"uat\"]",
    );
    let err = expect_error(&text, "pipelines.api.train.environments", 25);
    assert!(err.contains("\"uat\" has no"), "{err}");
    // The default list, with no line to point at, is still the pipeline's.
    let text = "[train]\nenvironments = []\n[pipelines.web.train]\nschedule = \"@hourly\"\n[pipelines.api.forge]\nmain_branch = \"trunk\"\n";
    expect_ok(text);
    let Err(err) = parse("[pipelines.web]\n") else {
        panic!("the default environments have no tables")
    };
    assert!(
        err.contains(": pipelines.web.train.environments: defaults to"),
        "{err}"
    );
}

#[test]
fn the_top_level_need_not_be_a_whole_pipeline() {
    let text = "[pipelines.web.train]\nenvironments = [\"qa\"]\n[pipelines.web.environments.qa]\n";
    let all = expect_ok(text);
    assert_eq!(all[0].train.environments[0].name, "qa");
}

#[test]
fn a_default_environment_table_no_pipeline_lists_is_an_error() {
    let text = "[environments.uat]\n[pipelines.web.train]\nenvironments = []\n";
    let err = expect_error(text, "environments.uat", 1);
    assert!(err.contains("not listed in any pipeline"), "{err}");
}

#[test]
fn a_pipeline_table_it_does_not_list_names_the_pipeline() {
    let text = TWO.replace(
        "production.deploy = []",
        "production.deploy = []\nenvironments.zz.deploy = []",
    );
    let err = expect_error(&text, "pipelines.api.environments.zz", 28);
    assert!(err.contains("not listed in train.environments"), "{err}");
}

#[test]
fn the_secrets_of_every_http_step_url_are_registered() {
    let text = TWO.replace(
        "acceptance = [{ run = \"top-accept\" }]",
        "acceptance = [{ http = \"https://ci:cfg-pw-4417@ci.example/hook?token=cfg-tok-8832\" }]",
    );
    for settings in expect_ok(&text) {
        settings.register_secrets();
    }
    assert_eq!(
        crate::secrets::mask("pw cfg-pw-4417 token cfg-tok-8832"),
        "pw *** token ***"
    );
}

#[test]
fn web_access_is_top_level_and_shared_by_every_pipeline() {
    let text = format!(
        "[bot]\nhttp_listen = \"0.0.0.0:8080\"\nwebhook_listen = \"0.0.0.0:9000\"\n[web]\npassword_env = \"PW\"\n{}",
        &TWO[TWO.find("[chat.slack]").unwrap()..]
    );
    for s in expect_ok(&text) {
        assert_eq!(s.web.password_env.as_deref(), Some("PW"));
        assert_eq!(s.bot.webhook_listen.unwrap().to_string(), "0.0.0.0:9000");
    }
    let open = format!(
        "[bot]\nhttp_listen = \"0.0.0.0:8080\"\n{}",
        &TWO[TWO.find("[chat.slack]").unwrap()..]
    );
    let err = expect_error(&open, "bot.http_listen", 2);
    assert!(!err.contains("pipelines."), "{err}");
}

#[test]
fn reminders_and_escalation_are_off_by_default_and_set_per_pipeline() {
    let all = expect_ok(TWO);
    let web = by_name(&all, "web");
    assert_eq!(web.train.remind_after, None);
    assert_eq!(web.train.escalate_after, None);
    let text = TWO
        .replace(
            "approval_timeout = \"45m\"\n",
            "approval_timeout = \"45m\"\nremind_after = \"10m\"\nescalate_after = \"20m\"\n",
        )
        .replace(
            "schedule = \"0 30 9 * * Mon-Fri\"\n",
            "schedule = \"0 30 9 * * Mon-Fri\"\nremind_after = \"0s\"\nescalate_after = \"15m\"\n",
        );
    let all = expect_ok(&text);
    let web = by_name(&all, "web");
    assert_eq!(web.train.remind_after, None, "\"0s\" turns it off");
    assert_eq!(web.train.escalate_after, Some(Duration::from_secs(15 * 60)));
    let api = by_name(&all, "api");
    assert_eq!(api.train.remind_after, Some(Duration::from_secs(10 * 60)));
    assert_eq!(api.train.escalate_after, Some(Duration::from_secs(20 * 60)));
    let bad = TWO.replace(
        "approval_timeout = \"45m\"\n",
        "approval_timeout = \"45m\"\nremind_after = \"often\"\n",
    );
    expect_error(&bad, "train.remind_after", 8);
}

#[test]
fn on_veto_is_per_pipeline_and_a_bad_value_names_its_key_and_line() {
    use crate::domain::eject::OnVeto;
    let text = TWO.replace(
        "schedule = \"0 30 9 * * Mon-Fri\"",
        "schedule = \"0 30 9 * * Mon-Fri\"\non_veto = \"eject\"",
    );
    let all = expect_ok(&text);
    assert_eq!(by_name(&all, "web").train.on_veto, OnVeto::Eject);
    assert_eq!(by_name(&all, "api").train.on_veto, OnVeto::Stop);
    let text = TWO.replace("schedule = \"0 30 9 * * Mon-Fri\"", "on_veto = \"revert\"");
    let err = expect_error(&text, "pipelines.web.train.on_veto", 19);
    assert!(err.contains("\"stop\" or \"eject\""), "{err}");
}
