//! Who may read the pages (SPEC §13, "Web access"): one middleware over the
//! whole site, single pipeline or several.
//!
//! - **Host.** A request whose `Host` names neither `bot.public_url`'s host,
//!   `localhost`, nor an IP address is refused `421`: a page some other site
//!   made a browser load by rebinding its own name to the bot's address
//!   (DNS rebinding) cannot read the dashboard, password or not. The port is
//!   not compared: a rebinding attacker can only choose the name, and proxies
//!   change ports.
//! - **Password.** With `web.password_env` set, every other request needs
//!   HTTP Basic auth with the password (any user name) or
//!   `Authorization: Bearer <password>`; without, `401` and
//!   `WWW-Authenticate: Basic realm="trainbot"`.
//!
//! Open to everyone: `/healthz` (and a pipeline's own `/p/NAME/healthz`),
//! which load balancers probe by any name, `POST /webhooks/github`, which
//! its HMAC signature guards and GitHub may reach under another name than
//! the dashboard's, and `/assets/*`, the same CSS and script for everyone.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::webhook::reply;
use crate::config::Settings;

/// What the middleware checks, taken from the settings once.
pub(super) struct Access {
    /// `bot.public_url`'s host, lower case, without brackets or port.
    public_host: Option<String>,
    password: Option<SecretString>,
}

impl Access {
    pub(super) fn of(settings: &Settings) -> Arc<Access> {
        Arc::new(Access {
            public_host: settings
                .bot
                .root_url
                .parse::<axum::http::Uri>()
                .ok()
                .and_then(|uri| uri.host().map(normal_host)),
            password: settings.web.password.clone(),
        })
    }

    /// A name the bot answers to: public_url's host, localhost or an IP
    /// address (none of which another site can rebind).
    fn known_host(&self, host: &str) -> bool {
        let host = normal_host(host);
        host == "localhost"
            || host.parse::<IpAddr>().is_ok()
            || self.public_host.as_deref() == Some(host.as_str())
    }

    /// True when no password is set, or the request carries it.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(password) = &self.password else {
            return true;
        };
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(offered_password)
        else {
            return false;
        };
        same_secret(password.expose_secret().as_bytes(), &given)
    }
}

/// `host`, `host:port`, `[v6]:port` → the host, lower case, without the
/// brackets of an IPv6 address and without a final dot.
fn normal_host(authority: &str) -> String {
    let host = match authority.parse::<axum::http::uri::Authority>() {
        Ok(a) => a.host().to_string(),
        Err(_) => authority.to_string(),
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// The password an `Authorization` header offers: Basic `user:password`
/// (any user) or Bearer `password`.
fn offered_password(value: &str) -> Option<Vec<u8>> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.as_bytes().to_vec());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

/// Equal in constant time, whatever the lengths: HMACs of both under a
/// fixed key, compared by `verify_slice`.
fn same_secret(expected: &[u8], given: &[u8]) -> bool {
    let mac = |key: &[u8]| {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"trainbot web password")
            .expect("HMAC takes any key");
        mac.update(key);
        mac
    };
    let want = mac(expected).finalize().into_bytes();
    mac(given).verify_slice(&want).is_ok()
}

/// Open to anyone: health and the signed webhook, and the static assets.
fn open(method: &Method, path: &str) -> bool {
    if path == "/healthz" || path.starts_with("/assets/") {
        return true;
    }
    if path == "/webhooks/github" {
        return method == Method::POST;
    }
    // A pipeline's own health among several: `/p/NAME/healthz`.
    path.strip_prefix("/p/")
        .and_then(|rest| rest.strip_suffix("/healthz"))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// The middleware: Host first (a misdirected request is refused whatever
/// it carries), then the password.
pub(super) async fn guard(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    if open(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    // HTTP/2 carries the host in the URI; a request with neither (no
    // browser sends one) cannot come from a rebound name.
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{0}").to_string())
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if let Some(host) = host
        && !access.known_host(&host)
    {
        return reply(
            StatusCode::MISDIRECTED_REQUEST,
            "this bot answers to bot.public_url's host, localhost and IP addresses only",
        );
    }
    if !access.admits(req.headers()) {
        let mut res = reply(
            StatusCode::UNAUTHORIZED,
            "the dashboard needs the password (web.password_env): HTTP Basic auth with any user name, or Authorization: Bearer",
        );
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"trainbot\", charset=\"UTF-8\""),
        );
        return res;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_by_name_without_port() {
        let access = Access {
            public_host: Some("bot.example.com".into()),
            password: None,
        };
        for ok in [
            "bot.example.com",
            "BOT.example.com:443",
            "bot.example.com.",
            "localhost:8080",
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "[fe80::1]",
        ] {
            assert!(access.known_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "bot.example.com.evil.example",
            "example.com",
            "localhost.evil.example:8080",
            "",
        ] {
            assert!(!access.known_host(bad), "{bad}");
        }
    }

    #[test]
    fn basic_takes_any_user_and_bearer_the_password_alone() {
        let basic = |creds: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(creds)
            )
        };
        assert_eq!(offered_password(&basic("u:pw:x")).unwrap(), b"pw:x");
        assert_eq!(offered_password(&basic(":pw")).unwrap(), b"pw");
        assert_eq!(offered_password("bearer pw").unwrap(), b"pw");
        assert!(offered_password(&basic("no colon")).is_none());
        assert!(offered_password("Digest x").is_none());
        assert!(offered_password("Basic !!!").is_none());
        assert!(same_secret(b"secret", b"secret"));
        assert!(!same_secret(b"secret", b"secret2"));
        assert!(!same_secret(b"secret", b""));
    }

    #[test]
    fn only_health_the_webhook_and_assets_are_open() {
        assert!(open(&Method::GET, "/healthz"));
        assert!(open(&Method::GET, "/p/web/healthz"));
        assert!(open(&Method::POST, "/webhooks/github"));
        assert!(open(&Method::GET, "/assets/app.css"));
        assert!(!open(&Method::GET, "/webhooks/github"));
        assert!(!open(&Method::GET, "/p/web/x/healthz"));
        assert!(!open(&Method::GET, "/p//healthz"));
        assert!(!open(&Method::GET, "/healthz/x"));
        assert!(!open(&Method::GET, "/"));
    }
}
