//! GitHub App auth as GitHub speaks it (issue 15): a JWT signed RS256 with
//! the app's private key, checked with its public key, buys an installation
//! token (`POST /app/installations/{id}/access_tokens`, 201 with `token`
//! and `expires_at`) and finds the app's installation on a repository
//! (`GET /repos/{o}/{r}/installation`). An installation token is accepted
//! on the repository's routes until it expires; after that, 401 "Bad
//! credentials". Wire formats from GitHub's REST docs ("Create an
//! installation access token for an app", "Get a repository installation
//! for the authenticated app").

use std::time::Duration;

use axum::http::Method;
use chrono::{DateTime, Utc};
use octocrab::jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Value, json};

use super::{FakeGithub, Reply, Shared, State};

/// The fake's GitHub App, once `FakeGithub::enable_app` made one.
pub struct App {
    pub app_id: u64,
    pub installation_id: u64,
    key: DecodingKey,
    /// How long a minted token lives (`expires_at` = minting time + this).
    pub token_ttl: Duration,
    /// Every installation token minted, oldest first.
    pub tokens: Vec<Minted>,
    /// Every request signed with an installation token: which one, where.
    pub uses: Vec<Use>,
    /// Requests refused for their credentials, with GitHub's message.
    pub refusals: Vec<Refusal>,
    /// JWTs accepted (token mints and installation lookups).
    pub jwts: usize,
}

#[derive(Debug, Clone)]
pub struct Minted {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Use {
    pub method: String,
    pub path: String,
    pub token: String,
}

#[derive(Debug, Clone)]
pub struct Refusal {
    pub path: String,
    pub message: String,
}

/// What a request's `Authorization` carries, judged.
pub(super) enum Credential {
    /// Accepted (the PAT, or a live installation token).
    Good,
    /// Refused with this reply.
    Refused(Reply),
}

impl FakeGithub {
    /// From now on the fake is also GitHub App `app_id`, installed on the
    /// repository as `installation_id`, checking JWTs with `public_key_pem`
    /// and minting tokens that live `token_ttl`.
    pub fn enable_app(
        &self,
        app_id: u64,
        installation_id: u64,
        public_key_pem: &str,
        token_ttl: Duration,
    ) {
        let key = DecodingKey::from_rsa_pem(public_key_pem.as_bytes()).expect("a public key");
        self.with(|st| {
            st.app = Some(App {
                app_id,
                installation_id,
                key,
                token_ttl,
                tokens: Vec::new(),
                uses: Vec::new(),
                refusals: Vec::new(),
                jwts: 0,
            });
        });
    }

    /// Every token minted so far expires now, as if the bot's clock had
    /// drifted or a token had outlived its hour.
    pub fn expire_tokens(&self) {
        self.with(|st| {
            let app = st.app.as_mut().expect("enable_app first");
            let past = Utc::now() - chrono::Duration::seconds(1);
            for t in &mut app.tokens {
                t.expires_at = past;
            }
        });
    }

    /// Reads the app's records.
    pub fn app<T>(&self, f: impl FnOnce(&App) -> T) -> T {
        self.with(|st| f(st.app.as_ref().expect("enable_app first")))
    }

    /// Waits until `n` installation tokens have been minted.
    pub fn wait_for_tokens(&self, n: usize) -> Vec<Minted> {
        self.wait_for(&format!("{n} installation tokens"), |st| {
            let tokens = &st.app.as_ref()?.tokens;
            (tokens.len() >= n).then(|| tokens.clone())
        })
    }
}

/// The bearer of `Authorization: Bearer …` (or `token …`).
pub(super) fn bearer(authorization: Option<&str>) -> Option<String> {
    let v = authorization?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("token "))
        .map(str::to_string)
}

/// The reply to the app's own routes, or None for any other route.
pub(super) fn answer(
    sh: &Shared,
    st: &mut State,
    method: &Method,
    path: &str,
    bearer: Option<&str>,
) -> Option<Reply> {
    let installation_route = format!("/repos/{}/{}/installation", sh.owner, sh.repo);
    let any_installation = path.starts_with("/repos/") && path.ends_with("/installation");
    let minting = path
        .strip_prefix("/app/installations/")
        .and_then(|rest| rest.strip_suffix("/access_tokens"))
        .filter(|_| *method == Method::POST);
    let looking_up = *method == Method::GET && any_installation;
    if minting.is_none() && !looking_up {
        return None;
    }
    let app = st.app.as_mut()?;
    if let Err(message) = verify_jwt(app, bearer.unwrap_or_default()) {
        app.refusals.push(Refusal {
            path: path.to_string(),
            message: message.to_string(),
        });
        return Some(unauthorized(message));
    }
    app.jwts += 1;
    if looking_up && path == installation_route {
        return Some(Reply::json(200, installation_json(sh, app)));
    }
    if looking_up {
        return Some(not_found(
            "get-a-repository-installation-for-the-authenticated-app",
        ));
    }
    if minting != Some(&app.installation_id.to_string()) {
        return Some(not_found("create-an-installation-access-token-for-an-app"));
    }
    let ttl = chrono::Duration::from_std(app.token_ttl).expect("a short ttl");
    // GitHub's `expires_at` has whole seconds.
    let expires_at = DateTime::from_timestamp((Utc::now() + ttl).timestamp(), 0).expect("a time");
    let token = format!("ghs_fake{:032}", app.tokens.len() + 1);
    app.tokens.push(Minted {
        token: token.clone(),
        expires_at,
    });
    Some(Reply::json(
        201,
        json!({
            "token": token,
            "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "permissions": permissions(),
            "repository_selection": "selected"
        }),
    ))
}

/// Whether `bearer` may call a repository route: the PAT always, an
/// installation token until it expires.
pub(super) fn judge(
    sh: &Shared,
    st: &mut State,
    method: &Method,
    path: &str,
    bearer: Option<&str>,
) -> Credential {
    let bearer = bearer.unwrap_or_default();
    st.signed_by_app = false;
    if bearer == sh.token {
        return Credential::Good;
    }
    let Some(app) = st.app.as_mut() else {
        return Credential::Refused(Reply::message(401, "Bad credentials"));
    };
    let live = app
        .tokens
        .iter()
        .find(|t| t.token == bearer)
        .map(|t| t.expires_at > Utc::now());
    match live {
        Some(true) => {
            st.signed_by_app = true;
            let app = st.app.as_mut().expect("the app");
            app.uses.push(Use {
                method: method.to_string(),
                path: path.to_string(),
                token: bearer.to_string(),
            });
            Credential::Good
        }
        Some(false) | None => {
            let why = if live.is_some() {
                "Bad credentials (token expired)"
            } else {
                "Bad credentials"
            };
            app.refusals.push(Refusal {
                path: path.to_string(),
                message: why.to_string(),
            });
            Credential::Refused(unauthorized("Bad credentials"))
        }
    }
}

/// The app's permissions, as GitHub lists them on its installation and
/// its tokens.
fn permissions() -> Value {
    json!({
        "actions": "write",
        "checks": "write",
        "contents": "read",
        "deployments": "write",
        "metadata": "read",
        "statuses": "write"
    })
}

/// GitHub's 401, with its message.
fn unauthorized(message: &str) -> Reply {
    Reply::json(
        401,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
    )
}

/// GitHub's 404 on one of the Apps API's routes (`anchor`, in its docs).
fn not_found(anchor: &str) -> Reply {
    Reply::json(
        404,
        json!({
            "message": "Not Found",
            "documentation_url": format!("https://docs.github.com/rest/apps/apps#{anchor}"),
            "status": "404"
        }),
    )
}

/// GitHub's checks of an app's JWT, with GitHub's messages.
fn verify_jwt(app: &App, jwt: &str) -> Result<(), &'static str> {
    #[derive(serde::Deserialize)]
    struct Claims {
        iat: i64,
        exp: i64,
        iss: Value,
    }
    const UNDECODABLE: &str = "A JSON web token could not be decoded";
    let mut validation = Validation::new(Algorithm::RS256);
    // The times are checked below, as GitHub words them.
    validation.validate_exp = false;
    validation.leeway = 0;
    validation.required_spec_claims.clear();
    let claims = decode::<Claims>(jwt, &app.key, &validation)
        .map_err(|_| UNDECODABLE)?
        .claims;
    let now = Utc::now().timestamp();
    if claims.exp <= now {
        return Err(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        );
    }
    if claims.exp - claims.iat > 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future");
    }
    if claims.iat > now + 60 {
        return Err(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        );
    }
    let iss = match &claims.iss {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    if iss != Some(app.app_id) {
        return Err(UNDECODABLE);
    }
    Ok(())
}

/// `GET /repos/{o}/{r}/installation`: the installation, as GitHub shows it.
fn installation_json(sh: &Shared, app: &App) -> Value {
    let id = app.installation_id;
    json!({
        "id": id,
        "account": {
            "login": sh.owner,
            "id": 1,
            "node_id": "MDEyOk9yZ2FuaXphdGlvbjE=",
            "type": "Organization",
            "site_admin": false
        },
        "repository_selection": "selected",
        "access_tokens_url": format!("{}/app/installations/{id}/access_tokens", sh.base_url),
        "repositories_url": format!("{}/installation/repositories", sh.base_url),
        "html_url": format!("https://github.com/organizations/{}/settings/installations/{id}", sh.owner),
        "app_id": app.app_id,
        "app_slug": "trainbot",
        "target_id": 1,
        "target_type": "Organization",
        "permissions": permissions(),
        "events": ["push", "workflow_run"],
        "created_at": "2026-01-05T10:00:00Z",
        "updated_at": "2026-01-05T10:00:00Z",
        "single_file_name": null,
        "suspended_at": null,
        "suspended_by": null
    })
}

/// A JWT as an app would sign it, for tests of the checks: `iat` and `exp`
/// relative to now, in seconds.
pub fn sign_jwt(private_key_pem: &str, app_id: u64, iat: i64, exp: i64) -> String {
    let key = octocrab::jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
        .expect("a private key");
    let now = Utc::now().timestamp();
    let claims = json!({"iss": app_id, "iat": now + iat, "exp": now + exp});
    octocrab::jsonwebtoken::encode(
        &octocrab::jsonwebtoken::Header::new(Algorithm::RS256),
        &claims,
        &key,
    )
    .expect("sign")
}
