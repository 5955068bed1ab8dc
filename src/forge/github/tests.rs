//! The GitHub forge against wiremock on 127.0.0.1, speaking the wire
//! contract the fake GitHub of the end-to-end tests speaks too.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{bearer_token, body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const TOKEN: &str = "ghp_secret_token_123";
const REPO: &str = "/repos/acme/web";

fn sha_of(n: u32) -> String {
    format!("{n:040x}")
}

async fn setup() -> (MockServer, GithubForge) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = MockServer::start().await;
    let forge = forge_at(&server.uri());
    (server, forge)
}

fn forge_at(api_url: &str) -> GithubForge {
    let settings = GithubSettings {
        owner: "acme".into(),
        repo: "web".into(),
        token_env: "GITHUB_TOKEN".into(),
        webhook_secret_env: "GITHUB_WEBHOOK_SECRET".into(),
        api_url: api_url.into(),
        checks: false,
        statuses: true,
        auth: crate::config::GithubAuth::Token,
    };
    GithubForge::new(&settings, "main", secrecy::SecretString::from(TOKEN))
        .unwrap()
        .with_backoff(Duration::from_millis(1))
}

async fn mock(server: &MockServer, verb: &str, route: &str, status: u16, body: Value) {
    Mock::given(method(verb))
        .and(path(format!("{REPO}{route}")))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

fn commit_json(n: u32, login: Option<&str>, message: &str) -> Value {
    json!({
        "sha": sha_of(n),
        "commit": {"author": {"name": format!("Dev {n}"), "email": format!("dev{n}@example.com")},
                   "message": message},
        "author": login.map(|l| json!({"login": l})),
        "parents": [{"sha": sha_of(n - 1)}],
    })
}

/// The repository itself answers: a 404 under it is about the thing asked.
async fn visible(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(REPO))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"full_name": "acme/web"})))
        .mount(server)
        .await;
}

/// The JSON bodies of the requests the server saw, in order.
async fn bodies(server: &MockServer) -> Vec<Value> {
    let requests = server.received_requests().await.unwrap();
    requests.iter().map(|r| r.body_json().unwrap()).collect()
}

#[tokio::test]
async fn branch_heads_are_read_and_a_missing_branch_is_none() {
    let (server, forge) = setup().await;
    let body = json!({"name": "main", "commit": {"sha": sha_of(7)}});
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/branches/main")))
        .and(bearer_token(TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let feature = json!({"name": "feature/x", "commit": {"sha": sha_of(8)}});
    mock(&server, "GET", "/branches/feature/x", 200, feature).await;
    mock(
        &server,
        "GET",
        "/branches/gone",
        404,
        json!({"message": "Branch not found"}),
    )
    .await;

    let main = forge.main_head().await.unwrap().unwrap();
    assert_eq!(main.as_str(), sha_of(7));
    let head = forge.branch_head(&"feature/x".parse().unwrap()).await;
    assert_eq!(head.unwrap().unwrap().as_str(), sha_of(8));
    assert_eq!(forge.branch_head(&"gone".parse().unwrap()).await, Ok(None));
}

#[tokio::test]
async fn commits_since_a_base_page_through_compare_oldest_first() {
    let (server, mut forge) = setup().await;
    forge.page_size = 2;
    let route = format!("{REPO}/compare/{}...{}", sha_of(1), sha_of(4));
    let page = |n: &str, commits: Vec<Value>| {
        let body = json!({"status": "ahead", "ahead_by": 3, "behind_by": 0,
                          "total_commits": 3, "commits": commits});
        Mock::given(method("GET"))
            .and(path(route.clone()))
            .and(query_param("per_page", "2"))
            .and(query_param("page", n))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .expect(1)
    };
    let first = commit_json(2, Some("alice"), "Fix the thing\n\nBecause.\n");
    let second = commit_json(3, None, "Revert \"Fix the thing\"");
    page("1", vec![first, second]).mount(&server).await;
    page("2", vec![commit_json(4, Some("bob"), "Last")])
        .mount(&server)
        .await;

    let base = Sha::new(&sha_of(1)).unwrap();
    let head = Sha::new(&sha_of(4)).unwrap();
    let commits = forge.commits(Some(&base), &head).await.unwrap();
    assert_eq!(
        commits[0],
        Commit {
            sha: Sha::new(&sha_of(2)).unwrap(),
            author_name: "Dev 2".into(),
            author_email: "dev2@example.com".into(),
            author_login: Some("alice".into()),
            subject: "Fix the thing".into(),
            message: "Fix the thing\n\nBecause.".into(),
        }
    );
    assert_eq!(commits[1].author_login, None);
    assert_eq!(commits[1].subject, "Revert \"Fix the thing\"");
    let shas: Vec<_> = commits.iter().map(|c| c.sha.to_string()).collect();
    assert_eq!(shas, [sha_of(2), sha_of(3), sha_of(4)]);
}

#[tokio::test]
async fn a_long_compare_keeps_the_newest_commits_and_skips_old_pages() {
    let (server, mut forge) = setup().await;
    forge.page_size = 2;
    forge.commit_cap = 3;
    let route = format!("{REPO}/compare/{}...{}", sha_of(1), sha_of(6));
    for (n, shas) in [("1", [2, 3]), ("2", [4, 5]), ("3", [6, 0])] {
        let commits: Vec<_> = shas
            .iter()
            .filter(|&&s| s > 0)
            .map(|&s| commit_json(s, None, "c"))
            .collect();
        let body = json!({"status": "ahead", "total_commits": 5, "commits": commits});
        Mock::given(method("GET"))
            .and(path(route.clone()))
            .and(query_param("page", n))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    let base = Sha::new(&sha_of(1)).unwrap();
    let head = Sha::new(&sha_of(6)).unwrap();
    let commits = forge.commits(Some(&base), &head).await.unwrap();
    let shas: Vec<_> = commits.iter().map(|c| c.sha.to_string()).collect();
    assert_eq!(shas, [sha_of(4), sha_of(5), sha_of(6)]);
}

#[tokio::test]
async fn commits_without_a_base_list_history_oldest_first() {
    let (server, forge) = setup().await;
    let newest_first = json!([commit_json(3, None, "c3"), commit_json(2, None, "c2")]);
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/commits")))
        .and(query_param("sha", sha_of(3)))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(newest_first))
        .expect(1)
        .mount(&server)
        .await;
    let head = Sha::new(&sha_of(3)).unwrap();
    let subjects: Vec<_> = forge
        .commits(None, &head)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.subject)
        .collect();
    assert_eq!(subjects, ["c2", "c3"]);
}

#[tokio::test]
async fn short_shas_resolve_only_on_main() {
    let (server, forge) = setup().await;
    let (on_main, off_main) = (sha_of(0xaaa0001), sha_of(0xbbb0002));
    mock(
        &server,
        "GET",
        "/commits/000000aaa0001",
        200,
        json!({"sha": on_main}),
    )
    .await;
    mock(
        &server,
        "GET",
        "/commits/000000bbb0002",
        200,
        json!({"sha": off_main}),
    )
    .await;
    mock(
        &server,
        "GET",
        "/commits/1234567",
        422,
        json!({"message": "No commit found"}),
    )
    .await;
    let ahead = json!({"status": "ahead", "total_commits": 2, "commits": []});
    mock(
        &server,
        "GET",
        &format!("/compare/{on_main}...main"),
        200,
        ahead,
    )
    .await;
    let diverged = json!({"status": "diverged", "total_commits": 1, "commits": []});
    mock(
        &server,
        "GET",
        &format!("/compare/{off_main}...main"),
        200,
        diverged,
    )
    .await;

    let p: ShaPrefix = "000000aaa0001".parse().unwrap();
    assert_eq!(forge.resolve_on_main(&p).await.unwrap().as_str(), on_main);
    let p: ShaPrefix = "000000bbb0002".parse().unwrap();
    assert_eq!(
        forge.resolve_on_main(&p).await,
        Err(ForgeError::NotOnMain("000000bbb0002".into()))
    );
    let p: ShaPrefix = "1234567".parse().unwrap();
    assert_eq!(
        forge.resolve_on_main(&p).await,
        Err(ForgeError::NotFound("1234567".into()))
    );
}

#[tokio::test]
async fn parents_ref_shas_and_tags_are_read() {
    let (server, forge) = setup().await;
    mock(
        &server,
        "GET",
        &format!("/commits/{}", sha_of(5)),
        200,
        commit_json(5, None, "m"),
    )
    .await;
    let root = json!({"sha": sha_of(1), "commit": {"message": "root"}, "parents": []});
    mock(
        &server,
        "GET",
        &format!("/commits/{}", sha_of(1)),
        200,
        root,
    )
    .await;
    mock(
        &server,
        "GET",
        "/commits/release/1.0",
        200,
        json!({"sha": sha_of(9)}),
    )
    .await;
    mock(
        &server,
        "GET",
        "/commits/nope",
        404,
        json!({"message": "Not Found"}),
    )
    .await;
    let tags = json!([
        {"ref": "refs/tags/v1.0", "node_id": "R1", "url": "u",
         "object": {"type": "commit", "sha": sha_of(9), "url": "u"}},
        {"ref": "refs/tags/v2.0", "node_id": "R2", "url": "u",
         "object": {"type": "tag", "sha": sha_of(100), "url": "u"}},
        {"ref": "refs/tags/tree", "node_id": "R3", "url": "u",
         "object": {"type": "tree", "sha": sha_of(101), "url": "u"}},
    ]);
    mock(&server, "GET", "/git/matching-refs/tags/", 200, tags).await;
    let annotated = json!({"sha": sha_of(100), "tagger": {"name": "Ann"},
                           "object": {"type": "commit", "sha": sha_of(8)}});
    mock(
        &server,
        "GET",
        &format!("/git/tags/{}", sha_of(100)),
        200,
        annotated,
    )
    .await;

    let five = Sha::new(&sha_of(5)).unwrap();
    assert_eq!(
        forge.parent(&five).await.unwrap().unwrap().as_str(),
        sha_of(4)
    );
    assert_eq!(forge.parent(&Sha::new(&sha_of(1)).unwrap()).await, Ok(None));
    assert_eq!(
        forge.ref_sha("release/1.0").await.unwrap().as_str(),
        sha_of(9)
    );
    visible(&server).await;
    assert_eq!(
        forge.ref_sha("nope").await,
        Err(ForgeError::Refused(
            "branch or tag nope not found in acme/web".into()
        ))
    );
    let tags = forge.tags().await.unwrap();
    assert_eq!(
        tags,
        [
            TagRef {
                name: "v1.0".into(),
                sha: Sha::new(&sha_of(9)).unwrap(),
                pushed_by: None
            },
            TagRef {
                name: "v2.0".into(),
                sha: Sha::new(&sha_of(8)).unwrap(),
                pushed_by: None
            }
        ]
    );
}

/// Mounts `route` answering `body` with an ETag and the rate limit, and
/// 304 to a request whose `If-None-Match` is that ETag.
async fn mock_conditional(server: &MockServer, route: &str, etag: &str, body: Value) {
    let rate = |t: ResponseTemplate| {
        t.insert_header("x-ratelimit-limit", "5000")
            .insert_header("x-ratelimit-remaining", "4990")
            .insert_header("etag", etag)
    };
    Mock::given(method("GET"))
        .and(path(format!("{REPO}{route}")))
        .and(wiremock::matchers::header("if-none-match", etag))
        .respond_with(rate(ResponseTemplate::new(304)))
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}{route}")))
        .respond_with(rate(ResponseTemplate::new(200).set_body_json(body)))
        .with_priority(2)
        .mount(server)
        .await;
}

/// The ETag each polled GET last got, as sent on the requests to `route`.
async fn if_none_match(server: &MockServer, route: &str) -> Vec<Option<String>> {
    let requests = server.received_requests().await.unwrap();
    requests
        .iter()
        .filter(|r| r.url.path() == format!("{REPO}{route}"))
        .map(|r| {
            r.headers
                .get("if-none-match")
                .map(|v| v.to_str().unwrap().to_string())
        })
        .collect()
}

#[tokio::test]
async fn polled_heads_and_tags_are_asked_conditionally_and_a_304_is_the_last_answer() {
    let (server, forge) = setup().await;
    let stats = Arc::new(ApiStats::default());
    let forge = forge.with_stats(stats.clone());
    let etag = "\"b1\"";
    let main = json!({"name": "main", "commit": {"sha": sha_of(7)}});
    mock_conditional(&server, "/branches/main", etag, main).await;
    let tags = json!([
        {"ref": "refs/tags/v1", "object": {"type": "commit", "sha": sha_of(9)}},
        {"ref": "refs/tags/v2", "object": {"type": "tag", "sha": sha_of(100)}},
    ]);
    mock_conditional(&server, "/git/matching-refs/tags/", "W/\"t1\"", tags).await;
    let annotated = json!({"object": {"type": "commit", "sha": sha_of(8)}});
    mock(
        &server,
        "GET",
        &format!("/git/tags/{}", sha_of(100)),
        200,
        annotated,
    )
    .await;

    let first = (forge.main_head().await, forge.tags().await);
    let second = (forge.main_head().await, forge.tags().await);
    assert_eq!(first.0, Ok(Some(Sha::new(&sha_of(7)).unwrap())));
    assert_eq!(first.1.as_ref().map(Vec::len), Ok(2));
    assert_eq!(first, second);
    assert_eq!(
        if_none_match(&server, "/branches/main").await,
        [None, Some(etag.to_string())]
    );
    assert_eq!(
        if_none_match(&server, "/git/matching-refs/tags/").await,
        [None, Some("W/\"t1\"".to_string())]
    );
    // The annotated tag was peeled once; the 304 needed no new request.
    let peels = if_none_match(&server, &format!("/git/tags/{}", sha_of(100))).await;
    assert_eq!(peels.len(), 1);
    // Three answers (head, tags, peel), two 304s; the rate limit as told.
    assert_eq!(stats.requests(), (3, 2, 0));
    assert_eq!(stats.rate_limit(), Some((4990, 5000)));
}

/// `GET /commits/{sha}` as GitHub answers it: the commit with `stats` and
/// `files`, each file with its unified diff hunks in `patch`.
fn commit_with_files(n: u32, message: &str, files: Value) -> Value {
    let mut commit = commit_json(n, None, message);
    commit["stats"] = json!({"additions": 1, "deletions": 1, "total": 2});
    commit["files"] = files;
    commit
}

fn file_json(n: u32, filename: &str, patch: &str) -> Value {
    let blob = format!("https://github.com/acme/web/blob/{}/{filename}", sha_of(n));
    json!({
        "sha": sha_of(100 + n), "filename": filename, "status": "modified",
        "additions": 1, "deletions": 1, "changes": 2,
        "blob_url": blob, "raw_url": blob.replace("/blob/", "/raw/"),
        "contents_url": format!("https://api.github.com/repos/acme/web/contents/{filename}?ref={}", sha_of(n)),
        "patch": patch,
    })
}

#[tokio::test]
async fn a_revert_is_verified_by_the_inverse_patches_and_a_claim_is_not() {
    let (server, forge) = setup().await;
    let change = "@@ -1,3 +1,3 @@ mod cache;\n fn cache() {\n-    None\n+    Some(flaky())\n }";
    let undo =
        "@@ -7,4 +7,4 @@ mod cache;\n fn cache() {\n-    Some(flaky())\n+    None\n }\n // moved";
    let files = |n: u32, name: &str, patch: &str| json!([file_json(n, name, patch)]);
    let claim = format!(
        "Revert \"Add a flaky cache\"\n\nThis reverts commit {}.",
        sha_of(2)
    );
    for (n, message, files) in [
        (
            2,
            "Add a flaky cache".to_string(),
            files(2, "src/cache.rs", change),
        ),
        (3, claim.clone(), files(3, "src/cache.rs", undo)),
        (
            4,
            claim,
            files(4, "README.md", "@@ -1 +1 @@\n-# web\n+# Web"),
        ),
    ] {
        let body = commit_with_files(n, &message, files);
        mock(
            &server,
            "GET",
            &format!("/commits/{}", sha_of(n)),
            200,
            body,
        )
        .await;
    }
    let missing = json!({"message": format!("No commit found for SHA: {}", sha_of(5))});
    mock(
        &server,
        "GET",
        &format!("/commits/{}", sha_of(5)),
        422,
        missing,
    )
    .await;
    let sha = |n: u32| Sha::new(&sha_of(n)).unwrap();

    assert_eq!(forge.reverts(&sha(3), &sha(2)).await, Ok(true));
    assert_eq!(forge.reverts(&sha(4), &sha(2)).await, Ok(false));
    assert_eq!(forge.reverts(&sha(2), &sha(2)).await, Ok(false));
    visible(&server).await;
    assert_eq!(
        forge.reverts(&sha(3), &sha(5)).await,
        Err(ForgeError::Refused(
            "commit 0000000 not found in acme/web".into()
        ))
    );
    let asked = server.received_requests().await.unwrap();
    assert!(
        asked
            .iter()
            .filter(|r| r.url.path() != REPO)
            .all(|r| r.url.query() == Some("per_page=100&page=1")),
        "{asked:?}"
    );
}

#[tokio::test]
async fn one_tag_is_read_and_an_annotated_one_peeled() {
    let (server, forge) = setup().await;
    let light =
        |n: u32| json!({"ref": "refs/tags/v1", "object": {"type": "commit", "sha": sha_of(n)}});
    mock(&server, "GET", "/git/ref/tags/v1", 200, light(7)).await;
    let tag_object = sha_of(0xa0);
    mock(
        &server,
        "GET",
        "/git/ref/tags/v2",
        200,
        json!({"ref": "refs/tags/v2", "object": {"type": "tag", "sha": tag_object}}),
    )
    .await;
    mock(
        &server,
        "GET",
        &format!("/git/tags/{tag_object}"),
        200,
        json!({"sha": tag_object, "tag": "v2", "message": "release",
               "tagger": {"name": "Alice", "email": "alice@example.com"},
               "object": {"type": "commit", "sha": sha_of(8)}}),
    )
    .await;
    mock(
        &server,
        "GET",
        "/git/ref/tags/gone",
        404,
        json!({"message": "Not Found"}),
    )
    .await;

    let v1 = forge.tag("v1").await.unwrap().unwrap();
    assert_eq!((v1.sha.as_str(), v1.pushed_by), (sha_of(7).as_str(), None));
    let v2 = forge.tag("v2").await.unwrap().unwrap();
    assert_eq!(
        (v2.sha.as_str(), v2.pushed_by.as_deref()),
        (sha_of(8).as_str(), Some("Alice"))
    );
    assert_eq!(forge.tag("gone").await, Ok(None));
}

#[tokio::test]
async fn refusals_name_the_repository_and_are_not_retried() {
    let (server, forge) = setup().await;
    let refuse = |route: &str, status: u16| {
        Mock::given(method("GET"))
            .and(path(format!("{REPO}{route}")))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({"message": "no"})))
            .expect(1)
    };
    refuse("/branches/main", 401).mount(&server).await;
    refuse("/git/matching-refs/tags/", 403).mount(&server).await;
    refuse("/actions/runs/1", 404).mount(&server).await;

    let bad_token = forge.main_head().await.unwrap_err();
    assert_eq!(
        bad_token,
        ForgeError::Refused("GitHub refused: bad token for acme/web".into())
    );
    assert_eq!(
        forge.tags().await.unwrap_err().to_string(),
        "GitHub refused: the token may not do this on acme/web (403: no)"
    );
    assert_eq!(
        forge.run(1).await.unwrap_err().to_string(),
        "GitHub refused: acme/web not found or not visible to the token"
    );
    assert!(!format!("{forge:?} {bad_token:?}").contains(TOKEN));
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried() {
    let (server, forge) = setup().await;
    let once = |status: u16, headers: &[(&str, &str)]| {
        let mut reply = ResponseTemplate::new(status).set_body_json(json!({"message": "later"}));
        for (name, value) in headers {
            reply = reply.insert_header(*name, *value);
        }
        Mock::given(method("GET"))
            .respond_with(reply)
            .up_to_n_times(1)
            .with_priority(1)
    };
    once(500, &[]).mount(&server).await;
    once(403, &[("x-ratelimit-remaining", "0")])
        .mount(&server)
        .await;
    once(429, &[("retry-after", "0")]).mount(&server).await;
    let body = json!({"name": "main", "commit": {"sha": sha_of(7)}});
    mock(&server, "GET", "/branches/main", 200, body).await;

    let head = forge.main_head().await.unwrap().unwrap();
    assert_eq!(head.as_str(), sha_of(7));
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_server_that_stays_down_gives_up_after_five_attempts() {
    let (server, forge) = setup().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .expect(5)
        .mount(&server)
        .await;
    let err = forge.tags().await.unwrap_err();
    assert!(
        matches!(&err, ForgeError::Other(m) if m.contains("after 5 attempts")),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_then_reported() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // nothing listens on that port any more
    let forge = forge_at(&format!("http://{addr}"));
    let err = forge.main_head().await.unwrap_err();
    assert!(
        matches!(&err, ForgeError::Other(m) if m.contains("after 5 attempts")),
        "{err}"
    );
    assert!(!err.to_string().contains(TOKEN));
}

#[tokio::test]
async fn commit_statuses_send_the_state_and_a_short_description() {
    let (server, forge) = setup().await;
    let sha = Sha::new(&sha_of(3)).unwrap();
    mock(
        &server,
        "POST",
        &format!("/statuses/{sha}"),
        201,
        json!({"id": 1}),
    )
    .await;
    let long = "é".repeat(200);
    let url = "http://bot/branches/1";
    forge
        .commit_status(&sha, "trainbot/branch", CommitState::Pending, &long, url)
        .await
        .unwrap();
    forge
        .commit_status(&sha, "trainbot/branch", CommitState::Failure, "no", url)
        .await
        .unwrap();
    let sent = bodies(&server).await;
    assert_eq!(
        sent[0],
        json!({"state": "pending", "target_url": url, "context": "trainbot/branch",
               "description": "é".repeat(140)})
    );
    assert_eq!(sent[1]["state"], "failure");
}

#[tokio::test]
async fn deployments_are_created_with_their_statuses() {
    let (server, forge) = setup().await;
    let sha = Sha::new(&sha_of(3)).unwrap();
    let expected = json!({
        "ref": sha_of(3), "environment": "production", "description": "Train #4",
        "auto_merge": false, "required_contexts": [], "transient_environment": false,
        "production_environment": true,
    });
    Mock::given(method("POST"))
        .and(path(format!("{REPO}/deployments")))
        .and(body_json(expected))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 42, "sha": sha_of(3)})))
        .expect(1)
        .mount(&server)
        .await;
    mock(
        &server,
        "POST",
        "/deployments/42/statuses",
        201,
        json!({"id": 7}),
    )
    .await;

    let id = forge
        .create_deployment(&sha, "production", "Train #4")
        .await
        .unwrap();
    assert_eq!(id, 42);
    let log = "http://bot/logs/4";
    let site = Some("https://www.acme.example");
    forge
        .deployment_status(42, DeploymentState::InProgress, log, "production", site)
        .await
        .unwrap();
    forge
        .deployment_status(42, DeploymentState::Success, log, "production", site)
        .await
        .unwrap();
    forge
        .deployment_status(42, DeploymentState::Failure, "", "staging", None)
        .await
        .unwrap();
    let sent = bodies(&server).await;
    assert_eq!(
        sent[1],
        json!({"state": "in_progress", "log_url": log, "description": "Deploying",
               "environment_url": "https://www.acme.example", "auto_inactive": true})
    );
    assert_eq!(sent[2]["state"], "success");
    assert_eq!(sent[2]["environment_url"], "https://www.acme.example");
    assert_eq!(sent[2]["auto_inactive"], true);
    // Not production, no URL: GitHub's defaults.
    assert_eq!(
        sent[3],
        json!({"state": "failure", "description": "Deploy failed"})
    );
}

#[tokio::test]
async fn a_deployment_is_created_again_only_when_github_answered_an_error() {
    let (server, forge) = setup().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mock(&server, "POST", "/deployments", 201, json!({"id": 5})).await;
    let sha = Sha::new(&sha_of(3)).unwrap();
    assert_eq!(forge.create_deployment(&sha, "staging", "d").await, Ok(5));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    // A server that reads the request and hangs up: it may have acted on
    // it, so the deployment is not posted again.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
        }
    });
    let hangs_up = forge_at(&format!("http://{addr}"));
    let err = hangs_up
        .create_deployment(&sha, "staging", "d")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ForgeError::Other(m) if m.contains("not retried")),
        "{err}"
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn workflows_are_dispatched_and_their_runs_read() {
    let (server, forge) = setup().await;
    let inputs = BTreeMap::from([
        ("sha".to_string(), sha_of(3)),
        ("env".to_string(), "staging".to_string()),
    ]);
    Mock::given(method("POST"))
        .and(path(format!(
            "{REPO}/actions/workflows/deploy.yml/dispatches"
        )))
        .and(body_json(
            json!({"ref": "main", "inputs": {"sha": sha_of(3), "env": "staging"}}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let run = |id: u64, status: &str, conclusion: Value| {
        json!({"id": id, "head_sha": sha_of(3), "created_at": "2026-11-22T10:00:05Z",
               "status": status, "conclusion": conclusion,
               "html_url": format!("https://github.com/acme/web/actions/runs/{id}")})
    };
    let runs = json!({"total_count": 1, "workflow_runs": [run(77, "queued", Value::Null)]});
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/actions/workflows/deploy.yml/runs")))
        .and(query_param("event", "workflow_dispatch"))
        .and(query_param("head_sha", sha_of(3)))
        .and(query_param("per_page", "20"))
        .respond_with(ResponseTemplate::new(200).set_body_json(runs))
        .mount(&server)
        .await;
    mock(
        &server,
        "GET",
        "/actions/runs/77",
        200,
        run(77, "completed", json!("success")),
    )
    .await;

    forge.dispatch("deploy.yml", "main", &inputs).await.unwrap();
    let listed = forge.runs("deploy.yml", &sha_of(3)).await.unwrap();
    assert_eq!(
        listed,
        [WorkflowRun {
            id: 77,
            head_sha: sha_of(3),
            created_at: "2026-11-22T10:00:05Z".parse().unwrap(),
            status: "queued".into(),
            conclusion: None,
            html_url: "https://github.com/acme/web/actions/runs/77".into(),
        }]
    );
    let done = forge.run(77).await.unwrap();
    assert_eq!(
        (done.status.as_str(), done.conclusion.as_deref()),
        ("completed", Some("success"))
    );
}

#[test]
fn refs_are_percent_encoded_but_keep_their_slashes() {
    use super::api::encode;
    assert_eq!(encode("feature/ä x#1?", true), "feature/%C3%A4%20x%231%3F");
    assert_eq!(encode("feature/x", false), "feature%2Fx");
    assert_eq!(encode("v1.2-rc_1~", false), "v1.2-rc_1~");
}

#[tokio::test]
async fn matching_refs_follow_a_next_link_when_github_pages_them() {
    let (server, forge) = setup().await;
    let next = format!("{}{REPO}/git/matching-refs/tags/?page=2", server.uri());
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/git/matching-refs/tags/")))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"ref": "refs/tags/v2", "object": {"type": "commit", "sha": sha_of(2)}}
        ])))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/git/matching-refs/tags/")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "link",
                    format!("<{next}>; rel=\"next\", <{next}>; rel=\"last\""),
                )
                .set_body_json(json!([
                    {"ref": "refs/tags/v1", "object": {"type": "commit", "sha": sha_of(1)}}
                ])),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let names: Vec<String> = forge
        .tags()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["v1", "v2"]);
}

#[tokio::test]
async fn a_tag_listing_that_failed_half_way_is_built_again_after_a_304() {
    let (server, forge) = setup().await;
    let route = "/git/matching-refs/tags/";
    let v1 = json!({"ref": "refs/tags/v1", "object": {"type": "commit", "sha": sha_of(1)}});
    let v2 = json!({"ref": "refs/tags/v2", "object": {"type": "tag", "sha": sha_of(100)}});
    let peel = format!("/git/tags/{}", sha_of(100));
    mock_conditional(&server, route, "\"a\"", json!([v1])).await;
    assert_eq!(forge.tags().await.unwrap().len(), 1);

    // v2 is pushed, but its tag object cannot be read: the listing fails
    // after GitHub's new answer (and its ETag) came.
    server.reset().await;
    mock_conditional(&server, route, "\"b\"", json!([v1, v2])).await;
    mock(&server, "GET", &peel, 500, json!({"message": "down"})).await;
    assert!(forge.tags().await.is_err());

    // Now GitHub answers 304, and the list is v1 and v2, not the old one.
    server.reset().await;
    mock_conditional(&server, route, "\"b\"", json!([v1, v2])).await;
    let annotated = json!({"object": {"type": "commit", "sha": sha_of(2)}});
    mock(&server, "GET", &peel, 200, annotated).await;
    let names: Vec<String> = forge
        .tags()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["v1", "v2"]);
    assert_eq!(if_none_match(&server, route).await, [Some("\"b\"".into())]);
}

#[tokio::test]
async fn a_404_says_what_was_not_found() {
    let (server, forge) = setup().await;
    let sha = Sha::new(&sha_of(3)).unwrap();
    let gone = json!({"message": "Not Found"});
    mock(
        &server,
        "POST",
        &format!("/statuses/{sha}"),
        404,
        gone.clone(),
    )
    .await;
    mock(
        &server,
        "POST",
        "/actions/workflows/deploy.yml/dispatches",
        404,
        gone.clone(),
    )
    .await;
    mock(
        &server,
        "GET",
        "/actions/workflows/deploy.yml/runs",
        404,
        gone.clone(),
    )
    .await;
    mock(&server, "GET", "/commits/refs/tags/v1.2", 422, gone.clone()).await;
    mock(
        &server,
        "GET",
        &format!("/commits/{sha}"),
        404,
        gone.clone(),
    )
    .await;
    Mock::given(method("GET"))
        .and(path(REPO))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"full_name": "acme/web"})))
        .mount(&server)
        .await;

    let unknown = Sha::new(&sha_of(9)).unwrap();
    let no_commit = json!({"message": format!("No commit found for SHA: {unknown}")});
    mock(
        &server,
        "POST",
        &format!("/statuses/{unknown}"),
        422,
        no_commit.clone(),
    )
    .await;
    mock(&server, "POST", "/check-runs", 422, no_commit).await;
    let said = |e: ForgeError| e.to_string();
    let no_inputs = BTreeMap::new();
    let status = forge.commit_status(&unknown, "trainbot/branch", CommitState::Pending, "x", "");
    assert_eq!(
        said(status.await.unwrap_err()),
        "commit 0000000 not found in acme/web"
    );
    let run = CheckRun {
        name: "trainbot/branch".into(),
        status: CheckStatus::Queued,
        details_url: String::new(),
        title: "t".into(),
        summary: "s".into(),
    };
    assert_eq!(
        said(forge.create_check_run(&unknown, &run).await.unwrap_err()),
        "commit 0000000 not found in acme/web"
    );
    let status = forge.commit_status(&sha, "trainbot/branch", CommitState::Pending, "x", "");
    assert_eq!(
        said(status.await.unwrap_err()),
        "commit 0000000 not found in acme/web"
    );
    assert_eq!(
        said(forge.parent(&sha).await.unwrap_err()),
        "commit 0000000 not found in acme/web"
    );
    let dispatch = forge.dispatch("deploy.yml", "main", &no_inputs);
    assert_eq!(
        said(dispatch.await.unwrap_err()),
        "workflow deploy.yml not found in acme/web"
    );
    assert_eq!(
        said(forge.runs("deploy.yml", &sha_of(3)).await.unwrap_err()),
        "workflow deploy.yml not found in acme/web"
    );
    assert_eq!(
        said(forge.ref_sha("refs/tags/v1.2").await.unwrap_err()),
        "tag v1.2 not found in acme/web"
    );
}

#[tokio::test]
async fn a_404_from_a_repository_not_there_names_the_repository() {
    let (server, forge) = setup().await;
    let sha = Sha::new(&sha_of(3)).unwrap();
    // Nothing is mounted: GitHub answers 404 to everything, the repository
    // itself included.
    let status = forge.commit_status(&sha, "trainbot/branch", CommitState::Pending, "x", "");
    let repo = "GitHub refused: acme/web not found or not visible to the token";
    let no_inputs = BTreeMap::new();
    assert_eq!(status.await.unwrap_err().to_string(), repo);
    let dispatch = forge.dispatch("deploy.yml", "main", &no_inputs);
    assert_eq!(dispatch.await.unwrap_err().to_string(), repo);
    assert!(
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| r.url.path() == REPO)
    );
}

#[tokio::test]
async fn check_runs_are_created_and_updated() {
    let (server, forge) = setup().await;
    let sha = Sha::new(&sha_of(3)).unwrap();
    Mock::given(method("POST"))
        .and(path(format!("{REPO}/check-runs")))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 77})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{REPO}/check-runs/77")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 77})))
        .expect(2)
        .mount(&server)
        .await;
    let url = "http://bot/builds/4";
    let mut run = CheckRun {
        name: "trainbot/branch".into(),
        status: CheckStatus::Queued,
        details_url: url.into(),
        title: "Build 4 queued".into(),
        summary: "Waiting for a branch node.".into(),
    };
    assert_eq!(forge.create_check_run(&sha, &run).await, Ok(77));
    run.status = CheckStatus::InProgress;
    forge.update_check_run(77, &run).await.unwrap();
    run.status = CheckStatus::Completed(CheckConclusion::Failure);
    run.title = "Build 4 failed".into();
    run.summary = "x".repeat(70_000);
    forge.update_check_run(77, &run).await.unwrap();

    let sent = bodies(&server).await;
    assert_eq!(
        sent[0],
        json!({"name": "trainbot/branch", "head_sha": sha_of(3), "status": "queued",
               "details_url": url,
               "output": {"title": "Build 4 queued", "summary": "Waiting for a branch node."}})
    );
    assert_eq!(sent[1]["status"], "in_progress");
    assert_eq!(sent[1].get("conclusion"), None);
    assert_eq!(sent[1].get("head_sha"), None);
    assert_eq!(sent[2]["status"], "completed");
    assert_eq!(sent[2]["conclusion"], "failure");
    assert_eq!(sent[2]["details_url"], url);
    assert_eq!(sent[2]["output"]["title"], "Build 4 failed");
    assert_eq!(sent[2]["output"]["summary"].as_str().unwrap().len(), 65_535);
}

#[tokio::test]
async fn polled_runs_and_branch_heads_are_asked_conditionally_and_a_304_is_the_last_answer() {
    let (server, forge) = setup().await;
    let stats = Arc::new(ApiStats::default());
    let forge = forge.with_stats(stats.clone());
    let run = |status: &str| {
        json!({"id": 77, "head_sha": sha_of(3), "created_at": "2026-11-22T10:00:05Z",
               "status": status, "conclusion": null,
               "html_url": "https://github.com/acme/web/actions/runs/77"})
    };
    let runs = json!({"total_count": 1, "workflow_runs": [run("queued")]});
    mock_conditional(
        &server,
        "/actions/workflows/deploy.yml/runs",
        "\"l1\"",
        runs,
    )
    .await;
    mock_conditional(&server, "/actions/runs/77", "\"r1\"", run("in_progress")).await;
    let feature = json!({"name": "feature/x", "commit": {"sha": sha_of(8)}});
    mock_conditional(&server, "/branches/feature/x", "\"f1\"", feature).await;
    let branch: BranchName = "feature/x".parse().unwrap();

    let first = (
        forge.runs("deploy.yml", &sha_of(3)).await.unwrap(),
        forge.run(77).await.unwrap(),
        forge.branch_head(&branch).await.unwrap(),
    );
    let second = (
        forge.runs("deploy.yml", &sha_of(3)).await.unwrap(),
        forge.run(77).await.unwrap(),
        forge.branch_head(&branch).await.unwrap(),
    );
    assert_eq!(first.0.len(), 1);
    assert_eq!(first.0[0].status, "queued");
    assert_eq!(first.1.status, "in_progress");
    assert_eq!(first.2, Some(Sha::new(&sha_of(8)).unwrap()));
    assert_eq!(first, second);
    for (route, etag) in [
        ("/actions/workflows/deploy.yml/runs", "\"l1\""),
        ("/actions/runs/77", "\"r1\""),
        ("/branches/feature/x", "\"f1\""),
    ] {
        assert_eq!(
            if_none_match(&server, route).await,
            [None, Some(etag.to_string())],
            "{route}"
        );
    }
    // Three answers paid for, three 304s.
    assert_eq!(stats.requests(), (3, 3, 0));
}

#[tokio::test]
async fn a_changed_run_replaces_the_kept_answer_and_a_completed_one_is_forgotten() {
    let (server, forge) = setup().await;
    let run = |status: &str, conclusion: Value| {
        json!({"id": 78, "head_sha": sha_of(3), "created_at": "2026-11-22T10:00:05Z",
               "status": status, "conclusion": conclusion})
    };
    let route = format!("{REPO}/actions/runs/78");
    // The first answer (ETag a), then a changed one (ETag b) whatever is
    // sent, then 304 to b: the changed answer is what a 304 means.
    Mock::given(method("GET"))
        .and(path(route.clone()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"a\"")
                .set_body_json(run("queued", Value::Null)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(route.clone()))
        .and(wiremock::matchers::header("if-none-match", "\"b\""))
        .respond_with(ResponseTemplate::new(304).insert_header("etag", "\"b\""))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(route.clone()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"b\"")
                .set_body_json(run("in_progress", Value::Null)),
        )
        .up_to_n_times(1)
        .with_priority(3)
        .mount(&server)
        .await;
    assert_eq!(forge.run(78).await.unwrap().status, "queued");
    assert_eq!(forge.run(78).await.unwrap().status, "in_progress");
    assert_eq!(forge.run(78).await.unwrap().status, "in_progress");
    assert_eq!(forge.api.cached_routes(), 1);
    // The run moves on and completes (reset forgets the requests seen too).
    server.reset().await;
    Mock::given(method("GET"))
        .and(path(route.clone()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"c\"")
                .set_body_json(run("completed", json!("success"))),
        )
        .mount(&server)
        .await;
    let done = forge.run(78).await.unwrap();
    assert_eq!(
        (done.status.as_str(), done.conclusion.as_deref()),
        ("completed", Some("success"))
    );
    assert_eq!(forge.api.cached_routes(), 0, "a completed run is not kept");
    assert_eq!(
        if_none_match(&server, "/actions/runs/78").await,
        [Some("\"b\"".to_string())]
    );
}

#[tokio::test]
async fn the_polled_answers_kept_are_bounded_and_the_oldest_go_first() {
    let (server, forge) = setup().await;
    let heads = 70u32;
    for n in 0..heads {
        let body = json!({"name": format!("b{n}"), "commit": {"sha": sha_of(n + 1)}});
        mock_conditional(
            &server,
            &format!("/branches/b{n}"),
            &format!("\"e{n}\""),
            body,
        )
        .await;
    }
    let forge = &forge;
    let head = |n: u32| {
        let branch: BranchName = format!("b{n}").parse().unwrap();
        async move { forge.branch_head(&branch).await }
    };
    head(0).await.unwrap();
    for n in 1..heads {
        // b0 is polled all along: it is never the one evicted.
        head(n).await.unwrap();
        head(0).await.unwrap();
    }
    assert_eq!(forge.api.cached_routes(), super::api::CACHE_MAX);
    let server = &server;
    let asked = |n: u32| async move { if_none_match(server, &format!("/branches/b{n}")).await };
    assert!(asked(0).await[1..].iter().all(Option::is_some));
    // b1 went first; the newest is kept.
    head(1).await.unwrap();
    head(heads - 1).await.unwrap();
    assert_eq!(asked(1).await, [None, None]);
    assert_eq!(
        asked(heads - 1).await,
        [None, Some(format!("\"e{}\"", heads - 1))]
    );
}

#[tokio::test]
async fn a_404_on_a_compare_names_the_commits_and_a_run_the_repository() {
    let (server, forge) = setup().await;
    visible(&server).await;
    let zeros = "0".repeat(33);
    let base = Sha::new(&format!("abc1234{zeros}")).unwrap();
    let head = Sha::new(&format!("def5678{zeros}")).unwrap();
    let gone = json!({"message": "Not Found"});
    mock(
        &server,
        "GET",
        &format!("/compare/{base}...{head}"),
        404,
        gone.clone(),
    )
    .await;
    mock(&server, "GET", "/actions/runs/5", 404, gone.clone()).await;
    // A commit found, and then no main to compare it with.
    mock(
        &server,
        "GET",
        "/commits/abc1234",
        200,
        json!({"sha": base.as_str()}),
    )
    .await;
    mock(
        &server,
        "GET",
        &format!("/compare/{base}...main"),
        404,
        gone,
    )
    .await;
    let prefix: ShaPrefix = "abc1234".parse().unwrap();
    assert_eq!(
        forge
            .resolve_on_main(&prefix)
            .await
            .unwrap_err()
            .to_string(),
        "branch main not found in acme/web"
    );
    assert_eq!(
        forge
            .commits(Some(&base), &head)
            .await
            .unwrap_err()
            .to_string(),
        "commit abc1234 or def5678 not found in acme/web"
    );
    let repo = "GitHub refused: acme/web not found or not visible to the token";
    assert_eq!(forge.run(5).await.unwrap_err().to_string(), repo);

    // The repository itself gone: it is named instead.
    let (_nothing, forge) = setup().await;
    assert_eq!(
        forge
            .commits(Some(&base), &head)
            .await
            .unwrap_err()
            .to_string(),
        repo
    );
}
