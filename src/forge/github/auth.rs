//! Who the bot is to GitHub: a token, or a GitHub App whose private key
//! signs short JWTs that buy installation tokens (SPEC §13, `[forge.github]
//! auth`). Read once at start, from the environment variables the config
//! names, and registered as secrets so no sink can show them.

use std::fmt;

use octocrab::EncodingKey;
use secrecy::SecretString;

use crate::config::{GithubAuth, GithubSettings};

/// The secret the GitHub forge signs in with.
#[derive(Clone)]
pub enum Credentials {
    /// A personal, fine-grained or other bearer token.
    Token(SecretString),
    App(AppKey),
}

/// A GitHub App: its id, its private key, and (when configured) the
/// installation on the repository.
#[derive(Clone)]
pub struct AppKey {
    pub app_id: u64,
    pub key: EncodingKey,
    /// None: looked up for the repository at the first call.
    pub installation_id: Option<u64>,
    /// The variable the key came from, for error texts.
    pub key_env: String,
}

impl fmt::Debug for Credentials {
    // Written out so that neither the token nor the key is ever shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Credentials::Token(***)"),
            Credentials::App(app) => f
                .debug_struct("Credentials::App")
                .field("app_id", &app.app_id)
                .field("installation_id", &app.installation_id)
                .finish_non_exhaustive(),
        }
    }
}

impl From<SecretString> for Credentials {
    fn from(token: SecretString) -> Credentials {
        Credentials::Token(token)
    }
}

impl Credentials {
    /// The credentials `settings` names, read from the environment. The
    /// error names the config key and the variable: it is a configuration
    /// problem (exit 2), found before anything starts.
    pub fn from_env(settings: &GithubSettings) -> Result<Credentials, String> {
        Credentials::read(settings, |var| std::env::var(var).ok())
    }

    /// `from_env` with the environment given (for tests).
    pub fn read(
        settings: &GithubSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, String> {
        let repo = format!("{}/{}", settings.owner, settings.repo);
        match &settings.auth {
            GithubAuth::Token => {
                let var = &settings.token_env;
                match env(var) {
                    Some(token) if !token.trim().is_empty() => {
                        crate::secrets::register(&token);
                        Ok(Credentials::Token(token.trim().to_string().into()))
                    }
                    _ => Err(format!(
                        "forge.github.token_env: the environment variable {var} is not set or \
                         empty; it must hold a GitHub token for {repo}"
                    )),
                }
            }
            GithubAuth::App {
                app_id,
                private_key_env: var,
                installation_id,
            } => {
                let pem = match env(var) {
                    Some(pem) if !pem.trim().is_empty() => pem_text(&pem),
                    _ => {
                        return Err(format!(
                            "forge.github.private_key_env: the environment variable {var} is not \
                             set or empty; it must hold the private key (.pem) of GitHub App \
                             {app_id}"
                        ));
                    }
                };
                register_pem(&pem);
                let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| {
                    format!(
                        "forge.github.private_key_env: {var} does not hold an RSA private key in \
                         PEM form (the .pem file GitHub generates for the app, starting \
                         -----BEGIN RSA PRIVATE KEY-----)"
                    )
                })?;
                Ok(Credentials::App(AppKey {
                    app_id: *app_id,
                    key,
                    installation_id: *installation_id,
                    key_env: var.clone(),
                }))
            }
        }
    }
}

/// The PEM as written, or with its line breaks restored when the variable
/// was set from a one-line form (`\n` written out, as `.env` files do).
fn pem_text(value: &str) -> String {
    let value = value.trim();
    if !value.contains('\n') && value.contains("\\n") {
        value.replace("\\n", "\n")
    } else {
        value.to_string()
    }
}

/// Every line of the key's body is a secret: a log that printed the key
/// shows `***` for each line. (Not the key whole: the longest secret is how
/// much streaming step output is held back before it can be masked.)
fn register_pem(pem: &str) {
    for line in pem.lines().map(str::trim) {
        if !line.starts_with("-----") {
            crate::secrets::register(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../../tests/fixtures/github-app-test-key.pem");

    fn settings(auth: GithubAuth) -> GithubSettings {
        GithubSettings {
            owner: "acme".into(),
            repo: "web".into(),
            token_env: "GITHUB_TOKEN".into(),
            webhook_secret_env: "GITHUB_WEBHOOK_SECRET".into(),
            api_url: "https://api.github.com".into(),
            checks: false,
            statuses: true,
            auth,
        }
    }

    fn app() -> GithubAuth {
        GithubAuth::App {
            app_id: 42,
            private_key_env: "APP_KEY".into(),
            installation_id: None,
        }
    }

    #[test]
    fn a_token_is_read_from_its_variable() {
        let read = Credentials::read(&settings(GithubAuth::Token), |v| {
            (v == "GITHUB_TOKEN").then(|| "ghp_from_env_123\n".to_string())
        });
        assert!(matches!(read, Ok(Credentials::Token(_))));
        let missing = Credentials::read(&settings(GithubAuth::Token), |_| None).unwrap_err();
        assert!(
            missing.starts_with("forge.github.token_env: the environment variable GITHUB_TOKEN"),
            "{missing}"
        );
    }

    #[test]
    fn an_app_key_is_read_as_written_or_from_one_line() {
        for value in [KEY.to_string(), KEY.trim().replace('\n', "\\n")] {
            let read = Credentials::read(&settings(app()), |v| {
                (v == "APP_KEY").then(|| value.clone())
            });
            match read {
                Ok(Credentials::App(app)) => {
                    assert_eq!((app.app_id, app.installation_id), (42, None));
                    assert_eq!(app.key_env, "APP_KEY");
                }
                other => panic!("{other:?}"),
            }
        }
        // Each line of the key's body is masked from now on.
        let line = KEY.lines().nth(3).unwrap();
        assert_eq!(crate::secrets::mask(line), "***");
    }

    #[test]
    fn a_missing_or_bad_key_names_the_key_and_the_variable() {
        let missing = Credentials::read(&settings(app()), |_| None).unwrap_err();
        assert_eq!(
            missing,
            "forge.github.private_key_env: the environment variable APP_KEY is not set or empty; \
             it must hold the private key (.pem) of GitHub App 42"
        );
        let bad = Credentials::read(&settings(app()), |_| Some("not a key".into())).unwrap_err();
        assert!(
            bad.starts_with(
                "forge.github.private_key_env: APP_KEY does not hold an RSA private key"
            ),
            "{bad}"
        );
        assert!(!bad.contains("not a key"), "{bad}");
    }

    #[test]
    fn debug_shows_neither_token_nor_key() {
        let token = Credentials::Token("ghp_never_shown_1".to_string().into());
        assert!(!format!("{token:?}").contains("never_shown"));
        let Ok(app) = Credentials::read(&settings(app()), |_| Some(KEY.to_string())) else {
            panic!("the test key reads");
        };
        let shown = format!("{app:?}");
        assert!(!shown.contains("BEGIN"), "{shown}");
        assert!(shown.contains("42"), "{shown}");
    }
}
