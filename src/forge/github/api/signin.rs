//! Signing in to GitHub: a token, or a GitHub App whose JWT buys
//! installation tokens (`[forge.github] auth`). The call layer in the
//! parent asks `client_for` before each attempt and turns refusals into
//! texts that point at the setting to fix.

use std::future::Future;
use std::pin::Pin;

use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use octocrab::service::middleware::retry::RetryConfig;
use secrecy::ExposeSecret;

use super::{Api, Attempt, CONNECT_TIMEOUT, Method, READ_TIMEOUT, Reply, message, one_line};
use crate::config::GithubSettings;
use crate::forge::ForgeError;
use crate::forge::github::auth::Credentials;

/// An installation token (GitHub gives them an hour) is renewed when it has
/// less than this left: a call, its retries and a slow step's polling all
/// fit in what remains.
const RENEW_BEFORE: chrono::Duration = chrono::Duration::minutes(5);

/// What `GET /repos/{o}/{r}/installation` tells of the app's installation.
#[derive(Debug, serde::Deserialize)]
struct Installation {
    id: u64,
}

/// How requests are signed.
pub(super) enum Client {
    Token(Octocrab),
    App(Box<AppClient>),
}

/// A GitHub App: `app` signs each request with a fresh JWT (for the
/// installation's id and tokens); `installation` carries the installation
/// token, which octocrab renews when it is about to expire or is refused.
pub(super) struct AppClient {
    app: Octocrab,
    app_id: u64,
    installation_id: Option<u64>,
    key_env: String,
    installation: tokio::sync::OnceCell<Octocrab>,
    /// Held while the token is checked (and renewed): calls that start
    /// together wait for one new token instead of each buying their own.
    renewing: tokio::sync::Mutex<()>,
    /// Its tokens' kind among renewed secrets: one per repository, as each
    /// pipeline renews its own.
    token_kind: String,
}

/// Whom a request speaks as: the app itself (JWT: only the installation
/// lookup) or the repository's credentials (a token, or the installation's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum As {
    Repository,
    App,
}

impl AppClient {
    /// GitHub refused the JWT the key signed (`said`: GitHub's message).
    fn key_refused(&self, said: &str) -> String {
        format!(
            "GitHub refused GitHub App {}'s key: is {} the private key of app {}? ({said})",
            self.app_id, self.key_env, self.app_id
        )
    }
}

impl Client {
    pub(super) fn new(
        settings: &GithubSettings,
        credentials: Credentials,
    ) -> Result<Client, ForgeError> {
        Ok(match credentials {
            Credentials::Token(token) => {
                Client::Token(octocrab(settings, |b| b.personal_token(token))?)
            }
            Credentials::App(key) => {
                let app_id = AppId(key.app_id);
                Client::App(Box::new(AppClient {
                    app: octocrab(settings, |b| b.app(app_id, key.key.clone()))?,
                    app_id: key.app_id,
                    installation_id: key.installation_id,
                    key_env: key.key_env,
                    installation: tokio::sync::OnceCell::new(),
                    renewing: tokio::sync::Mutex::new(()),
                    token_kind: format!(
                        "github installation token {}/{}",
                        settings.owner, settings.repo
                    ),
                }))
            }
        })
    }
}

impl Api {
    /// The client that speaks as `who`. For an app, the installation is
    /// found at the first call, and its token renewed when it has less than
    /// `RENEW_BEFORE` left, so no request ever carries an expiring token.
    pub(super) async fn client_for(&self, who: As) -> Result<&Octocrab, Attempt> {
        let app = match &self.client {
            Client::Token(octo) => return Ok(octo),
            Client::App(app) => app,
        };
        if who == As::App {
            return Ok(&app.app);
        }
        let octo = app
            .installation
            .get_or_try_init(|| self.installation(app))
            .await?;
        let renewing = app.renewing.lock().await;
        let token = octo.installation_token_with_buffer(RENEW_BEFORE).await;
        drop(renewing);
        match token {
            Ok(token) => {
                crate::secrets::register_renewed(&app.token_kind, token.expose_secret());
                Ok(octo)
            }
            Err(e) => Err(self.token_refused(app, &e)),
        }
    }

    /// The client of the app's installation on the repository: the one
    /// configured, else the one GitHub names (`GET /repos/{o}/{r}/installation`).
    ///
    /// Boxed, with its type named: it makes a call from within a call.
    fn installation<'a>(
        &'a self,
        app: &'a AppClient,
    ) -> Pin<Box<dyn Future<Output = Result<Octocrab, Attempt>> + Send + 'a>> {
        Box::pin(async move {
            let id = match app.installation_id {
                Some(id) => id,
                None => {
                    let route = format!("{}/installation", self.repo_route());
                    let reply = self
                        .call_as(As::App, Method::Get, &route, None, None)
                        .await
                        .map_err(Attempt::Fail)?;
                    match reply.status {
                        404 => {
                            return Err(Attempt::Fail(ForgeError::Refused(format!(
                                "GitHub App {} is not installed on {}/{}: install it from the app's \
                             page, or set forge.github.installation_id",
                                app.app_id, self.owner, self.repo
                            ))));
                        }
                        _ => {
                            let found: Installation = self
                                .expect_ok(Method::Get, &route, &reply)
                                .map_err(Attempt::Fail)?;
                            tracing::info!(
                                app_id = app.app_id,
                                installation_id = found.id,
                                "Found the GitHub App's installation."
                            );
                            found.id
                        }
                    }
                }
            };
            app.app.installation(InstallationId(id)).map_err(|e| {
                Attempt::Fail(ForgeError::Other(format!(
                    "cannot sign in as installation {id} of GitHub App {}: {}",
                    app.app_id,
                    one_line(&e)
                )))
            })
        })
    }

    /// Why GitHub gave no installation token: retried when GitHub is down
    /// or busy, else said in words that point at the setting to fix.
    fn token_refused(&self, app: &AppClient, e: &octocrab::Error) -> Attempt {
        let octocrab::Error::GitHub { source, .. } = e else {
            return Attempt::Retry {
                why: format!("no installation token: {}", one_line(e)),
                wait: None,
            };
        };
        let status = source.status_code.as_u16();
        let said = source.message.lines().next().unwrap_or("").trim();
        let installation = app.installation_id.map_or_else(
            || "its installation".to_string(),
            |id| format!("installation {id}"),
        );
        let e = match status {
            429 | 500..=599 => {
                return Attempt::Retry {
                    why: format!("no installation token: {status} {said}"),
                    wait: None,
                };
            }
            401 => ForgeError::Refused(app.key_refused(said)),
            404 => ForgeError::Refused(format!(
                "GitHub App {} has no {installation}: check forge.github.installation_id, \
                 or install the app on {}/{}",
                app.app_id, self.owner, self.repo
            )),
            _ => ForgeError::Refused(format!(
                "GitHub gave GitHub App {} no token for {installation} ({status}: {said})",
                app.app_id
            )),
        };
        tracing::warn!(error = %e, "GitHub App sign-in failed.");
        Attempt::Fail(e)
    }

    /// A 401 that octocrab did not cure (it retries once with a fresh
    /// installation token).
    pub(super) fn unauthorized(&self, who: As, reply: &Reply) -> ForgeError {
        let (owner, repo) = (&self.owner, &self.repo);
        ForgeError::Refused(match (&self.client, who) {
            (Client::Token(_), _) => format!("GitHub refused: bad token for {owner}/{repo}"),
            (Client::App(app), As::App) => app.key_refused(&message(&reply.body)),
            (Client::App(app), As::Repository) => format!(
                "GitHub refused GitHub App {}'s installation token for {owner}/{repo} ({})",
                app.app_id,
                message(&reply.body)
            ),
        })
    }

    /// A 403 that is not a rate limit: the credentials lack a permission,
    /// which GitHub's message names ("Resource not accessible by integration").
    pub(super) fn forbidden(&self, reply: &Reply) -> ForgeError {
        let who = match &self.client {
            Client::Token(_) => "the token".to_string(),
            Client::App(app) => format!("GitHub App {}", app.app_id),
        };
        ForgeError::Refused(format!(
            "GitHub refused: {who} may not do this on {}/{} (403: {})",
            self.owner,
            self.repo,
            message(&reply.body)
        ))
    }
}

type Builder = octocrab::OctocrabBuilder<
    octocrab::NoSvc,
    octocrab::DefaultOctocrabBuilderConfig,
    octocrab::NoAuth,
    octocrab::NotLayerReady,
>;

/// A client for `settings.api_url`, signed by `sign`, without octocrab's
/// own retries.
fn octocrab(
    settings: &GithubSettings,
    sign: impl FnOnce(Builder) -> Builder,
) -> Result<Octocrab, ForgeError> {
    let builder = Octocrab::builder()
        .add_retry_config(RetryConfig::None)
        .set_connect_timeout(Some(CONNECT_TIMEOUT))
        .set_read_timeout(Some(READ_TIMEOUT))
        .base_uri(settings.api_url.as_str())
        .map_err(|e| ForgeError::Other(format!("bad GitHub api_url {}: {e}", settings.api_url)))?;
    sign(builder)
        .build()
        .map_err(|e| ForgeError::Other(format!("cannot build the GitHub client: {e}")))
}
