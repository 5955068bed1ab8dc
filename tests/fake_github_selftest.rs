//! The fake GitHub itself: the wire contract end-to-end tests rely on,
//! driven with the same blocking std::net client the tests use.

#[path = "support/fake_github.rs"]
mod fake_github;

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

use fake_github::{FakeGithub, HttpReply, http, http_get, post_webhook, signature};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_fake_token_5b1e";

fn start() -> FakeGithub {
    FakeGithub::start("acme", "web", TOKEN)
}

fn get(fake: &FakeGithub, route: &str) -> HttpReply {
    http_get(&format!("{}{route}", fake.api_url()), Some(TOKEN))
}

fn post(fake: &FakeGithub, route: &str, body: &Value) -> HttpReply {
    let auth = format!("token {TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let url = format!("{}{route}", fake.api_url());
    http("POST", &url, &headers, body.to_string().as_bytes())
}

fn shas(commits: &Value) -> Vec<&str> {
    commits
        .as_array()
        .expect("an array of commits")
        .iter()
        .map(|c| c["sha"].as_str().expect("a sha"))
        .collect()
}

#[test]
fn compare_lists_commits_oldest_first_with_status_ahead() {
    let fake = start();
    let base = fake.head("main");
    let first = fake.commit(
        "main",
        "Bob",
        "bob@example.com",
        Some("bob"),
        "Make the widget blue",
    );
    let second = fake.commit("main", "Carol", "carol@example.com", None, "Fix the widget");

    let reply = get(&fake, &format!("/repos/acme/web/compare/{base}...main"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let compare = reply.json();
    assert_eq!(compare["status"], "ahead");
    assert_eq!(compare["ahead_by"], 2);
    assert_eq!(compare["behind_by"], 0);
    assert_eq!(compare["total_commits"], 2);
    assert_eq!(shas(&compare["commits"]), [first.as_str(), second.as_str()]);
    assert_eq!(compare["commits"][0]["author"]["login"], "bob");
    assert_eq!(compare["commits"][1]["author"], Value::Null);
    assert_eq!(compare["commits"][1]["parents"][0]["sha"], first.as_str());

    let page2 = get(
        &fake,
        &format!("/repos/acme/web/compare/{base}...{second}?per_page=1&page=2"),
    );
    assert_eq!(shas(&page2.json()["commits"]), [second.as_str()]);
    let back = get(
        &fake,
        &format!("/repos/acme/web/compare/{second}...{}", &base[..7]),
    )
    .json();
    assert_eq!(
        (back["status"].as_str(), back["behind_by"].as_u64()),
        (Some("behind"), Some(2))
    );

    let listed = get(&fake, "/repos/acme/web/commits?sha=main&per_page=2");
    assert_eq!(shas(&listed.json()), [second.as_str(), first.as_str()]);
    assert!(
        listed
            .header("link")
            .is_some_and(|l| l.contains("rel=\"next\""))
    );
}

#[test]
fn refs_resolve_by_prefix_branch_and_tag() {
    let fake = start();
    let sha = fake.commit(
        "release/1.2",
        "Bob",
        "bob@example.com",
        Some("bob"),
        "Ship it",
    );
    fake.tag("v1.2.0", &sha);
    for r in [&sha[..6], "release/1.2", "v1.2.0"] {
        let reply = get(&fake, &format!("/repos/acme/web/commits/{r}"));
        assert_eq!(reply.status, 200, "{r}: {}", reply.body);
        assert_eq!(reply.json()["commit"]["message"], "Ship it");
    }
    let branch = get(&fake, "/repos/acme/web/branches/release/1.2").json();
    assert_eq!(branch["commit"]["sha"], sha.as_str());
    let tags = get(&fake, "/repos/acme/web/tags").json();
    assert_eq!(
        tags,
        json!([{"name": "v1.2.0", "commit": tags[0]["commit"]}])
    );
    let one = get(&fake, "/repos/acme/web/git/ref/tags/v1.2.0").json();
    assert_eq!(one["ref"], "refs/tags/v1.2.0");
    assert_eq!(
        one["object"],
        json!({"type": "commit", "sha": sha, "url": one["object"]["url"]})
    );
    fake.delete_tag("v1.2.0");
    let gone = get(&fake, "/repos/acme/web/git/ref/tags/v1.2.0");
    assert_eq!(gone.status, 404);
    let missing = get(&fake, "/repos/acme/web/commits/deadbeef");
    assert_eq!(missing.status, 422);
    assert_eq!(
        missing.json()["message"],
        "No commit found for SHA: deadbeef"
    );
}

#[test]
fn a_commit_lists_its_files_with_their_patches_page_by_page() {
    let fake = start();
    let files = vec![
        fake_github::ChangedFile::modified("a.rs", &["old"], &["new", "newer"]),
        fake_github::ChangedFile {
            filename: "logo.png".into(),
            status: "modified".into(),
            patch: None,
        },
    ];
    let sha = fake.commit_with_files("main", "Bob", "bob@example.com", None, "Edit", files);

    let commit = get(&fake, &format!("/repos/acme/web/commits/{sha}")).json();
    assert_eq!(commit["sha"], sha.as_str());
    assert_eq!(
        commit["stats"],
        json!({"additions": 2, "deletions": 1, "total": 3})
    );
    let a = &commit["files"][0];
    assert_eq!(
        (
            &a["filename"],
            &a["status"],
            &a["additions"],
            &a["deletions"]
        ),
        (&json!("a.rs"), &json!("modified"), &json!(2), &json!(1))
    );
    assert_eq!(a["patch"], "@@ -1,2 +1,3 @@\n context\n-old\n+new\n+newer");
    // GitHub leaves the patch out for a binary file.
    assert_eq!(commit["files"][1]["filename"], "logo.png");
    assert!(commit["files"][1].get("patch").is_none());

    let page = |n: u32| {
        let route = format!("/repos/acme/web/commits/{sha}?per_page=1&page={n}");
        get(&fake, &route).json()["files"].clone()
    };
    assert_eq!(page(2)[0]["filename"], "logo.png");
    assert_eq!(page(3), json!([]));
}

#[test]
fn unknown_branch_and_repo_are_404() {
    let fake = start();
    let reply = get(&fake, "/repos/acme/web/branches/nope");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json(), json!({"message": "Branch not found"}));
    assert_eq!(get(&fake, "/repos/acme/other").status, 404);
    assert_eq!(
        get(&fake, "/repos/acme/web").json()["default_branch"],
        "main"
    );
}

#[test]
fn bad_token_is_401() {
    let fake = start();
    let url = format!("{}/repos/acme/web", fake.api_url());
    for token in [Some("ghp_wrong"), None] {
        let reply = http_get(&url, token);
        assert_eq!(reply.status, 401);
        assert_eq!(reply.json(), json!({"message": "Bad credentials"}));
    }
    assert_eq!(fake.calls_to("/repos/acme/web").len(), 2);
}

#[test]
fn dispatch_creates_a_run_that_completes_after_polls() {
    let fake = start();
    fake.set_workflow_outcome("deploy.yml", "failure");
    let head = fake.head("main");
    let body = json!({"ref": "main", "inputs": {"environment": "staging"}});
    let reply = post(
        &fake,
        "/repos/acme/web/actions/workflows/deploy.yml/dispatches",
        &body,
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(
        fake.wait_for_dispatch("deploy.yml").inputs["environment"],
        "staging"
    );

    let route = format!(
        "/repos/acme/web/actions/workflows/deploy.yml/runs?event=workflow_dispatch&head_sha={head}&per_page=10"
    );
    let runs = get(&fake, &route).json();
    assert_eq!(runs["total_count"], 1);
    let run = &runs["workflow_runs"][0];
    assert_eq!(
        (run["status"].as_str(), &run["conclusion"]),
        (Some("queued"), &Value::Null)
    );
    assert_eq!(run["head_sha"], head.as_str());
    assert!(run["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let id = run["id"].as_u64().expect("run id");
    assert_eq!(
        run["html_url"],
        format!("{}/acme/web/actions/runs/{id}", fake.api_url())
    );

    let poll = || get(&fake, &format!("/repos/acme/web/actions/runs/{id}")).json();
    assert_eq!(poll()["status"], "in_progress");
    let done = poll();
    assert_eq!(
        (done["status"].as_str(), done["conclusion"].as_str()),
        (Some("completed"), Some("failure"))
    );
    assert_eq!(poll()["status"], "completed");
}

#[test]
fn statuses_and_deployments_are_recorded() {
    let fake = start();
    let sha = fake.head("main");
    let status = json!({"state": "pending", "target_url": "http://bot/t/1", "description": "train #1", "context": "trainbot/train"});
    assert_eq!(
        post(&fake, &format!("/repos/acme/web/statuses/{sha}"), &status).status,
        201
    );
    fake.wait_for_status(&sha, "trainbot/train", "pending");

    let deploy =
        json!({"ref": sha, "environment": "staging", "auto_merge": false, "required_contexts": []});
    let created = post(&fake, "/repos/acme/web/deployments", &deploy);
    assert_eq!(created.status, 201);
    let id = created.json()["id"].as_u64().expect("deployment id");
    let d = &fake.deployments()[0];
    assert_eq!(
        (d.id, d.auto_merge, d.required_contexts.clone()),
        (id, false, Some(vec![]))
    );

    let state = json!({"state": "success", "log_url": "http://bot/log"});
    let route = format!("/repos/acme/web/deployments/{id}/statuses");
    assert_eq!(post(&fake, &route, &state).status, 201);
    assert_eq!(fake.wait_for_deployment_status("success").deployment_id, id);
    let unknown = post(&fake, "/repos/acme/web/deployments/999/statuses", &state);
    assert_eq!(unknown.status, 404);
}

#[test]
fn fail_next_answers_500_once_then_normally() {
    let fake = start();
    fake.fail_next("/branches/main", 500, 1);
    let first = get(&fake, "/repos/acme/web/branches/main");
    assert_eq!(first.status, 500);
    assert_eq!(first.json(), json!({"message": "injected"}));
    assert_eq!(get(&fake, "/repos/acme/web/branches/main").status, 200);
    let statuses: Vec<u16> = fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [500, 200]);
}

#[test]
fn webhooks_are_signed_like_githubs_example() {
    // From GitHub's "Validating webhook deliveries".
    assert_eq!(
        signature("It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    let fake = start();
    let head = fake.head("main");
    let zero = "0".repeat(40);
    let event = fake.push_event(
        "refs/heads/main",
        &zero,
        &head,
        Some("initial commit"),
        "alice",
    );
    assert_eq!(event["created"], true);
    assert_eq!(event["head_commit"]["author"]["username"], "alice");
    assert_eq!(event["repository"]["full_name"], "acme/web");

    // The client sends the body whole: the fake's deploy-hook route takes
    // it (hooks need no token) and records it.
    let body = event.to_string();
    let url = format!("{}/hooks/github", fake.api_url());
    let sig = signature("s3cret", body.as_bytes());
    let (status, answer) = post_webhook(&url, "push", "d-1", body.as_bytes(), Some(&sig));
    assert_eq!(
        (status, answer.contains("\"ok\":true")),
        (200, true),
        "{answer}"
    );
    assert_eq!(fake.wait_for_call("/hooks/github").body, event);
}

#[test]
fn a_get_whose_etag_matches_is_304_and_costs_no_rate_limit() {
    let fake = start();
    let url = format!("{}/repos/acme/web/branches/main", fake.api_url());
    let first = get(&fake, "/repos/acme/web/branches/main");
    assert_eq!(first.status, 200, "{}", first.body);
    let etag = first.header("etag").expect("an ETag").to_string();
    assert_eq!(first.header("x-ratelimit-limit"), Some("5000"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("4999"));
    let auth = format!("Bearer {TOKEN}");
    let conditional = |etag: &str| {
        http(
            "GET",
            &url,
            &[("Authorization", auth.as_str()), ("If-None-Match", etag)],
            b"",
        )
    };
    let again = conditional(&etag);
    assert_eq!((again.status, again.body.as_str()), (304, ""));
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(again.header("x-ratelimit-remaining"), Some("4999"));
    assert_eq!(conditional(&format!("W/{etag}")).status, 304);
    // A new commit is a new body, a new ETag, and paid for.
    fake.commit("main", "Bob", "bob@example.com", None, "Move main");
    let moved = conditional(&etag);
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_ne!(moved.header("etag"), Some(etag.as_str()));
    assert_eq!(moved.header("x-ratelimit-remaining"), Some("4998"));
    assert_eq!(fake.spent_on("/branches/main"), 2);
    assert_eq!(fake.not_modified_on("/branches/main"), 2);
}

#[test]
fn matching_refs_list_the_tags_under_a_prefix_sorted() {
    let fake = start();
    let sha = fake.head("main");
    fake.tag("v2", &sha);
    fake.tag("v10", &sha);
    fake.tag("rc1", &sha);
    let reply = get(&fake, "/repos/acme/web/git/matching-refs/tags/");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let refs = reply.json();
    let names: Vec<&str> = refs
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["ref"].as_str().expect("a ref"))
        .collect();
    assert_eq!(names, ["refs/tags/rc1", "refs/tags/v10", "refs/tags/v2"]);
    assert_eq!(refs[0]["object"]["type"], "commit");
    assert_eq!(refs[0]["object"]["sha"], sha.as_str());
    let v = get(&fake, "/repos/acme/web/git/matching-refs/tags/v");
    assert_eq!(v.json().as_array().map(Vec::len), Some(2));
    let none = get(&fake, "/repos/acme/web/git/matching-refs/tags/x");
    assert_eq!(none.json(), json!([]));
}
